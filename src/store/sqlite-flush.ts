/**
 * Durable SQLite commits without stopping the event loop: a group commit of our own.
 *
 * SQLite's `synchronous=FULL` fsyncs the WAL inside COMMIT, and better-sqlite3 runs COMMIT on the event loop's
 * thread, so the whole server (API, jobs, reconciler) waits out every flush: in a 200-VM burst ~620 commits
 * (p50 0.9 ms, p90 3 ms, up to 75 ms on a disk others write to) held the loop ~1 s of a 3 s burst. Instead the
 * connection runs `synchronous=NORMAL` (COMMIT writes its frames to the WAL file, no flush) and this class flushes
 * the WAL file with fsync on libuv's thread pool, one flush at a time; every commit that lands while a flush is
 * running is carried by the next one. Nobody hears of a commit before it is on disk:
 *
 * - a caller's use of the connection (a transaction, a lone statement) does not return before the WAL holding
 *   every commit made so far, its own and others', has been flushed (WalFlushDriver below; address-service's
 *   direct statements call `durable()` themselves). So a read that saw another caller's commit cannot answer a
 *   client or tell an agent about it before that commit is durable either;
 * - the flush covers whatever the WAL file holds when it starts: frames of a restarted WAL and its new header
 *   alike. SQLite itself still syncs the WAL before a checkpoint copies it into the database and syncs the
 *   database after (NORMAL's own rule), so what a checkpoint moved out of the WAL was already durable.
 *
 * That is FULL's promise (durable against power loss before anyone is told), bought with one fsync per group
 * instead of one per commit, and off the loop.
 */
import { closeSync, fsync, openSync } from 'node:fs';
import type { Database as SqliteConnection, Statement } from 'better-sqlite3';
import type { DatabaseConnection, Driver } from 'kysely';
import { DelegatingDriver } from './delegating-driver.js';

interface Waiter {
  upTo: number;
  resolve(): void;
  reject(e: unknown): void;
}

export class WalFlush {
  /** Commits seen so far (a count of connection uses that changed rows, not of rows). */
  private committed = 0;
  /** Commits known to be on disk. */
  private flushedUpTo = 0;
  private running = false;
  private waiters: Waiter[] = [];
  private fd: number | undefined;
  private changes: number;
  private readonly totalChanges: Statement;
  /** fsyncs done: a group's size is commits / flushes (tests, metrics). */
  flushes = 0;

  constructor(
    private readonly conn: SqliteConnection,
    private readonly walPath: string,
  ) {
    this.totalChanges = conn.prepare('SELECT total_changes()').pluck();
    this.changes = this.totalChanges.get() as number;
  }

  /**
   * Notes a commit if rows changed since the last look. Only counts outside a transaction: changes of an open
   * one are not committed yet (and one rolled back counts too: a flush for nothing, never one missed).
   */
  note(): void {
    if (this.conn.inTransaction || !this.conn.open) return;
    const n = this.totalChanges.get() as number;
    if (n !== this.changes) {
      this.changes = n;
      this.committed++;
    }
  }

  /** A commit total_changes does not see (DDL): the next durable() flushes. */
  changed(): void {
    this.committed++;
  }

  /** Commits not yet on disk. */
  get pending(): number {
    return this.committed - this.flushedUpTo;
  }

  /**
   * Undefined when every commit made so far is on disk; else a promise resolved once it is (rejected if the
   * flush failed: the commit is in the WAL but its durability is not known).
   */
  durable(): Promise<void> | undefined {
    this.note();
    return this.flushed();
  }

  /** As durable(), for commits already noted: no look at the connection. */
  flushed(): Promise<void> | undefined {
    if (this.flushedUpTo >= this.committed) return undefined;
    const upTo = this.committed;
    const p = new Promise<void>((resolve, reject) => this.waiters.push({ upTo, resolve, reject }));
    this.flush();
    return p;
  }

  /** Flushes what is left and lets go of the WAL file (before the connection closes). */
  async close(): Promise<void> {
    await this.durable();
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private flush(): void {
    if (this.running) return;
    this.running = true;
    const upTo = this.committed;
    let fd: number;
    try {
      // Opened at the first flush: the WAL file exists once anything has been committed.
      fd = this.fd ??= openSync(this.walPath, 'r');
    } catch (e) {
      this.done(upTo, e);
      return;
    }
    fsync(fd, (err) => this.done(upTo, err ?? undefined));
  }

  private done(upTo: number, err: unknown): void {
    this.running = false;
    this.flushes++;
    if (err === undefined) this.flushedUpTo = Math.max(this.flushedUpTo, upTo);
    const left: Waiter[] = [];
    for (const w of this.waiters) {
      if (w.upTo > upTo) left.push(w);
      else if (err === undefined) w.resolve();
      else w.reject(err);
    }
    this.waiters = left;
    if (left.length > 0) this.flush();
  }
}

/**
 * Every use of the connection through Kysely (a lone statement, a transaction, `connection().execute`) ends
 * with the connection handed on to the next user and then the caller waiting for the flush that covers every
 * commit so far: the database keeps working while the disk flushes, and the caller is not answered before.
 */
export class WalFlushDriver extends DelegatingDriver {
  constructor(
    inner: Driver,
    private readonly wal: WalFlush,
  ) {
    super(inner);
  }
  override async releaseConnection(c: DatabaseConnection): Promise<void> {
    // Noted before the connection is handed on: the next user may open a transaction at once.
    this.wal.note();
    await this.inner.releaseConnection(c);
    await this.wal.flushed();
  }
}
