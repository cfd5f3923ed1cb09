/**
 * VM and NIC life cycle on the database. Each function runs inside the caller's transaction (a NetCtx) and
 * bumps the generation of every router whose desired state it changes, in that same transaction. Drivers are
 * driven afterwards by the commands (vms/commands.ts), from the committed rows.
 */
import { removeRulesOf } from '../rules/repository.js';
import { removeVmFromLoadBalancers } from '../lb/repository.js';
import { removeTagsOf } from '../tags/service.js';
import { randomBytes, randomUUID } from 'node:crypto';
import type { Selectable } from 'kysely';
import { nextMacAddress } from '../addresses/address-service.js';
import { CloudStackError, invalidParameter } from '../errors/catalogue.js';
import type { NetCtx } from '../infrastructure/context.js';
import { parseIpOf } from '../ipam/index.js';
import { implementNetwork, networkHooks } from '../networks/lifecycle.js';
import type { NetworkRow } from '../networks/repository.js';
import { networkById } from '../networks/repository.js';
import { allocateGuestAddress, networkForCaller } from '../networks/service.js';
import { bumpNetworkRouters } from '../routers/repository.js';
import type { Executor } from '../store/db.js';
import type { Owner } from '../infrastructure/owners.js';
import type { NicsTable, VmsTable } from './tables.js';
import type { VmSize } from '../offerings/service-offerings.js';

export type VmRow = Selectable<VmsTable>;
export type NicRow = Selectable<NicsTable>;

const plain = (ctx: NetCtx): Executor => ctx.tx as unknown as Executor;

/** Does this database hand back an inserted row (INSERT … RETURNING: SQLite, PostgreSQL; not MariaDB here)? */
const returns = (ex: Executor): boolean => ex.getExecutor().adapter.supportsReturning;

export interface NicRequest {
  network: NetworkRow;
  /** The NIC's id when a job names it (jobScopedUuid), so that a re-run of the job finds it. */
  uuid?: string;
  ip?: string;
  mac?: string;
}

export interface CreateVmRequest {
  /** The VM's API id: a deploy job's prepared id, so a re-run of the job finds the VM by it. */
  uuid?: string;
  owner: Owner;
  zoneId: number;
  hostname: string;
  displayName: string;
  userData: string | null;
  keypairs: string | null;
  publicKeys: string | null;
  serviceOfferingId: number | null;
  /** CPU count, speed and memory from the offering (or the deploy's custom details). */
  size: VmSize | null;
  templateId: number | null;
  password: string | null;
  start: boolean;
  nics: NicRequest[];
}

async function checkHostnameFree(
  ctx: NetCtx,
  network: NetworkRow,
  hostname: string,
  exceptVm?: number,
): Promise<void> {
  let q = plain(ctx)
    .selectFrom('nics')
    .innerJoin('vms', 'vms.id', 'nics.vm_id')
    .select('vms.uuid')
    .where('nics.network_id', '=', network.id)
    .where('vms.removed', 'is', null)
    .where((eb) => eb.fn('lower', ['vms.name']), '=', hostname.toLowerCase());
  if (exceptVm !== undefined) q = q.where('vms.id', '!=', exceptVm);
  const clash = await q.executeTakeFirst();
  // The VR resolves `<host>.<network domain>`: two VMs with one name in one network cannot both be reachable.
  if (clash) {
    throw invalidParameter(
      'name',
      hostname,
      `a VM with this host name already exists in network ${network.name}; choose another name`,
    );
  }
}

