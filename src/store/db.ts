/**
 * Opening the database by URL, running migrations, transactions and driver-error translation.
 * One schema on three databases: `sqlite:<path>` (embedded default, WAL), `postgres://...`, `mysql://...`
 * (MariaDB). Nothing outside store/ and the repositories needs to know which one it is on, except where a
 * repository chooses a dialect-specific statement for speed (it asks `store.kind`).
 */
import { CompiledQuery, Kysely, Migrator, PostgresDialect, MysqlDialect, Transaction } from 'kysely';
import type {
  Dialect,
  Driver,
  KyselyPlugin,
  Migration,
  MigrationProvider,
  SqliteDatabase as SqliteDatabaseLike,
} from 'kysely';
import type { Database as SqliteConnection, Statement } from 'better-sqlite3';
import type { Pool as PgPool, PoolClient as PgClient } from 'pg';
import type { Pool as MysqlPool } from 'mysql2';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { CloudStackError, internalError, valueTooLong } from '../errors/catalogue.js';
import type { Database } from './schema.js';
import { migrations } from './migrations/index.js';
import { ResumableMysqlDialect } from './resumable-mysql.js';
import { FairSqliteDialect } from './fair-sqlite-dialect.js';
import { ReconnectingDialect } from './reconnecting-dialect.js';
import { preparedStatementName } from './prepared.js';
import { WalFlush } from './sqlite-flush.js';
import { planConstantColumns, planConstantStatement, planConstantsOf } from './sqlite-plan-constants.js';
import type { CachedStatement } from './sqlite-plan-constants.js';

export type DbKind = 'sqlite' | 'postgres' | 'mysql';

export interface Store {
  readonly kind: DbKind;
  readonly url: string;
  readonly db: Kysely<Database>;
  /**
   * SQLite only: the better-sqlite3 connection under `db`, for a repository's prepared-statement fast path.
   * Use it only while holding Kysely's connection (`db.connection().execute(...)`), which serialises it.
   */
  readonly sqlite?: SqliteConnection;
  /**
   * SQLite with `synchronous=FULL` (the default) on a file: the flush of the WAL that every commit waits for
   * off the event loop (sqlite-flush.ts). Code that writes on `sqlite` directly awaits `wal.durable()` before
   * telling anyone; everything through `db` already does.
   */
  readonly wal?: WalFlush;
  /**
   * PostgreSQL only: the pg pool under `db`, for a repository's one-statement fast path (named prepared
   * statements, which Kysely cannot use). Only for statements that are their own transaction.
   */
  readonly pg?: PgPool;
  /**
   * MariaDB only: the mysql2 pool under `db`, for a repository's one-statement fast path (server-side prepared
   * statements via `execute`, which Kysely does not use). Only for statements that are their own transaction.
   */
  readonly mysql?: MysqlPool;
  /**
   * Statements sent to the database through this store since it opened: every Kysely query (BEGIN and COMMIT
   * included) and every statement of the PostgreSQL/MariaDB fast paths. What a code path costs in round trips
   * (docs/benchmarks.md "Async jobs"); /metrics exports it.
   */
  readonly statements: { count: number };
  close(): Promise<void>;
}

export type Tx = Transaction<Database>;
/** Anything a repository can run a query on: the store's db or a transaction. */
export type Executor = Kysely<Database>;

export interface OpenOptions {
  /** Pool size for PostgreSQL / MariaDB (default 10). */
  poolSize?: number;
}

/**
 * SQLite's `synchronous`, a new file's `page_size` and the page cache's size from STACKNET_SQLITE_SYNC,
 * STACKNET_SQLITE_PAGE_SIZE and STACKNET_SQLITE_CACHE_MIB.
 */
