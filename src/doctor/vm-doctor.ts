/**
 * `stacknet doctor vm` / diagnoseVirtualMachine: walks the chain that gives a VM its address and name, and names
 * the first broken link with its evidence:
 *   database → router → desired-state → applied → dhcp-files → lease → port-rules → dns → nat
 * The VM's default NIC is followed (a secondary NIC gets no router or DNS option anyway).
 */
import type { Driver } from '../drivers/types.js';
import { addressKey, parseIp } from '../ipam/index.js';
import { netDb } from '../networks/tables.js';
import type { Executor } from '../store/db.js';
import type { VmRow } from '../vms/service.js';
import { vmRuntime } from '../vms/operations.js';
import type { RouterView } from './router-links.js';
import { appliedStep, desiredStateOf, inspectRouters, networkRouters, routerStep } from './router-links.js';
import type { Diagnosis, Step } from './steps.js';
import { fail, finish, ok, skip } from './steps.js';

const iso = (ms: number | string) => new Date(Number(ms)).toISOString().replace('.000Z', 'Z');

export async function diagnoseVm(db: Executor, driver: Driver, vm: VmRow): Promise<Diagnosis> {
  const t0 = performance.now();
  const steps: Step[] = [];
  const done = () => finish({ target: 'vm', id: vm.uuid, name: vm.name, steps }, t0, performance.now());
  const rest = (from: string, why: string) => {
    for (const s of ORDER.slice(ORDER.indexOf(from as never))) steps.push(skip(s, why));
    return done();
  };

  // 1. database: the VM, its default NIC's address, the allocation row that makes it unique, its events.
  const nics = await db
    .selectFrom('nics')
    .selectAll()
    .where('vm_id', '=', vm.id)
    .orderBy('device_id')
    .execute();
  const nic = nics.find((n) => Number(n.is_default) === 1) ?? nics[0];
  if (!nic) {
    steps.push(fail('database', `${vm.instance_name} ${vm.state}: no NIC`, 'addNicToVirtualMachine'));
    return rest('router', 'no NIC to follow');
  }
  const events = await db
    .selectFrom('events')
    .select(['type', 'created', 'description'])
    .where('resource_id', '=', nic.uuid)
    .where('type', 'like', 'NET.IP%')
    .orderBy('id')
    .execute();
  const evText = events.length
    ? events.map((e) => `${e.type} ${iso(e.created)}`).join(', ')
    : 'no NET.IPASSIGN event';
  const alloc =
    nic.ip_allocation_id === null
      ? undefined
      : await db
          .selectFrom('ip_allocations')
          .selectAll()
          .where('id', '=', nic.ip_allocation_id)
          .executeTakeFirst();
  const base = `${vm.instance_name} ${vm.state}, nic ${nic.mac} ${nic.ipv4 ?? '(no IPv4)'}`;
  if (!nic.ipv4 || !alloc) {
    steps.push(
      fail(
        'database',
        `${base}: ${nic.ipv4 ? 'no allocation row holds the address' : 'the NIC has no address'}; ${evText}`,
        'updateVmNicIp (or remove and add the NIC) to give it an address from the network',
      ),
    );
    return rest('router', 'no address in the database');
  }
  const allocOk =
    alloc.state === 'Allocated' &&
    alloc.owner_kind === 'nic' &&
    Number(alloc.owner_id) === Number(nic.id) &&
    alloc.address === addressKey(parseIp(nic.ipv4));
  if (!allocOk) {
    steps.push(
      fail(
        'database',
        `${base}: allocation #${alloc.id} is ${alloc.state}, owner ${alloc.owner_kind} ${alloc.owner_id}`,
        'the NIC and ip_allocations disagree: updateVmNicIp to re-allocate the address',
      ),
    );
    return rest('router', 'the database is inconsistent');
  }
  if (vm.state !== 'Running') {
    steps.push(
      fail('database', `${base}: the VM is ${vm.state}; ${evText}`, `startVirtualMachine id=${vm.uuid}`),
    );
    return rest('router', `the VM is ${vm.state}`);
  }
  steps.push(ok('database', `${base} (allocation #${alloc.id} Allocated); ${evText}`));

  // 2. router: the network has its router(s), Running.
  const network = await netDb(db)
    .selectFrom('networks')
    .select(['id', 'name', 'uuid'])
    .where('id', '=', nic.network_id)
    .executeTakeFirstOrThrow();
  const routers = await networkRouters(db, Number(network.id));
  const r = routerStep(routers, network.name);
  steps.push(r);
  if (r.status === 'FAIL') return rest('desired-state', 'no running router');

  // 3. desired-state: the generation the routers should hold has the VM's host entry.
  const desired = await desiredStateOf(db, routers[0]!);
  const host = desired.hosts.find((h) => h.mac.toLowerCase() === nic.mac.toLowerCase());
  const gen = `generation ${desired.generation}`;
  if (!host || host.ipv4 !== nic.ipv4 || host.hostname !== vm.name) {
    steps.push(
      fail(
        'desired-state',
        host
          ? `${gen} has ${host.mac} as ${host.ipv4} ${host.hostname}, the database ${nic.ipv4} ${vm.name}`
          : `${gen} (${desired.hosts.length} hosts) has no host ${nic.mac}`,
        'the desired state is built from the database: report this as a bug with the evidence above',
      ),
    );
    return rest('applied', 'the desired state lacks the VM');
  }
  steps.push(ok('desired-state', `${gen} has ${host.mac} ${host.ipv4} ${host.hostname}`));

  // 4. applied: each router's agent holds that generation, without the VM's entry set aside.
  const views = await inspectRouters(db, driver, routers, { mac: nic.mac, ip: nic.ipv4, name: vm.name });
  const simulated = driver.name === 'simulator';
  const a = appliedStep(views, [nic.mac.toLowerCase(), nic.ipv4]);
  steps.push(a);
  if (a.status === 'FAIL') return rest('dhcp-files', 'the router does not serve the generation');

  // Only the routers serving guests (a redundant pair's primary) run dnsmasq.
  const serving = views.filter((v) => v.inspection!.status.role !== 'backup');
  steps.push(filesStep(serving, nic.mac, nic.ipv4, vm.name));
  steps.push(
    simulated ? skip('lease', 'the simulator driver runs no dnsmasq') : leaseStep(serving, nic.mac, nic.ipv4),
  );

  // 6. port-rules: the anti-spoofing rules on the VM's port.
  if (!driver.inspectPort) steps.push(skip('port-rules', `the ${driver.name} driver enforces no port rules`));
  else {
    const rt = (await vmRuntime(db, vm)).nics.find((n) => n.id === Number(nic.id))!;
    const p = await driver.inspectPort(rt);
    steps.push(
      p.hooked && p.missing.length === 0
        ? ok(
            'port-rules',
            `${p.chain}: source MAC ${nic.mac}, source IP ${rt.ipv4s.join(', ')}, no DHCP server`,
          )
        : fail(
            'port-rules',
            p.hooked
              ? `${p.chain} lacks ${p.missing.join('; ')}`
              : `${p.chain} is missing or not hooked to the port`,
            `rebootVirtualMachine id=${vm.uuid} (the driver writes the port's rules anew when it plugs the VM)`,
          ),
    );
  }

  // 7. dns: the router answers the VM's name with its address.
  steps.push(
    simulated
      ? skip('dns', 'the simulator driver runs no dnsmasq')
      : dnsStep(serving, nic.ipv4, desired.network.useExternalDns),
  );

  // 8. nat: the VM's static NAT and port forwards are in the router's nftables.
  const statics = (desired.public?.staticNats ?? []).filter((s) => s.guestIp === nic.ipv4);
  const forwards = (desired.rules ?? []).filter((x) => x.kind === 'portForward' && x.guestIp === nic.ipv4);
  if (statics.length + forwards.length === 0)
    steps.push(skip('nat', `no static NAT or port forward to ${nic.ipv4}`));
  else if (simulated) steps.push(skip('nat', 'the simulator driver loads no nftables'));
  else
    steps.push(
      natStep(
        serving,
        statics.map((s) => s.publicIp),
        forwards.length,
      ),
    );
  return done();
}

