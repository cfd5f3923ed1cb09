/**
 * NIC commands: listNics, addNicToVirtualMachine, removeNicFromVirtualMachine, updateVmNicIp, addIpToNic,
 * removeIpFromNic. A running VM's routers and driver follow each change.
 */
import {
  allRoles,
  defineCommand,
  listResult,
  objectResult,
  refParams,
  successResult,
} from '../api/command.js';
import type { AnyCommand, CommandContext } from '../api/command.js';
import { changedBeforeRerun, deletedBeforeRerun, jobAttempt, jobScopedUuid } from '../api/jobs/rerun.js';
import { invalidParameter } from '../errors/catalogue.js';
import { withNet } from '../infrastructure/net-context.js';
import { ownerById } from '../infrastructure/owners.js';
import type { NetCtx } from '../infrastructure/context.js';
import { parseIpOf } from '../ipam/index.js';
import { networkById } from '../networks/repository.js';
import { allocateGuestAddress, networkForCaller } from '../networks/service.js';
import { bumpNetworkRouters } from '../routers/repository.js';
import { addNic, networksOfVm, nicsOf, removeNicRows, vmForCaller } from './service.js';
import type { VmRow } from './service.js';
import { convergeNetworks, driverUpdateVm } from './operations.js';
import { checkMacAddress } from './validation.js';
import { nicResponses, vmResult } from './responses.js';

async function nicForCaller(ctx: CommandContext, nicUuid: string, param = 'nicid') {
  const nic = await ctx.store.db
    .selectFrom('nics')
    .selectAll()
    .where('uuid', '=', nicUuid)
    .executeTakeFirst();
  if (!nic) throw invalidParameter(param, nicUuid, 'no NIC has this id');
  const vm = await ctx.store.db
    .selectFrom('vms')
    .selectAll()
    .where('id', '=', nic.vm_id)
    .executeTakeFirstOrThrow();
  await withNet(ctx, (n) => vmForCaller(n, vm.uuid, param));
  return { nic, vm };
}

const listNics = defineCommand({
  name: 'listNics',
  roles: allRoles,
  params: refParams('listNics', ['virtualmachineid', 'nicid', 'networkid', 'page', 'pagesize']),
  async handler(p, ctx) {
    const vm = await withNet(ctx, (n) => vmForCaller(n, p.virtualmachineid, 'virtualmachineid'));
    let nics = await nicsOf(ctx.store.db, Number(vm.id));
    if (p.nicid) nics = nics.filter((x) => x.uuid === p.nicid);
    const items = (await nicResponses(ctx.store.db, nics)).filter(
      (r) => !p.networkid || r.networkid === p.networkid,
    );
    return listResult('nic', items, items.length);
  },
});

const addNicToVirtualMachine = defineCommand({
  name: 'addNicToVirtualMachine',
  roles: allRoles,
  params: refParams('addNicToVirtualMachine', ['virtualmachineid', 'networkid', 'ipaddress', 'macaddress']),
  jobInstance: (p) => ({ type: 'VirtualMachine', id: p.virtualmachineid }),
  async handler(p, ctx) {
    const nicUuid = jobScopedUuid(ctx, 'nic');
    const vm = await withNet(ctx, async (n) => {
      const v = await vmForCaller(n, p.virtualmachineid, 'virtualmachineid');
      const network = await networkForCaller(n, p.networkid, 'networkid', false);
      const nics = await nicsOf(n.tx as never, Number(v.id));
      // This job's earlier run added the NIC and died before answering: the rest is after the commit.
      if (nics.some((x) => x.uuid === nicUuid)) return v;
      if (nics.some((x) => Number(x.network_id) === Number(network.id)))
        throw invalidParameter(
          'networkid',
          p.networkid,
          `VM ${v.name} already has a NIC in network ${network.name}`,
        );
      const dev = nics.reduce((m, x) => Math.max(m, Number(x.device_id)), -1) + 1;
      const mac = checkMacAddress('macaddress', p.macaddress, Number(v.zone_id));
      const nic = await addNic(
        n,
        v,
        { network, ip: p.ipaddress, mac, uuid: nicUuid },
        nics.length === 0,
        dev,
      );
      await nicEvent(n, v, 'NIC.CREATE', `NIC added to VM ${v.name} in network ${network.name}`, nic.uuid);
      return v;
    });
    return nicsChanged(ctx, vm, await networksOfVm(ctx.store.db, Number(vm.id)));
  },
});

