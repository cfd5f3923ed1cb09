/**
 * Real databases for tests: every test file gets its own fresh database on each of the three engines
 * (no mocks). PostgreSQL and MariaDB must be running (127.0.0.1, see README); STACKNET_TEST_DBS=sqlite,postgres
 * narrows the set for a quick local run, but CI runs all three.
 *
 * A migrated PostgreSQL or MariaDB database is a copy of a template that the migrations built once per set of
 * migrations (`stacknet_tpl_<hash of src/store/migrations>`, made by the first test process that needs it, under a
 * lock the others wait on): migrating took 2–4 s on PostgreSQL and 5–12 s on MariaDB per database, the copy a
 * fraction of it. PostgreSQL copies it with CREATE DATABASE … TEMPLATE; MariaDB has no such thing, so its tables,
 * rows and triggers are recreated from SHOW CREATE (test-databases.test.ts checks the copy against a migration).
 * The migrations themselves still run: once per set for the template, and in every test that migrates an empty
 * database (createEmptyTestDatabase).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { openStore, migrateToLatest } from '../db.js';
import { migrations } from '../migrations/index.js';
import type { DbKind, Executor, Store } from '../db.js';

export const PG_ADMIN_URL = process.env.STACKNET_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const MYSQL_ADMIN_URL = process.env.STACKNET_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/mysql';

export function testDbKinds(): DbKind[] {
  const only = process.env.STACKNET_TEST_DBS;
  const all: DbKind[] = ['sqlite', 'postgres', 'mysql'];
  return only ? all.filter((k) => only.split(',').includes(k)) : all;
}

export interface TestDatabase {
  kind: DbKind;
  url: string;
  /** Drops the database (and its files). Call after every store on it is closed. */
  drop(): Promise<void>;
}

/** Creates an empty, migrated database of the given kind and returns its URL. */
export async function createTestDatabase(kind: DbKind): Promise<TestDatabase> {
  if (kind === 'sqlite') {
    const tdb = await createEmptyTestDatabase(kind);
    await migrate(tdb.url);
    return tdb;
  }
  const tdb = testDatabase(kind);
  await withAdmin(kind, async (admin) => {
    await ensureTemplate(kind, admin);
    if (kind === 'postgres') await sql.raw(`CREATE DATABASE ${tdb.name} TEMPLATE ${TEMPLATE}`).execute(admin);
    else await sql.raw(`CREATE DATABASE ${tdb.name}`).execute(admin);
  });
  if (kind === 'mysql') {
    try {
      await copyMysqlDatabase(TEMPLATE, tdb.url);
    } catch (e) {
      await tdb.drop();
      throw e;
    }
  }
  return tdb;
}

/** The template's name: one per content of the migrations directory. */
const TEMPLATE = `stacknet_tpl_${migrationsDigest()}`;

function migrationsDigest(): string {
  const dir = fileURLToPath(new URL('../migrations/', import.meta.url));
  const h = createHash('sha256');
  for (const f of readdirSync(dir).sort()) {
    if (!/\.[jt]s$/.test(f)) continue;
    h.update(f).update(readFileSync(join(dir, f)));
  }
  return h.digest('hex').slice(0, 16);
}

async function migrate(url: string): Promise<void> {
  const store = await openStore(url, { poolSize: 1 });
  try {
    await migrateToLatest(store);
  } finally {
    await store.close();
  }
}

async function withAdmin<T>(kind: DbKind, fn: (admin: Executor) => Promise<T>): Promise<T> {
  const admin = await openStore(kind === 'postgres' ? PG_ADMIN_URL : MYSQL_ADMIN_URL, { poolSize: 1 });
  try {
    return await fn(admin.db);
  } finally {
    await admin.close();
  }
}

/**
 * Makes the template when it is not there yet, under a lock held on `admin`'s one connection. PostgreSQL: built
 * under another name and renamed when migrated, so a template that exists is complete, and nobody stays connected
 * to it (CREATE DATABASE … TEMPLATE refuses a template in use). MariaDB (no rename): complete when it holds every
 * migration's row; one left half-made by a killed process is made again. Other sets' templates are left alone (a
 * test run of another branch may be copying one).
 */
async function ensureTemplate(kind: DbKind, admin: Executor): Promise<void> {
  const complete = async (): Promise<boolean> => {
    if (kind === 'postgres')
      return (
        (await sql`select 1 from pg_database where datname = ${TEMPLATE}`.execute(admin)).rows.length > 0
      );
    const exists = await sql`select 1 from information_schema.TABLES
      where TABLE_SCHEMA = ${TEMPLATE} and TABLE_NAME = 'kysely_migration'`.execute(admin);
    if (exists.rows.length === 0) return false;
    const r = await sql<{
      n: number;
    }>`select count(*) as n from ${sql.id(TEMPLATE, 'kysely_migration')}`.execute(admin);
    return Number(r.rows[0]!.n) === Object.keys(migrations).length;
  };
  if (await complete()) return;
  if (kind === 'postgres') await sql`select pg_advisory_lock(${TEMPLATE_LOCK})`.execute(admin);
  else await sql`select get_lock('stacknet_tpl', 600)`.execute(admin);
  try {
    if (await complete()) return;
    const building = kind === 'postgres' ? `${TEMPLATE}_building` : TEMPLATE;
    await dropDatabase(kind, admin, building);
    await sql.raw(`CREATE DATABASE ${building}`).execute(admin);
    await migrate(databaseUrl(kind, building));
    if (kind === 'postgres') await sql.raw(`ALTER DATABASE ${building} RENAME TO ${TEMPLATE}`).execute(admin);
  } finally {
    if (kind === 'postgres') await sql`select pg_advisory_unlock(${TEMPLATE_LOCK})`.execute(admin);
    else await sql`select release_lock('stacknet_tpl')`.execute(admin);
  }
}

