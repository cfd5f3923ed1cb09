/**
 * The job path's transactions committed together on SQLite: the async requests' queuing transactions and the
 * jobs' result transactions (CommandContext.resultTransaction) that queue while the one connection is busy run in
 * one BEGIN IMMEDIATE … COMMIT, each inside a SAVEPOINT of its own. A COMMIT (its WAL write, and under FULL the
 * flush every caller waits for) is the dearest statement of a job on SQLite, and consecutive jobs touch the same
 * pages (the jobs table, its indexes, the addresses they took), so a group writes them once (docs/benchmarks.md,
 * branch jobcpu4).
 *
 * One member's failure never undoes another's work: its savepoint is rolled back and the others commit. A member
 * that failed with anything but a CloudStack error or a lost lease (the two a transaction passes through as they
 * are) is run again alone through transaction(), so that its error is mapped, and retried, exactly as it would have
 * been without the group. When the group itself fails before COMMIT (BEGIN refused, a savepoint lost with the
 * transaction rolled back under it), nothing of it committed and every member is run again alone. A failure after
 * COMMIT (the flush of a committed group) is every successful member's error, as it would have been its own.
 *
 * SQLite only: it has one writer, so the members would have run one after the other anyway. PostgreSQL and MariaDB
 * keep a transaction per job (a group would hold row locks across jobs, and a deadlock would take them all).
 */
import { performance } from 'node:perf_hooks';
import type { Statement } from 'better-sqlite3';
import type { Store, Tx } from '../../store/db.js';
import { sqliteTransaction, transaction } from '../../store/db.js';
import { CloudStackError } from '../../errors/catalogue.js';
import { LeaseLostError } from './repository.js';

interface Member {
  fn: (tx: Tx) => Promise<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  /** Set once it ran inside the group: its value, or its error (its savepoint rolled back). */
  done?: { ok: true; value: unknown } | { ok: false; error: unknown };
}

/** A group's time (CommitGroups' `ms`), chosen in docs/benchmarks.md (branch tags5). */
const DEFAULT_MAX_MS = 5;

const GROUP_STATEMENTS = {
  begin: 'BEGIN IMMEDIATE',
  commit: 'COMMIT',
  rollback: 'ROLLBACK',
  savepoint: 'SAVEPOINT stacknet_group_member',
  release: 'RELEASE stacknet_group_member',
  rollbackTo: 'ROLLBACK TO stacknet_group_member',
} as const;
type GroupStatement = keyof typeof GROUP_STATEMENTS;

/**
 * The group's own statements (BEGIN, a SAVEPOINT and a RELEASE per member, COMMIT), run on the better-sqlite3
 * connection itself while the group holds it (inside `connection().execute`, so no other user of the store can
 * come between them), and counted in `store.statements` as Kysely counts the others. Through Kysely each was an
 * async call, a compiled query's trip through the driver, the statement cache and a log event, and an await:
 * most of the cost of a statement that SQLite runs in a microsecond (docs/benchmarks.md, branch sqlite8), and a
 * job had 2.4 of them.
 */
function groupStatements(store: Store): (s: GroupStatement) => void {
  const sqlite = store.sqlite;
  if (!sqlite) throw new Error('commit groups run on a SQLite store only');
  const p = {} as Record<GroupStatement, Statement>;
  for (const k of Object.keys(GROUP_STATEMENTS) as GroupStatement[])
    p[k] = sqlite.prepare(GROUP_STATEMENTS[k]);
  return (s) => {
    store.statements.count++;
    p[s].run();
  };
}

/** Errors a transaction hands on unchanged (transaction() in src/store/db.ts), so a group may too. */
const passesThrough = (e: unknown): boolean => e instanceof CloudStackError || e instanceof LeaseLostError;

const perStore = new WeakMap<Store, CommitGroups>();

/** The store's commit groups (one per store, shared by the API and the job runner); undefined but on SQLite. */
export function commitGroups(store: Store): CommitGroups | undefined {
  if (store.kind !== 'sqlite') return undefined;
  let g = perStore.get(store);
  if (!g) perStore.set(store, (g = new CommitGroups(store)));
  return g;
}

