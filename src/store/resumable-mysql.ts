/**
 * Migrations on MariaDB, made resumable. MariaDB commits every DDL statement on its own (Kysely runs its
 * migrations outside a transaction there), so a server killed in the middle of a migration leaves some of its
 * tables, columns and indexes in place and the migration not recorded as applied; the next start runs it again
 * from the top and would stop at the first `CREATE TABLE` that already exists. Through this dialect, a schema
 * statement refused only because what it creates is already there (or what it drops is already gone) counts as
 * done, so the re-run finishes what the killed one started. Each such statement is atomic in MariaDB (a table,
 * column or index exists whole or not at all), and the migrations' seed rows check for themselves
 * (0003-networking). Used for migrating only: in normal work an "already exists" is an error worth seeing.
 */
import { MysqlDialect } from 'kysely';
import type { CompiledQuery, DatabaseConnection, Driver, QueryResult } from 'kysely';
import { DelegatingDriver } from './delegating-driver.js';

/** MariaDB's errno for "already there / already gone", per the kind of schema statement that can meet it. */
const ALREADY_APPLIED: Record<string, readonly number[]> = {
  CreateTableNode: [1050], // ER_TABLE_EXISTS_ERROR
  CreateIndexNode: [1061], // ER_DUP_KEYNAME
  // ER_DUP_FIELDNAME, ER_DUP_KEYNAME, ER_CANT_DROP_FIELD_OR_KEY, ER_FK_DUP_NAME
  AlterTableNode: [1060, 1061, 1091, 1826],
  DropIndexNode: [1091], // ER_CANT_DROP_FIELD_OR_KEY
  DropTableNode: [1051], // ER_BAD_TABLE_ERROR
};

export function alreadyApplied(e: unknown, query: CompiledQuery): boolean {
  const errno = (e as { errno?: unknown } | null)?.errno;
  return typeof errno === 'number' && (ALREADY_APPLIED[query.query.kind] ?? []).includes(errno);
}

class ResumableConnection implements DatabaseConnection {
  constructor(readonly inner: DatabaseConnection) {}

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    try {
      return await this.inner.executeQuery<R>(query);
    } catch (e) {
      if (alreadyApplied(e, query)) return { rows: [] };
      throw e;
    }
  }

  streamQuery<R>(query: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    return this.inner.streamQuery<R>(query, chunkSize);
  }
}

class ResumableDriver extends DelegatingDriver {
  override async acquireConnection(): Promise<DatabaseConnection> {
    return new ResumableConnection(await this.inner.acquireConnection());
  }
  override releaseConnection(connection: DatabaseConnection): Promise<void> {
    return this.inner.releaseConnection((connection as ResumableConnection).inner);
  }
}

/** A MysqlDialect whose schema statements are resumable as above. */
export class ResumableMysqlDialect extends MysqlDialect {
  override createDriver(): Driver {
    return new ResumableDriver(super.createDriver());
  }
}
