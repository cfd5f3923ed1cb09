/**
 * VM commands: deployVirtualMachine, start/stop/reboot/destroy/expunge/recoverVirtualMachine,
 * updateVirtualMachine, resetPasswordForVirtualMachine; the NIC commands (nic-commands.ts) are served with them.
 */
import { randomUUID } from 'node:crypto';
import { allRoles, defineCommand, objectResult, refParams, successResult } from '../api/command.js';
import type { AnyCommand, CommandContext } from '../api/command.js';
import { jobAttempt } from '../api/jobs/rerun.js';
import { CloudStackError, invalidParameter } from '../errors/catalogue.js';
import { withNet, withNetResult } from '../infrastructure/net-context.js';
import { resolveOwner } from '../infrastructure/owners.js';
import { networkById } from '../networks/repository.js';
import { networkForCaller } from '../networks/service.js';
import type { Executor } from '../store/db.js';
import {
  bumpVmRouters,
  createVm,
  expungeVmRows,
  generatePassword,
  moveVmState,
  networksOfVm,
  nicsOf,
  recordVmEvent,
  setVmState,
  vmForCaller,
} from './service.js';
import type { NicRequest, VmRow } from './service.js';
import {
  convergeNetworks,
  convergeRouters,
  driverDestroyVm,
  driverStartVm,
  driverStopVm,
  routersToConverge,
  vmRuntime,
} from './operations.js';
import type { RouterGeneration } from './operations.js';
import type { VmRuntime } from '../drivers/types.js';
import { checkDnsLabel, checkMacAddress, checkUserData } from './validation.js';
import { traceVms } from './trace.js';
import { vmResponse, vmResult } from './responses.js';
import type { VmRefs } from './responses.js';
import { keyPairNames, publicKeysOf } from './keypairs.js';
import { commands as nicCommands } from './nic-commands.js';
import { serviceOfferingForVm, vmSizeFor } from '../offerings/service-offerings.js';

// ------------------------------------------------------------------------------------------ helpers

async function vmByUuidUnscoped(ex: Executor, uuid: string): Promise<VmRow> {
  return ex.selectFrom('vms').selectAll().where('uuid', '=', uuid).executeTakeFirstOrThrow();
}

/** Epoch ms stamps of one deploy for the trace (STACKNET_TRACE_VMS): its job's handler began, its VM committed. */
interface DeployMarks {
  job: number;
  committed?: number;
}

/**
 * The start after a VM's transaction committed: its routers converge while the driver prepares the VM (netns: its
 * namespace, veths and port rules), and its guest starts once they have: the guest asks for its address at
 * once, so its router must know it first (as CloudStack prepares the DHCP entry before the VM starts), but
 * nothing else of the start needs the router (the hosts driver starts a libvirt guest meanwhile: it boots for
 * seconds before it asks, src/drivers/hosts.ts `startVmAfter`). `known`: what the caller has just committed (the
 * VM's networks, its row), not read again.
 */
async function convergeAndStart(
  ctx: CommandContext,
  vm: VmRow,
  known?: KnownStart,
): Promise<{ converging: number; converged: number; driven: number }> {
  const converging = Date.now();
  let converged = 0;
  const ready = (async () => {
    if (known?.routers) await convergeRouters(ctx.store, known.routers);
    else
      await convergeNetworks(
        ctx.store,
        known?.networkIds ?? (await networksOfVm(ctx.store.db, Number(vm.id))),
      );
    converged = Date.now();
  })();
  await driverStartVm(ctx.store, known?.runtime ?? (known ? vm : Number(vm.id)), ready);
  return { converging, converged, driven: Date.now() };
}

/**
 * What a deploy's transaction read for the start after it (not read again after the commit: on SQLite every
 * statement outside a transaction queues for the one connection behind everything else in a burst).
 */
interface KnownStart {
  networkIds: number[];
  /** The VM's routers and the generation holding it. */
  routers?: RouterGeneration[];
  /** The VM as its driver sees it. */
  runtime?: VmRuntime;
}

