/**
 * What happens after a VM transaction commits: the routers of the touched networks converge (the reconciler,
 * awaited, so a VM boots only once its router knows it — as CloudStack prepares the DHCP entry before the VM
 * starts), then the driver acts on the VM. Built from committed rows only.
 */
import type { Store } from '../store/db.js';
import type { Executor } from '../store/db.js';
import type { VmRuntime } from '../drivers/types.js';
import { guestNetworkRuntime } from '../routers/runtime.js';
import { vmRuntimeFor } from './runtime-services.js';
import type { VmRow } from './service.js';

export async function vmRuntime(ex: Executor, vm: VmRow): Promise<VmRuntime> {
  return (await vmRuntimes(ex, [vm]))[0]!;
}

/**
 * vmRuntime for a page of VMs in three queries (their NICs, the NICs' secondary addresses, their networks), not
 * three per VM: the start-up resync walks every running VM of a zone this way.
 */
export async function vmRuntimes(ex: Executor, vms: readonly VmRow[]): Promise<VmRuntime[]> {
  if (vms.length === 0) return [];
  const nics = await ex
    .selectFrom('nics')
    .selectAll()
    .where(
      'vm_id',
      'in',
      vms.map((v) => v.id),
    )
    .orderBy('vm_id')
    .orderBy('device_id')
    .execute();
  const secondary = new Map<number, string[]>();
  if (nics.length) {
    const rows = await ex
      .selectFrom('nic_secondary_ips')
      .select(['nic_id', 'ipv4'])
      .where(
        'nic_id',
        'in',
        nics.map((n) => n.id),
      )
      .orderBy('id')
      .execute();
    for (const r of rows)
      secondary.set(Number(r.nic_id), [...(secondary.get(Number(r.nic_id)) ?? []), r.ipv4]);
  }
  const networks = new Map<number, Awaited<ReturnType<typeof guestNetworkRuntime>>>();
  for (const id of new Set(nics.map((n) => Number(n.network_id))))
    networks.set(id, await guestNetworkRuntime(ex, id));
  const byVm = new Map<number, VmRuntime>();
  const out = vms.map((vm) => {
    const r: VmRuntime = {
      id: Number(vm.id),
      uuid: vm.uuid,
      accountId: Number(vm.account_id),
      instanceName: vm.instance_name,
      hostname: vm.name,
      nics: [],
    };
    byVm.set(r.id, r);
    return r;
  });
  for (const n of nics)
    byVm.get(Number(n.vm_id))!.nics.push({
      id: Number(n.id),
      mac: n.mac,
      ipv4s: [...(n.ipv4 ? [n.ipv4] : []), ...(secondary.get(Number(n.id)) ?? [])],
      ipv6: n.ipv6,
      isDefault: Number(n.is_default) === 1,
      deviceId: Number(n.device_id),
      // One object per network for the page's VMs (drivers read it, none writes it).
      network: networks.get(Number(n.network_id))!,
    });
  return out;
}

/**
 * Waits until every live router of these networks has applied at least the generation it had when this was
 * called (our change is in it). Another server may own a router: then we only wait for its report.
 */
export async function convergeNetworks(
  store: Store,
  networkIds: readonly number[],
  timeoutMs = 60_000,
): Promise<void> {
  if (networkIds.length === 0) return;
  await convergeRouters(store, await routersToConverge(store.db, networkIds), timeoutMs);
}

/** A live router of a network and the generation that holds a change to it. */
export interface RouterGeneration {
  id: number;
  desired_generation: number;
}

/**
 * The live routers of these networks and their desired generation as `ex` sees it: read in the transaction that
 * changed them, it is exactly the generation holding that change (and nothing needs reading after the commit).
 */
export async function routersToConverge(
  ex: Executor,
  networkIds: readonly number[],
): Promise<RouterGeneration[]> {
  if (networkIds.length === 0) return [];
  return ex
    .selectFrom('routers')
    .select(['id', 'desired_generation'])
    .where('network_id', 'in', [...networkIds])
    .where('removed', 'is', null)
    .where('state', 'in', ['Starting', 'Running'])
    .execute();
}

/** convergeNetworks for routers and generations already read (routersToConverge). */
export async function convergeRouters(
  store: Store,
  routers: readonly RouterGeneration[],
  timeoutMs = 60_000,
): Promise<void> {
  const { reconciler } = vmRuntimeFor(store);
  const deadline = Date.now() + timeoutMs;
  await Promise.all(
    routers.map(async (r) => {
      const want = Number(r.desired_generation);
      for (;;) {
        // Until a pass applied our generation, not until the router's passes stop (a burst keeps it dirty).
        // Applied by a pass of this server: recorded already, nothing to read back.
        if (await reconciler.reconcileTo(Number(r.id), want)) return;
        const now = await store.db
          .selectFrom('routers')
          .select(['applied_generation', 'state', 'removed'])
          .where('id', '=', r.id)
          .executeTakeFirst();
        if (!now || now.removed !== null || (now.state !== 'Running' && now.state !== 'Starting')) return;
        if (now.applied_generation !== null && Number(now.applied_generation) >= want) return;
        if (Date.now() > deadline) return; // the VM boots anyway; its DHCP client keeps asking
        await new Promise((res) => setTimeout(res, 100));
      }
    }),
  );
}

/**
 * Starts the VM on its driver; `vm` is its id, or its row when the caller has just committed it (not read again),
 * or its runtime as the caller's transaction read it.
 * `ready`: the guest must not run before it resolves (its routers converging); the driver prepares the rest
 * meanwhile where it can (startVmAfter), else it is started once `ready` has resolved. Rejects with `ready`'s
 * error when that rejects.
 */
export async function driverStartVm(
  store: Store,
  vm: number | VmRow | VmRuntime,
  ready?: Promise<unknown>,
): Promise<void> {
  // Whatever happens below, `ready` is awaited (its error is the one to report) and never left unhandled.
  ready?.catch(() => undefined);
  try {
    const rt =
      typeof vm === 'number'
        ? await vmRuntime(
            store.db,
            await store.db.selectFrom('vms').selectAll().where('id', '=', vm).executeTakeFirstOrThrow(),
          )
        : 'nics' in vm
          ? vm
          : await vmRuntime(store.db, vm);
    const { driver } = vmRuntimeFor(store);
    if (!ready) await driver.startVm(rt);
    else if (driver.startVmAfter) await driver.startVmAfter(rt, ready);
    else {
      await ready;
      await driver.startVm(rt);
    }
  } catch (e) {
    await ready;
    throw e;
  }
  await ready;
}

export async function driverStopVm(store: Store, vmId: number): Promise<void> {
  const vm = await store.db.selectFrom('vms').selectAll().where('id', '=', vmId).executeTakeFirstOrThrow();
  await vmRuntimeFor(store).driver.stopVm(await vmRuntime(store.db, vm));
}

export async function driverUpdateVm(store: Store, vmId: number): Promise<void> {
  const vm = await store.db.selectFrom('vms').selectAll().where('id', '=', vmId).executeTakeFirstOrThrow();
  await vmRuntimeFor(store).driver.updateVm(await vmRuntime(store.db, vm));
}

export async function driverDestroyVm(store: Store, vm: VmRuntime): Promise<void> {
  await vmRuntimeFor(store).driver.destroyVm(vm);
}
