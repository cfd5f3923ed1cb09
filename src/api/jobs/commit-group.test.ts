/**
 * Commit groups (SQLite): transactions that queue while the connection is busy commit together, each in its own
 * savepoint; one member's failure never undoes another's work, a failure the group cannot confine (the
 * transaction lost under it) runs every member again alone, and each member's work commits exactly once.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { openStore } from '../../store/db.js';
import type { Store, Tx } from '../../store/db.js';
import { CloudStackError } from '../../errors/catalogue.js';
import { CommitGroups, commitGroups } from './commit-group.js';
import { LeaseLostError } from './repository.js';

const marks = async (store: Store): Promise<string[]> =>
  (await sql<{ k: string }>`select k from cg_marks order by k`.execute(store.db)).rows.map((r) => r.k);
const mark = (tx: Tx, k: string) => sql`insert into cg_marks (k) values (${k})`.execute(tx);

describe('commit groups (SQLite)', () => {
  let dir: string;
  let store: Store;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'stacknet-cg-'));
    // The default sync (FULL: the store's own flush after COMMIT) on a file, as a server runs it.
    store = await openStore(`sqlite:${join(dir, 'cg.db')}`);
    await sql`create table cg_marks (k text primary key)`.execute(store.db);
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('one group per store, none on other databases', () => {
    assert.equal(commitGroups(store), commitGroups(store));
    assert.equal(commitGroups({ ...store, kind: 'postgres' } as Store), undefined);
  });

  test('transactions queued meanwhile share a COMMIT, and all of them commit', async () => {
    await sql`delete from cg_marks`.execute(store.db);
    const g = new CommitGroups(store);
    const keys = Array.from({ length: 40 }, (_, i) => `a${String(i).padStart(2, '0')}`);
    const values = await Promise.all(keys.map((k) => g.run(async (tx) => (await mark(tx, k), k))));
    assert.deepEqual(values, keys);
    assert.deepEqual(await marks(store), keys);
    assert.equal(g.stats.members, 40);
    assert.ok(g.stats.groups < 40, `40 transactions in ${g.stats.groups} groups`);
  });

  test('a group takes no further member once its time is up; the rest go next, in their order', async () => {
    await sql`delete from cg_marks`.execute(store.db);
    // Time as the group sees it, moved on by each member's work: 4 ms each against a bound of 10.
    let t = 0;
    const g = new CommitGroups(store, { ms: 10, now: () => t });
    const sizes: number[] = [];
    let inGroup = 0;
    const keys = Array.from({ length: 10 }, (_, i) => `t${i}`);
    const values = await Promise.all(
      keys.map((k) =>
        g.run(async (tx) => {
          // A new group began since the last member if the count of groups moved (stats count committed ones).
          if (sizes.length === g.stats.groups) sizes.push(0);
          sizes[sizes.length - 1]!++;
          inGroup++;
          t += 4;
          await mark(tx, k);
          return k;
        }),
      ),
    );
    assert.equal(inGroup, 10, 'each member ran once');
    assert.deepEqual(values, keys);
    assert.deepEqual(await marks(store), keys, 'every member committed');
    // The first run() starts a group of one at once; the other nine queue meanwhile and go three by three: after
    // three members 12 ms have passed, the fourth waits for the next group (64 at once without the bound).
    assert.deepEqual(sizes, [1, 3, 3, 3]);
    assert.deepEqual(g.stats, { groups: 4, members: 10 });
  });

  test('the time bound holds on the real clock', async () => {
    await sql`delete from cg_marks`.execute(store.db);
    const g = new CommitGroups(store, { ms: 5 });
    const keys = Array.from({ length: 12 }, (_, i) => `r${String(i).padStart(2, '0')}`);
    // Each member's work takes 3 ms at least: after two of them a group is past its 5 ms, whatever the load.
    await Promise.all(
      keys.map((k) =>
        g.run(async (tx) => {
          await new Promise((r) => setTimeout(r, 3));
          await mark(tx, k);
        }),
      ),
    );
    assert.deepEqual(await marks(store), keys);
    assert.equal(g.stats.members, 12);
    assert.ok(
      g.stats.groups >= 1 + 11 / 2,
      `12 members in ${g.stats.groups} groups of 2 at most (after the first)`,
    );
  });

  test("a member's failure undoes its own work only, and is its caller's error as it was", async () => {
    await sql`delete from cg_marks`.execute(store.db);
    const g = new CommitGroups(store);
    const refused = new CloudStackError('InvalidParameterValue', 'refused');
    const lost = new LeaseLostError('lost');
    const runs = { refused: 0, lost: 0 };
    const results = await Promise.allSettled([
      g.run((tx) => mark(tx, 'b1')),
      g.run(async (tx) => {
        runs.refused++;
        await mark(tx, 'b2');
        throw refused;
      }),
      g.run((tx) => mark(tx, 'b3')),
      g.run(async (tx) => {
        runs.lost++;
        await mark(tx, 'b4');
        throw lost;
      }),
      // A unique violation: the statement fails, its savepoint is undone, the transaction goes on.
      g.run((tx) => mark(tx, 'b1')),
      g.run((tx) => mark(tx, 'b5')),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'rejected', 'fulfilled', 'rejected', 'rejected', 'fulfilled'],
    );
    assert.equal((results[1] as PromiseRejectedResult).reason, refused);
    assert.equal((results[3] as PromiseRejectedResult).reason, lost);
    // Anything else is run again alone, so that transaction() maps it as it always did.
    const dup = (results[4] as PromiseRejectedResult).reason as unknown;
    assert.ok(dup instanceof CloudStackError && dup.kind === 'InternalError', String(dup));
    assert.deepEqual(runs, { refused: 1, lost: 1 }, 'a CloudStack error or a lost lease is not run again');
    assert.deepEqual(await marks(store), ['b1', 'b3', 'b5']);
  });

  test('a member that fails once for another reason succeeds when run again alone', async () => {
    await sql`delete from cg_marks`.execute(store.db);
    const g = new CommitGroups(store);
    let runs = 0;
    const flaky = g.run(async (tx) => {
      runs++;
      await mark(tx, `c-flaky-${runs}`);
      if (runs === 1) throw new Error('transient');
      return runs;
    });
    const others = ['c1', 'c2'].map((k) => g.run((tx) => mark(tx, k)));
    assert.equal(await flaky, 2);
    await Promise.all(others);
    assert.deepEqual(await marks(store), ['c-flaky-2', 'c1', 'c2']);
  });

  test('a transaction lost under the group: every member runs again alone, each committed once', async () => {
    await sql`delete from cg_marks`.execute(store.db);
    const g = new CommitGroups(store);
    let runs = 0;
    const results = await Promise.allSettled([
      g.run((tx) => mark(tx, 'd1')),
      g.run(async (tx) => {
        runs++;
        await mark(tx, `d-bad-${runs}`);
        // What SQLite does on its own after some errors (SQLITE_FULL, SQLITE_IOERR): the whole transaction is gone.
        if (runs === 1) await sql`rollback`.execute(tx);
        throw new CloudStackError('InvalidParameterValue', 'refused');
      }),
      g.run((tx) => mark(tx, 'd3')),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'rejected', 'fulfilled'],
    );
    assert.equal(runs, 2);
    assert.deepEqual(await marks(store), ['d1', 'd3']);
    // And the connection is usable after.
    await g.run((tx) => mark(tx, 'd4'));
    assert.deepEqual(await marks(store), ['d1', 'd3', 'd4']);
  });
});
