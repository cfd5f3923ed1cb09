/**
 * A host's desired state (protocol.ts HostDesiredState), computed whole from the database: the VMs placed on it
 * (Running for Starting/Running rows, Stopped — defined, shut off — for Stopping/Stopped/Destroyed/Error; expunged
 * ones are absent, so the agent removes them), the routers placed on it (Starting/Running), and the guest
 * networks those have NICs on. `refreshHostDesired` bumps the host's generation when that content changed
 * (compared by hash), so every caller may refresh as often as it likes: an unchanged host is not bumped.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Executor } from '../store/db.js';
import { netDb } from '../networks/tables.js';
import { getSetting } from '../configuration/repository.js';
import { routerById } from '../routers/repository.js';
import { routerRuntime } from '../routers/runtime.js';
import { guestBridgeName } from './protocol.js';
import type {
  HostCapabilities,
  HostDesiredState,
  HostNetworkSpec,
  HostRouterSpec,
  HostTemplateSpec,
  HostVmSpec,
} from './protocol.js';
import type { HostRow } from './repository.js';
import { hostById } from './repository.js';

/** In-process wake-ups of the desired-state long-polls (other servers' bumps are found by their short poll). */
const bumps = new EventEmitter();
bumps.setMaxListeners(0);

export function onHostBumped(hostId: number, fn: () => void): () => void {
  const ev = `h${hostId}`;
  bumps.on(ev, fn);
  return () => bumps.off(ev, fn);
}

/** MTU of a guest network on the host: VXLAN leaves 50 bytes of a 1500-byte underlay to its header. */
const MTU = { VLAN: 1500, VXLAN: 1450 } as const;

/**
 * Routers and VMs the driver holds off a host for a moment whatever their rows say (a reboot is a stop then a
 * start of a VM whose row stays Running): `stoppedVms` are Stopped in the spec, `absentRouters` absent.
 */
export const overrides = { stoppedVms: new Set<number>(), absentRouters: new Set<number>() };

function capabilitiesOf(h: HostRow): HostCapabilities | null {
  try {
    return h.capabilities ? (JSON.parse(h.capabilities) as HostCapabilities) : null;
  } catch {
    return null;
  }
}

/** How host `h` runs its VMs: the `stacknet.host.vm.backend` setting when the host offers it, else its first. */
export async function backendFor(ex: Executor, h: HostRow): Promise<'libvirt' | 'netns'> {
  const offered = capabilitiesOf(h)?.vmBackends ?? ['libvirt'];
  const want = String(await getSetting(ex, 'stacknet.host.vm.backend'));
  return (offered as string[]).includes(want) ? (want as 'libvirt' | 'netns') : (offered[0] ?? 'libvirt');
}

const RUNNING_VM = new Set(['Starting', 'Running']);
const DEFINED_VM = new Set(['Starting', 'Running', 'Stopping', 'Stopped', 'Destroyed', 'Error']);