export function sqliteSettings(env: NodeJS.ProcessEnv = process.env): {
  sync: string;
  pageSize: number;
  cacheMib: number;
} {
  const sync = (env.STACKNET_SQLITE_SYNC ?? 'FULL').toUpperCase();
  if (!['FULL', 'NORMAL', 'EXTRA'].includes(sync)) {
    throw new CloudStackError(
      'InvalidParameterValue',
      `STACKNET_SQLITE_SYNC='${env.STACKNET_SQLITE_SYNC}' is not one of FULL (durable against power loss, the ` +
        `default), NORMAL (durable against process crashes) or EXTRA`,
    );
  }
  const raw = env.STACKNET_SQLITE_PAGE_SIZE ?? '8192';
  const pageSize = Number(raw);
  if (
    !Number.isInteger(pageSize) ||
    pageSize < 512 ||
    pageSize > 65536 ||
    (pageSize & (pageSize - 1)) !== 0
  ) {
    throw new CloudStackError(
      'InvalidParameterValue',
      `STACKNET_SQLITE_PAGE_SIZE='${raw}' is not a power of two from 512 to 65536 (bytes; default 8192)`,
    );
  }
  const rawCache = env.STACKNET_SQLITE_CACHE_MIB ?? '2';
  const cacheMib = Number(rawCache);
  if (!Number.isInteger(cacheMib) || cacheMib < 1 || cacheMib > 65536) {
    throw new CloudStackError(
      'InvalidParameterValue',
      `STACKNET_SQLITE_CACHE_MIB='${rawCache}' is not a whole number of MiB from 1 to 65536 (default 2)`,
    );
  }
  return { sync, pageSize, cacheMib };
}

export function dbKindOf(url: string): DbKind {
  if (url.startsWith('sqlite:')) return 'sqlite';
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) return 'postgres';
  if (url.startsWith('mysql://') || url.startsWith('mariadb://')) return 'mysql';
  throw new CloudStackError(
    'InvalidParameterValue',
    `Unsupported database URL '${url}': use sqlite:<path>, postgres://... or mysql://...`,
  );
}