/** Adds a NIC (address + MAC) to a VM in one network; implements the network if it is not. */
export async function addNic(
  ctx: NetCtx,
  vm: VmRow,
  req: NicRequest,
  isDefault: boolean,
  deviceId: number,
): Promise<NicRow> {
  const tx = plain(ctx);
  let network = req.network;
  let bumped = false;
  if (network.type !== 'L2' && network.state !== 'Implemented' && network.type !== 'Shared') {
    network = await implementNetwork(ctx, network.id);
  } else if (network.state === 'Implemented') {
    // A network implemented while no router hook was installed (`stacknet demo`, a server of an older
    // version) or whose router an admin stopped still needs a running router before a VM boots on it, as
    // CloudStack starts the VR when a VM starts in the network.
    bumped = (await networkHooks.afterImplement?.(ctx, network)) === 'bumped';
  }
  await checkHostnameFree(ctx, network, vm.name, Number(vm.id));
  const uuid = req.uuid ?? randomUUID();
  const mac = req.mac?.toLowerCase() ?? (await nextMacAddress(tx, Number(vm.zone_id)));
  let ipv4: string | null = null;
  let allocationId: number | null = null;
  if (network.cidr || network.type === 'Shared') {
    const a = await allocateGuestAddress(ctx, network, {
      requested: req.ip ? parseIpOf(4, req.ip, 'ipaddress') : undefined,
      strategy: 'random',
      owner: { kind: 'nic' },
      vmId: Number(vm.id),
      accountId: Number(vm.account_id),
      domainId: Number(vm.domain_id),
    });
    ipv4 = a.ip;
    allocationId = a.id;
  }
  const insert = tx.insertInto('nics').values({
    uuid,
    vm_id: vm.id,
    network_id: network.id,
    zone_id: vm.zone_id,
    mac,
    ipv4,
    ipv6: null,
    ip_allocation_id: allocationId,
    is_default: isDefault ? 1 : 0,
    device_id: deviceId,
    created: ctx.now,
  });
  const nic = await (
    returns(tx)
      ? insert.returningAll().executeTakeFirstOrThrow()
      : insert
          .execute()
          .then(() => tx.selectFrom('nics').selectAll().where('uuid', '=', uuid).executeTakeFirstOrThrow())
  ).catch((e: unknown) => {
    if (String((e as Error).message).match(/unique|duplicate/i)) {
      throw invalidParameter('macaddress', mac, 'is already used by another NIC in this zone');
    }
    throw e;
  });
  if (allocationId !== null) {
    await tx.updateTable('ip_allocations').set({ owner_id: nic.id }).where('id', '=', allocationId).execute();
  }
  // Once per transaction is enough (the pass reads what it committed): the hook above bumped them already.
  if (!bumped) await bumpNetworkRouters(tx, Number(network.id));
  await ctx.recorder.event(ctx.tx, {
    type: 'NET.IPASSIGN',
    description: `Guest address ${ipv4 ?? '(none)'} assigned to ${vm.name} in network ${network.name}`,
    resourceType: 'Nic',
    resourceId: uuid,
    owner: ownerRef(vm),
  });
  return nic;
}

const ownerRefs = new Map<
  number,
  { accountId: number; accountName: string; domainId: number; domainPath: string }
>();
function ownerRef(vm: VmRow) {
  return ownerRefs.get(Number(vm.account_id))!;
}

export async function rememberOwner(ctx: NetCtx, accountId: number): Promise<void> {
  if (ownerRefs.has(accountId)) return;
  const o = await plain(ctx)
    .selectFrom('accounts')
    .innerJoin('domains', 'domains.id', 'accounts.domain_id')
    .select(['accounts.id', 'accounts.name', 'accounts.domain_id', 'domains.path'])
    .where('accounts.id', '=', accountId)
    .executeTakeFirstOrThrow();
  ownerRefs.set(accountId, {
    accountId,
    accountName: o.name,
    domainId: Number(o.domain_id),
    domainPath: o.path,
  });
}

