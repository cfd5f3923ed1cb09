/**
 * A Kysely dialect wrapper for PostgreSQL and MariaDB: a SELECT that runs on its own (not inside a transaction)
 * and fails because its connection died (terminated by the database, a restart, a cut network) is run again
 * once on a fresh connection from the pool. Reading twice changes nothing, so the request that asked goes on
 * instead of answering 530. Writes outside a transaction are not repeated (the database may have applied one
 * before the connection went); transactions are run again whole by `transaction()` in db.ts, which knows
 * whether COMMIT was sent.
 */
import type {
  CompiledQuery,
  DatabaseConnection,
  DatabaseIntrospector,
  Dialect,
  DialectAdapter,
  Driver,
  Kysely,
  QueryCompiler,
  QueryResult,
  TransactionSettings,
} from 'kysely';

export class ReconnectingDialect implements Dialect {
  constructor(
    private readonly inner: Dialect,
    private readonly isConnectionLost: (e: unknown) => boolean,
  ) {}
  createAdapter(): DialectAdapter {
    return this.inner.createAdapter();
  }
  createDriver(): Driver {
    return new ReconnectingDriver(this.inner.createDriver(), this.isConnectionLost);
  }
  createQueryCompiler(): QueryCompiler {
    return this.inner.createQueryCompiler();
  }
  createIntrospector(db: Kysely<unknown>): DatabaseIntrospector {
    return this.inner.createIntrospector(db);
  }
}

class Connection implements DatabaseConnection {
  inTransaction = false;
  constructor(
    readonly inner: DatabaseConnection,
    private readonly driver: ReconnectingDriver,
  ) {}
  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    try {
      return await this.inner.executeQuery<R>(query);
    } catch (e) {
      if (this.inTransaction || query.query.kind !== 'SelectQueryNode' || !this.driver.isConnectionLost(e))
        throw e;
      return this.driver.again((c) => c.executeQuery<R>(query));
    }
  }
  streamQuery<R>(query: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    return this.inner.streamQuery<R>(query, chunkSize);
  }
}

class ReconnectingDriver implements Driver {
  constructor(
    private readonly inner: Driver,
    readonly isConnectionLost: (e: unknown) => boolean,
  ) {}
  init(): Promise<void> {
    return this.inner.init();
  }
  async acquireConnection(): Promise<DatabaseConnection> {
    return new Connection(await this.inner.acquireConnection(), this);
  }
  /**
   * Runs `fn` on a connection of its own, released afterwards; again on another if that one is dead too (the
   * database terminated the pool's idle connections with the busy one, and the pool may not have noticed yet).
   */
  async again<T>(fn: (c: DatabaseConnection) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      await new Promise((r) => setTimeout(r, 10 * attempt));
      const c = await this.inner.acquireConnection();
      try {
        return await fn(c);
      } catch (e) {
        if (attempt >= 3 || !this.isConnectionLost(e)) throw e;
      } finally {
        await this.inner.releaseConnection(c);
      }
    }
  }
  async beginTransaction(c: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    (c as Connection).inTransaction = true;
    await this.inner.beginTransaction((c as Connection).inner, settings);
  }
  async commitTransaction(c: DatabaseConnection): Promise<void> {
    try {
      await this.inner.commitTransaction((c as Connection).inner);
    } finally {
      (c as Connection).inTransaction = false;
    }
  }
  async rollbackTransaction(c: DatabaseConnection): Promise<void> {
    try {
      await this.inner.rollbackTransaction((c as Connection).inner);
    } finally {
      (c as Connection).inTransaction = false;
    }
  }
  async savepoint(
    c: DatabaseConnection,
    name: string,
    compile: QueryCompiler['compileQuery'],
  ): Promise<void> {
    await this.inner.savepoint!((c as Connection).inner, name, compile);
  }
  async rollbackToSavepoint(
    c: DatabaseConnection,
    name: string,
    compile: QueryCompiler['compileQuery'],
  ): Promise<void> {
    await this.inner.rollbackToSavepoint!((c as Connection).inner, name, compile);
  }
  async releaseSavepoint(
    c: DatabaseConnection,
    name: string,
    compile: QueryCompiler['compileQuery'],
  ): Promise<void> {
    await this.inner.releaseSavepoint!((c as Connection).inner, name, compile);
  }
  releaseConnection(c: DatabaseConnection): Promise<void> {
    return this.inner.releaseConnection((c as Connection).inner);
  }
  destroy(): Promise<void> {
    return this.inner.destroy();
  }
}
