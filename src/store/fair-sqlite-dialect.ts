/**
 * A Kysely dialect wrapper for SQLite that gives the event loop its turn. better-sqlite3 answers every statement
 * synchronously, so a server whose work is all database statements (a burst of jobs, the reconciler's passes,
 * the simulator driver) runs as one unbroken chain of microtasks: nothing waits on I/O, and sockets, timers and
 * the HTTP parser get no turn until the chain ends. A burst of 1,000 deployVirtualMachine calls was answered
 * HTTP 408 by Node's own header timeout that way (docs/benchmarks.md "Deploy bursts").
 *
 * Before a statement takes the connection (between transactions and lone statements, never inside a
 * transaction, which keeps the connection), the wrapper checks whether the loop has had a turn within
 * `maxBusyMs`; if not, the statement waits for one (setImmediate: pending I/O is polled first). A loop that is
 * not busy pays nothing but one armed setImmediate per turn.
 */
import type {
  DatabaseConnection,
  DatabaseIntrospector,
  Dialect,
  DialectAdapter,
  Driver,
  Kysely,
  QueryCompiler,
  TransactionSettings,
} from 'kysely';

/** Whether the event loop has turned lately: a setImmediate is armed at the first check after each turn. */
export class LoopTurns {
  private armedAt = -1;
  /** Turns given (statements that waited for the loop), for tests and metrics. */
  yields = 0;
  constructor(private readonly maxBusyMs: number) {}

  /** Resolves at once while the loop had a turn within maxBusyMs, else after the next turn. */
  fair(): Promise<void> | undefined {
    const now = performance.now();
    if (this.armedAt < 0) {
      this.armedAt = now;
      setImmediate(() => {
        this.armedAt = -1;
      });
      return undefined;
    }
    if (now - this.armedAt < this.maxBusyMs) return undefined;
    this.yields++;
    return new Promise<void>((resolve) => setImmediate(resolve));
  }
}

export class FairSqliteDialect implements Dialect {
  readonly turns: LoopTurns;
  constructor(
    private readonly inner: Dialect,
    maxBusyMs = 5,
  ) {
    this.turns = new LoopTurns(maxBusyMs);
  }
  createAdapter(): DialectAdapter {
    return this.inner.createAdapter();
  }
  createDriver(): Driver {
    return new FairDriver(this.inner.createDriver(), this.turns);
  }
  createQueryCompiler(): QueryCompiler {
    return this.inner.createQueryCompiler();
  }
  createIntrospector(db: Kysely<unknown>): DatabaseIntrospector {
    return this.inner.createIntrospector(db);
  }
}

class FairDriver implements Driver {
  constructor(
    private readonly inner: Driver,
    private readonly turns: LoopTurns,
  ) {}
  init(): Promise<void> {
    return this.inner.init();
  }
  async acquireConnection(): Promise<DatabaseConnection> {
    await this.turns.fair();
    return this.inner.acquireConnection();
  }
  beginTransaction(c: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    return this.inner.beginTransaction(c, settings);
  }
  commitTransaction(c: DatabaseConnection): Promise<void> {
    return this.inner.commitTransaction(c);
  }
  rollbackTransaction(c: DatabaseConnection): Promise<void> {
    return this.inner.rollbackTransaction(c);
  }
  releaseConnection(c: DatabaseConnection): Promise<void> {
    return this.inner.releaseConnection(c);
  }
  destroy(): Promise<void> {
    return this.inner.destroy();
  }
  savepoint(c: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']): Promise<void> {
    return this.inner.savepoint!(c, name, compile);
  }
  rollbackToSavepoint(
    c: DatabaseConnection,
    name: string,
    compile: QueryCompiler['compileQuery'],
  ): Promise<void> {
    return this.inner.rollbackToSavepoint!(c, name, compile);
  }
  releaseSavepoint(
    c: DatabaseConnection,
    name: string,
    compile: QueryCompiler['compileQuery'],
  ): Promise<void> {
    return this.inner.releaseSavepoint!(c, name, compile);
  }
}