/** deployVirtualMachine's transaction: the VM, its NICs and addresses, router generations, events — or nothing. */
export async function createVm(ctx: NetCtx, r: CreateVmRequest): Promise<VmRow> {
  const tx = plain(ctx);
  if (r.nics.length === 0) throw invalidParameter('networkids', '', 'the VM needs at least one network');
  const seen = new Set<number>();
  for (const n of r.nics) {
    if (seen.has(Number(n.network.id)))
      throw invalidParameter('networkids', n.network.uuid, 'the same network is listed twice');
    seen.add(Number(n.network.id));
    if (Number(n.network.zone_id) !== r.zoneId)
      throw invalidParameter('networkids', n.network.uuid, 'the network is in another zone than zoneid');
  }
  await rememberOwner(ctx, r.owner.accountId);
  const uuid = r.uuid ?? randomUUID();
  const insert = tx.insertInto('vms').values({
    uuid,
    instance_name: `i-${r.owner.accountId}-0-VM`,
    name: r.hostname,
    display_name: r.displayName,
    state: r.start ? 'Starting' : 'Stopped',
    zone_id: r.zoneId,
    account_id: r.owner.accountId,
    domain_id: r.owner.domainId,
    user_id: ctx.caller.userId,
    service_offering_id: r.serviceOfferingId,
    cpu_number: r.size?.cpuNumber ?? null,
    cpu_speed: r.size?.cpuSpeed ?? null,
    memory: r.size?.memory ?? null,
    template_id: r.templateId,
    user_data: r.userData,
    keypairs: r.keypairs,
    ssh_public_keys: r.publicKeys,
    password: r.password,
    destroyed: null,
    created: ctx.now,
    removed: null,
  });
  // The row back from the INSERT where the database can (RETURNING: SQLite, PostgreSQL), else read by its uuid.
  const inserted = returns(tx)
    ? await insert.returningAll().executeTakeFirstOrThrow()
    : await insert
        .execute()
        .then(() => tx.selectFrom('vms').selectAll().where('uuid', '=', uuid).executeTakeFirstOrThrow());
  const instanceName = `i-${r.owner.accountId}-${inserted.id}-VM`;
  await tx.updateTable('vms').set({ instance_name: instanceName }).where('id', '=', inserted.id).execute();
  // The row as it now is (the one column changed), not read a third time.
  const vm: VmRow = { ...inserted, instance_name: instanceName };
  for (const [i, n] of r.nics.entries()) await addNic(ctx, vm, n, i === 0, i);
  await ctx.recorder.event(ctx.tx, {
    type: 'VM.CREATE',
    description: `VM ${vm.name} created`,
    resourceType: 'VirtualMachine',
    resourceId: vm.uuid,
    resourceName: vm.name,
    owner: ownerRef(vm),
  });
  await ctx.recorder.usage(ctx.tx, {
    type: 'VM.CREATE',
    accountId: Number(vm.account_id),
    domainId: Number(vm.domain_id),
    zoneId: Number(vm.zone_id),
    resourceId: Number(vm.id),
    resourceUuid: vm.uuid,
    resourceName: vm.name,
  });
  return vm;
}

/**
 * The VM the caller names, if the caller may act on it. `includeRemoved`: an expunged VM too, for a job's re-run
 * that finds its own earlier run already expunged it.
 */
export async function vmForCaller(
  ctx: NetCtx,
  uuid: string,
  param = 'id',
  opts: { includeRemoved?: boolean } = {},
): Promise<VmRow> {
  let q = plain(ctx).selectFrom('vms').selectAll().where('uuid', '=', uuid);
  if (!opts.includeRemoved) q = q.where('removed', 'is', null);
  if (ctx.caller.role === 'User') q = q.where('account_id', '=', ctx.caller.accountId);
  const vm = await q.executeTakeFirst();
  if (!vm) throw invalidParameter(param, uuid, 'no virtual machine with this id that the caller can access');
  if (ctx.caller.role === 'DomainAdmin') {
    const d = await plain(ctx)
      .selectFrom('domains')
      .select('path')
      .where('id', '=', vm.domain_id)
      .executeTakeFirstOrThrow();
    if (!d.path.startsWith(ctx.caller.domainPath))
      throw invalidParameter(param, uuid, 'no virtual machine with this id that the caller can access');
  }
  await rememberOwner(ctx, Number(vm.account_id));
  return vm;
}

export async function nicsOf(ex: Executor, vmId: number): Promise<NicRow[]> {
  return ex.selectFrom('nics').selectAll().where('vm_id', '=', vmId).orderBy('device_id').execute();
}

export async function setVmState(
  ctx: NetCtx,
  vm: VmRow,
  state: VmRow['state'],
  extra: Partial<VmRow> = {},
): Promise<void> {
  await plain(ctx)
    .updateTable('vms')
    .set({ state, ...extra })
    .where('id', '=', vm.id)
    .execute();
}

/**
 * Moves the VM from `from` to `to` if it is still in `from`: its row after the move, or undefined when it was in
 * another state (nothing changed). One statement where the database returns updated rows.
 */
export async function moveVmState(
  ctx: NetCtx,
  vmId: number,
  from: VmRow['state'],
  to: VmRow['state'],
): Promise<VmRow | undefined> {
  const tx = plain(ctx);
  const update = tx.updateTable('vms').set({ state: to }).where('id', '=', vmId).where('state', '=', from);
  if (returns(tx)) return update.returningAll().executeTakeFirst();
  const r = await update.executeTakeFirst();
  if (Number(r.numUpdatedRows) === 0) return undefined;
  return tx.selectFrom('vms').selectAll().where('id', '=', vmId).executeTakeFirstOrThrow();
}