async function startAfterCommit(ctx: CommandContext, vm: VmRow, marks?: DeployMarks): Promise<void> {
  const t = await convergeAndStart(ctx, vm);
  await withNet(ctx, async (n) => {
    const cur = await vmByUuidUnscoped(n.tx as never, vm.uuid);
    if (cur.state === 'Starting') await setVmState(n, cur, 'Running');
  });
  traceVms?.({ ev: 'deploy', vm: vm.name, instance: vm.instance_name, ...marks, ...t, running: Date.now() });
}

function parseIpToNetworkList(
  list: Record<string, string>[] | undefined,
): { networkid: string; ip?: string; mac?: string }[] {
  return (list ?? []).map((m, i) => {
    const networkid = m.networkid;
    if (!networkid) throw invalidParameter(`iptonetworklist[${i}].networkid`, '', 'is required');
    return { networkid, ip: m.ip ?? m.ipaddress, mac: m.mac };
  });
}

// ------------------------------------------------------------------------------------------ commands

const deployVirtualMachine = defineCommand({
  name: 'deployVirtualMachine',
  roles: allRoles,
  params: {
    ...refParams('deployVirtualMachine', [
      'zoneid',
      'networkids',
      'ipaddress',
      'iptonetworklist',
      'name',
      'displayname',
      'keypair',
      'keypairs',
      'startvm',
      'account',
      'domainid',
      'macaddress',
      'serviceofferingid',
      'templateid',
      'details',
    ]),
    userdata: { type: 'string', length: 1_048_576 },
  },
  async prepare() {
    return { id: randomUUID(), instanceType: 'VirtualMachine' };
  },
  async handler(p, ctx) {
    const marks: DeployMarks = { job: Date.now() };
    if (p.name !== undefined) checkDnsLabel('name', p.name);
    if (p.displayname !== undefined) checkDnsLabel('displayname', p.displayname);
    const userData = p.userdata !== undefined ? checkUserData(p.userdata) : null;
    const start = p.startvm ?? true;
    // The VM's id was handed out with the jobid: a re-run of this job (its server died after the VM committed)
    // finds its own VM under it and carries on, where creating again would refuse its own host name. A first
    // run has no earlier run to find.
    const earlier =
      ctx.prepared?.id && jobAttempt(ctx) > 1
        ? await ctx.store.db
            .selectFrom('vms')
            .selectAll()
            .where('uuid', '=', ctx.prepared.id)
            .executeTakeFirst()
        : undefined;
    if (earlier) return finishDeploy(ctx, await resumableDeploy(earlier), start);
    // What the VM's transaction read and committed, for the start and the answer after it.
    let networkIds: number[] = [];
    let refs: VmRefs | undefined;
    let routers: RouterGeneration[] | undefined;
    let runtime: VmRuntime | undefined;
    const vm = await withNet(ctx, async (n) => {
      const zone = await n.tx
        .selectFrom('zones')
        .selectAll()
        .where('uuid', '=', p.zoneid)
        .where('removed', 'is', null)
        .executeTakeFirst();
      if (!zone) throw invalidParameter('zoneid', p.zoneid, 'no zone has this id');
      const owner = await resolveOwner(n.tx, n.caller, p);
      const reqs: NicRequest[] = [];
      const mapped = parseIpToNetworkList(p.iptonetworklist);
      const macaddress = checkMacAddress('macaddress', p.macaddress, Number(zone.id));
      if (mapped.length) {
        for (const [i, m] of mapped.entries())
          reqs.push({
            network: await networkForCaller(n, m.networkid, 'iptonetworklist', false, owner),
            ip: m.ip,
            mac: checkMacAddress(`iptonetworklist[${i}].mac`, m.mac, Number(zone.id)),
          });
      } else if (p.networkids?.length) {
        for (const [i, id] of p.networkids.entries())
          reqs.push({
            network: await networkForCaller(n, id, 'networkids', false, owner),
            ...(i === 0 ? { ip: p.ipaddress, mac: macaddress } : {}),
          });
      } else {
        // CloudStack's default: the account's own isolated network in the zone, when it has exactly one.
        const own = await n.tx
          .selectFrom('networks')
          .selectAll()
          .where('account_id', '=', owner.accountId)
          .where('zone_id', '=', zone.id)
          .where('type', '=', 'Isolated')
          .where('removed', 'is', null)
          .execute();
        if (own.length !== 1)
          throw invalidParameter(
            'networkids',
            '',
            `account ${owner.accountName} has ${own.length} isolated networks in zone ${zone.name}; say which with networkids`,
          );
        reqs.push({ network: own[0]!, ip: p.ipaddress, mac: macaddress });
      }
      const names = keyPairNames(p);
      const publicKeys = names.length ? await publicKeysOf(n.tx as never, owner, names) : null;
      // Both required, as CloudStack: the offering sizes the VM, the template names its OS.
      const so = await serviceOfferingForVm(n.tx, p.serviceofferingid, owner, zone);
      const size = vmSizeFor(so, p.details);
      const tpl = await n.tx
        .selectFrom('templates')
        .select(['id', 'uuid', 'name', 'display_text', 'os_type_name', 'password_enabled'])
        .where('uuid', '=', p.templateid)
        .executeTakeFirst();
      if (!tpl) throw invalidParameter('templateid', p.templateid, 'no template has this id');
      const uuid = ctx.prepared?.id ?? randomUUID();
      const uuidHost = `VM-${uuid}`;
      networkIds = [...new Set(reqs.map((r) => Number(r.network.id)))];
      refs = {
        zone: { id: zone.id, uuid: zone.uuid, name: zone.name },
        acct: {
          id: owner.accountId,
          account: owner.accountName,
          domainid: owner.domainUuid,
          domain: owner.domainName,
          domainpath: owner.domainPath,
        },
        so: {
          id: so.id,
          uuid: so.uuid,
          name: so.name,
          cpu_number: so.cpu_number,
          cpu_speed: so.cpu_speed,
          memory: so.memory,
        },
        tpl,
      };
      const created = await createVm(n, {
        uuid,
        owner,
        zoneId: Number(zone.id),
        hostname: p.name ?? p.displayname ?? uuidHost,
        displayName: p.displayname ?? p.name ?? uuidHost,
        userData,
        keypairs: names.length ? names.join(',') : null,
        publicKeys,
        serviceOfferingId: Number(so.id),
        size,
        templateId: Number(tpl.id),
        password: Number(tpl.password_enabled) === 1 ? generatePassword() : null,
        start,
        nics: reqs,
      });
      if (start) {
        // Read here, in the transaction: the routers' generation that holds this VM, and the VM as the driver
        // sees it (its NICs and their networks).
        routers = await routersToConverge(n.tx as never as Executor, networkIds);
        runtime = await vmRuntime(n.tx as never as Executor, created);
      }
      return created;
    });
    marks.committed = Date.now();
    return finishDeploy(ctx, vm, start, marks, { networkIds, refs, routers, runtime });
  },
});