const ORDER = [
  'database',
  'router',
  'desired-state',
  'applied',
  'dhcp-files',
  'lease',
  'port-rules',
  'dns',
  'nat',
] as const;

function filesStep(views: RouterView[], mac: string, ip: string, name: string): Step {
  const parts: string[] = [];
  for (const v of views) {
    const d = v.inspection!.dnsmasq;
    const line = d.hostsLines.find(({ line }) => {
      const f = line.replace(/^dhcp-host=/, '').split(',');
      return f[0] === mac.toLowerCase() && f.includes(ip) && f.includes(name);
    });
    if (!line) {
      const other = d.hostsLines.map((l) => `${l.file}: ${l.line}`).join('; ');
      return fail(
        'dhcp-files',
        `${v.row.name}: no hosts line ${mac},${ip},${name} in dnsmasq's files (${d.hostsCount} ${d.hostsCount === 1 ? 'line' : 'lines'})${other ? `; found ${other}` : ''}`,
        `rebootRouter id=${v.row.uuid}: the agent rewrites dnsmasq's files from the database`,
      );
    }
    const names = d.nameLines.length
      ? `, names ${d.nameLines.map((l) => l.line.replace(/\t/g, ' ')).join(' | ')}`
      : '';
    parts.push(`${v.row.name}: ${line.file.split('/').slice(-2).join('/')}: ${line.line}${names}`);
  }
  return ok('dhcp-files', parts.join('; '));
}

