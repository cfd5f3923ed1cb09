/**
 * What VM and NIC commands answer with: CloudStack's virtualmachine and nic objects, from committed rows.
 * A page of VMs is answered from a fixed number of queries (each referenced table read once, `IN` the page's
 * ids), however many rows the page has: a list's cost is its page, not one round trip per row.
 */
import { hostname } from 'node:os';
import { tagsFor } from '../tags/service.js';
import { objectResult } from '../api/command.js';
import type { ResponseObject } from '../api/command.js';
import { idsOf, mapByIds, readByKeys } from '../api/list.js';
import { displayPath, ownersByIds } from '../accounts/repository.js';
import { prefixToNetmask, parseCidr } from '../ipam/index.js';
import { osTypeByDescription } from '../offerings/os-types.js';
import type { NetworkRow } from '../networks/repository.js';
import { netDb } from '../networks/tables.js';
import type { Executor } from '../store/db.js';
import { placementFields } from '../hosts/repository.js';
import type { NicRow, VmRow } from './service.js';

/** The hypervisor a stacknet VM (and its ROOT volume) answers with. */
export const VM_HYPERVISOR = 'Simulator';

function groupBy<T>(rows: readonly T[], key: (r: T) => number): Map<number, T[]> {
  const out = new Map<number, T[]>();
  for (const r of rows) {
    const k = key(r);
    const list = out.get(k);
    if (list) list.push(r);
    else out.set(k, [r]);
  }
  return out;
}

/** CloudStack's nic object of each NIC; `known` networks and VM uuids the caller already holds are not read again. */
export async function nicResponses(
  ex: Executor,
  nics: readonly NicRow[],
  known: { networks?: ReadonlyMap<number, NetworkRow>; vmUuids?: ReadonlyMap<number, string> } = {},
): Promise<ResponseObject[]> {
  if (nics.length === 0) return [];
  const networks = new Map(known.networks ?? []);
  const netIds = idsOf(nics.map((n) => n.network_id)).filter((id) => !networks.has(id));
  for (const n of await readByKeys(netIds, (chunk) =>
    netDb(ex).selectFrom('networks').selectAll().where('id', 'in', chunk).execute(),
  ))
    networks.set(Number(n.id), n);
  const secondary = groupBy(
    await readByKeys(idsOf(nics.map((n) => n.id)), (chunk) =>
      ex.selectFrom('nic_secondary_ips').selectAll().where('nic_id', 'in', chunk).orderBy('id').execute(),
    ),
    (s) => Number(s.nic_id),
  );
  const vmUuids = new Map(known.vmUuids ?? []);
  const vmIds = idsOf(nics.map((n) => n.vm_id)).filter((id) => !vmUuids.has(id));
  for (const v of await readByKeys(vmIds, (chunk) =>
    ex.selectFrom('vms').select(['id', 'uuid']).where('id', 'in', chunk).execute(),
  ))
    vmUuids.set(Number(v.id), v.uuid);
  return nics.map((nic) => {
    const network = networks.get(Number(nic.network_id));
    if (!network) throw new Error(`NIC ${nic.uuid}: network ${nic.network_id} not found`);
    const cidr = network.network_cidr ?? network.cidr;
    return {
      id: nic.uuid,
      networkid: network.uuid,
      networkname: network.name,
      netmask:
        network.netmask ??
        (cidr ? prefixToNetmask(parseCidr(cidr, 'cidr', { strict: false }).prefix) : undefined),
      gateway: network.gateway ?? undefined,
      ipaddress: nic.ipv4 ?? undefined,
      ip6address: nic.ipv6 ?? undefined,
      macaddress: nic.mac,
      isdefault: Number(nic.is_default) === 1,
      deviceid: String(nic.device_id),
      traffictype: 'Guest',
      type: network.type,
      broadcasturi: network.vnet !== null ? `vlan://${network.vnet}` : undefined,
      isolationuri: network.vnet !== null ? `vlan://${network.vnet}` : undefined,
      virtualmachineid: vmUuids.get(Number(nic.vm_id)),
      secondaryip: (secondary.get(Number(nic.id)) ?? []).map((s) => ({ id: s.uuid, ipaddress: s.ipv4 })),
    };
  });
}

export async function nicResponse(ex: Executor, nic: NicRow, net?: NetworkRow): Promise<ResponseObject> {
  const known = net ? { networks: new Map([[Number(net.id), net]]) } : {};
  return (await nicResponses(ex, [nic], known))[0]!;
}

/** What a VM's answer names beside the VM: its zone, owner, offering and template, read once for a page of VMs. */
export async function vmReferences(ex: Executor, vms: readonly VmRow[]) {
  const zones = await mapByIds(idsOf(vms.map((v) => v.zone_id)), (chunk) =>
    ex.selectFrom('zones').select(['id', 'uuid', 'name']).where('id', 'in', chunk).execute(),
  );
  const accounts = await ownersByIds(ex, idsOf(vms.map((v) => v.account_id)));
  const offerings = await mapByIds(idsOf(vms.map((v) => v.service_offering_id)), (chunk) =>
    ex
      .selectFrom('service_offerings')
      .select(['id', 'uuid', 'name', 'cpu_number', 'cpu_speed', 'memory'])
      .where('id', 'in', chunk)
      .execute(),
  );
  const templates = await mapByIds(idsOf(vms.map((v) => v.template_id)), (chunk) =>
    ex
      .selectFrom('templates')
      .select(['id', 'uuid', 'name', 'display_text', 'os_type_name', 'password_enabled'])
      .where('id', 'in', chunk)
      .execute(),
  );
  return (vm: VmRow) => ({
    zone: zones.get(Number(vm.zone_id)),
    acct: accounts.get(Number(vm.account_id)),
    so: vm.service_offering_id !== null ? offerings.get(Number(vm.service_offering_id)) : undefined,
    tpl: vm.template_id !== null ? templates.get(Number(vm.template_id)) : undefined,
  });
}

