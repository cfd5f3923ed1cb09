/**
 * Guarantee 2 under real concurrency: 8 OS processes (sharing the database file on SQLite, with their own
 * connections elsewhere) allocate from one /22 until it is exhausted, freeing addresses at random on the way.
 * The verdict comes from the database, not from what the workers were told.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { createTestStore, testDbKinds } from '../store/testing/test-databases.js';
import { addressFromKey, firstHost, formatIp, lastHost, parseCidr } from '../ipam/index.js';
import type { Strategy } from '../ipam/index.js';
import type { WorkerConfig, WorkerReport } from './testing/concurrency-worker.js';

const WORKER = fileURLToPath(new URL('./testing/concurrency-worker.ts', import.meta.url));
const PROCESSES = 8;
const CIDR = '10.22.0.0/22';

interface Running {
  ready: Promise<void>;
  go(): void;
  report: Promise<WorkerReport>;
}

function startWorker(cfg: WorkerConfig, children: Set<number>): Running {
  const child = spawn(process.execPath, ['--import', 'tsx', WORKER, JSON.stringify(cfg)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  if (child.pid) children.add(child.pid);
  let out = '';
  let err = '';
  let markReady: () => void = () => undefined;
  const ready = new Promise<void>((r) => (markReady = r));
  const report = new Promise<WorkerReport>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.startsWith('ready\n')) markReady();
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (child.pid) children.delete(child.pid);
      const line = out.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(line) as WorkerReport);
      } catch {
        reject(new Error(`worker ${cfg.worker} exited ${code} without a report: ${out}\n${err}`));
      }
      markReady();
    });
  });
  report.catch(() => undefined); // awaited later; a worker dying before then must not be "unhandled"
  return { ready, go: () => child.stdin.end('go\n'), report };
}

for (const kind of testDbKinds()) {
  test(`${kind}: ${PROCESSES} processes allocating one /22 to exhaustion never share an address`, async (t) => {
    const { store, cleanup } = await createTestStore(kind);
    const children = new Set<number>();
    t.after(async () => {
      for (const pid of children) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      await cleanup();
    });
    const scope = 'net:22';
    const strategies: Strategy[] = ['random', 'lowest', 'random', 'last'];
    const workers = Array.from({ length: PROCESSES }, (_, i) =>
      startWorker(
        {
          url: store.url,
          scope,
          cidr: CIDR,
          strategy: strategies[i % strategies.length] as Strategy,
          inTransaction: i % 2 === 1,
          releaseProbability: 0.15,
          worker: i,
        },
        children,
      ),
    );
    await Promise.all(workers.map((w) => w.ready));
    const started = performance.now();
    for (const w of workers) w.go();
    const reports = await Promise.all(workers.map((w) => w.report));
    const seconds = ((performance.now() - started) / 1000).toFixed(1);

    for (const r of reports) {
      assert.deepEqual(r.others, [], `worker ${r.worker} saw errors`);
      assert.ok('kind' in r.end, `worker ${r.worker} ended with a raw error: ${JSON.stringify(r.end)}`);
      assert.equal(r.end.kind, 'InsufficientAddressCapacity', `worker ${r.worker}: ${r.end.message}`);
      assert.equal(r.end.httpCode, 533);
      assert.equal(r.end.csErrorCode, 4320);
      assert.match(r.end.message, /net:22 has no free address/);
    }

    const cidr = parseCidr(CIDR);
    const rows = await store.db
      .selectFrom('ip_allocations')
      .select(['address', 'family', 'owner_id'])
      .where('scope', '=', scope)
      .execute();
    const dup = await sql<{ n: number }>`select count(*) as n from (
        select scope, family, address from ip_allocations group by scope, family, address having count(*) > 1
      ) d`.execute(store.db);
    assert.equal(Number(dup.rows[0]?.n), 0, 'duplicate addresses in the database');
    const lo = firstHost(cidr).value + 1n; // the gateway is never handed out
    const hi = lastHost(cidr).value;
    const ips = new Set<string>();
    for (const r of rows) {
      const a = addressFromKey(r.family as 4 | 6, r.address);
      assert.equal(a.family, 4);
      assert.ok(a.value >= lo && a.value <= hi, `${formatIp(a)} is outside the pool`);
      ips.add(formatIp(a));
    }
    assert.equal(ips.size, rows.length);
    // Exhaustion was real: the last worker to stop found every address taken, and nobody freed one since.
    assert.equal(rows.length, Number(hi - lo + 1n));
    // What each worker believes it holds is exactly what the database says it owns.
    for (const r of reports) {
      const owned = rows
        .filter((row) => Number(row.owner_id) === r.worker)
        .map((row) => formatIp(addressFromKey(4, row.address)))
        .sort();
      assert.deepEqual([...r.held].sort(), owned, `worker ${r.worker}'s addresses differ from the database`);
    }
    const total = reports.reduce((n, r) => n + r.allocations, 0);
    const releases = reports.reduce((n, r) => n + r.releases, 0);
    const lost = reports.reduce((n, r) => n + r.lostRaces, 0);
    // On SQLite a process can lose every BEGIN IMMEDIATE to the others (the busy handler sleeps while they
    // re-take the lock) and so allocate nothing before the pool is full; exhaustion is still what it sees.
    t.diagnostic(
      `${kind}: ${total} allocations, ${releases} releases, ${lost} lost races over ${PROCESSES} processes ` +
        `in ${seconds} s (per process: ${reports.map((r) => r.allocations).join(' ')})`,
    );
  });
}