function leaseStep(views: RouterView[], mac: string, ip: string): Step {
  const m = mac.toLowerCase();
  for (const v of views) {
    const d = v.inspection!.dnsmasq;
    const other = d.leases.find((l) => l.ip === ip && l.mac !== m);
    if (other)
      return fail(
        'lease',
        `${v.row.name}: ${ip} is leased to ${other.mac} (${other.hostname}), not to ${m}`,
        `another machine holds the address: find ${other.mac} (listNics), stop it or release its lease`,
      );
    const mine = d.leases.find((l) => l.mac === m);
    const lastLog = d.dhcpLog.at(-1);
    const acked = d.dhcpLog.some((l) => /DHCPACK/.test(l));
    if (!mine)
      return fail(
        'lease',
        `${v.row.name}: no lease for ${m}; ${lastLog ? `last DHCP line: ${lastLog.trim()}` : 'no DHCP traffic from it in dnsmasq.log'}`,
        "the guest's DHCP client is not running or does not reach the router: check the VM's console, then rebootVirtualMachine",
      );
    if (!acked && mine.clientId === '*')
      return fail(
        'lease',
        `${v.row.name}: only the agent's pre-seeded lease for ${m} ${mine.ip}; no DHCPACK in dnsmasq.log`,
        'the guest never asked: check its DHCP client, then rebootVirtualMachine',
      );
    const when =
      mine.expires === 0 ? 'never expires' : `expires ${new Date(mine.expires * 1000).toISOString()}`;
    return ok(
      'lease',
      `${v.row.name}: ${mine.ip} leased to ${mine.mac} (${mine.hostname}, ${when})${lastLog ? `; ${lastLog.trim()}` : ''}`,
    );
  }
  return skip('lease', 'no router serves guests (a pair with no primary)');
}

function dnsStep(views: RouterView[], ip: string, external: boolean): Step {
  if (external)
    return skip('dns', 'use.external.dns: guests ask the zone DNS servers, the router answers none');
  const parts: string[] = [];
  for (const v of views) {
    const dns = v.inspection!.dns;
    if (!dns) return skip('dns', `${v.row.name} has no DNS to ask`);
    const bad = dns.queries.find((q) => !q.answers.includes(ip));
    if (bad)
      return fail(
        'dns',
        `${v.row.name}: ${bad.name} @${dns.server}: ${bad.error ?? (bad.answers.length ? bad.answers.join(', ') : 'no answer')}`,
        bad.error === 'ECONNREFUSED' || bad.error === 'ETIMEOUT'
          ? `dnsmasq does not answer DNS (pid ${v.inspection!.dnsmasq.pid ?? 'none'}): rebootRouter id=${v.row.uuid}`
          : `dnsmasq does not know the name: rebootRouter id=${v.row.uuid} to reload its files`,
      );
    parts.push(
      `${v.row.name}: ${dns.queries.map((q) => `${q.name} -> ${q.answers.join(', ')}`).join(', ')} @${dns.server}`,
    );
  }
  return ok('dns', parts.join('; '));
}

function natStep(views: RouterView[], staticIps: string[], forwards: number): Step {
  const wanted = [
    ...staticIps.map((p) => `static NAT ${p}`),
    ...(forwards ? [`${forwards} port forward${forwards > 1 ? 's' : ''}`] : []),
  ].join(', ');
  const parts: string[] = [];
  for (const v of views) {
    const nat = v.inspection!.nat;
    if (!nat || !nat.loaded)
      return fail(
        'nat',
        `${v.row.name}: ${wanted} wanted, but the NAT table is not loaded${nat?.error ? ` (${nat.error})` : ''}`,
        `rebootRouter id=${v.row.uuid}`,
      );
    if (nat.missing.length)
      return fail(
        'nat',
        `${v.row.name}: ${wanted} wanted; not in nftables: ${nat.missing.join('; ')}`,
        `the kernel lost rules the agent applied: rebootRouter id=${v.row.uuid} (or any change to the network's rules reloads them)`,
      );
    parts.push(`${v.row.name}: ${nat.present.join('; ')}`);
  }
  return ok('nat', parts.join('; '));
}
