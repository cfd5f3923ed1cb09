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
import { SqliteDialect } from 'kysely';
import type { DatabaseConnection, Driver, SqliteDialectConfig } from 'kysely';
import { DelegatingDriver } from './delegating-driver.js';
import { WalFlushDriver } from './sqlite-flush.js';
import type { WalFlush } from './sqlite-flush.js';

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

/**
 * SQLite's dialect whose statements wait for the event loop's turn when it has had none for `maxBusyMs`, and,
 * given a WalFlush, whose callers wait for their commits' flush after handing the connection on (sqlite-flush.ts).
 */
export class FairSqliteDialect extends SqliteDialect {
  readonly turns: LoopTurns;
  constructor(
    config: SqliteDialectConfig,
    maxBusyMs = 5,
    private readonly wal?: WalFlush,
  ) {
    super(config);
    this.turns = new LoopTurns(maxBusyMs);
  }
  override createDriver(): Driver {
    const fair = new FairDriver(super.createDriver(), this.turns);
    return this.wal ? new WalFlushDriver(fair, this.wal) : fair;
  }
}

/**
 * Also hands the one connection on in arrival order. Kysely's own mutex wakes every waiter at each release and
 * all but one go back to sleep: with hundreds waiting (a burst of deploys) that is hundreds of wake-ups per
 * statement. Here the waiters queue, the next one is woken alone, and Kysely's mutex is always free when asked.
 */
class FairDriver extends DelegatingDriver {
  private held = false;
  private readonly waiting: (() => void)[] = [];
  constructor(
    inner: Driver,
    private readonly turns: LoopTurns,
  ) {
    super(inner);
  }
  override async acquireConnection(): Promise<DatabaseConnection> {
    await this.turns.fair();
    if (this.held) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.held = true;
    try {
      return await this.inner.acquireConnection();
    } catch (e) {
      this.handOn();
      throw e;
    }
  }
  override async releaseConnection(c: DatabaseConnection): Promise<void> {
    try {
      await this.inner.releaseConnection(c);
    } finally {
      this.handOn();
    }
  }
  private handOn(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.held = false;
  }
}