/** What a VM's answer names beside it (vmReferences), for one VM. */
export type VmRefs = ReturnType<Awaited<ReturnType<typeof vmReferences>>>;

/**
 * CloudStack's virtualmachine object of each VM, in order, from a fixed number of queries. `refs`: the caller
 * holds what the answers name (a deploy has just read zone, owner, offering and template): not read again.
 */
export async function vmResponses(
  ex: Executor,
  vms: readonly VmRow[],
  refs?: (vm: VmRow) => VmRefs,
): Promise<ResponseObject[]> {
  if (vms.length === 0) return [];
  refs ??= await vmReferences(ex, vms);
  const vmIds = idsOf(vms.map((v) => v.id));
  const nics = await readByKeys(vmIds, (chunk) =>
    ex
      .selectFrom('nics')
      .selectAll()
      .where('vm_id', 'in', chunk)
      .orderBy('vm_id')
      .orderBy('device_id')
      .execute(),
  );
  const nicAnswers = await nicResponses(ex, nics, {
    vmUuids: new Map(vms.map((v) => [Number(v.id), v.uuid])),
  });
  const nicsByVm = groupBy(
    nics.map((n, i) => ({ vmId: Number(n.vm_id), answer: nicAnswers[i]! })),
    (n) => n.vmId,
  );
  // The hosts driver's placement: the host it is defined on, and whether that host is reachable. A zone has a
  // handful of hosts, so this is a query per distinct host of the page, not per VM.
  const placements = new Map<number, Awaited<ReturnType<typeof placementFields>>>();
  for (const h of idsOf(vms.map((v) => v.host_id))) placements.set(h, await placementFields(ex, h));
  const tags = new Map<number, ResponseObject[]>();
  await readByKeys(vmIds, async (chunk) => {
    for (const [id, t] of await tagsFor(ex, 'UserVm', chunk)) tags.set(id, t);
    return [];
  });
  return vms.map((vm) => {
    const { zone, acct, so, tpl } = refs(vm);
    const os = tpl ? osTypeByDescription(tpl.os_type_name) : undefined;
    const nicResponses = (nicsByVm.get(Number(vm.id)) ?? []).map((n) => n.answer);
    const def = nicResponses.find((n) => n.isdefault === true);
    const placed =
      vm.host_id === null || vm.host_id === undefined ? null : placements.get(Number(vm.host_id));
    return {
      id: vm.uuid,
      name: vm.name,
      displayname: vm.display_name,
      // CloudStack's `hostname` names the host a VM runs on (the UI's Instances list shows it): the machine
      // stacknet runs it on, and none while it is not running, as CloudStack answers for a stopped VM.
      hostname:
        placed?.hostname ?? (vm.state === 'Running' || vm.state === 'Starting' ? hostname() : undefined),
      hostid: placed?.hostid,
      hostcontrolstate: placed?.hostcontrolstate,
      arch: 'x86_64',
      instancename: vm.instance_name,
      state: vm.state,
      zoneid: zone?.uuid,
      zonename: zone?.name,
      account: acct?.account,
      domainid: acct?.domainid,
      domain: acct?.domain,
      // CloudStack's form, as on accounts and events: ROOT, ROOT/child.
      domainpath: acct ? displayPath(acct.domainpath) : undefined,
      serviceofferingid: so?.uuid,
      serviceofferingname: so?.name,
      // The VM's own size: a customized offering's values came with the deploy.
      cpunumber: vm.cpu_number ?? so?.cpu_number,
      cpuspeed: vm.cpu_speed ?? so?.cpu_speed,
      memory: vm.memory ?? so?.memory,
      templateid: tpl?.uuid,
      templatename: tpl?.name,
      templatedisplaytext: tpl?.display_text,
      passwordenabled: tpl ? Number(tpl.password_enabled) === 1 : false,
      ostypeid: os?.id,
      guestosid: os?.id,
      osdisplayname: tpl?.os_type_name,
      isdynamicallyscalable: false,
      displayvm: true,
      created: new Date(Number(vm.created)).toISOString().replace(/\.\d{3}Z$/, '+0000'),
      haenable: false,
      hypervisor: VM_HYPERVISOR,
      keypairs: vm.keypairs ?? undefined,
      ipaddress: def?.ipaddress,
      nic: nicResponses,
      tags: tags.get(Number(vm.id)) ?? [],
    };
  });
}

export async function vmResponse(
  ex: Executor,
  vm: VmRow,
  extra: ResponseObject = {},
  refs?: VmRefs,
): Promise<ResponseObject> {
  return { ...(await vmResponses(ex, [vm], refs && (() => refs)))[0]!, ...extra };
}

/** A command's answer naming one VM, read again by its uuid (whatever its state now). */
export async function vmResult(ex: Executor, uuid: string, extra: ResponseObject = {}) {
  const vm = await ex.selectFrom('vms').selectAll().where('uuid', '=', uuid).executeTakeFirstOrThrow();
  return objectResult('virtualmachine', await vmResponse(ex, vm, extra));
}