/** Any fixed key: the advisory lock that serialises making the PostgreSQL template. */
const TEMPLATE_LOCK = 0x57ac4e7;

/**
 * MariaDB: `from`'s tables (from SHOW CREATE TABLE, foreign keys unchecked until every table is there), their rows
 * (the columns that are not generated) and then their triggers, made again in the empty database at `url`.
 */
export async function copyMysqlDatabase(from: string, url: string): Promise<void> {
  const store = await openStore(url, { poolSize: 1 });
  const db = store.db;
  try {
    const columns = (
      await sql<{
        t: string;
        c: string;
      }>`select TABLE_NAME as t, COLUMN_NAME as c from information_schema.COLUMNS
        where TABLE_SCHEMA = ${from} and IS_GENERATED = 'NEVER' order by TABLE_NAME, ORDINAL_POSITION`.execute(
        db,
      )
    ).rows;
    const tables = new Map<string, string[]>();
    for (const { t, c } of columns) tables.set(t, [...(tables.get(t) ?? []), c]);
    await sql`set session foreign_key_checks = 0`.execute(db);
    for (const t of tables.keys()) {
      const shown = await sql<Record<string, string>>`show create table ${sql.id(from, t)}`.execute(db);
      await sql.raw(shown.rows[0]!['Create Table']!).execute(db);
    }
    for (const [t, cs] of tables) {
      const list = sql.join(cs.map((c) => sql.id(c)));
      await sql`insert into ${sql.id(t)} (${list}) select ${list} from ${sql.id(from, t)}`.execute(db);
    }
    await sql`set session foreign_key_checks = 1`.execute(db);
    const triggers = await sql<{ name: string }>`select TRIGGER_NAME as name from information_schema.TRIGGERS
      where TRIGGER_SCHEMA = ${from} order by ACTION_ORDER, TRIGGER_NAME`.execute(db);
    for (const { name } of triggers.rows) {
      const shown = await sql<Record<string, string>>`show create trigger ${sql.id(from, name)}`.execute(db);
      const row = shown.rows[0]!;
      await sql`set session sql_mode = ${row.sql_mode}`.execute(db);
      await sql.raw(row['SQL Original Statement']!).execute(db);
    }
  } finally {
    await store.close();
  }
}

/** Creates an empty database of the given kind, not migrated, and returns its URL. */
export async function createEmptyTestDatabase(kind: DbKind): Promise<TestDatabase> {
  const tdb = testDatabase(kind);
  if (kind !== 'sqlite')
    await withAdmin(kind, (admin) => sql.raw(`CREATE DATABASE ${tdb.name}`).execute(admin));
  return tdb;
}

/** A new test database's name, URL and drop(); nothing is created yet (a SQLite file is made by opening it). */
function testDatabase(kind: DbKind): TestDatabase & { name: string } {
  const name = `stacknet_t_${process.pid}_${randomBytes(4).toString('hex')}`;
  if (kind === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'stacknet-db-'));
    const drop = async () => rmSync(dir, { recursive: true, force: true });
    return { kind, name, url: `sqlite:${join(dir, 'stacknet.db')}`, drop };
  }
  const drop = () => withAdmin(kind, (admin) => dropDatabase(kind, admin, name));
  return { kind, name, url: databaseUrl(kind, name), drop };
}

async function dropDatabase(kind: DbKind, admin: Executor, name: string): Promise<void> {
  const force = kind === 'postgres' ? ' WITH (FORCE)' : '';
  await sql.raw(`DROP DATABASE IF EXISTS ${name}${force}`).execute(admin);
}

function databaseUrl(kind: DbKind, name: string): string {
  const u = new URL(kind === 'postgres' ? PG_ADMIN_URL : MYSQL_ADMIN_URL);
  u.pathname = `/${name}`;
  return u.toString();
}

/** A migrated store on a fresh database; `cleanup()` closes it and drops the database. */
export async function createTestStore(
  kind: DbKind,
  poolSize = 10,
): Promise<{ store: Store; cleanup(): Promise<void> }> {
  const tdb = await createTestDatabase(kind);
  const store = await openStore(tdb.url, { poolSize });
  return {
    store,
    async cleanup() {
      await store.close();
      await tdb.drop();
    },
  };
}
