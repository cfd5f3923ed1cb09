/**
 * Opening the database by URL, running migrations, transactions and driver-error translation.
 * One schema on three databases: `sqlite:<path>` (embedded default, WAL), `postgres://...`, `mysql://...`
 * (MariaDB). Nothing outside store/ and the repositories needs to know which one it is on, except where a
 * repository chooses a dialect-specific statement for speed (it asks `store.kind`). Each database's own set-up
 * (connection or pool, pragmas, session settings) is in sqlite-connection.ts, postgres-pool.ts and mysql-pool.ts.
 */
import { CompiledQuery, Kysely, Migrator, PostgresDialect, MysqlDialect, Transaction } from 'kysely';
import type { Dialect, Driver, KyselyPlugin, Migration, MigrationProvider } from 'kysely';
import type { Database as SqliteConnection } from 'better-sqlite3';
import type { Pool as PgPool } from 'pg';
import type { Pool as MysqlPool } from 'mysql2';
import { CloudStackError, internalError, valueTooLong } from '../errors/catalogue.js';
import type { Database } from './schema.js';
import { migrations } from './migrations/index.js';
import { ResumableMysqlDialect } from './resumable-mysql.js';
import { ReconnectingDialect } from './reconnecting-dialect.js';
import type { WalFlush } from './sqlite-flush.js';
import { openSqliteConnection } from './sqlite-connection.js';
import { createPostgresPool } from './postgres-pool.js';
import { createMysqlPool } from './mysql-pool.js';

export { sqliteSettings } from './sqlite-connection.js';

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
    const opened = await openSqliteConnection(url);
    db = new Kysely<Database>({ dialect: opened.dialect, log });
    sqliteDialects.set(db, opened.dialect);
    sqlite = opened.conn;
    wal = opened.wal;
  } else if (kind === 'postgres') {
    const pool = await createPostgresPool(url, poolSize);
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

/** The migrations recorded in the database that this build does not have (a newer stacknet ran them). */
async function unknownMigrations(db: Kysely<Database>): Promise<string[]> {
  try {
    const { rows } = await db.executeQuery<{ name: string }>(
      CompiledQuery.raw('select name from kysely_migration order by name'),
    );
    return rows.map((r) => r.name).filter((n) => !(n in migrations));
  } catch {
    return [];
  }
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
      const newer = await unknownMigrations(base);
      if (newer.length > 0)
        throw new CloudStackError(
          'InternalError',
          `The database was migrated by a newer stacknet: it has migration${newer.length > 1 ? 's' : ''} ` +
            `${newer.join(', ')}, which this server does not know. Run that stacknet version (or a later one) ` +
            'against it, or restore the backup taken before the upgrade.',
          { cause: error },
        );
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
