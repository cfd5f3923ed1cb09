export interface EventuallyOptions {
  /** Give up after this long (default 5 s). */
  timeoutMs?: number;
  /** Pause between attempts (default 50 ms). */
  intervalMs?: number;
  /** Prefixed to the last error when giving up. */
  what?: string;
}

/**
 * Retries `fn` until it returns without throwing, and returns its value; after `timeoutMs` rethrows its last
 * error. Tests wait for convergence with this, never with a fixed sleep.
 */
export async function eventually<T>(fn: () => T | Promise<T>, opts: EventuallyOptions = {}): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 5000);
  const interval = opts.intervalMs ?? 50;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() >= deadline) {
        const msg = e instanceof Error ? e.message : String(e);
        const err = new Error(
          `${opts.what ? `${opts.what}: ` : ''}not reached within ${opts.timeoutMs ?? 5000} ms: ${msg}`,
        );
        (err as Error & { cause?: unknown }).cause = e;
        throw err;
      }
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}