/** After a VM's NICs changed: its networks' routers converge, a running VM is updated, the VM is the answer. */
async function nicsChanged(
  ctx: CommandContext,
  vm: { id: number | string; uuid: string; state: string },
  networkIds: number[],
) {
  await convergeNetworks(ctx.store, networkIds);
  if (vm.state === 'Running') await driverUpdateVm(ctx.store, Number(vm.id));
  return vmResult(ctx.store.db, vm.uuid);
}

/** A NIC's event (its secondary address's: `resourceId` that address's id), on the VM's account. */
async function nicEvent(
  n: NetCtx,
  vm: VmRow,
  type: Parameters<NetCtx['recorder']['event']>[1]['type'],
  description: string,
  resourceId: string,
): Promise<void> {
  await n.recorder.event(n.tx, {
    type,
    description,
    resourceType: 'Nic',
    resourceId,
    owner: await ownerById(n.tx as never, Number(vm.account_id)),
  });
}

const removeNicFromVirtualMachine = defineCommand({
  name: 'removeNicFromVirtualMachine',
  roles: allRoles,
  params: refParams('removeNicFromVirtualMachine', ['virtualmachineid', 'nicid']),
  jobInstance: (p) => ({ type: 'VirtualMachine', id: p.virtualmachineid }),
  async handler(p, ctx) {
    if (await deletedBeforeRerun(ctx, ['NIC.DELETE'], p.nicid)) {
      // This job's earlier run removed the NIC and died before answering: only the VM's side is left.
      const vm = await withNet(ctx, (n) => vmForCaller(n, p.virtualmachineid, 'virtualmachineid'));
      return nicsChanged(ctx, vm, []);
    }
    const { nic, vm } = await nicForCaller(ctx, p.nicid);
    if (vm.uuid !== p.virtualmachineid)
      throw invalidParameter('nicid', p.nicid, 'the NIC does not belong to this VM');
    if (Number(nic.is_default) === 1)
      throw invalidParameter(
        'nicid',
        p.nicid,
        'the default NIC cannot be removed; make another NIC the default first',
      );
    await withNet(ctx, async (n) => {
      await removeNicRows(n, vm, nic);
      await nicEvent(n, vm, 'NIC.DELETE', `NIC removed from VM ${vm.name}`, nic.uuid);
    });
    return nicsChanged(ctx, vm, [Number(nic.network_id)]);
  },
});

const updateVmNicIp = defineCommand({
  name: 'updateVmNicIp',
  roles: allRoles,
  params: refParams('updateVmNicIp', ['nicid', 'ipaddress']),
  async handler(p, ctx) {
    const { nic, vm } = await nicForCaller(ctx, p.nicid);
    // This job's earlier run moved the NIC and died before answering: the address asked for is the NIC's
    // already, or (none asked for) the one it chose is, as its committed NIC.UPDATE event says.
    const done =
      jobAttempt(ctx) > 1 &&
      (p.ipaddress !== undefined
        ? nic.ipv4 === p.ipaddress
        : await changedBeforeRerun(ctx, ['NIC.UPDATE'], nic.uuid));
    if (!done)
      await withNet(ctx, async (n) => {
        const network = await networkById(n.tx, Number(nic.network_id));
        // The new address is taken before the old one goes, so a refusal (in use, outside the range) changes nothing.
        const a = await allocateGuestAddress(n, network, {
          requested: p.ipaddress ? parseIpOf(4, p.ipaddress, 'ipaddress') : undefined,
          owner: { kind: 'nic', id: Number(nic.id) },
          vmId: Number(vm.id),
          accountId: Number(vm.account_id),
          domainId: Number(vm.domain_id),
        });
        if (nic.ip_allocation_id !== null)
          await n.tx.deleteFrom('ip_allocations').where('id', '=', nic.ip_allocation_id).execute();
        await n.tx
          .updateTable('nics')
          .set({ ipv4: a.ip, ip_allocation_id: a.id })
          .where('id', '=', nic.id)
          .execute();
        await bumpNetworkRouters(n.tx as never, Number(network.id));
        await nicEvent(
          n,
          vm,
          'NIC.UPDATE',
          `NIC of VM ${vm.name} moved from ${nic.ipv4} to ${a.ip}`,
          nic.uuid,
        );
      });
    return nicsChanged(ctx, vm, [Number(nic.network_id)]);
  },
});