export async function openStore(url: string, options: OpenOptions = {}): Promise<Store> {
  const kind = dbKindOf(url);
  const poolSize = options.poolSize ?? 10;
  let db: Kysely<Database>;
  let sqlite: SqliteConnection | undefined;
  let wal: WalFlush | undefined;
  let pgPool: PgPool | undefined;
  let mysqlPool: MysqlPool | undefined;
  const statements = { count: 0 };
  const log = (): void => {
    statements.count++;
  };
  if (kind === 'sqlite') {
    const settings = sqliteSettings();
    const { default: SqliteDatabase } = await import('better-sqlite3');
    // `sqlite::memory:` is a private in-memory database (gone with the process; nothing written to disk).
    const named = url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    const path = named === ':memory:' ? named : resolve(named);
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    const conn = new SqliteDatabase(path);
    // WAL lets readers run beside the one writer; NORMAL is durable against process crashes (a committed
    // transaction is in the WAL) and FULL additionally against power loss. STACKNET_SQLITE_SYNC picks.
    // 8 KiB pages for a new database (an existing one keeps its own): a random insert into a big index then
    // rebalances a full leaf about half as often as with 4 KiB, which is what the p99 of an allocation in a scope
    // of hundreds of thousands of rows is made of; costs ~25% of the small-commit rate (docs/benchmarks.md "IPAM
    // allocation"). Must come before the first write.
    conn.pragma(`page_size = ${settings.pageSize}`);
    conn.pragma('journal_mode = WAL');
    // FULL on a file: SQLite's NORMAL (COMMIT writes the WAL, no flush) and our own flush of the WAL, off the
    // event loop and shared by the commits made while one runs, that every caller waits for (sqlite-flush.ts):
    // FULL's durability without the loop stopping for each fsync.
    const ownFlush = settings.sync === 'FULL' && path !== ':memory:';
    conn.pragma(`synchronous = ${ownFlush ? 'NORMAL' : settings.sync}`);
    conn.pragma('busy_timeout = 10000');
    // Checkpoints are where WAL mode pays its fsyncs (all of them under NORMAL); the default every 1,000 pages
    // costs about half the small-transaction commit rate (docs/benchmarks.md "IPAM allocation"). Every ~80 MiB
    // of WAL instead, whatever the page size (10,000 pages of 8 KiB; 5,000 measured 8% fewer commits/s), and
    // below journal_size_limit, so a WAL that restarts is rewritten in place, never cut back and regrown (an
    // append costs a commit more than an overwrite).
    const pageBytes = Number(conn.pragma('page_size', { simple: true }));
    conn.pragma(`wal_autocheckpoint = ${Math.floor((80 * 1024 * 1024) / pageBytes)}`);
    // A WAL that once grew past this (a long write burst) is cut back to it at the next reset instead of staying
    // that size on disk.
    conn.pragma('journal_size_limit = 134217728');
    // SQLite's own default page cache (2 MiB), not better-sqlite3's 16 MB: pages it misses come from the OS page
    // cache for a pread each, and with the bigger cache half the allocations in a half-full /8 took 1-20 minor
    // page faults (~5 µs each on these VMs) for the cache's own memory, which put the p99 there at 1.5-2× an empty
    // /24's; with 2 MiB 94% take none and the ratio is 1.0-1.4 (docs/benchmarks.md "IPAM allocation").
    conn.pragma(`cache_size = -${settings.cacheMib * 1024}`);
    conn.pragma('foreign_keys = ON');
    if (ownFlush) wal = new WalFlush(conn, `${path}-wal`);
    const dialect = new FairSqliteDialect({ database: cachingStatements(conn) }, undefined, wal);
    db = new Kysely<Database>({ dialect, log });
    sqliteDialects.set(db, dialect);
    sqlite = conn;
  } else if (kind === 'postgres') {
    const pg = await import('pg');
    // int8 (bigint, COUNT(*)) as a JS number: our ids, counters and epoch-ms times fit in 2^53.
    pg.default.types.setTypeParser(20, (v: string) => Number(v));
    pg.default.types.setTypeParser(1700, (v: string) => Number(v));
    const pool = new pg.default.Pool({
      connectionString: url.replace(/^postgresql:/, 'postgres:'),
      max: poolSize,
      // Queries given to a client before the previous one's answer are written at once (namePreparedStatements'
      // BEGIN goes out with the transaction's first statement). Kysely awaits every statement, so nothing else
      // is ever in flight behind another; cursors (pg-cursor), which pipelining refuses, are not used.
      pipeline: true,
    } as ConstructorParameters<typeof pg.default.Pool>[0]);
    pool.on('error', () => {
      /* an idle client lost its connection; the pool replaces it */
    });
    // pg emits 'error' on a client whose connection dies (pg_terminate_backend, a database restart, a cut
    // network) even while it is checked out and between queries, where pg-pool listens for nothing: with no
    // listener that is an uncaught exception and the process exits. The query in flight, if any, fails on its
    // own and the pool drops the broken client when it is released; the listener only keeps the process up.
    pool.on('connect', (client) => {
      client.on('error', () => undefined);
      namePreparedStatements(client);
    });
    db = new Kysely<Database>({
      dialect: new ReconnectingDialect(new PostgresDialect({ pool }), isConnectionLost),
      log,
    });
    pgPool = countingCalls(pool, 'query', statements);
  } else {
    const pool = await createMysqlPool(url, poolSize);
    db = new Kysely<Database>({
      dialect: new ReconnectingDialect(new MysqlDialect({ pool }), isConnectionLost),
      log,
    });
    mysqlPool = countingCalls(pool, 'execute', statements);
  }
  return {
    kind,
    url,
    db,
    sqlite,
    wal,
    pg: pgPool,
    mysql: mysqlPool,
    statements,
    close: async () => {
      await wal?.close();
      await db.destroy();
    },
  };
}

