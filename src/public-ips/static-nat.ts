/**
 * Static NAT on a public IP (enableStaticNat / disableStaticNat): the address's one-to-one NAT to a VM's NIC,
 * kept on its ip_allocations row; the routers of its network are told through their generation.
 */
import { invalidParameter, permissionDenied } from '../errors/catalogue.js';
import { addressFromKey, formatIp } from '../ipam/address.js';
import type { NetCtx } from '../infrastructure/context.js';
import { notFound } from '../infrastructure/context.js';
import { checkAccess, ownerById } from '../infrastructure/owners.js';
import type { NetExecutor as Executor } from '../networks/tables.js';
import { netDb } from '../networks/tables.js';
import { liveRulesWhere } from '../rules/repository.js';
import { bumpPublicIpRouters } from '../routers/repository.js';
import { isPortableRow, plain, publicIpByUuid } from './service.js';
import { transferPortableIp } from './portable-ips.js';
import type { AssociateDeps } from './associate.js';

/** What enableStaticNat needs to know of a VM. */
export interface StaticNatVm {
  id: number;
  uuid: string;
  name: string;
  displayName: string;
  accountId: number;
  /** The VM's NIC addresses per network id. */
  nics: { networkId: number; ip: string; isDefault: boolean }[];
}

/** The VM's NIC addresses from the VMs and NICs tables of the VM concern (issue 6). */
async function staticNatVm(tx: Executor, uuid: string): Promise<StaticNatVm | undefined> {
  const db = netDb(tx);
  const vm = await db
    .selectFrom('vms')
    .select(['id', 'uuid', 'name', 'display_name', 'account_id'])
    .where('uuid', '=', uuid)
    .where('removed', 'is', null)
    .where('state', 'not in', ['Destroyed', 'Expunging'])
    .executeTakeFirst();
  if (!vm) return undefined;
  const nics = await db
    .selectFrom('nics')
    .select(['network_id', 'ipv4', 'is_default'])
    .where('vm_id', '=', vm.id)
    .orderBy('device_id')
    .execute();
  return {
    id: Number(vm.id),
    uuid: vm.uuid,
    name: vm.name,
    displayName: vm.display_name,
    accountId: Number(vm.account_id),
    nics: nics.flatMap((n) =>
      n.ipv4 ? [{ networkId: Number(n.network_id), ip: n.ipv4, isDefault: n.is_default === 1 }] : [],
    ),
  };
}

export async function enableStaticNat(
  ctx: NetCtx,
  p: {
    ipaddressid: string;
    virtualmachineid: string;
    networkid?: string | undefined;
    vmguestip?: string | undefined;
  },
  deps: Pick<AssociateDeps, 'network' | 'zoneById'>,
): Promise<void> {
  const row = await publicIpByUuid(ctx.tx, p.ipaddressid, 'ipaddressid');
  const owner = await ownerById(ctx.tx, row.account_id!);
  await checkAccess(ctx.tx, ctx.caller, owner, `IP address ${formatIp(addressFromKey(4, row.address))}`);
  if (row.source_nat === 1)
    throw invalidParameter('ipaddressid', p.ipaddressid, 'static NAT cannot be enabled on a source NAT IP');
  if (row.static_nat === 1)
    throw invalidParameter('ipaddressid', p.ipaddressid, 'static NAT is already enabled on this IP');
  // CloudStack's checkIfIpHasRules: port forwards and load balancer rules both hold the IP's ports.
  const held = (await liveRulesWhere(ctx.tx, 'ip_allocation_id', row.id)).find(
    (r) => r.purpose === 'PortForwarding' || r.purpose === 'LoadBalancing',
  );
  if (held)
    throw invalidParameter(
      'ipaddressid',
      p.ipaddressid,
      `Failed to enable static nat for the ip address id=${p.ipaddressid} as it already has ${held.purpose} rules assigned`,
    );
  const vm = await staticNatVm(ctx.tx, p.virtualmachineid);
  if (!vm) throw notFound('virtualmachineid', p.virtualmachineid, 'virtual machine');
  if (vm.accountId !== row.account_id)
    throw permissionDenied('The virtual machine and the IP address belong to different accounts');
  let target =
    vm.nics.find((n) => n.networkId === row.network_id) ?? vm.nics.find((n) => n.isDefault) ?? vm.nics[0];
  if (p.networkid) {
    const net = await deps.network(p.networkid);
    target = vm.nics.find((n) => n.networkId === net.id);
    if (!target)
      throw invalidParameter('networkid', p.networkid, `VM ${vm.name} has no NIC in network '${net.name}'`);
  }
  if (!target) throw invalidParameter('virtualmachineid', p.virtualmachineid, `VM ${vm.name} has no NIC`);
  let current = row;
  if (row.network_id !== target.networkId) {
    if (!isPortableRow(row) && row.network_id !== null) {
      throw invalidParameter(
        'networkid',
        p.networkid ?? '',
        'the IP is associated with another network; only portable IPs move between networks',
      );
    }
    const net = await ctx.tx
      .selectFrom('networks')
      .selectAll()
      .where('id', '=', target.networkId)
      .executeTakeFirstOrThrow();
    current = isPortableRow(row)
      ? await transferPortableIp(ctx, row, { zone: await deps.zoneById(net.zone_id), network: net })
      : row;
    if (!isPortableRow(row)) {
      await ctx.tx
        .updateTable('ip_allocations')
        .set({ network_id: net.id })
        .where('id', '=', row.id)
        .execute();
    }
  }
  await ctx.tx
    .updateTable('ip_allocations')
    .set({ static_nat: 1, vm_id: vm.id, vm_ip: p.vmguestip ?? target.ip, updated: ctx.now })
    .where('id', '=', current.id)
    .execute();
  // The IP may have moved to the VM's network above: its old and its new routers both change.
  await bumpPublicIpRouters(plain(ctx), row);
  await bumpPublicIpRouters(plain(ctx), { network_id: target.networkId, vpc_id: current.vpc_id });
  await ctx.recorder.event(ctx.tx, {
    type: 'STATICNAT.ENABLE',
    description: `Static NAT enabled for ${formatIp(addressFromKey(4, row.address))} to VM ${vm.name}`,
    resourceType: 'IpAddress',
    resourceId: p.ipaddressid,
    owner: owner,
  });
}

export async function disableStaticNat(ctx: NetCtx, p: { ipaddressid: string }): Promise<void> {
  const row = await publicIpByUuid(ctx.tx, p.ipaddressid, 'ipaddressid');
  const owner = await ownerById(ctx.tx, row.account_id!);
  await checkAccess(ctx.tx, ctx.caller, owner, `IP address ${formatIp(addressFromKey(4, row.address))}`);
  if (row.static_nat !== 1)
    throw invalidParameter('ipaddressid', p.ipaddressid, 'static NAT is not enabled on this IP');
  await ctx.tx
    .updateTable('ip_allocations')
    .set({ static_nat: 0, vm_id: null, vm_ip: null, updated: ctx.now })
    .where('id', '=', row.id)
    .execute();
  await bumpPublicIpRouters(plain(ctx), row);
  await ctx.recorder.event(ctx.tx, {
    type: 'STATICNAT.DISABLE',
    description: `Static NAT disabled for ${formatIp(addressFromKey(4, row.address))}`,
    resourceType: 'IpAddress',
    resourceId: p.ipaddressid,
    owner: owner,
  });
}