/** `fn` in a transaction of its own, or in a commit group on SQLite. */
export function groupedTransaction<T>(store: Store, fn: (tx: Tx) => Promise<T>): Promise<T> {
  const g = commitGroups(store);
  return g ? g.run(fn) : transaction(store, fn);
}

export class CommitGroups {
  private queue: Member[] = [];
  private draining = false;
  /** Groups committed and their members, for the tests and the bench's curiosity. */
  readonly stats = { groups: 0, members: 0 };

  private readonly statements: (s: GroupStatement) => void;
  private readonly maxMembers: number;
  private readonly maxMs: number;
  private readonly now: () => number;

  /**
   * `members`: members per group at most, a bound on what a failed group runs again. `ms`: a group takes no
   * further member once this long has passed since its BEGIN, a bound on how long it holds the connection (the
   * requests' reads and the router passes queue behind it); the member under way finishes, so a group holds it
   * for `ms` and one member's time at most (and its COMMIT). A full group of 64 held SQLite 16 ms at the median and
   * 32–75 ms at the tail on the loaded bench machine (~0.25 ms a member; the event loop runs the server's other
   * work between a member's statements); at 5 ms a group still takes ~20 members at that pace, and the COMMIT it
   * saves is spread thin past a few: groups averaged 8–9 members at 64 clients with or without the bound
   * (docs/benchmarks.md, branch tags5).
   */
  constructor(
    private readonly store: Store,
    limits: { members?: number; ms?: number; now?: () => number } = {},
  ) {
    this.statements = groupStatements(store);
    this.maxMembers = limits.members ?? 64;
    this.maxMs = limits.ms ?? DEFAULT_MAX_MS;
    this.now = limits.now ?? (() => performance.now());
  }

  /** Runs `fn` in a transaction shared with the other jobs' that queue meanwhile; settles after the COMMIT. */
  run<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      if (!this.draining) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.queue.length > 0) await this.group(this.queue.splice(0, this.maxMembers));
    } finally {
      this.draining = false;
    }
  }

  private async group(members: Member[]): Promise<void> {
    let committed = false;
    try {
      await this.store.db.connection().execute(async (conn) => {
        const run = this.statements;
        run('begin');
        const tx = sqliteTransaction(this.store, conn);
        // From the moment it holds the connection and SQLite's write lock.
        const started = this.now();
        try {
          for (let i = 0; i < members.length; i++) {
            if (i > 0 && this.now() - started >= this.maxMs) {
              // Past its time: the rest go first in the next group, in their order.
              this.queue.unshift(...members.splice(i));
              break;
            }
            const m = members[i]!;
            run('savepoint');
            try {
              m.done = { ok: true, value: await m.fn(tx) };
            } catch (error) {
              m.done = { ok: false, error };
              // Throws when the transaction is gone (SQLite rolled it back on its own): the whole group reruns.
              run('rollbackTo');
            }
            run('release');
          }
          run('commit');
          committed = true;
        } catch (e) {
          if (!committed)
            try {
              run('rollback');
            } catch {
              // Nothing to roll back (SQLite ended the transaction itself): the members run again alone.
            }
          throw e;
        }
      });
    } catch (e) {
      for (const m of members) {
        if (!committed) this.alone(m);
        else if (m.done?.ok) m.reject(e);
        else this.settleFailed(m);
      }
      return;
    }
    this.stats.groups++;
    this.stats.members += members.length;
    for (const m of members) {
      if (m.done?.ok) m.resolve(m.done.value);
      else this.settleFailed(m);
    }
  }

  private settleFailed(m: Member): void {
    const error = m.done && !m.done.ok ? m.done.error : undefined;
    if (passesThrough(error)) m.reject(error);
    else this.alone(m);
  }

  private alone(m: Member): void {
    transaction(this.store, m.fn).then(m.resolve, m.reject);
  }
}
