/**
 * The driver and the router reconciler of a running server, found from the store a command runs on. The
 * composition root attaches them (vms/subsystem.ts); commands and workers look them up, so handlers stay plain
 * CommandDefinitions. A server may hand its jobs a second store on the same database (its own pool), so the
 * lookup falls back to the database URL.
 */
import type { Store } from '../store/db.js';
import type { Driver } from '../drivers/types.js';
import type { RouterReconciler } from '../routers/reconciler.js';

export interface VmRuntimeServices {
  driver: Driver;
  reconciler: RouterReconciler;
}

const byStore = new WeakMap<Store, VmRuntimeServices>();
const byUrl = new Map<string, VmRuntimeServices>();

export function attachVmRuntime(store: Store, s: VmRuntimeServices): void {
  byStore.set(store, s);
  byUrl.set(store.url, s);
}

export function detachVmRuntime(store: Store, s: VmRuntimeServices): void {
  if (byStore.get(store) === s) byStore.delete(store);
  if (byUrl.get(store.url) === s) byUrl.delete(store.url);
}

export function vmRuntimeFor(store: Store): VmRuntimeServices {
  const s = byStore.get(store) ?? byUrl.get(store.url);
  if (!s) throw new Error('the VM subsystem is not started on this store (buildServer attaches it)');
  return s;
}
