/**
 * Background workers of the VM subsystem, each claimed cluster-wide with a DB lease (one server runs each at a
 * time, as CloudStack's Network.GC.Lock):
 * - network GC (reference §3.1): every `network.gc.interval` s, isolated networks with no Running/Starting VM
 *   are remembered; those still idle `network.gc.wait` s later are shut down (routers stopped, VLAN returned);
 * - expunge scavenger: every `expunge.interval` s, VMs destroyed (or failed) more than `expunge.delay` s ago
 *   are expunged, their router entries removed;
 * - orphan scan: guest/control addresses whose owner row no longer exists (a crash between steps, a row
 *   removed by hand) are freed, with a NET.IPRELEASE event each;
 * - stuck starts, before each GC pass: a VM is Starting only while a job drives it; one left Starting by a job
 *   that is over (failed, abandoned after its servers died, or whose failure path could not commit) would hold
 *   its addresses and MACs and keep its network from GC forever, so it is settled: a deploy that never got the
 *   VM running leaves it in Error (the scavenger expunges it), an interrupted start leaves it Stopped.
 */
import { randomUUID } from 'node:crypto';
import { addressFromKey, formatIp } from '../ipam/index.js';
import { reclaimStaleAllocating } from '../public-ips/reclaim.js';
import type { Caller } from '../api/command.js';
import { callerByUserId } from '../accounts/repository.js';
import { getSetting } from '../configuration/repository.js';
import { recordEvent } from '../events/record.js';
import { makeNetCtx } from '../infrastructure/net-context.js';
import { shutdownNetwork } from '../networks/lifecycle.js';
import type { ExpressionBuilder } from 'kysely';
import type { Store } from '../store/db.js';
import type { Database } from '../store/schema.js';
import { transaction } from '../store/db.js';
import { expungeVmRows, recordVmEvent, vmForCaller } from '../vms/service.js';
import { convergeNetworks, driverDestroyVm, driverStopVm, vmRuntime } from '../vms/operations.js';
import { JOB_PENDING } from '../api/jobs/repository.js';

/** No pending async job acts on the VM (deploy, start, stop, ... all name it as their instance). */
const noPendingJobOnVm = (eb: ExpressionBuilder<Database, 'vms'>) =>
  eb.not(
    eb.exists(
      eb
        .selectFrom('async_jobs')
        .select('async_jobs.id')
        .where('async_jobs.instance_type', '=', 'VirtualMachine')
        .whereRef('async_jobs.instance_id', '=', 'vms.uuid')
        .where('async_jobs.status', '=', JOB_PENDING),
    ),
  );

export interface GcOptions {
  store: Store;
  serverId?: string;
  /** Tick of the loop; each worker runs when its own interval has passed (default 1 s). */
  tickMs?: number;
  log?: (m: string) => void;
}

async function systemCaller(store: Store): Promise<Caller> {
  const u = await store.db
    .selectFrom('users')
    .innerJoin('accounts', 'accounts.id', 'users.account_id')
    .select('users.id')
    .where('accounts.type', '=', 1)
    .orderBy('users.id')
    .executeTakeFirstOrThrow();
  return (await callerByUserId(store.db, Number(u.id)))!.caller;
}

/** Cluster-wide lease in stacknet_meta (`<name>` = `<owner> <until>`), taken or renewed atomically. */
async function claim(store: Store, name: string, owner: string, ttlMs: number): Promise<boolean> {
  const now = Date.now();
  return transaction(store, async (tx) => {
    const row = await tx
      .selectFrom('stacknet_meta')
      .select('value')
      .where('name', '=', name)
      .executeTakeFirst();
    if (!row) {
      await tx
        .insertInto('stacknet_meta')
        .values({ name, value: `${owner} ${now + ttlMs}` })
        .execute();
      return true;
    }
    const [who, until] = row.value.split(' ');
    if (who !== owner && Number(until) > now) return false;
    await tx
      .updateTable('stacknet_meta')
      .set({ value: `${owner} ${now + ttlMs}` })
      .where('name', '=', name)
      .execute();
    return true;
  }).catch(() => false);
}

export class GcWorkers {
  readonly serverId: string;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private last = { gc: 0, expunge: 0, orphans: 0 };
  /** Network id → when it was first seen idle (the two-phase wait). */
  readonly idleSince = new Map<number, number>();
  readonly counters = { networksShutdown: 0, vmsExpunged: 0, orphansFreed: 0, startsSettled: 0 };