/**
 * A prepared query's statement (src/store/prepared.ts) goes to PostgreSQL as a named statement: parsed and planned
 * once per connection, then only bound and executed (what src/addresses' fast path does for its own). Kysely's
 * driver calls `query(text, values)`; any other call passes through as it was.
 */
function namePreparedStatements(client: PgClient): void {
  const query = client.query.bind(client) as (...a: unknown[]) => unknown;
  // A transaction's BEGIN is not sent on its own: it is answered "done" at once, then written in the same write
  // as the transaction's next statement (the pipelined client sends it without waiting for BEGIN's answer), and
  // its real answer is awaited with that statement's. One round trip less per transaction: one wake-up less of
  // this process and of the backend. BEGIN fails only when the connection is gone; then the statement fails with
  // it, and transaction() treats that as a lost connection, as it would a failed BEGIN.
  let beginDue = false;
  // Looked up per use: pg replaces the socket with a TLS one after an SSL negotiation.
  const stream = () =>
    (client as unknown as { connection?: { stream?: { cork?(): void; uncork?(): void } } }).connection
      ?.stream;
  const send = (...a: unknown[]): unknown => {
    const [text, values] = a;
    if (a.length === 2 && typeof text === 'string' && Array.isArray(values)) {
      const name = preparedStatementName(text);
      if (name) return query({ name, text, values });
    }
    return query(...a);
  };
  client.query = ((...a: unknown[]) => {
    if (a.length === 2 && a[0] === 'begin' && Array.isArray(a[1]) && a[1].length === 0 && !beginDue) {
      beginDue = true;
      return Promise.resolve({ command: 'BEGIN', rowCount: null, rows: [], fields: [] });
    }
    if (!beginDue) return send(...a);
    beginDue = false;
    const out = stream();
    out?.cork?.();
    let b: Promise<unknown>;
    let r: unknown;
    try {
      b = query('begin') as Promise<unknown>;
      r = send(...a);
    } finally {
      out?.uncork?.();
    }
    b.catch(() => undefined);
    return Promise.all([b, r]).then(([, x]) => x);
  }) as PgClient['query'];
}

/**
 * Counts the fast paths' statements: `query` on the pg pool, `execute` on the mysql2 pool (Kysely uses neither:
 * it checks out a connection and is counted by its log hook).
 */
function countingCalls<T extends object>(target: T, method: keyof T, statements: { count: number }): T {
  const call = (target[method] as (...a: unknown[]) => unknown).bind(target);
  target[method] = ((...a: unknown[]) => {
    statements.count++;
    return call(...a);
  }) as T[keyof T];
  return target;
}

async function createMysqlPool(url: string, size: number): Promise<MysqlPool> {
  const mysql = await import('mysql2');
  const pool = mysql.createPool({
    uri: url.replace(/^mariadb:/, 'mysql:'),
    connectionLimit: size,
    supportBigNumbers: true,
    bigNumberStrings: false,
    decimalNumbers: true,
    timezone: 'Z',
  });
  pool.on('connection', (conn) => {
    // mysql2 listens for one 'error' per pooled connection (to drop it); a KILL CONNECTION or a lost server
    // can bubble more than one, and an unheard one would end the process.
    conn.on('error', () => undefined);
    // READ COMMITTED, as PostgreSQL's default: every statement sees what has committed before it. The code is
    // written for that ("lock the row, then read": a network being implemented, an account's IP count, a VLAN
    // window read again after a lost race); under MariaDB's default REPEATABLE READ those reads come from the
    // snapshot taken at the transaction's first read and miss what the lock waited for. The first command on
    // the connection: mysql2 queues the caller's statements behind it.
    conn.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED', () => undefined);
  });
  return pool;
}

/**
 * Kysely's SQLite driver prepares every statement anew; compiling SQL is a large part of a small query's cost
 * (about a fifth of an API request's CPU in the bench:api profile). Statements are kept per SQL text (the most
 * recently used STATEMENT_CACHE of them); one still being iterated (a streamed query) is not handed out twice.
 */
