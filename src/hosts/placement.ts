/**
 * Where VMs and routers go: CloudStack's FirstFitPlanner (its default `vm.deployment.planner`) stated simply. A
 * host qualifies when it is in the VM's zone, Up, Enabled (resource state; its cluster's and pod's allocation
 * state Enabled too) and has the VM's memory and CPU (cores × MHz) left unallocated; of those the one running
 * the fewest VMs and routers wins (ties: the oldest host). A VM starting again goes back to its last host when
 * that still qualifies (CloudStack's last_host_id). The two routers of a redundant pair go to different hosts
 * when the zone has two that qualify (on one host only, both go there rather than neither). A VPC's tier routers
 * share one host, chosen here for the first of them (drivers/hosts.ts `vpcRouterHost` sends the others after it).
 *
 * Allocated on a host: its VMs that run (Starting, Running, Stopping) at their size, and its routers that run
 * at `router.ram.size` MB and `router.cpu.mhz`. Stopped VMs count nothing (they stay defined on their host).
 * One server places one VM or router at a time (drivers/hosts.ts), so a burst spreads over the hosts; two
 * servers placing at the same moment may both take the last room on a host: the host then runs both (its memory
 * is overcommitted), as placement is advice to the planner, not a reservation.
 */
import type { Executor } from '../store/db.js';
import { getSetting } from '../configuration/repository.js';
import type { HostRow } from './repository.js';

export interface HostLoad {
  host: HostRow;
  memoryAllocatedMiB: number;
  cpuAllocatedMhz: number;
  vms: number;
  routers: number;
}

const RUNNING = ['Starting', 'Running', 'Stopping'] as const;

/** Each host's allocation (CloudStack's memoryallocated / cpuallocated): running VMs and routers on it. */
export async function hostLoads(ex: Executor, hosts: HostRow[]): Promise<Map<number, HostLoad>> {
  const out = new Map<number, HostLoad>();
  if (hosts.length === 0) return out;
  const routerMem = Number(await getSetting(ex, 'router.ram.size'));
  const routerMhz = Number(await getSetting(ex, 'router.cpu.mhz'));
  for (const h of hosts)
    out.set(Number(h.id), { host: h, memoryAllocatedMiB: 0, cpuAllocatedMhz: 0, vms: 0, routers: 0 });
  const ids = hosts.map((h) => Number(h.id));
  const vms = await ex
    .selectFrom('vms')
    .leftJoin('service_offerings', 'service_offerings.id', 'vms.service_offering_id')
    .select([
      'vms.host_id',
      'vms.memory',
      'vms.cpu_number',
      'vms.cpu_speed',
      'service_offerings.memory as so_memory',
      'service_offerings.cpu_number as so_cpus',
      'service_offerings.cpu_speed as so_speed',
    ])
    .where('vms.host_id', 'in', ids)
    .where('vms.removed', 'is', null)
    .where('vms.state', 'in', [...RUNNING])
    .execute();
  for (const v of vms) {
    const l = out.get(Number(v.host_id))!;
    l.vms++;
    l.memoryAllocatedMiB += Number(v.memory ?? v.so_memory ?? 0);
    l.cpuAllocatedMhz += Number(v.cpu_number ?? v.so_cpus ?? 0) * Number(v.cpu_speed ?? v.so_speed ?? 0);
  }
  const routers = await ex
    .selectFrom('routers')
    .select('host_id')
    .where('host_id', 'in', ids)
    .where('removed', 'is', null)
    .where('state', 'in', ['Starting', 'Running'])
    .execute();
  for (const r of routers) {
    const l = out.get(Number(r.host_id))!;
    l.routers++;
    l.memoryAllocatedMiB += routerMem;
    l.cpuAllocatedMhz += routerMhz;
  }
  return out;
}

/** The hosts of a zone placement may use: Up and Enabled, in an Enabled cluster and pod. */
export async function usableHosts(ex: Executor, zoneId: number): Promise<HostRow[]> {
  return ex
    .selectFrom('hosts')
    .innerJoin('clusters', 'clusters.id', 'hosts.cluster_id')
    .innerJoin('pods', 'pods.id', 'hosts.pod_id')
    .selectAll('hosts')
    .where('hosts.zone_id', '=', zoneId)
    .where('hosts.removed', 'is', null)
    .where('hosts.state', '=', 'Up')
    .where('hosts.resource_state', '=', 'Enabled')
    .where('clusters.allocation_state', '=', 'Enabled')
    .where('pods.allocation_state', '=', 'Enabled')
    .orderBy('hosts.id')
    .execute();
}

