/**
 * Starts the VM/router subsystem for a server: the driver, the router reconciler, the GC workers, and the
 * network hooks that create routers. buildServer calls `startVmSubsystem` and closes it on shutdown; the data
 * plane (routers, VM namespaces) is left running on close.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Store } from '../store/db.js';
import type { Driver } from '../drivers/types.js';
import { SimulatorDriver } from '../drivers/simulator.js';
import { RouterReconciler } from '../routers/reconciler.js';
import { installRouterHooks } from '../routers/service.js';
import { GcWorkers } from '../gc/workers.js';
import { getSetting, setValue } from '../configuration/repository.js';
import { findSetting } from '../configuration/settings-catalogue.js';
import { attachVmRuntime, detachVmRuntime } from './runtime-services.js';
import { vmRuntimes } from './operations.js';
import { traceVms } from './trace.js';

export interface VmSubsystemConfig {
  driver: 'simulator' | 'netns' | 'hosts';
  dataDir: string;
  /** netns: prefix of every name the driver creates in the host namespace (unique per test run). */
  netnsPrefix?: string;
  /** Overrides the control.cidr setting at start (the control network routers are reached on). */
  controlCidr?: string;
  log?: (m: string) => void;
}

export interface VmSubsystem {
  driver: Driver;
  reconciler: RouterReconciler;
  gc: GcWorkers;
  close(): Promise<void>;
}

export async function startVmSubsystem(store: Store, c: VmSubsystemConfig): Promise<VmSubsystem> {
  if (c.controlCidr) await setValue(store.db, findSetting('control.cidr')!, 'global', 0, c.controlCidr);
  const controlCidr = String(await getSetting(store.db, 'control.cidr'));
  let driver: Driver;
  if (c.driver === 'netns') {
    const { NetnsDriver } = await import('../drivers/netns.js');
    driver = new NetnsDriver({
      dataDir: join(c.dataDir, 'netns'),
      prefix: c.netnsPrefix ?? '',
      controlCidr,
      log: c.log,
      trace: traceVms,
    });
  } else if (c.driver === 'hosts') {
    const { HostsDriver } = await import('../drivers/hosts.js');
    driver = new HostsDriver({ store, controlCidr, log: c.log });
  } else {
    driver = new SimulatorDriver({ dataDir: c.dataDir, controlCidr });
  }
  installRouterHooks();
  const reconciler = new RouterReconciler({ store, driver, log: c.log, trace: traceVms });
  const gc = new GcWorkers({ store, log: c.log });
  const services = { driver, reconciler };
  attachVmRuntime(store, services);
  reconciler.start();
  gc.start();
  // Level-based for VMs too: whatever the database says runs is (re)made to run, e.g. after the host rebooted
  // and took the namespaces with it. Idempotent for VMs that are fine; not awaited (start-up is not held up).
  // A database that drops the connection at start-up is retried, never an unhandled rejection that ends the
  // server (DESIGN: a lost connection is an error to recover from).
  const closing = new AbortController();
  const resync = (async () => {
    for (let delay = 1000; !closing.signal.aborted; delay = Math.min(delay * 2, 30_000)) {
      try {
        return await resyncRunningVms(store, driver, c.log);
      } catch (e) {
        c.log?.(`resuming running VMs failed (${(e as Error).message}); trying again in ${delay / 1000} s`);
        await sleep(delay, undefined, { signal: closing.signal }).catch(() => undefined);
      }
    }
  })();
  return {
    driver,
    reconciler,
    gc,
    async close() {
      closing.abort();
      detachVmRuntime(store, services);
      await resync;
      await gc.stop();
      await reconciler.stop();
      await driver.close();
    },
  };
}

async function resyncRunningVms(store: Store, driver: Driver, log?: (m: string) => void): Promise<void> {
  // A page of VMs at a time (keyset on id), yielding to the event loop between pages: a zone with 500,000
  // running VMs is never held in memory at once, and the API answers meanwhile (better-sqlite3 answers
  // synchronously, so one unbroken chain of queries would keep the server from serving /healthz for minutes).
  for (let after = 0; ;) {
    const rows = await store.db
      .selectFrom('vms')
      .selectAll()
      .where('state', '=', 'Running')
      .where('removed', 'is', null)
      .where('id', '>', after)
      .orderBy('id')
      .limit(RESYNC_PAGE)
      .execute();
    for (const rt of await vmRuntimes(store.db, rows)) {
      try {
        await driver.startVm(rt);
      } catch (e) {
        log?.(`VM ${rt.instanceName}: could not be resumed: ${(e as Error).message}`);
      }
    }
    if (rows.length < RESYNC_PAGE) return;
    after = Number(rows[rows.length - 1]!.id);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const RESYNC_PAGE = 500;