const STATEMENT_CACHE = 500;

function cachingStatements(conn: SqliteConnection): SqliteDatabaseLike {
  const cache = new Map<string, SqliteStatement>();
  // The columns whose `col = ?` terms make SQLite plan a statement again at every run (sqlite-plan-constants.ts),
  // read again when the schema changed (migrations run after the store opens).
  const schemaVersion = conn.prepare('PRAGMA schema_version').pluck();
  let planCols = { version: -1, cols: new Set<string>() };
  const planConstantColumnsNow = (): Set<string> => {
    const version = Number(schemaVersion.get());
    if (version !== planCols.version) planCols = { version, cols: planConstantColumns(conn) };
    return planCols.cols;
  };
  const prepareNew = (text: string): SqliteStatement => rowsAsLiterals(conn.prepare(text));
  return {
    close: () => {
      cache.clear();
      conn.close();
    },
    prepare(text: string) {
      const hit = cache.get(text);
      if (hit && !hit.busy) {
        cache.delete(text);
        cache.set(text, hit);
        return hit;
      }
      const base = prepareNew(text);
      const plan = planConstantsOf(text, planConstantColumnsNow());
      const stmt = plan ? planConstantStatement(text, plan, base, prepareNew) : base;
      if (!hit) {
        cache.set(text, stmt);
        if (cache.size > STATEMENT_CACHE) cache.delete(cache.keys().next().value as string);
      }
      return stmt;
    },
  };
}

/** A statement as the cache hands it to Kysely: its own, or rowsAsLiterals' (or planConstantStatement's) in its place. */
type SqliteStatement = CachedStatement;

/**
 * A reading statement whose rows are built by an object literal compiled once for its columns. better-sqlite3
 * sets a row's members one at a time, and V8 keeps an object so built with more than a few members in dictionary
 * mode: a row of ip_allocations (22 columns) was ~3.2 KB, a 500-row page 1.6 MB, a third of what a page of
 * listPublicIpAddresses allocated, and each member read was a hash lookup. Read as arrays (`raw`) and made by the
 * literal, the same members in the same order with the same values are a fast-mode object: 0.5 MB a page and
 * 40 % of the CPU (docs/benchmarks.md "The list's tail on the 1,000,000-address zone, cut"). A column named
 * `__proto__`, which a literal would take as the prototype, keeps better-sqlite3's own rows; so does a statement
 * that writes (`raw` is for readers only).
 */
function rowsAsLiterals(stmt: Statement): SqliteStatement {
  if (!stmt.reader) return stmt;
  const names = stmt.columns().map((c) => c.name);
  if (names.includes('__proto__')) return stmt;
  // A JSON string is a JavaScript string literal: any column name (an alias may hold anything) is only a key.
  const row = new Function(
    'a',
    `return {${names.map((n, i) => `${JSON.stringify(n)}: a[${i}]`).join(', ')}};`,
  ) as (values: unknown[]) => Record<string, unknown>;
  stmt.raw(true);
  return {
    reader: true,
    get busy() {
      return stmt.busy;
    },
    all(parameters) {
      const rows = stmt.all(parameters) as unknown[];
      for (let i = 0; i < rows.length; i++) rows[i] = row(rows[i] as unknown[]);
      return rows;
    },
    run: (parameters) => stmt.run(parameters),
    *iterate(parameters) {
      for (const values of stmt.iterate(parameters) as IterableIterator<unknown[]>) yield row(values);
    },
  };
}

class StaticMigrationProvider implements MigrationProvider {
  constructor(private readonly list: Record<string, Migration>) {}
  async getMigrations(): Promise<Record<string, Migration>> {
    return this.list;
  }
}

export interface MigrateOptions {
  /** Plugins on the migrations' statements (tests: one that stops them part-way, as a kill would). */
  plugins?: KyselyPlugin[];
}