export interface Need {
  memoryMiB: number;
  cpuMhz: number;
}

function fits(l: HostLoad, need: Need): boolean {
  return (
    Number(l.host.memory_mib) - l.memoryAllocatedMiB >= need.memoryMiB &&
    Number(l.host.cpus) * Number(l.host.cpu_speed) - l.cpuAllocatedMhz >= need.cpuMhz
  );
}

export interface PlacementOptions {
  prefer?: (number | null)[];
  avoid?: number[];
  counted?: { hostId: number | null };
}

/**
 * FirstFit: the preferred host when it qualifies, else the qualifying host with the fewest VMs and routers.
 * `avoid`: hosts to use only when nothing else qualifies (the other router of a redundant pair). Null: none.
 * `counted`: the host whose load already counts what is being placed (the VM or router, when it runs there).
 */
export async function chooseHost(
  ex: Executor,
  zoneId: number,
  need: Need,
  o: PlacementOptions = {},
): Promise<HostRow | null> {
  return (await chooseHosts(ex, zoneId, [{ need, ...o }]))[0]!;
}

/**
 * chooseHost for several at once, from one reading of the zone's hosts and their loads: each choice is added to
 * the loads the next one sees, as if each had been placed (and recorded) before the next was chosen. A burst's
 * placements queued behind one another cost one reading instead of one each.
 */
export async function chooseHosts(
  ex: Executor,
  zoneId: number,
  requests: (PlacementOptions & { need: Need })[],
): Promise<(HostRow | null)[]> {
  const hosts = await usableHosts(ex, zoneId);
  const loads = await hostLoads(ex, hosts);
  return requests.map((o) => {
    const chosen = pick(loads, o.need, o);
    const l = chosen && loads.get(Number(chosen.id));
    if (l && Number(chosen.id) !== o.counted?.hostId) {
      l.vms++;
      l.memoryAllocatedMiB += o.need.memoryMiB;
      l.cpuAllocatedMhz += o.need.cpuMhz;
    }
    return chosen;
  });
}

function pick(loads: Map<number, HostLoad>, need: Need, o: PlacementOptions): HostRow | null {
  // What is being placed may already be counted on its current host (a running router being re-checked).
  const counted = o.counted?.hostId;
  const fitsHere = (l: HostLoad) =>
    fits(l, Number(l.host.id) === counted ? { memoryMiB: 0, cpuMhz: 0 } : need);
  for (const id of o.prefer ?? []) {
    const l = id === null ? undefined : loads.get(id);
    if (l && fitsHere(l) && !(o.avoid ?? []).includes(id!)) return l.host;
  }
  const fitting = [...loads.values()].filter(fitsHere);
  const order = (a: HostLoad, b: HostLoad) =>
    a.vms + a.routers - (b.vms + b.routers) || Number(a.host.id) - Number(b.host.id);
  const avoid = new Set(o.avoid ?? []);
  const best = fitting.filter((l) => !avoid.has(Number(l.host.id))).sort(order)[0] ?? fitting.sort(order)[0];
  return best?.host ?? null;
}

/** Why nothing qualified, for the error a caller sees (CloudStack: "Unable to create a deployment for VM"). */
export async function noHostReason(ex: Executor, zoneId: number, need: Need): Promise<string> {
  const all = await ex
    .selectFrom('hosts')
    .select(['name', 'state', 'resource_state', 'memory_mib'])
    .where('zone_id', '=', zoneId)
    .where('removed', 'is', null)
    .execute();
  if (all.length === 0) return 'the zone has no hosts (start stacknet host-agent on a hypervisor to add one)';
  const shown = all.map((h) => `${h.name} ${h.state}/${h.resource_state}`).join(', ');
  return `no Up and Enabled host with ${need.memoryMiB} MiB and ${need.cpuMhz} MHz unallocated (hosts: ${shown})`;
}