export async function computeHostDesired(
  ex: Executor,
  h: HostRow,
): Promise<Omit<HostDesiredState, 'generation'>> {
  const db = netDb(ex);
  const vmRows = await ex
    .selectFrom('vms')
    .selectAll()
    .where('host_id', '=', Number(h.id))
    .where('removed', 'is', null)
    .orderBy('id')
    .execute();
  const backend = await backendFor(ex, h);
  const networkIds = new Set<number>();
  const vms: HostVmSpec[] = [];
  for (const v of vmRows) {
    if (!DEFINED_VM.has(v.state)) continue;
    const so =
      v.service_offering_id === null
        ? undefined
        : await ex
            .selectFrom('service_offerings')
            .select(['cpu_number', 'memory'])
            .where('id', '=', v.service_offering_id)
            .executeTakeFirst();
    const tpl =
      v.template_id === null
        ? undefined
        : await ex.selectFrom('templates').selectAll().where('id', '=', v.template_id).executeTakeFirst();
    const zone = { zoneId: Number(v.zone_id) };
    const nics = await ex
      .selectFrom('nics')
      .selectAll()
      .where('vm_id', '=', v.id)
      .orderBy('device_id')
      .execute();
    const specNics = [];
    for (const n of nics) {
      const sec = await ex
        .selectFrom('nic_secondary_ips')
        .select('ipv4')
        .where('nic_id', '=', n.id)
        .orderBy('id')
        .execute();
      networkIds.add(Number(n.network_id));
      specNics.push({
        id: Number(n.id),
        mac: n.mac,
        ipv4s: [...(n.ipv4 ? [n.ipv4] : []), ...sec.map((s) => s.ipv4)],
        ipv6: n.ipv6,
        networkId: Number(n.network_id),
        deviceId: Number(n.device_id),
        isDefault: Number(n.is_default) === 1,
      });
    }
    const url = tpl?.url ?? String(await getSetting(ex, 'stacknet.template.default.url', zone));
    const format: 'kernel-initrd' | 'qcow2' = tpl?.url
      ? tpl.format.toLowerCase() === 'qcow2'
        ? 'qcow2'
        : 'kernel-initrd'
      : (String(await getSetting(ex, 'stacknet.template.default.format', zone)) as 'kernel-initrd' | 'qcow2');
    vms.push({
      id: Number(v.id),
      uuid: v.uuid,
      instanceName: v.instance_name,
      hostname: v.name,
      state: RUNNING_VM.has(v.state) && !overrides.stoppedVms.has(Number(v.id)) ? 'Running' : 'Stopped',
      backend,
      cpus: Number(v.cpu_number ?? so?.cpu_number ?? 1),
      memoryMiB: Number(v.memory ?? so?.memory ?? 512),
      template: {
        id: Number(tpl?.id ?? 0),
        name: tpl?.name ?? 'default',
        url,
        format,
        checksum: tpl?.checksum ?? null,
      },
      nics: specNics,
    });
  }
  const routerRows = await ex
    .selectFrom('routers')
    .select('id')
    .where('host_id', '=', Number(h.id))
    .where('removed', 'is', null)
    .where('state', 'in', ['Starting', 'Running'])
    .orderBy('id')
    .execute();
  const routers: HostRouterSpec[] = [];
  const caps = capabilitiesOf(h);
  for (const { id } of routerRows) {
    if (overrides.absentRouters.has(Number(id))) continue;
    const row = await routerById(ex, Number(id));
    if (!row) continue;
    const rt = await routerRuntime(ex, row);
    networkIds.add(rt.network.id);
    routers.push({
      id: rt.id,
      name: rt.name,
      networkId: rt.network.id,
      guestIp: rt.guestIp,
      guestMac: rt.guestMac ?? '',
      controlIp: rt.controlIp,
      controlPort: rt.controlPort,
      secret: rt.secret,
      redundant: rt.redundant,
      vpcId: rt.vpcId,
      ...(rt.appliance ? { appliance: rt.appliance } : {}),
      ...(rt.publicNics.length
        ? {
            publicNics: await (async () => {
              // CloudStack's kvmnetworklabel of the zone's Public traffic; else the host's own (--public-label).
              const label = (await publicLabel(ex, rt.zoneId)) || caps?.trafficLabels.public;
              return rt.publicNics.map((n) => ({
                interface: n.interface,
                vlan: n.vlan,
                gateway: n.gateway,
                prefix: n.prefix,
                ...(label ? { trafficLabel: label } : {}),
              }));
            })(),
          }
        : {}),
    });
  }
  const networks: HostNetworkSpec[] = [];
  for (const networkId of [...networkIds].sort((a, b) => a - b)) {
    const n = await db
      .selectFrom('networks')
      .leftJoin('physical_networks', 'physical_networks.id', 'networks.physical_network_id')
      .select(['networks.id', 'networks.vnet', 'networks.physical_network_id', 'physical_networks.isolation'])
      .where('networks.id', '=', networkId)
      .executeTakeFirst();
    // A network not implemented (no VLAN/VNI yet) has no bridge to make.
    if (!n || n.vnet === null) continue;
    const isolation = n.isolation === 'VXLAN' ? 'VXLAN' : 'VLAN';
    const label =
      n.physical_network_id === null
        ? undefined
        : await db
            .selectFrom('traffic_types')
            .select('kvm_label')
            .where('physical_network_id', '=', n.physical_network_id)
            .where('traffic_type', '=', 'Guest')
            .executeTakeFirst();
    networks.push({
      id: networkId,
      isolation,
      vnet: Number(n.vnet),
      // CloudStack's kvmnetworklabel of the physical network's Guest traffic; else what the host registered.
      trafficLabel: label?.kvm_label || caps?.trafficLabels.guest || 'eth0',
      bridge: guestBridgeName(isolation, Number(n.vnet)),
      peers: isolation === 'VXLAN' ? await vxlanPeers(ex, h, networkId) : [],
      mtu: MTU[isolation],
    });
  }
  return {
    host: { id: Number(h.id), uuid: h.uuid, name: h.name },
    controlCidr: String(await getSetting(ex, 'control.cidr')),
    networks,
    routers,
    vms,
    templates: await prefetchTemplates(ex),
  };
}

/**
 * The templates a host fetches ahead of first use (HostDesiredState.templates): every registered template with a
 * URL, as a VM's spec names it. A template registered after a host is Up reaches it with the hosts worker's next
 * refresh of every host (src/hosts/worker.ts, every 5 s).
 */
async function prefetchTemplates(ex: Executor): Promise<HostTemplateSpec[]> {
  const rows = await ex
    .selectFrom('templates')
    .select(['id', 'name', 'url', 'format', 'checksum'])
    .where('url', 'is not', null)
    .where('hypervisor', '=', 'KVM')
    .orderBy('id')
    .execute();
  return rows.map((t) => ({
    id: Number(t.id),
    name: t.name,
    url: t.url!,
    format: t.format.toLowerCase() === 'qcow2' ? 'qcow2' : 'kernel-initrd',
    checksum: t.checksum ?? null,
  }));
}