/**
 * Brings the schema to the latest migration. Safe to call from several servers at once, and after a server was
 * killed part-way through: PostgreSQL runs each migration in a transaction (Kysely's own); SQLite, where Kysely
 * runs them outside one, gets all pending migrations in one BEGIN IMMEDIATE transaction (which also keeps a
 * second process from migrating the same file at the same time); MariaDB, which cannot roll back DDL, re-runs
 * an interrupted migration and skips what it finds already done (resumable-mysql.ts).
 */
export async function migrateToLatest(store: Store, options: MigrateOptions = {}): Promise<void> {
  const run = async (base: Kysely<Database>) => {
    let db = base;
    for (const plugin of options.plugins ?? []) db = db.withPlugin(plugin);
    const migrator = new Migrator({ db, provider: new StaticMigrationProvider(migrations) });
    const { error, results } = await migrator.migrateToLatest();
    if (error) {
      const failed = results?.find((r) => r.status === 'Error');
      throw internalError(`migrating the database${failed ? ` (${failed.migrationName})` : ''}`, error);
    }
  };
  if (store.kind === 'sqlite') {
    await sqliteImmediateOn(store, run);
    // DDL changes no rows, which is what the flush counts commits by.
    store.wal?.changed();
    await store.wal?.durable();
  } else if (store.kind === 'mysql') {
    // A connection of its own (the migration lock is per session), closed again afterwards.
    const migrating = new Kysely<Database>({
      dialect: new ResumableMysqlDialect({ pool: await createMysqlPool(store.url, 1) }),
    });
    try {
      await run(migrating);
    } finally {
      await migrating.destroy();
    }
  } else {
    await run(store.db);
  }
}

export async function openMigratedStore(url: string, options: OpenOptions = {}): Promise<Store> {
  const store = await openStore(url, options);
  try {
    await migrateToLatest(store);
  } catch (e) {
    await store.close();
    throw e;
  }
  return store;
}

// ---------------------------------------------------------------------------------------------------------
// Driver errors. Repositories call these to translate; nothing untranslated leaves the store.

interface DriverError {
  code?: string | number;
  errno?: number;
  message?: string;
}

export function isUniqueViolation(e: unknown): boolean {
  const d = e as DriverError;
  if (!d || typeof d !== 'object') return false;
  return (
    d.code === '23505' || // postgres unique_violation
    d.errno === 1062 || // mysql ER_DUP_ENTRY
    d.code === 'ER_DUP_ENTRY' ||
    d.code === 'SQLITE_CONSTRAINT_UNIQUE' ||
    d.code === 'SQLITE_CONSTRAINT_PRIMARYKEY'
  );
}

export function isForeignKeyViolation(e: unknown): boolean {
  const d = e as DriverError;
  if (!d || typeof d !== 'object') return false;
  return (
    d.code === '23503' || d.errno === 1451 || d.errno === 1452 || d.code === 'SQLITE_CONSTRAINT_FOREIGNKEY'
  );
}

/** Conflicts the database resolves by aborting one side: the transaction may simply be run again. */
export function isRetryableConflict(e: unknown): boolean {
  const d = e as DriverError;
  if (!d || typeof d !== 'object') return false;
  return (
    d.code === '40001' || // serialization_failure
    d.code === '40P01' || // deadlock_detected
    d.errno === 1213 || // ER_LOCK_DEADLOCK
    d.errno === 1205 || // ER_LOCK_WAIT_TIMEOUT
    d.code === 'SQLITE_BUSY' ||
    d.code === 'SQLITE_BUSY_SNAPSHOT' ||
    d.code === 'SQLITE_LOCKED'
  );
}

const CONNECTION_LOST_CODES = new Set([
  // PostgreSQL: admin_shutdown (pg_terminate_backend), crash_shutdown, cannot_connect_now, connection_exception
  // and its subclasses.
  '57P01',
  '57P02',
  '57P03',
  '08000',
  '08001',
  '08003',
  '08004',
  '08006',
  // mysql2 / MariaDB.
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_ENQUEUE_AFTER_FATAL_ERROR',
  'ER_CONNECTION_KILLED',
  'ER_SERVER_SHUTDOWN',
  // The socket itself.
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
]);