/**
 * What a deploy job's re-run can carry on from. Error means the earlier run's start failed and it died before
 * storing that failure: the re-run reports it rather than trying again behind the scavenger's back.
 */
async function resumableDeploy(vm: VmRow): Promise<VmRow> {
  if (vm.removed !== null || vm.state === 'Destroyed' || vm.state === 'Expunging')
    throw new CloudStackError(
      'ResourceUnavailable',
      `VM ${vm.name} (${vm.uuid}) was destroyed before its deploy job could finish; deploy it again`,
    );
  if (vm.state === 'Error')
    throw new CloudStackError(
      'ResourceUnavailable',
      `VM ${vm.name} (${vm.uuid}) could not be started; it is in Error state: start it again or destroy it`,
    );
  return vm;
}

/**
 * The part of a deploy after its VM committed: the first run and any re-run of the job end here. `known`: what
 * the first run's transaction committed or read (the VM's networks; the zone, owner, offering and template its
 * answer names, as the deploy read them a moment before), not read again.
 *
 * Running and the job's result in one transaction (resultTransaction): one commit per deploy less than a
 * transaction of its own for the state and another for the result; on SQLite under `synchronous=FULL` each
 * commit is an fsync that holds the server's one connection (and so its event loop) while it lasts.
 */
async function finishDeploy(
  ctx: CommandContext,
  vm: VmRow,
  start: boolean,
  marks?: DeployMarks,
  known?: KnownStart & { refs?: VmRefs },
) {
  let started: Awaited<ReturnType<typeof convergeAndStart>> | undefined;
  if (start && vm.state === 'Starting') {
    try {
      started = await convergeAndStart(ctx, vm, known);
    } catch (e) {
      // The VM and its addresses stay (held, visible as Error) until it is destroyed or the scavenger
      // expunges it; nothing is left allocated without an owner.
      await withNet(ctx, (n) => setVmState(n, vm, 'Error'));
      throw e;
    }
  }
  const result = await withNetResult(ctx, async (n) => {
    const ex = n.tx as never as Executor;
    // Started: Running unless somebody moved it on meanwhile (then as it is).
    const fresh =
      (started ? await moveVmState(n, Number(vm.id), 'Starting', 'Running') : undefined) ??
      (await vmByUuidUnscoped(ex, vm.uuid));
    return objectResult(
      'virtualmachine',
      // The password as created: the guest may already have fetched it, and the server then drops it.
      await vmResponse(ex, fresh, vm.password ? { password: vm.password } : {}, known?.refs),
    );
  }).catch(async (e: unknown) => {
    // As when the start fails: a VM that did not reach Running is left in Error, not Starting (unless the job's
    // lease is gone: then this transaction fails too, and the server that took the job over carries it on).
    if (started) await withNet(ctx, (n) => setVmState(n, vm, 'Error')).catch(() => undefined);
    throw e;
  });
  if (started)
    traceVms?.({
      ev: 'deploy',
      vm: vm.name,
      instance: vm.instance_name,
      ...marks,
      ...started,
      running: Date.now(),
    });
  return result;
}

