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
 * before any error is answered, when no statement carried it. Outside a transaction that read is shared with the
 * other requests' checks that wait at the same time (fingerprint-batch.ts): one statement for many.
 */
import type { Database as SqliteConnection, Statement } from 'better-sqlite3';
import { callerByApiKey, callerByApiKeyChecked, callerFingerprint } from '../accounts/repository.js';
import type { CallerRecord } from '../accounts/repository.js';
import type { Store, Tx } from '../store/db.js';
import { preparedQuery } from '../store/prepared.js';
import { requestArrivals } from './reply.js';
import type { SelectQueryBuilder } from 'kysely';
import { fingerprintBatch } from './fingerprint-batch.js';

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
    private readonly store: Store,
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

  /**
   * Confirms with a read of its own when no statement of the request carried the check: in `tx` before it
   * commits, else in a statement shared with the checks that wait meanwhile (fingerprint-batch.ts).
   */
  async ensure(tx?: Tx): Promise<void> {
    if (this.done) return;
    this.confirm(
      tx
        ? (await fingerprintOf.first(tx, this.apiKey))?.caller_fp
        : await fingerprintBatch(this.store).fingerprint(this.apiKey),
    );
  }
}

const fingerprintOf = preparedQuery((ex: Tx, apiKey: string) =>
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
  return { record: hit.record, check: new CallerCheck(apiKey, store, hit.fingerprint, forget) };
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

/**
 * SQLite: the callers this server read, kept while nothing could have changed them, so that a request reads no
 * caller at all (it was one of the 16.5 statements of an associateIpAddress job, and one of the two of every
 * queryAsyncJobResult). SQLite is in this process: rather than a check each request confirms, the memory is
 * dropped whenever users, accounts or domains may have changed. This connection's writes to them are seen as
 * they happen, by TEMP triggers (this connection's alone) calling back into the process; those of any other
 * connection (a second server or a `stacknet` command on the same file) by PRAGMA data_version, which changes when
 * another connection has committed anything. A record is kept with the epoch read before it was read, so a change
 * during the read makes the next request read again. Every transaction here is BEGIN IMMEDIATE (src/store/db.ts),
 * so data_version read inside one is as of the newest commit: no other connection commits while it is open.
 * A request that had arrived whole before the last read of data_version (ApiRequest.arrived) is judged by that
 * read: any change its client could know of when it sent it was committed before (src/api/http.ts answers the
 * signed GETs that arrive in one turn of the event loop together, so that one read serves them all).
 */
interface SqliteCallers {
  /** Bumped by every change that may touch a caller. */
  epoch: number;
  dataVersion: Statement;
  lastDataVersion: unknown;
  /** requestArrivals.count when data_version was last read. */
  versionReadAt: number;
  memory: Map<string, { record: CallerRecord; epoch: number }>;
}

/** Per SQLite connection; null once setting it up failed (every request then reads its caller). */
const sqliteCallers = new WeakMap<SqliteConnection, SqliteCallers | null>();

const CALLER_TABLES = ['users', 'accounts', 'domains'] as const;

function sqliteCallersOf(conn: SqliteConnection): SqliteCallers | undefined {
  const known = sqliteCallers.get(conn);
  if (known !== undefined) return known ?? undefined;
  // A TEMP trigger created inside a transaction goes when it rolls back: set up between transactions only.
  if (conn.inTransaction) return undefined;
  const w: SqliteCallers = {
    epoch: 0,
    dataVersion: conn.prepare('PRAGMA data_version').pluck(),
    lastDataVersion: undefined,
    versionReadAt: -1,
    memory: new Map(),
  };
  try {
    conn.function('stacknet_callers_changed', { deterministic: false }, () => {
      w.epoch++;
      return null;
    });
    for (const table of CALLER_TABLES)
      for (const event of ['insert', 'update', 'delete'])
        conn.exec(
          `create temp trigger if not exists stacknet_callers_${table}_${event} after ${event} on ${table} ` +
            'begin select stacknet_callers_changed(); end',
        );
  } catch {
    sqliteCallers.set(conn, null);
    return undefined;
  }
  sqliteCallers.set(conn, w);
  return w;
}

/**
 * The caller of `apiKey` (callerByApiKey), on SQLite from this server's memory while no caller can have changed;
 * `arrived`: the request's ApiRequest.arrived.
 */
export async function callerOfApiKey(
  store: Store,
  apiKey: string,
  arrived?: number,
): Promise<CallerRecord | undefined> {
  const w = store.sqlite && sqliteCallersOf(store.sqlite);
  if (!w) return callerByApiKey(store.db, apiKey);
  if (arrived === undefined || arrived > w.versionReadAt) {
    const version = w.dataVersion.get();
    w.versionReadAt = requestArrivals.count;
    if (version !== w.lastDataVersion) {
      w.lastDataVersion = version;
      w.epoch++;
    }
  }
  const epoch = w.epoch;
  const hit = w.memory.get(apiKey);
  if (hit && hit.epoch === epoch) return hit.record;
  const record = await callerByApiKey(store.db, apiKey);
  if (record) {
    if (w.memory.size >= REMEMBERED_MAX) w.memory.clear();
    w.memory.set(apiKey, { record, epoch });
  } else w.memory.delete(apiKey);
  return record;
}