  constructor(private readonly o: GcOptions) {
    this.serverId = o.serverId ?? `ms-${randomUUID()}`;
  }

  start(): void {
    this.timer = setInterval(() => {
      if (!this.running) this.running = this.tick().finally(() => (this.running = null));
    }, this.o.tickMs ?? 1000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running?.catch(() => undefined);
  }

  private async tick(): Promise<void> {
    const db = this.o.store.db;
    const now = Date.now();
    try {
      const gcInterval = Number(await getSetting(db, 'network.gc.interval')) * 1000;
      if (now - this.last.gc >= gcInterval) {
        this.last.gc = now;
        if (await claim(this.o.store, 'lease.network.gc', this.serverId, gcInterval * 2)) {
          await this.settleStuckStarting();
          await this.networkGc();
        }
      }
      const exInterval = Number(await getSetting(db, 'expunge.interval')) * 1000;
      if (now - this.last.expunge >= exInterval) {
        this.last.expunge = now;
        if (await claim(this.o.store, 'lease.expunge', this.serverId, exInterval * 2))
          await this.expungeDue();
      }
      if (now - this.last.orphans >= exInterval) {
        this.last.orphans = now;
        await this.orphanScan();
        // Public IPs taken at request time whose server died before queuing the confirming job.
        this.counters.orphansFreed += await reclaimStaleAllocating(this.o.store);
      }
    } catch (e) {
      this.o.log?.(`gc: ${(e as Error).message}`);
    }
  }

  /** One GC pass (exported for tests and the CLI). */
  async networkGc(): Promise<number[]> {
    const db = this.o.store.db;
    const wait = Number(await getSetting(db, 'network.gc.wait')) * 1000;
    const idle = await db
      .selectFrom('networks')
      .leftJoin('network_offerings', 'network_offerings.id', 'networks.offering_id')
      .select(['networks.id'])
      .where('networks.state', '=', 'Implemented')
      .where('networks.type', '=', 'Isolated')
      .where('networks.removed', 'is', null)
      .where((eb) =>
        eb.or([
          eb('network_offerings.is_persistent', 'is', null),
          eb('network_offerings.is_persistent', '=', 0),
        ]),
      )
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom('nics')
              .innerJoin('vms', 'vms.id', 'nics.vm_id')
              .select('nics.id')
              .whereRef('nics.network_id', '=', 'networks.id')
              .where('vms.state', 'in', ['Starting', 'Running'])
              .where('vms.removed', 'is', null),
          ),
        ),
      )
      .execute();
    const ids = new Set(idle.map((r) => Number(r.id)));
    for (const id of [...this.idleSince.keys()]) if (!ids.has(id)) this.idleSince.delete(id);
    const now = Date.now();
    const shut: number[] = [];
    const caller = await systemCaller(this.o.store);
    for (const id of ids) {
      const since = this.idleSince.get(id);
      if (since === undefined) {
        this.idleSince.set(id, now);
        continue;
      }
      if (now - since < wait) continue;
      await transaction(this.o.store, (tx) => shutdownNetwork(makeNetCtx(tx, caller, Date.now()), id));
      this.idleSince.delete(id);
      shut.push(id);
      this.counters.networksShutdown++;
      this.o.log?.(`network GC: network ${id} shut down after ${Math.round((now - since) / 1000)} s idle`);
    }
    return shut;
  }

  /** Settles VMs left Starting by jobs that are over (see the header); returns how many. */
  async settleStuckStarting(): Promise<number> {
    const db = this.o.store.db;
    const stuck = await db
      .selectFrom('vms')
      .selectAll()
      .where('state', '=', 'Starting')
      .where('removed', 'is', null)
      .where(noPendingJobOnVm)
      .execute();
    let settled = 0;
    for (const vm of stuck) {
      const last = await db
        .selectFrom('async_jobs')
        .select('command')
        .where('instance_type', '=', 'VirtualMachine')
        .where('instance_id', '=', vm.uuid)
        .orderBy('id', 'desc')
        .limit(1)
        .executeTakeFirst();
      // A VM that was running before (its start was interrupted) keeps what a stopped VM keeps; one whose
      // deploy never finished is a failed deploy, as if the deploy's own failure path had run.
      const to = last && last.command !== 'deployVirtualMachine' ? 'Stopped' : 'Error';
      const caller = await systemCaller(this.o.store);
      const done = await transaction(this.o.store, async (tx) => {
        // Re-checked in the update: a job may have picked the VM up since the scan.
        const r = await tx
          .updateTable('vms')
          .set({ state: to })
          .where('id', '=', vm.id)
          .where('state', '=', 'Starting')
          .where(noPendingJobOnVm)
          .executeTakeFirst();
        if (Number(r.numUpdatedRows) !== 1) return false;
        if (to === 'Stopped')
          await recordVmEvent(makeNetCtx(tx, caller, Date.now()), vm, 'VM.STOP', 'stopped');
        return true;
      });
      if (!done) continue;
      settled++;
      this.counters.startsSettled++;
      this.o.log?.(`gc: VM ${vm.instance_name} was left Starting by a job that is over; now ${to}`);
      if (to === 'Stopped') await driverStopVm(this.o.store, Number(vm.id)).catch(() => undefined);
    }
    return settled;
  }

  async expungeDue(): Promise<number> {
    const db = this.o.store.db;
    const delayMs = Number(await getSetting(db, 'expunge.delay')) * 1000;
    const cutoff = Date.now() - delayMs;
    const due = await db
      .selectFrom('vms')
      .selectAll()
      .where('removed', 'is', null)
      .where((eb) =>
        eb.or([
          eb.and([eb('state', '=', 'Destroyed'), eb('destroyed', '<=', cutoff)]),
          eb.and([eb('state', '=', 'Error'), eb('created', '<=', cutoff)]),
        ]),
      )
      .execute();
    const caller = await systemCaller(this.o.store);
    for (const vm of due) {
      const rt = await vmRuntime(db, vm);
      const nets = await transaction(this.o.store, async (tx) => {
        const n = makeNetCtx(tx, caller, Date.now());
        return expungeVmRows(n, await vmForCaller(n, vm.uuid));
      });
      await convergeNetworks(this.o.store, nets, 10_000).catch(() => undefined);
      await driverDestroyVm(this.o.store, rt).catch(() => undefined);
      this.counters.vmsExpunged++;
    }
    return due.length;
  }

  /** Frees guest and control addresses held by nothing. */
  async orphanScan(): Promise<number> {
    const db = this.o.store.db;
    const orphans = await db
      .selectFrom('ip_allocations as a')
      .select(['a.id', 'a.owner_kind', 'a.owner_id', 'a.address', 'a.family', 'a.scope', 'a.account_id'])
      .where((eb) =>
        eb.or([
          eb.and([
            eb('a.owner_kind', '=', 'nic'),
            eb.not(eb.exists(eb.selectFrom('nics').select('nics.id').whereRef('nics.id', '=', 'a.owner_id'))),
          ]),
          eb.and([
            eb('a.owner_kind', '=', 'nicsecondary'),
            eb.not(
              eb.exists(
                eb.selectFrom('nic_secondary_ips as s').select('s.id').whereRef('s.id', '=', 'a.owner_id'),
              ),
            ),
          ]),
          eb.and([
            eb('a.owner_kind', '=', 'router'),
            eb.not(
              eb.exists(
                eb
                  .selectFrom('routers as r')
                  .select('r.id')
                  .whereRef('r.id', '=', 'a.owner_id')
                  .where('r.removed', 'is', null),
              ),
            ),
          ]),
        ]),
      )
      .where('a.owner_id', 'is not', null)
      .execute();
    let freed = 0;
    for (const o of orphans) {
      await transaction(this.o.store, async (tx) => {
        const r = await tx.deleteFrom('ip_allocations').where('id', '=', o.id).executeTakeFirst();
        if (Number(r.numDeletedRows) === 0) return;
        freed++;
        const acct = await tx
          .selectFrom('accounts')
          .innerJoin('domains', 'domains.id', 'accounts.domain_id')
          .select(['accounts.id', 'accounts.name', 'accounts.domain_id', 'domains.path'])
          .where('accounts.id', '=', o.account_id ?? 1)
          .executeTakeFirst();
        if (!acct) return;
        const ip = formatIp(addressFromKey(o.family === 6 ? 6 : 4, o.address));
        await recordEvent(tx, {
          type: 'NET.IPRELEASE',
          description: `Orphaned address ${ip} in ${o.scope} (held by missing ${o.owner_kind} ${o.owner_id}) freed`,
          owner: {
            accountId: Number(acct.id),
            accountName: acct.name,
            domainId: Number(acct.domain_id),
            domainPath: acct.path,
          },
          resourceType: 'IpAddress',
        });
      });
    }
    this.counters.orphansFreed += freed;
    return freed;
  }
}
