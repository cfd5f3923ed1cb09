/**
 * `stacknet doctor network` / diagnoseNetwork: the network-level links, each over every VM at once (one
 * desired-state build and one inspection per router, however many VMs), naming the VMs whose chain breaks:
 *   router → applied → desired-state (every VM's NIC) → dhcp-files (hosts files vs the database) → leases
 * Per-VM links that need a probe each (port rules, DNS, NAT) are `doctor vm`'s.
 */
import type { Driver } from '../drivers/types.js';
import type { Executor } from '../store/db.js';
import { appliedStep, desiredStateOf, inspectRouters, networkRouters, routerStep } from './router-links.js';
import type { BrokenVm, Diagnosis, Step } from './steps.js';
import { fail, finish, ok, skip } from './steps.js';

export interface NetworkRef {
  id: number;
  uuid: string;
  name: string;
}

const few = (xs: string[], n = 5) =>
  xs.length > n ? `${xs.slice(0, n).join(', ')} and ${xs.length - n} more` : xs.join(', ');

export async function diagnoseNetwork(db: Executor, driver: Driver, network: NetworkRef): Promise<Diagnosis> {
  const t0 = performance.now();
  const steps: Step[] = [];
  const broken = new Map<string, BrokenVm>();
  const done = () =>
    finish(
      { target: 'network', id: network.uuid, name: network.name, steps, brokenVms: [...broken.values()] },
      t0,
      performance.now(),
    );
  const rest = (from: number, why: string) => {
    for (const s of ORDER.slice(from)) steps.push(skip(s, why));
    return done();
  };

  // The network's NICs of live VMs: what every router should serve.
  const nics = await db
    .selectFrom('nics')
    .innerJoin('vms', 'vms.id', 'nics.vm_id')
    .select(['nics.mac', 'nics.ipv4', 'vms.uuid', 'vms.name', 'vms.state'])
    .where('nics.network_id', '=', network.id)
    .where('vms.removed', 'is', null)
    .execute();
  const vmOf = new Map(nics.map((n) => [n.mac.toLowerCase(), n]));
  const breakVm = (mac: string, step: string, evidence: string) => {
    const n = vmOf.get(mac);
    if (n && !broken.has(n.uuid)) broken.set(n.uuid, { id: n.uuid, name: n.name, step, evidence });
  };
  const names = (macs: string[]) => few(macs.map((m) => `${vmOf.get(m)?.name ?? '?'} (${m})`));

  const routers = await networkRouters(db, network.id);
  const r = routerStep(routers, network.name);
  steps.push(r);
  if (r.status === 'FAIL') {
    for (const n of nics) breakVm(n.mac.toLowerCase(), 'router', r.evidence);
    return rest(1, 'no running router');
  }

  const views = await inspectRouters(db, driver, routers, { all: true });
  const a = appliedStep(views, 'any');
  steps.push(a);
  if (a.status === 'FAIL') {
    const held = new Set(
      views.flatMap((v) => (v.inspection?.status.quarantined ?? []).map((q) => q.key.toLowerCase())),
    );
    for (const n of nics)
      if (held.size === 0 || held.has(n.mac.toLowerCase()) || (n.ipv4 && held.has(n.ipv4)))
        breakVm(n.mac.toLowerCase(), 'applied', a.evidence);
    if (views.some((v) => !v.inspection)) return rest(2, 'the agent does not answer');
  }

  const desired = await desiredStateOf(db, routers[0]!);
  const inState = new Set(desired.hosts.map((h) => h.mac.toLowerCase()));
  const notInState = [...vmOf.keys()].filter((m) => !inState.has(m));
  for (const m of notInState) breakVm(m, 'desired-state', 'not in the desired state');
  steps.push(
    notInState.length
      ? fail(
          'desired-state',
          `generation ${desired.generation}: ${desired.hosts.length} hosts, ${vmOf.size} NICs in the database; missing ${names(notInState)}`,
          'the desired state is built from the database: report this as a bug with the evidence above',
        )
      : ok('desired-state', `generation ${desired.generation}: all ${vmOf.size} NICs of the network's VMs`),
  );

  const serving = views.filter((v) => v.inspection && v.inspection.status.role !== 'backup');
  let filesOk = true;
  const fileParts: string[] = [];
  for (const v of serving) {
    const d = v.inspection!.dnsmasq;
    const inFiles = new Set(d.hostMacs ?? []);
    const missing = [...inState].filter((m) => !inFiles.has(m));
    const extra = [...inFiles].filter((m) => !inState.has(m));
    for (const m of missing) breakVm(m, 'dhcp-files', `no hosts line on ${v.row.name}`);
    if (missing.length || extra.length) {
      filesOk = false;
      steps.push(
        fail(
          'dhcp-files',
          `${v.row.name}: ${inFiles.size} MACs in dnsmasq's hosts files, ${inState.size} in the desired state` +
            (missing.length ? `; missing ${names(missing)}` : '') +
            (extra.length ? `; not in the database ${few(extra)}` : ''),
          `rebootRouter id=${v.row.uuid}: the agent rewrites dnsmasq's files from the database`,
        ),
      );
      break;
    }
    fileParts.push(
      `${v.row.name}: ${inFiles.size} MACs in the hosts files = ${inState.size} in the database`,
    );
  }
  if (filesOk) steps.push(ok('dhcp-files', fileParts.join('; ') || 'no router serves guests'));

  if (driver.name === 'simulator') steps.push(skip('leases', 'the simulator driver runs no dnsmasq'));
  else {
    const parts: string[] = [];
    let leaseFail: Step | null = null;
    for (const v of serving) {
      const leases = v.inspection!.dnsmasq.leases;
      const byMac = new Map(leases.map((l) => [l.mac, l]));
      const conflicts = leases.filter((l) => {
        const n = vmOf.get(l.mac);
        return !n || n.ipv4 !== l.ip;
      });
      const running = nics.filter((n) => n.state === 'Running' && n.ipv4);
      const without = running.filter((n) => !byMac.has(n.mac.toLowerCase())).map((n) => n.mac.toLowerCase());
      for (const m of without) breakVm(m, 'leases', `no lease on ${v.row.name}`);
      for (const l of conflicts) {
        const owner = nics.find((n) => n.ipv4 === l.ip);
        if (owner) breakVm(owner.mac.toLowerCase(), 'leases', `${l.ip} leased to ${l.mac}`);
      }
      if ((conflicts.length || without.length) && !leaseFail)
        leaseFail = fail(
          'leases',
          `${v.row.name}: ${leases.length} leases, ${running.length} running VMs` +
            (without.length ? `; no lease: ${names(without)}` : '') +
            (conflicts.length
              ? `; not the database's: ${few(conflicts.map((l) => `${l.ip} ${l.mac}`))}`
              : ''),
          'run `stacknet doctor vm <name>` on the VMs named for their first broken link',
        );
      parts.push(
        `${v.row.name}: ${leases.length} leases for ${running.length} running VMs, all the database's`,
      );
    }
    steps.push(leaseFail ?? ok('leases', parts.join('; ') || 'no router serves guests'));
  }
  return done();
}

const ORDER = ['router', 'applied', 'desired-state', 'dhcp-files', 'leases'] as const;