const startVirtualMachine = defineCommand({
  name: 'startVirtualMachine',
  roles: allRoles,
  params: refParams('startVirtualMachine', ['id']),
  jobInstance: (p) => ({ type: 'VirtualMachine', id: p.id }),
  async handler(p, ctx) {
    const vm = await withNet(ctx, async (n) => {
      const v = await vmForCaller(n, p.id);
      if (v.state === 'Running') return v;
      // This job's earlier run committed Starting and died: the re-run carries the start on.
      if (v.state === 'Starting' && jobAttempt(ctx) > 1) return v;
      if (v.state !== 'Stopped' && v.state !== 'Error')
        throw invalidParameter('id', p.id, `VM ${v.name} is ${v.state}; only a Stopped VM can be started`);
      // A VM start implements its networks again if the GC shut them down (new VLAN, routers started).
      for (const nic of await nicsOf(n.tx as never, Number(v.id))) {
        const net = await networkById(n.tx, Number(nic.network_id));
        if (net.state !== 'Implemented' && net.type !== 'Shared') {
          const { implementNetwork } = await import('../networks/lifecycle.js');
          await implementNetwork(n, net.id);
        }
      }
      await setVmState(n, v, 'Starting');
      await bumpVmRouters(n, Number(v.id));
      await recordVmEvent(n, v, 'VM.START', 'started');
      return v;
    });
    if (vm.state !== 'Running')
      await startAfterCommit(ctx, vm).catch(async (e: unknown) => {
        // Its host refused it or did not answer (the hosts driver): Stopped again, as CloudStack leaves it.
        await withNet(ctx, async (n) => {
          const cur = await vmByUuidUnscoped(n.tx as never, vm.uuid);
          if (cur.state === 'Starting') await setVmState(n, cur, 'Stopped');
        });
        throw e;
      });
    return vmResult(ctx.store.db, vm.uuid);
  },
});

