/**
 * The driver and the router reconciler of a running server, found from the store a command runs on. The
 * composition root attaches them (vms/subsystem.ts); commands and workers look them up, so handlers stay plain
 * CommandDefinitions.
 */
import type { Store } from '../store/db.js';
import type { Driver } from '../drivers/types.js';
import type { RouterReconciler } from '../routers/reconciler.js';

export interface VmRuntimeServices {
  driver: Driver;
  reconciler: RouterReconciler;
}

const byStore = new WeakMap<Store, VmRuntimeServices>();

export function attachVmRuntime(store: Store, s: VmRuntimeServices): void {
  byStore.set(store, s);
}

export function vmRuntimeFor(store: Store): VmRuntimeServices {
  const s = byStore.get(store);
  if (!s) throw new Error('the VM subsystem is not started on this store (buildServer attaches it)');
  return s;
}
