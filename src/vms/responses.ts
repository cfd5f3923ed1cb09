/** What VM and NIC commands answer with: CloudStack's virtualmachine and nic objects, from committed rows. */
import { hostname } from 'node:os';
import { tagsFor } from '../tags/service.js';
import type { ResponseObject } from '../api/command.js';
import { displayPath } from '../accounts/repository.js';
import { prefixToNetmask, parseCidr } from '../ipam/index.js';
import { osTypeByDescription } from '../offerings/os-types.js';
import { networkById } from '../networks/repository.js';
import type { NetworkRow } from '../networks/repository.js';
import type { Executor } from '../store/db.js';
import { nicsOf } from './service.js';
import { placementFields } from '../hosts/repository.js';
import type { NicRow, VmRow } from './service.js';

export async function nicResponse(ex: Executor, nic: NicRow, net?: NetworkRow): Promise<ResponseObject> {
  const network = net ?? (await networkById(ex as never, Number(nic.network_id)));
  const cidr = network.network_cidr ?? network.cidr;
  const sec = await ex.selectFrom('nic_secondary_ips').selectAll().where('nic_id', '=', nic.id).execute();
  const vm = await ex.selectFrom('vms').select('uuid').where('id', '=', nic.vm_id).executeTakeFirst();
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
    virtualmachineid: vm?.uuid,
    secondaryip: sec.map((s) => ({ id: s.uuid, ipaddress: s.ipv4 })),
  };
}

export async function vmResponse(
  ex: Executor,
  vm: VmRow,
  extra: ResponseObject = {},
): Promise<ResponseObject> {
  const zone = await ex
    .selectFrom('zones')
    .select(['uuid', 'name'])
    .where('id', '=', vm.zone_id)
    .executeTakeFirst();
  const acct = await ex
    .selectFrom('accounts')
    .innerJoin('domains', 'domains.id', 'accounts.domain_id')
    .select([
      'accounts.name as account',
      'domains.uuid as domainid',
      'domains.name as domain',
      'domains.path as domainpath',
    ])
    .where('accounts.id', '=', vm.account_id)
    .executeTakeFirst();
  const so =
    vm.service_offering_id !== null
      ? await ex
          .selectFrom('service_offerings')
          .select(['uuid', 'name', 'cpu_number', 'cpu_speed', 'memory'])
          .where('id', '=', vm.service_offering_id)
          .executeTakeFirst()
      : undefined;
  const tpl =
    vm.template_id !== null
      ? await ex
          .selectFrom('templates')
          .select(['uuid', 'name', 'display_text', 'os_type_name', 'password_enabled'])
          .where('id', '=', vm.template_id)
          .executeTakeFirst()
      : undefined;
  const os = tpl ? osTypeByDescription(tpl.os_type_name) : undefined;
  const nics = await nicsOf(ex, Number(vm.id));
  const nicResponses: ResponseObject[] = [];
  for (const n of nics) nicResponses.push(await nicResponse(ex, n));
  const def = nicResponses.find((n) => n.isdefault === true);
  // The hosts driver's placement: the host it is defined on, and whether that host is reachable.
  const placed = await placementFields(
    ex,
    vm.host_id === null || vm.host_id === undefined ? null : Number(vm.host_id),
  );
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
    hypervisor: 'Simulator',
    keypairs: vm.keypairs ?? undefined,
    ipaddress: def?.ipaddress,
    nic: nicResponses,
    tags: (await tagsFor(ex, 'UserVm', [Number(vm.id)])).get(Number(vm.id)) ?? [],
    ...extra,
  };
}