/**
 * The connection under a statement died (terminated by the database, the database restarting, the network): the
 * statement failed, and if a transaction was open the database rolled it back. Looks through InternalErrors a
 * repository wrapped the driver's error in.
 */
export function isConnectionLost(e: unknown): boolean {
  for (let d = e as (DriverError & { cause?: unknown }) | undefined, depth = 0; d && depth < 5; depth++) {
    if (typeof d !== 'object') return false;
    if (d.code !== undefined && CONNECTION_LOST_CODES.has(String(d.code))) return true;
    if (d.errno === 1927 || d.errno === 1053 || d.errno === 2006 || d.errno === 2013) return true;
    // pg's own words for a client whose socket closed (no code), and mysql2's for a closed connection.
    if (/^Connection terminated|not queryable|connection is in closed state/i.test(d.message ?? ''))
      return true;
    if (!(d instanceof CloudStackError) || d.kind !== 'InternalError') return false;
    d = d.cause as typeof d;
  }
  return false;
}

/**
 * The driver refused to send the statement at all: its connection had already died (pg: "not queryable",
 * mysql2: "closed state"). A COMMIT refused so never reached the database, which rolled the transaction back.
 */
function wasNeverSent(e: unknown): boolean {
  for (let d = e as (DriverError & { cause?: unknown }) | undefined, depth = 0; d && depth < 5; depth++) {
    if (typeof d !== 'object') return false;
    if (d.code === 'PROTOCOL_ENQUEUE_AFTER_FATAL_ERROR') return true;
    if (/not queryable|connection is in closed state/i.test(d.message ?? '')) return true;
    d = d.cause as typeof d;
  }
  return false;
}

export interface TxOptions {
  /** How many times a deadlock/serialization conflict is retried (default 8). */
  retries?: number;
  /** What the caller was doing, for the InternalError message if the driver fails otherwise. */
  doing?: string;
}

/**
 * Runs `fn` in one transaction and commits it. On SQLite the transaction starts with BEGIN IMMEDIATE (takes
 * the write lock at once, so two processes never deadlock upgrading read locks). Deadlocks and serialization
 * failures are retried; CloudStackErrors pass through; other driver errors become InternalError.
 */
export async function transaction<T>(
  store: Store,
  fn: (tx: Tx) => Promise<T>,
  options: TxOptions = {},
): Promise<T> {
  const retries = options.retries ?? 8;
  let reconnects = 0;
  for (let attempt = 0; ; attempt++) {
    // Whether COMMIT was sent: a connection lost before it means the database rolled the transaction back, so
    // running it again is as safe as after a deadlock; lost during COMMIT, nobody knows whether it committed.
    let committing = false;
    try {
      if (store.kind === 'sqlite') return await sqliteImmediate(store, fn);
      return await store.db.transaction().execute(async (tx) => {
        const result = await fn(tx);
        committing = true;
        return result;
      });
    } catch (e) {
      if ((!committing || wasNeverSent(e)) && isConnectionLost(e) && reconnects < CONNECTION_RETRIES) {
        // The pool has dropped the dead connection; the next attempt takes a fresh one.
        reconnects++;
        await new Promise((r) => setTimeout(r, 50 * reconnects + Math.random() * 50));
        continue;
      }
      const tooLong = valueTooLong(e);
      if (tooLong) throw tooLong;
      if (e instanceof CloudStackError) throw e;
      if (isRetryableConflict(e) && attempt < retries) {
        await new Promise((r) => setTimeout(r, Math.random() * 5 * (attempt + 1)));
        continue;
      }
      throw internalError(options.doing ?? 'running a database transaction', e);
    }
  }
}