const addIpToNic = defineCommand({
  name: 'addIpToNic',
  roles: allRoles,
  params: refParams('addIpToNic', ['nicid', 'ipaddress']),
  async handler(p, ctx) {
    const { nic, vm } = await nicForCaller(ctx, p.nicid);
    const uuid = jobScopedUuid(ctx, 'secondary-ip');
    const ip = await withNet(ctx, async (n) => {
      const network = await networkById(n.tx, Number(nic.network_id));
      const earlier = await n.tx
        .selectFrom('nic_secondary_ips')
        .select('ipv4')
        .where('uuid', '=', uuid)
        .executeTakeFirst();
      // This job's earlier run took the address and died before answering.
      if (earlier) return { ip: earlier.ipv4, network };
      const a = await allocateGuestAddress(n, network, {
        requested: p.ipaddress ? parseIpOf(4, p.ipaddress, 'ipaddress') : undefined,
        owner: { kind: 'nicsecondary' },
        vmId: Number(vm.id),
        accountId: Number(vm.account_id),
        domainId: Number(vm.domain_id),
      });
      await n.tx
        .insertInto('nic_secondary_ips')
        .values({
          uuid,
          nic_id: nic.id,
          vm_id: vm.id,
          network_id: network.id,
          ipv4: a.ip,
          ip_allocation_id: a.id,
          created: n.now,
        })
        .execute();
      const row = await n.tx
        .selectFrom('nic_secondary_ips')
        .select('id')
        .where('uuid', '=', uuid)
        .executeTakeFirstOrThrow();
      await n.tx.updateTable('ip_allocations').set({ owner_id: row.id }).where('id', '=', a.id).execute();
      await nicEvent(
        n,
        vm,
        'NIC.SECONDARY.IP.ASSIGN',
        `Secondary address ${a.ip} assigned to VM ${vm.name}`,
        nic.uuid,
      );
      return { ip: a.ip, network };
    });
    if (vm.state === 'Running') await driverUpdateVm(ctx.store, Number(vm.id));
    return objectResult('nicsecondaryip', {
      id: uuid,
      ipaddress: ip.ip,
      nicid: nic.uuid,
      networkid: ip.network.uuid,
      virtualmachineid: vm.uuid,
    });
  },
});

const removeIpFromNic = defineCommand({
  name: 'removeIpFromNic',
  roles: allRoles,
  params: refParams('removeIpFromNic', ['id']),
  async handler(p, ctx) {
    const s = await ctx.store.db
      .selectFrom('nic_secondary_ips')
      .selectAll()
      .where('uuid', '=', p.id)
      .executeTakeFirst();
    // Gone on a re-run: this job's earlier run removed it and died before answering.
    if (!s && (await deletedBeforeRerun(ctx, ['NIC.SECONDARY.IP.UNASSIGN'], p.id))) return successResult();
    if (!s) throw invalidParameter('id', p.id, 'no secondary IP has this id');
    const vm = await ctx.store.db
      .selectFrom('vms')
      .selectAll()
      .where('id', '=', s.vm_id)
      .executeTakeFirstOrThrow();
    await withNet(ctx, async (n) => {
      await vmForCaller(n, vm.uuid, 'id');
      if (s.ip_allocation_id !== null)
        await n.tx.deleteFrom('ip_allocations').where('id', '=', s.ip_allocation_id).execute();
      await n.tx.deleteFrom('nic_secondary_ips').where('id', '=', s.id).execute();
      await nicEvent(
        n,
        vm,
        'NIC.SECONDARY.IP.UNASSIGN',
        `Secondary address ${s.ipv4} removed from VM ${vm.name}`,
        p.id,
      );
    });
    if (vm.state === 'Running') await driverUpdateVm(ctx.store, Number(vm.id));
    return successResult();
  },
});

export const commands: AnyCommand[] = [
  listNics,
  addNicToVirtualMachine,
  removeNicFromVirtualMachine,
  updateVmNicIp,
  addIpToNic,
  removeIpFromNic,
];