const stopVirtualMachine = defineCommand({
  name: 'stopVirtualMachine',
  roles: allRoles,
  params: refParams('stopVirtualMachine', ['id', 'forced']),
  jobInstance: (p) => ({ type: 'VirtualMachine', id: p.id }),
  async handler(p, ctx) {
    const vm = await withNet(ctx, async (n) => {
      const v = await vmForCaller(n, p.id);
      if (v.state === 'Stopped') return v;
      if (v.state !== 'Running' && v.state !== 'Starting' && v.state !== 'Error')
        throw invalidParameter('id', p.id, `VM ${v.name} is ${v.state}; only a Running VM can be stopped`);
      await setVmState(n, v, 'Stopped');
      await recordVmEvent(n, v, 'VM.STOP', 'stopped');
      return v;
    });
    // The DHCP/DNS entries stay on the router until expunge (CloudStack PR #3608).
    await driverStopVm(ctx.store, Number(vm.id));
    return vmResult(ctx.store.db, vm.uuid);
  },
});

const rebootVirtualMachine = defineCommand({
  name: 'rebootVirtualMachine',
  roles: allRoles,
  params: refParams('rebootVirtualMachine', ['id', 'forced']),
  jobInstance: (p) => ({ type: 'VirtualMachine', id: p.id }),
  async handler(p, ctx) {
    const vm = await withNet(ctx, async (n) => {
      const v = await vmForCaller(n, p.id);
      if (v.state !== 'Running')
        throw invalidParameter('id', p.id, `VM ${v.name} is ${v.state}; only a Running VM can be rebooted`);
      await recordVmEvent(n, v, 'VM.REBOOT', 'rebooted');
      return v;
    });
    await driverStopVm(ctx.store, Number(vm.id));
    await driverStartVm(ctx.store, Number(vm.id));
    return vmResult(ctx.store.db, vm.uuid);
  },
});

async function expungeNow(ctx: CommandContext, vm: VmRow): Promise<void> {
  const rt = await vmRuntime(ctx.store.db, vm);
  // Expunged already (only a job's re-run gets here with such a VM): what is left is the driver's part, with
  // what the rows still say (the NICs went with the expunge).
  if (vm.removed !== null) return driverDestroyVm(ctx.store, rt);
  const nets = await withNet(ctx, async (n) => expungeVmRows(n, await vmForCaller(n, vm.uuid)));
  await convergeNetworks(ctx.store, nets);
  await driverDestroyVm(ctx.store, rt);
}

const destroyVirtualMachine = defineCommand({
  name: 'destroyVirtualMachine',
  roles: allRoles,
  params: refParams('destroyVirtualMachine', ['id', 'expunge']),
  jobInstance: (p) => ({ type: 'VirtualMachine', id: p.id }),
  async handler(p, ctx) {
    // A re-run finds its earlier run's work done (Destroyed, or expunged too) and finishes the rest.
    const rerun = jobAttempt(ctx) > 1;
    const vm = await withNet(ctx, async (n) => {
      const v = await vmForCaller(n, p.id, 'id', { includeRemoved: rerun });
      if (v.state === 'Destroyed' && !p.expunge && !rerun)
        throw invalidParameter('id', p.id, `VM ${v.name} is already destroyed`);
      if (v.state !== 'Destroyed' && v.removed === null) {
        await setVmState(n, v, 'Destroyed', { destroyed: n.now });
        await recordVmEvent(n, v, 'VM.DESTROY', 'destroyed');
      }
      return v;
    });
    if (vm.removed === null) await driverStopVm(ctx.store, Number(vm.id));
    if (p.expunge) {
      await expungeNow(ctx, vm);
      const gone = await vmByUuidUnscoped(ctx.store.db, vm.uuid);
      return objectResult('virtualmachine', await vmResponse(ctx.store.db, gone, { state: 'Expunging' }));
    }
    return vmResult(ctx.store.db, vm.uuid);
  },
});

