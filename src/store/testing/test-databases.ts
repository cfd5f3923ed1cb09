/**
 * Real databases for tests: every test file gets its own fresh database on each of the three engines
 * (no mocks). PostgreSQL and MariaDB must be running (127.0.0.1, see README); STACKNET_TEST_DBS=sqlite,postgres
 * narrows the set for a quick local run, but CI runs all three.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { openStore, migrateToLatest } from '../db.js';
import type { DbKind, Store } from '../db.js';

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
  const tdb = await createEmptyTestDatabase(kind);
  const store = await openStore(tdb.url, { poolSize: 1 });
  try {
    await migrateToLatest(store);
  } finally {
    await store.close();
  }
  return tdb;
}

/** Creates an empty database of the given kind, not migrated, and returns its URL. */
export async function createEmptyTestDatabase(kind: DbKind): Promise<TestDatabase> {
  const name = `stacknet_t_${process.pid}_${randomBytes(4).toString('hex')}`;
  let url: string;
  let drop: () => Promise<void>;
  if (kind === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'stacknet-db-'));
    url = `sqlite:${join(dir, 'stacknet.db')}`;
    drop = async () => rmSync(dir, { recursive: true, force: true });
  } else {
    const adminUrl = kind === 'postgres' ? PG_ADMIN_URL : MYSQL_ADMIN_URL;
    const admin = await openStore(adminUrl, { poolSize: 1 });
    try {
      await sql.raw(`CREATE DATABASE ${name}`).execute(admin.db);
    } finally {
      await admin.close();
    }
    const u = new URL(adminUrl);
    u.pathname = `/${name}`;
    url = u.toString();
    drop = async () => {
      const a = await openStore(adminUrl, { poolSize: 1 });
      try {
        await sql
          .raw(
            kind === 'postgres'
              ? `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`
              : `DROP DATABASE IF EXISTS ${name}`,
          )
          .execute(a.db);
      } finally {
        await a.close();
      }
    };
  }
  return { kind, url, drop };
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
