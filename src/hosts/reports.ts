/**
 * In-process news of a host's report (a heartbeat or the status an agent pushes when a VM changes state): the
 * hosts driver's jobs waiting for a VM wake on it instead of polling the agent. Reports that reach another
 * management server are not seen here; the waiters still look at the agent themselves now and then.
 */
import { EventEmitter } from 'node:events';

const reports = new EventEmitter();
reports.setMaxListeners(0);

export function hostReported(hostId: number): void {
  reports.emit(`h${hostId}`);
}

/** Resolves on the host's next report here (true) or after `ms` (false). */
export function nextReport(hostId: number, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const ev = `h${hostId}`;
    // Unref'd: a waiter left behind (its job returned before the report) never holds a stopping server up.
    const t = setTimeout(() => done(false), ms).unref();
    function done(v: boolean) {
      clearTimeout(t);
      reports.off(ev, onReport);
      resolve(v);
    }
    function onReport() {
      done(true);
    }
    reports.on(ev, onReport);
  });
}