/** Network ids of a VM (for router bumps and kicks). */
export async function networksOfVm(ex: Executor, vmId: number): Promise<number[]> {
  const rows = await ex.selectFrom('nics').select('network_id').where('vm_id', '=', vmId).execute();
  return [...new Set(rows.map((r) => Number(r.network_id)))];
}

/** Releases one NIC: its address and secondary addresses go back at once, the routers drop its entries. */
export async function removeNicRows(ctx: NetCtx, vm: VmRow, nic: NicRow): Promise<void> {
  const tx = plain(ctx);
  const secondaries = await tx
    .selectFrom('nic_secondary_ips')
    .selectAll()
    .where('nic_id', '=', nic.id)
    .execute();
  for (const s of secondaries) {
    if (s.ip_allocation_id !== null)
      await tx.deleteFrom('ip_allocations').where('id', '=', s.ip_allocation_id).execute();
  }
  await tx.deleteFrom('nic_secondary_ips').where('nic_id', '=', nic.id).execute();
  await tx
    .deleteFrom('ip_allocations')
    .where('owner_kind', '=', 'nic')
    .where('owner_id', '=', nic.id)
    .execute();
  await tx.deleteFrom('nics').where('id', '=', nic.id).execute();
  await bumpNetworkRouters(tx, Number(nic.network_id));
  const network = await networkById(ctx.tx, Number(nic.network_id));
  await ctx.recorder.event(ctx.tx, {
    type: 'NET.IPRELEASE',
    description: `Guest address ${nic.ipv4 ?? '(none)'} of ${vm.name} released in network ${network.name}`,
    resourceType: 'Nic',
    resourceId: nic.uuid,
    owner: ownerRef(vm),
  });
}

/**
 * Expunge: the VM's NICs and addresses go, its DHCP/DNS/metadata entries leave the routers (CloudStack sends
 * `remove=true` DHCP entries at expunge, not at stop — PR #3608), the row stays marked removed.
 */
export async function expungeVmRows(ctx: NetCtx, vm: VmRow): Promise<number[]> {
  const networks = await networksOfVm(plain(ctx), Number(vm.id));
  // Its port forwards go first (CloudStack's expunge revokes the VM's PF rules), with their events.
  await removeRulesOf(ctx, 'vm_id', Number(vm.id));
  await removeVmFromLoadBalancers(ctx, Number(vm.id));
  for (const nic of await nicsOf(plain(ctx), Number(vm.id))) await removeNicRows(ctx, vm, nic);
  await plain(ctx)
    .updateTable('vms')
    .set({ state: 'Expunging', removed: ctx.now, password: null })
    .where('id', '=', vm.id)
    .execute();
  await removeTagsOf(plain(ctx), 'UserVm', Number(vm.id));
  await ctx.recorder.event(ctx.tx, {
    type: 'VM.EXPUNGE',
    description: `VM ${vm.name} expunged`,
    resourceType: 'VirtualMachine',
    resourceId: vm.uuid,
    resourceName: vm.name,
    owner: ownerRef(vm),
  });
  return networks;
}

export async function bumpVmRouters(ctx: NetCtx, vmId: number): Promise<number[]> {
  const nets = await networksOfVm(plain(ctx), vmId);
  for (const n of nets) await bumpNetworkRouters(plain(ctx), n);
  return nets;
}

export function generatePassword(): string {
  // CloudStack's generated passwords are 6 characters from an unambiguous alphabet by default
  // (vm.password.length); longer is harmless and safer.
  const alphabet = 'abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789';
  return [...randomBytes(12)].map((b) => alphabet[b % alphabet.length]).join('');
}

export async function recordVmEvent(
  ctx: NetCtx,
  vm: VmRow,
  type:
    | 'VM.START'
    | 'VM.STOP'
    | 'VM.REBOOT'
    | 'VM.DESTROY'
    | 'VM.RECOVER'
    | 'VM.UPDATE'
    | 'VM.RESETPASSWORD'
    | 'VM.RESETSSHKEY'
    | 'VM.UPGRADE',
  verb: string,
): Promise<void> {
  await rememberOwner(ctx, Number(vm.account_id));
  await ctx.recorder.event(ctx.tx, {
    type,
    description: `VM ${vm.name} ${verb}`,
    resourceType: 'VirtualMachine',
    resourceId: vm.uuid,
    resourceName: vm.name,
    owner: ownerRef(vm),
  });
}

export async function networkForNic(ctx: NetCtx, uuid: string, param: string): Promise<NetworkRow> {
  return networkForCaller(ctx, uuid, param, false);
}

export { CloudStackError };
