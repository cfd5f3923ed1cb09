/**
 * The caller checks' own reads (caller-check.ts `ensure`), several requests' in one statement.
 *
 * On PostgreSQL and MariaDB a request whose caller came from this server's memory and that no statement of its
 * own confirmed (queryAsyncJobResult answered from finished.ts, an error, a refused command) reads the caller's
 * fingerprint before it answers: one round trip per request, and at 64 clients one statement per poll. Here
 * those reads wait for each other: the first starts a statement at the end of the event loop's turn (so the
 * others that reach their check in the same turn go with it), and while it is in flight the next ones queue;
 * when it returns, everything queued is read by the next statement (`api_key = any($1)` / `in (...)`, each key
 * once). A check is thus always answered by a read that started after it asked — a user locked, disabled or
 * deleted, or a key regenerated, before a request reached its check is seen by that check, on every server,
 * exactly as with a read per request. What changes while a statement is in flight is seen by the checks queued
 * behind it, as a read of their own sent then would have seen it; the checks in the statement see the caller as
 * it was when the statement ran, as before.
 */
import { callerFingerprints } from '../accounts/repository.js';
import type { Store } from '../store/db.js';

/** The fingerprints of some API keys, by key (a key nobody has is absent): one statement. */
export type FingerprintRead = (apiKeys: readonly string[]) => Promise<Map<string, string>>;

interface Waiter {
  apiKey: string;
  resolve(fingerprint: string | null): void;
  reject(e: unknown): void;
}

/** Most distinct keys one statement reads; the checks for more wait for the next. */
export const BATCH_KEYS_MAX = 500;

export class FingerprintBatch {
  private queued: Waiter[] = [];
  /** A statement is in flight, or one is about to be sent. */
  private busy = false;

  constructor(private readonly read: FingerprintRead) {}

  /** The fingerprint of `apiKey` (null when no user has it) as read by a statement sent after this call. */
  fingerprint(apiKey: string): Promise<string | null> {
    return new Promise((resolve, reject) => {
      this.queued.push({ apiKey, resolve, reject });
      if (!this.busy) {
        this.busy = true;
        setImmediate(() => this.send());
      }
    });
  }

  private send(): void {
    if (this.queued.length === 0) {
      this.busy = false;
      return;
    }
    const keys = new Set<string>();
    let n = 0;
    for (; n < this.queued.length; n++) {
      const key = this.queued[n]!.apiKey;
      if (!keys.has(key) && keys.size === BATCH_KEYS_MAX) break;
      keys.add(key);
    }
    const batch = this.queued.slice(0, n);
    this.queued = this.queued.slice(n);
    let read: Promise<Map<string, string>>;
    try {
      read = this.read([...keys]);
    } catch (e) {
      read = Promise.reject(e);
    }
    read
      .then(
        (fps) => {
          for (const w of batch) w.resolve(fps.get(w.apiKey) ?? null);
        },
        (e: unknown) => {
          for (const w of batch) w.reject(e);
        },
      )
      // The checks that queued meanwhile, with those reaching theirs in the turn that answers these.
      .finally(() => setImmediate(() => this.send()));
  }
}

const perStore = new WeakMap<Store, FingerprintBatch>();

/** The store's batch of caller fingerprint reads (one per store, shared by its requests). */
export function fingerprintBatch(store: Store): FingerprintBatch {
  let b = perStore.get(store);
  if (!b) {
    const arrays = store.kind === 'postgres';
    perStore.set(store, (b = new FingerprintBatch((keys) => callerFingerprints(store.db, keys, arrays))));
  }
  return b;
}