/** The KVM label of the zone's Public traffic type (one physical network of a zone carries it), if it names one. */
async function publicLabel(ex: Executor, zoneId: number): Promise<string | null> {
  const row = await netDb(ex)
    .selectFrom('traffic_types')
    .innerJoin('physical_networks', 'physical_networks.id', 'traffic_types.physical_network_id')
    .select('traffic_types.kvm_label')
    .where('physical_networks.zone_id', '=', zoneId)
    .where('physical_networks.removed', 'is', null)
    .where('traffic_types.traffic_type', '=', 'Public')
    .orderBy('physical_networks.id')
    .limit(1)
    .executeTakeFirst();
  return row?.kvm_label ?? null;
}

/** The underlay addresses of the other Up hosts with a VM or a running router on the network. */
async function vxlanPeers(ex: Executor, h: HostRow, networkId: number): Promise<string[]> {
  const viaVms = await ex
    .selectFrom('nics')
    .innerJoin('vms', 'vms.id', 'nics.vm_id')
    .innerJoin('hosts', 'hosts.id', 'vms.host_id')
    .select('hosts.address')
    .where('nics.network_id', '=', networkId)
    .where('vms.removed', 'is', null)
    .where('hosts.id', '!=', Number(h.id))
    .where('hosts.state', '=', 'Up')
    .where('hosts.removed', 'is', null)
    .execute();
  const viaRouters = await ex
    .selectFrom('routers')
    .innerJoin('hosts', 'hosts.id', 'routers.host_id')
    .select('hosts.address')
    .where('routers.network_id', '=', networkId)
    .where('routers.removed', 'is', null)
    .where('routers.state', 'in', ['Starting', 'Running'])
    .where('hosts.id', '!=', Number(h.id))
    .where('hosts.state', '=', 'Up')
    .where('hosts.removed', 'is', null)
    .execute();
  return [...new Set([...viaVms, ...viaRouters].map((r) => r.address))].sort();
}

export function desiredHash(d: Omit<HostDesiredState, 'generation'>): string {
  return createHash('sha256').update(JSON.stringify(d)).digest('hex');
}

/**
 * Recomputes the host's desired state; when it differs from the last one (hash), bumps the generation (one
 * UPDATE that only matches while the stored hash is still the old one, so two servers refreshing at once bump
 * once) and wakes this process's long-polls. Answers the host's generation and the state.
 */
export async function refreshHostDesired(ex: Executor, hostId: number): Promise<HostDesiredState | null> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const h = await hostById(ex, hostId);
    if (!h || h.removed !== null) return null;
    const d = await computeHostDesired(ex, h);
    const hash = desiredHash(d);
    if (hash === h.desired_hash) return { generation: Number(h.desired_generation), ...d };
    const generation = Number(h.desired_generation) + 1;
    let q = ex
      .updateTable('hosts')
      .set({ desired_generation: generation, desired_hash: hash })
      .where('id', '=', hostId)
      .where('desired_generation', '=', Number(h.desired_generation));
    q =
      h.desired_hash === null
        ? q.where('desired_hash', 'is', null)
        : q.where('desired_hash', '=', h.desired_hash);
    const r = await q.executeTakeFirst();
    if (Number(r.numUpdatedRows) > 0) {
      const state = { generation, ...d };
      lastBumped.set(hostId, { hash, state });
      bumps.emit(`h${hostId}`);
      return state;
    }
    // Someone else bumped meanwhile: compute again against theirs.
  }
  const h = (await hostById(ex, hostId))!;
  return { generation: Number(h.desired_generation), ...(await computeHostDesired(ex, h)) };
}

/**
 * Per host, the state this process last bumped it to, with its hash: the long poll it wakes answers that
 * (`bumpedState`) instead of computing it again, so a change costs one computation of its host's state, not two
 * (the bump's and the answer's: a dozen queries per VM of the host, each queued behind a burst's work on SQLite).
 */
const lastBumped = new Map<number, { hash: string; state: HostDesiredState }>();

/**
 * The host's desired state at its current generation when this process bumped it there (the stored generation
 * and hash are still the ones it wrote), else null (then `refreshHostDesired`). The state of a generation is
 * the one its hash was taken of: a change made since is bumped by whoever made it (or the worker's refresh).
 */
export async function bumpedState(ex: Executor, hostId: number): Promise<HostDesiredState | null> {
  const kept = lastBumped.get(hostId);
  if (!kept) return null;
  const h = await ex
    .selectFrom('hosts')
    .select(['desired_generation', 'desired_hash', 'removed'])
    .where('id', '=', hostId)
    .executeTakeFirst();
  if (!h || h.removed !== null) return null;
  return Number(h.desired_generation) === kept.state.generation && h.desired_hash === kept.hash
    ? kept.state
    : null;
}

/** Refreshes every live host (a host went Down or Up: the others' VXLAN peers change). */
export async function refreshAllHosts(ex: Executor, zoneId?: number): Promise<void> {
  let q = ex.selectFrom('hosts').select('id').where('removed', 'is', null);
  if (zoneId !== undefined) q = q.where('zone_id', '=', zoneId);
  for (const h of await q.execute()) await refreshHostDesired(ex, Number(h.id));
}