/**
 * Runs one statement on its own (autocommit: no BEGIN/COMMIT round trips), sent again on a fresh connection when
 * the connection is lost, as transaction() does. Only for a statement that is safe to send twice (a conditional
 * UPDATE whose second run finds nothing left to do): a connection lost under it leaves unknown whether it
 * committed. Other errors pass through as they are.
 */
export async function autocommit<T>(store: Store, fn: (db: Executor) => Promise<T>): Promise<T> {
  for (let reconnects = 0; ; reconnects++) {
    try {
      return await fn(store.db);
    } catch (e) {
      if (!isConnectionLost(e) || reconnects >= CONNECTION_RETRIES) throw e;
      await new Promise((r) => setTimeout(r, 50 * (reconnects + 1) + Math.random() * 50));
    }
  }
}

/**
 * How many times a transaction that lost its connection before COMMIT is run again. More than one: terminating
 * a server's connections takes its idle ones too, and a fresh attempt may draw one of those before the pool
 * has noticed it is dead.
 */
const CONNECTION_RETRIES = 4;

async function sqliteImmediate<T>(store: Store, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return sqliteImmediateOn(store, (conn) => fn(sqliteTransaction(store, conn)));
}

/** sqliteImmediate with the connection as it is (the migrator asks it for connection(), which a Transaction refuses). */
async function sqliteImmediateOn<T>(store: Store, fn: (conn: Kysely<Database>) => Promise<T>): Promise<T> {
  // Kysely's SqliteDialect holds one connection behind a mutex; connection() keeps it for the whole
  // callback, so BEGIN IMMEDIATE / COMMIT surround exactly fn's queries.
  return store.db.connection().execute(async (conn) => {
    await conn.executeQuery(BEGIN_IMMEDIATE);
    try {
      const result = await fn(conn);
      await conn.executeQuery(COMMIT);
      return result;
    } catch (e) {
      await conn.executeQuery(ROLLBACK).catch(() => undefined);
      throw e;
    }
  });
}

/** Each SQLite store's dialect, by its Kysely (sqliteTransaction). */
const sqliteDialects = new WeakMap<Kysely<Database>, Dialect>();

const outsideTransaction = (): never => {
  throw new Error('not available inside a transaction');
};
/** What a Transaction never uses of its driver (connection(), transaction() and destroy() refuse anyway). */
const noDriver = {
  init: outsideTransaction,
  acquireConnection: outsideTransaction,
  beginTransaction: outsideTransaction,
  commitTransaction: outsideTransaction,
  rollbackTransaction: outsideTransaction,
  releaseConnection: outsideTransaction,
  destroy: outsideTransaction,
} as Driver;

/**
 * `conn`, a Kysely holding the SQLite store's one connection (`store.db.connection().execute(...)`) inside a
 * BEGIN IMMEDIATE of ours, as the Transaction it is. A Transaction is nothing more than a Kysely bound to one
 * connection; what the cast it replaces lacked is `isTransaction`, which the repositories ask (inside a
 * transaction an allocation inserts its first candidate with the one-row INSERT rather than the eight-candidate
 * statement, and a conflict is the transaction's to retry, not the statement's).
 */
export function sqliteTransaction(store: Store, conn: Kysely<Database>): Tx {
  const dialect = sqliteDialects.get(store.db);
  if (!dialect) return conn as unknown as Tx;
  return new Transaction<Database>({
    config: { dialect },
    executor: conn.getExecutor(),
    driver: noDriver,
    dialect,
  });
}

// Compiled once: every SQLite transaction sends them.
const BEGIN_IMMEDIATE = CompiledQuery.raw('BEGIN IMMEDIATE');
const COMMIT = CompiledQuery.raw('COMMIT');
const ROLLBACK = CompiledQuery.raw('ROLLBACK');

/** Current time as epoch milliseconds: every timestamp column is a BIGINT of these. */
export const nowMs = (): number => Date.now();
