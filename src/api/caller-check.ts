/**
 * A signed request's caller from this server's memory, confirmed by a statement the request sends anyway.
 *
 * On PostgreSQL and MariaDB every statement is a round trip, and the caller's read at the start of each request
 * was one of ~12 per associateIpAddress job (and one of the two of every queryAsyncJobResult). A command that
 * declares `foldsCallerCheck` is started with the caller as this server last read it for the API key (the
 * signature checked with the secret read then), and its first statement also reads the caller's fingerprint
 * (accounts/repository.ts callerFingerprint) as it is in the database now. Equal: the caller is what it was and
 * the request goes on. Different or gone (a locked, disabled or deleted user or account, a regenerated or
 * removed key, a renamed or moved account): StaleCaller, the request's transaction rolls back and the request is
 * run again from the start with the caller read afresh, as every request was before — so a change is refused
 * at the next request, on every server, exactly as when each request read its caller first.
 *
 * Nothing a request does is committed or answered before its check is confirmed: api-server.ts confirms it with a
 * read of its own (the old round trip) before the COMMIT of the request's transaction, before the answer, and
 * before any error is answered, when no statement carried it.
 */
import { callerByApiKeyChecked, callerFingerprint } from '../accounts/repository.js';
import type { CallerRecord } from '../accounts/repository.js';
import type { Executor, Store } from '../store/db.js';
import { preparedQuery } from '../store/prepared.js';
import type { SelectQueryBuilder } from 'kysely';

/** The caller changed since this server read it: the request is run again with the caller read afresh. */
export class StaleCaller extends Error {
  constructor() {
    super('the caller changed since it was read; the request is run again');
  }
}

export class CallerCheck {
  private done = false;
  constructor(
    /** The request's API key: the parameter of the fingerprint a statement reads. */
    readonly apiKey: string,
    private readonly fingerprint: string,
    private readonly forget: () => void,
  ) {}

  get confirmed(): boolean {
    return this.done;
  }

  /** The fingerprint a statement of the request read (callerChecked's `caller_fp`): the caller's, or StaleCaller. */
  confirm(read: string | null | undefined): void {
    if (read !== this.fingerprint) {
      this.forget();
      throw new StaleCaller();
    }
    this.done = true;
  }

  /** Confirms with a read of its own when no statement of the request carried the check. */
  async ensure(ex: Executor): Promise<void> {
    if (this.done) return;
    this.confirm((await fingerprintOf.first(ex, this.apiKey))?.caller_fp);
  }
}

const fingerprintOf = preparedQuery((ex: Executor, apiKey: string) =>
  ex.selectNoFrom(callerFingerprint(apiKey).as('caller_fp')),
);

/** `q` with the caller's fingerprint for `apiKey` as its `caller_fp` column. */
export function callerChecked<DB, TB extends keyof DB, O>(q: SelectQueryBuilder<DB, TB, O>, apiKey: string) {
  return q.select(callerFingerprint(apiKey).as('caller_fp'));
}

interface Remembered {
  record: CallerRecord;
  fingerprint: string;
}

/** Most API keys remembered per store; past it the memory starts over (each key is then read once again). */
const REMEMBERED_MAX = 10_000;
const byStore = new WeakMap<Store, Map<string, Remembered>>();

function memoryOf(store: Store): Map<string, Remembered> {
  let m = byStore.get(store);
  if (!m) byStore.set(store, (m = new Map()));
  return m;
}

/** Whether a request on `store` may be started from a remembered caller: only where a statement is a round trip. */
export const checksCallers = (store: Store): boolean => store.kind !== 'sqlite';

/** The caller remembered for `apiKey` on `store`, with the check its request must confirm. */
export function rememberedCaller(
  store: Store,
  apiKey: string,
): { record: CallerRecord; check: CallerCheck } | undefined {
  const memory = memoryOf(store);
  const hit = memory.get(apiKey);
  if (!hit) return undefined;
  const forget = () => {
    if (memory.get(apiKey) === hit) memory.delete(apiKey);
  };
  return { record: hit.record, check: new CallerCheck(apiKey, hit.fingerprint, forget) };
}

/** Reads the caller of `apiKey` afresh (one statement, with its fingerprint) and remembers an enabled one. */
export async function readCallerChecked(store: Store, apiKey: string): Promise<CallerRecord | undefined> {
  const r = await callerByApiKeyChecked(store.db, apiKey);
  if (!r) return undefined;
  const memory = memoryOf(store);
  if (r.record.enabled && r.record.secretKey && r.fingerprint !== null) {
    if (memory.size >= REMEMBERED_MAX) memory.clear();
    memory.set(apiKey, { record: r.record, fingerprint: r.fingerprint });
  } else memory.delete(apiKey);
  return r.record;
}
