/**
 * SQLite's side of opening the store: the better-sqlite3 connection with its pragmas (WAL, our own flush of it,
 * page and cache sizes, checkpoints), and the statement cache that Kysely's SQLite driver prepares through (row
 * objects built as literals, statements whose plan depends on a parameter). db.ts wraps the dialect this returns in
 * its Kysely.
 */
import type { SqliteDatabase as SqliteDatabaseLike } from 'kysely';
import type { Database as SqliteConnection, Statement } from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { CloudStackError } from '../errors/catalogue.js';
import { FairSqliteDialect } from './fair-sqlite-dialect.js';
import { WalFlush } from './sqlite-flush.js';
import { planConstantColumns, planConstantStatement, planConstantsOf } from './sqlite-plan-constants.js';
import type { CachedStatement } from './sqlite-plan-constants.js';

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

/**
 * Opens the SQLite database a `sqlite:` URL names, set up as openStore (db.ts) uses it: the connection, the
 * dialect to build its Kysely on, and the WAL flush when `synchronous=FULL` on a file.
 */
export async function openSqliteConnection(
  url: string,
): Promise<{ conn: SqliteConnection; wal: WalFlush | undefined; dialect: FairSqliteDialect }> {
  let wal: WalFlush | undefined;
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
  return { conn, wal, dialect };
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