const expungeVirtualMachine = defineCommand({
  name: 'expungeVirtualMachine',
  roles: allRoles,
  params: refParams('expungeVirtualMachine', ['id']),
  jobInstance: (p) => ({ type: 'VirtualMachine', id: p.id }),
  async handler(p, ctx) {
    const vm = await withNet(ctx, (n) => vmForCaller(n, p.id, 'id', { includeRemoved: jobAttempt(ctx) > 1 }));
    if (vm.state !== 'Destroyed' && vm.state !== 'Error' && vm.removed === null)
      throw invalidParameter('id', p.id, `VM ${vm.name} is ${vm.state}; destroy it before expunging`);
    await expungeNow(ctx, vm);
    return successResult();
  },
});

const recoverVirtualMachine = defineCommand({
  name: 'recoverVirtualMachine',
  roles: allRoles,
  params: refParams('recoverVirtualMachine', ['id']),
  isAsync: false,
  async handler(p, ctx) {
    const vm = await withNet(ctx, async (n) => {
      const v = await vmForCaller(n, p.id);
      if (v.state !== 'Destroyed')
        throw invalidParameter(
          'id',
          p.id,
          `VM ${v.name} is ${v.state}; only a Destroyed VM can be recovered`,
        );
      await setVmState(n, v, 'Stopped', { destroyed: null });
      await recordVmEvent(n, v, 'VM.RECOVER', 'recovered');
      return v;
    });
    return vmResult(ctx.store.db, vm.uuid);
  },
});

const updateVirtualMachine = defineCommand({
  name: 'updateVirtualMachine',
  roles: allRoles,
  params: {
    ...refParams('updateVirtualMachine', ['id', 'displayname', 'name']),
    userdata: { type: 'string', length: 1_048_576 },
  },
  async handler(p, ctx) {
    const vm = await withNet(ctx, async (n) => {
      const v = await vmForCaller(n, p.id);
      const set: Partial<VmRow> = {};
      if (p.displayname !== undefined) set.display_name = checkDnsLabel('displayname', p.displayname);
      if (p.name !== undefined) {
        checkDnsLabel('name', p.name);
        if (v.state !== 'Stopped')
          throw invalidParameter('name', p.name, 'the host name can only change while the VM is stopped');
        set.name = p.name;
      }
      if (p.userdata !== undefined) set.user_data = checkUserData(p.userdata);
      if (Object.keys(set).length) {
        await n.tx.updateTable('vms').set(set).where('id', '=', v.id).execute();
        // User data and names are served by the routers (metadata, DNS).
        await bumpVmRouters(n, Number(v.id));
        await recordVmEvent(n, v, 'VM.UPDATE', 'updated');
      }
      return v;
    });
    await convergeNetworks(ctx.store, await networksOfVm(ctx.store.db, Number(vm.id)));
    return vmResult(ctx.store.db, vm.uuid);
  },
});

const resetPasswordForVirtualMachine = defineCommand({
  name: 'resetPasswordForVirtualMachine',
  roles: allRoles,
  params: refParams('resetPasswordForVirtualMachine', ['id']),
  jobInstance: (p) => ({ type: 'VirtualMachine', id: p.id }),
  async handler(p, ctx) {
    const password = generatePassword();
    const vm = await withNet(ctx, async (n) => {
      const v = await vmForCaller(n, p.id);
      if (v.state !== 'Stopped' && v.state !== 'Running')
        throw invalidParameter('id', p.id, `VM ${v.name} is ${v.state}; its password cannot be reset`);
      await n.tx.updateTable('vms').set({ password }).where('id', '=', v.id).execute();
      await bumpVmRouters(n, Number(v.id));
      await recordVmEvent(n, v, 'VM.RESETPASSWORD', 'password reset');
      return v;
    });
    await convergeNetworks(ctx.store, await networksOfVm(ctx.store.db, Number(vm.id)));
    return vmResult(ctx.store.db, vm.uuid, { password });
  },
});

export const commands: AnyCommand[] = [
  deployVirtualMachine,
  startVirtualMachine,
  stopVirtualMachine,
  rebootVirtualMachine,
  destroyVirtualMachine,
  expungeVirtualMachine,
  recoverVirtualMachine,
  updateVirtualMachine,
  resetPasswordForVirtualMachine,
  ...nicCommands,
];
