/**
 * `npm run bench:ipam`: allocation throughput and latency on SQLite, PostgreSQL and MariaDB. Prints one JSON
 * object per line on stdout ({"bench","db","sync","page_bytes","cache_mib","pool","fill","concurrency","ops_per_s",
 * "p50_ms","p99_ms"}); progress goes to stderr. Method and figures: docs/benchmarks.md, section "IPAM allocation".
 *
 *   npm run bench:ipam                       all of it (about 2–3 minutes on 2 cores)
 *   STACKNET_BENCH_DBS=sqlite npm run bench:ipam
 *   STACKNET_BENCH_ONLY=throughput npm run bench:ipam     (or latency)
 *
 * PostgreSQL and MariaDB must be running as for the tests (127.0.0.1, see README); each run gets fresh databases
 * and drops them afterwards.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, fdatasyncSync, fsyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { sql } from 'kysely';
import { openStore, transaction } from '../src/store/db.js';
import type { DbKind, Store } from '../src/store/db.js';
import { createTestDatabase } from '../src/store/testing/test-databases.js';
import type { TestDatabase } from '../src/store/testing/test-databases.js';
import {
  broadcastAddress,
  firstHost,
  lastHost,
  networkAddress,
  parseCidr,
  randomBigIntFrom,
  RangeSet,
  valueKey,
} from '../src/ipam/index.js';
import type { Cidr, RandomBigInt } from '../src/ipam/index.js';
import { seededRng } from '../src/ipam/seeded-rng.js';
import { allocateAddress, allocateAddressTx, releaseAddress } from '../src/addresses/address-service.js';
import type { AllocateRequest } from '../src/addresses/address-service.js';
import { CANDIDATES } from '../src/addresses/address-repository.js';

interface Result {
  bench: string;
  db: string;
  /** What a commit waited for: SQLite `synchronous` (FULL: fsync per commit, NORMAL: WAL write only),
   * PostgreSQL `synchronous_commit`, MariaDB `innodb_flush_log_at_trx_commit`, as read from the database. */
  sync: string;
  /** The database's page size in bytes (SQLite `page_size`, PostgreSQL `block_size`, InnoDB `innodb_page_size`). */
  page_bytes: number;
  /** Its page cache in MiB (SQLite `cache_size`, PostgreSQL `shared_buffers`, InnoDB `innodb_buffer_pool_size`). */
  cache_mib: number;
  pool: string;
  fill: string;
  concurrency: number;
  ops_per_s: number;
  p50_ms: number;
  p99_ms: number;
}

const DBS = (process.env.STACKNET_BENCH_DBS ?? 'sqlite,postgres,mysql').split(',') as DbKind[];
const ONLY = process.env.STACKNET_BENCH_ONLY;
const THROUGHPUT_SECONDS = Number(process.env.STACKNET_BENCH_SECONDS ?? 3);
const LATENCY_SAMPLES = Number(process.env.STACKNET_BENCH_SAMPLES ?? 1000);
const WARMUP_SAMPLES = 20;
/** Half-width of the filled neighbourhood around each place the random search will look. */
const FILL_HALF_WIDTH = 32n;

const log = (msg: string) => process.stderr.write(`bench:ipam ${msg}\n`);

function emit(r: Result): void {
  process.stdout.write(`${JSON.stringify(r)}\n`);
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

const round = (x: number, digits: number) => Number(x.toFixed(digits));

/** A guest network's request: host addresses, gateway (and v4 network/broadcast) never handed out. */
function guestRequest(cidr: Cidr, scope: string, randomBigInt: RandomBigInt): AllocateRequest {
  return {
    scope,
    pool: RangeSet.of({ family: cidr.family, start: firstHost(cidr).value, end: lastHost(cidr).value }),
    gateway: firstHost(cidr),
    network: cidr.family === 4 ? networkAddress(cidr) : undefined,
    broadcast: cidr.family === 4 ? broadcastAddress(cidr) : undefined,
    strategy: 'random',
    // The columns a guest NIC's address carries (networks/service.ts), so the row and the index entries it
    // writes are those of a real allocation; uuid and range_id stay NULL as they do for an isolated network.
    owner: { kind: 'nic', id: 1 },
    zoneId: 1,
    accountId: 2,
    domainId: 1,
    networkId: 1,
    vmId: 1,
    randomBigInt,
  };
}

/** What the store really runs with (see Result.sync, page_bytes and cache_mib), as read back from the database. */
async function storageSettings(store: Store): Promise<Pick<Result, 'sync' | 'page_bytes' | 'cache_mib'>> {
  const mib = (bytes: number) => round(bytes / 2 ** 20, 1);
  if (store.kind === 'sqlite') {
    const level = Number(store.sqlite?.pragma('synchronous', { simple: true }));
    const pageBytes = Number(store.sqlite?.pragma('page_size', { simple: true }));
    const cache = Number(store.sqlite?.pragma('cache_size', { simple: true })); // < 0: KiB, > 0: pages
    return {
      // FULL is SQLite's NORMAL plus the store's own flush of the WAL before any caller is answered.
      sync: store.wal
        ? 'FULL (NORMAL + WAL flush off the loop)'
        : (['OFF', 'NORMAL', 'FULL', 'EXTRA'][level] ?? String(level)),
      page_bytes: pageBytes,
      cache_mib: mib(cache < 0 ? -cache * 1024 : cache * pageBytes),
    };
  }
  if (store.kind === 'postgres') {
    const r = await sql<{
      synchronous_commit: string;
      block_size: string;
      shared_buffers: string;
    }>`select current_setting('synchronous_commit') as synchronous_commit, current_setting('block_size') as block_size,
      (select setting from pg_settings where name = 'shared_buffers') as shared_buffers`.execute(store.db);
    const row = r.rows[0];
    return {
      sync: `synchronous_commit=${row?.synchronous_commit ?? '?'}`,
      page_bytes: Number(row?.block_size),
      cache_mib: mib(Number(row?.shared_buffers) * Number(row?.block_size)),
    };
  }
  const r = await sql<{
    flush: number;
    page: number;
    pool: number;
  }>`select @@innodb_flush_log_at_trx_commit as flush, @@innodb_page_size as page, @@innodb_buffer_pool_size as pool`.execute(
    store.db,
  );
  const row = r.rows[0];
  return {
    sync: `innodb_flush_log_at_trx_commit=${row?.flush ?? '?'}`,
    page_bytes: Number(row?.page),
    cache_mib: mib(Number(row?.pool)),
  };
}

/** The set allocateAddress actually chooses from for `req` (pool minus gateway/network/broadcast). */
function effectivePool(req: AllocateRequest): RangeSet {
  const reserved = [req.gateway, req.network, req.broadcast]
    .filter((a) => a !== undefined)
    .map((a) => ({ family: a.family, start: a.value, end: a.value }));
  return req.pool.subtract(reserved);
}

async function bulkInsert(
  store: Store,
  scope: string,
  family: number,
  values: Iterable<bigint>,
): Promise<number> {
  const now = Date.now();
  let batch: {
    scope: string;
    family: number;
    address: string;
    state: 'Allocated';
    created: number;
    updated: number;
  }[] = [];
  let n = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    await store.db.insertInto('ip_allocations').values(batch).execute();
    n += batch.length;
    batch = [];
  };
  for (const v of values) {
    batch.push({ scope, family, address: valueKey(v), state: 'Allocated', created: now, updated: now });
    if (batch.length >= 1000) await flush();
  }
  await flush();
  return n;
}

async function withDatabase<T>(kind: DbKind, fn: (url: string) => Promise<T>): Promise<T> {
  const tdb: TestDatabase = await createTestDatabase(kind);
  if (kind === 'postgres') {
    // CREATE DATABASE copies the template through the WAL; without a checkpoint the first seconds of commits
    // queue behind that flush and the first figure measures it.
    const admin = await openStore(tdb.url, { poolSize: 1 });
    await sql`checkpoint`.execute(admin.db).catch(() => undefined);
    await admin.close();
  }
  try {
    return await fn(tdb.url);
  } finally {
    await tdb.drop();
  }
}

/**
 * allocate+commit, `concurrency` callers in this process, for `seconds`. `inTransaction`: the way the API's
 * services allocate, `allocateAddressTx` inside `transaction()` (there the NIC / public IP row and the event
 * would be written too), instead of `allocateAddress`'s own transaction.
 */
async function throughput(
  db: string,
  url: string,
  concurrency: number,
  inTransaction = false,
): Promise<Result> {
  const store = await openStore(url, { poolSize: concurrency });
  try {
    const cidr = parseCidr('10.0.0.0/12');
    const scope = `net:tp${concurrency}${inTransaction ? 'tx' : ''}`;
    const req = guestRequest(cidr, scope, randomBigIntFrom(seededRng(concurrency)));
    const allocate = inTransaction
      ? () => transaction(store, (tx) => allocateAddressTx(tx, req))
      : () => allocateAddress(store, req);
    // Warm up connections, statements and caches for half a second.
    const warm = performance.now() + 500;
    while (performance.now() < warm) await allocate();
    const latencies: number[] = [];
    const deadline = performance.now() + THROUGHPUT_SECONDS * 1000;
    const cpu0 = process.cpuUsage();
    const started = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < deadline) {
          const t0 = performance.now();
          await allocate();
          latencies.push(performance.now() - t0);
        }
      }),
    );
    const elapsed = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpu0);
    // CPU this process spent per allocation (for SQLite that includes the database engine): on a busy machine
    // the wall-clock rate mostly measures preemption, this does not.
    const cpuPerOp = (cpu.user + cpu.system) / latencies.length;
    log(
      `${db} ${process.env.STACKNET_SQLITE_SYNC && db === 'sqlite' ? `${process.env.STACKNET_SQLITE_SYNC} ` : ''}concurrency ${concurrency}${inTransaction ? ' in transaction()' : ''}: ${cpuPerOp.toFixed(0)} µs CPU per allocation in this process ` +
        `(a core's worth: ${Math.round(1e6 / cpuPerOp)}/s)`,
    );
    latencies.sort((a, b) => a - b);
    return {
      bench: inTransaction ? 'allocate-in-transaction' : 'allocate-commit',
      db,
      ...(await storageSettings(store)),
      pool: '/12',
      fill: '0%',
      concurrency,
      ops_per_s: Math.round(latencies.length / elapsed),
      p50_ms: round(percentile(latencies, 50), 3),
      p99_ms: round(percentile(latencies, 99), 3),
    };
  } finally {
    await store.close();
  }
}

interface LatencyCase {
  pool: string;
  cidr: string;
}

const LATENCY_CASES: LatencyCase[] = [
  { pool: '/24', cidr: '10.24.0.0/24' },
  { pool: '/16', cidr: '10.16.0.0/16' },
  { pool: '/8', cidr: '10.0.0.0/8' },
  { pool: '/64', cidr: 'fd00:64:0:1::/64' },
];

/**
 * Rows that make the pool look 50% full wherever the allocator will look. Small pools (/24, /16) get every
 * other address for real. Big ones (/8, /64) get every other address in a ±32 neighbourhood of each random
 * start point the seeded search will draw (replayed from the same seed), so the search meets exactly 50%
 * density without inserting millions of rows.
 */
function fillValues(pool: RangeSet, seed: number, draws: number): Iterable<bigint> {
  const lo = pool.first() as bigint;
  const hi = pool.last() as bigint;
  const size = hi - lo + 1n;
  if (size <= 1n << 16n) {
    const out: bigint[] = [];
    for (let v = lo + (lo % 2n); v <= hi; v += 2n) out.push(v);
    return out;
  }
  const replay = randomBigIntFrom(seededRng(seed));
  const chosen = new Set<bigint>();
  for (let i = 0; i < draws; i++) {
    const centre = pool.at(replay(pool.size()));
    let from = centre - FILL_HALF_WIDTH;
    if (from < lo) from = lo;
    from += from % 2n;
    for (let v = from; v <= centre + FILL_HALF_WIDTH && v <= hi; v += 2n) chosen.add(v);
  }
  return chosen;
}

/**
 * MariaDB's buffer pool for the latency cases. The filled /8 and /64 (~600,000 rows with their indexes) do not fit
 * the 128 MiB a Debian MariaDB starts with, and every lookup that misses it reads a 16 KiB page: measured, that
 * made the half-full /8 (filled before the /64, so evicted first) ~0.1 ms slower at p50 than the /64 and doubled
 * its p99, a figure of the server's cache, not of the allocator (docs/benchmarks.md). A server holding a really
 * half-full /8 (8 million rows) would be sized for it; so the pool is raised to STACKNET_BENCH_INNODB_POOL_MB
 * (1024; 0 leaves the server alone) for the run and set back afterwards. Returns what sets it back.
 */
async function sizeInnodbPool(store: Store): Promise<() => Promise<void>> {
  const wantMb = Number(process.env.STACKNET_BENCH_INNODB_POOL_MB ?? 1024);
  const current = async () =>
    Number((await sql<{ v: number }>`select @@innodb_buffer_pool_size as v`.execute(store.db)).rows[0]?.v);
  const resize = async (bytes: number) => {
    await sql`set global innodb_buffer_pool_size = ${sql.raw(String(bytes))}`.execute(store.db);
    for (let i = 0; i < 100 && (await current()) !== bytes; i++) await new Promise((r) => setTimeout(r, 100));
    log(`mysql innodb_buffer_pool_size now ${Math.round((await current()) / 2 ** 20)} MiB`);
  };
  const before = await current();
  if (wantMb <= 0 || before >= wantMb * 2 ** 20) return async () => undefined;
  await resize(wantMb * 2 ** 20);
  return () => resize(before);
}

/**
 * One allocation at a time (each its own commit), released again untimed so the fill stays where it is. All
 * eight cases (4 pools × 2 fills) live in one table and take turns sample by sample, so the background noise of
 * the machine (other processes' fsyncs, the database's checkpoints after the bulk fills) falls on all of them
 * alike and the comparison between pools is about the search, which is what guarantee 3 is about.
 */
async function latencies(db: string, url: string): Promise<Result[]> {
  const store = await openStore(url, { poolSize: 2 });
  const restorePool = store.kind === 'mysql' ? await sizeInnodbPool(store) : async () => undefined;
  try {
    const cases: { c: LatencyCase; fill: 0 | 50; req: AllocateRequest; samples: number[] }[] = [];
    for (const c of LATENCY_CASES) {
      for (const fill of [0, 50] as const) {
        const cidr = parseCidr(c.cidr);
        const seed = 1000 + fill + c.cidr.length;
        const scope = `net:lat${c.pool.slice(1)}-${fill}`;
        const req = guestRequest(cidr, scope, randomBigIntFrom(seededRng(seed)));
        if (fill === 50) {
          // Each allocation draws CANDIDATES random candidates; the rare one that finds all taken (0.4% at 50%)
          // draws up to 4 more for ipam's probes, which shifts the later ones: 10% slack covers that.
          const draws = Math.ceil((LATENCY_SAMPLES + WARMUP_SAMPLES) * CANDIDATES * 1.1) + 64;
          const n = await bulkInsert(store, scope, cidr.family, fillValues(effectivePool(req), seed, draws));
          log(`${db} ${c.pool}: filled ${n} rows`);
        }
        cases.push({ c, fill, req, samples: [] });
      }
    }
    if (store.kind === 'postgres') await sql`analyze ip_allocations`.execute(store.db);
    if (store.kind === 'postgres') await sql`checkpoint`.execute(store.db).catch(() => undefined);
    if (store.kind === 'mysql') await sql`analyze table ip_allocations`.execute(store.db);
    execFileSync('sync'); // the fill's writes on disk before the first timed sample, not during
    for (let i = 0; i < LATENCY_SAMPLES + WARMUP_SAMPLES; i++) {
      for (const k of cases) {
        const t0 = performance.now();
        const a = await allocateAddress(store, k.req);
        const dt = performance.now() - t0;
        if (i >= WARMUP_SAMPLES) k.samples.push(dt);
        await releaseAddress(store.db, { id: a.id });
      }
    }
    const settings = await storageSettings(store);
    return cases.map(({ c, fill, samples }) => {
      samples.sort((x, y) => x - y);
      const total = samples.reduce((sum, x) => sum + x, 0) / 1000;
      return {
        bench: 'allocate-latency',
        db,
        ...settings,
        pool: c.pool,
        fill: `${fill}%`,
        concurrency: 1,
        ops_per_s: Math.round(samples.length / total),
        p50_ms: round(percentile(samples, 50), 3),
        p99_ms: round(percentile(samples, 99), 3),
      };
    });
  } finally {
    await restorePool();
    await store.close();
  }
}

/**
 * The cheapest durable commit this disk allows right now: a 4 KiB block overwritten in place and fdatasync'ed
 * (what SQLite's FULL does at best, once its WAL file is reused), p50/p99 of 300, and the rate one caller could
 * reach with nothing else to do.
 */
function fsyncProbe(): string {
  const dir = mkdtempSync(join(tmpdir(), 'stacknet-fsync-'));
  const fd = openSync(join(dir, 'probe'), 'w');
  const block = Buffer.alloc(4096, 1);
  const n = 300;
  const t: number[] = [];
  try {
    for (let i = 0; i < n; i++) writeSync(fd, block);
    fsyncSync(fd);
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      writeSync(fd, block, 0, block.length, i * block.length);
      fdatasyncSync(fd);
      t.push(performance.now() - t0);
    }
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
  const total = t.reduce((sum, x) => sum + x, 0);
  t.sort((a, b) => a - b);
  return `${percentile(t, 50).toFixed(3)} / ${percentile(t, 99).toFixed(3)} ms, ${Math.round((n * 1000) / total)}/s`;
}

async function main(): Promise<void> {
  const started = performance.now();
  // Timings on a shared 2-core machine mean little without knowing what else ran: say it.
  const load = () =>
    loadavg()
      .map((x) => x.toFixed(1))
      .join(' ');
  log(`load average at start: ${load()}`);
  log(`4 KiB overwrite+fdatasync p50 / p99 at start: ${fsyncProbe()}`);
  for (const kind of DBS) {
    // SQLite is measured twice: synchronous=NORMAL (WAL: a commit survives a crash of any process, not a power
    // loss) and FULL (an fsync per commit: survives power loss too); the "sync" field tells the rows apart.
    const variants: { db: string; sync?: string }[] =
      kind === 'sqlite'
        ? [
            { db: 'sqlite', sync: 'NORMAL' },
            { db: 'sqlite', sync: 'FULL' },
          ]
        : [{ db: kind }];
    for (const v of variants) {
      if (v.sync) process.env.STACKNET_SQLITE_SYNC = v.sync;
      if (ONLY !== 'latency') {
        await withDatabase(kind, async (url) => {
          for (const concurrency of [1, 16]) {
            log(`${v.db} ${v.sync ?? ''} throughput at concurrency ${concurrency}`);
            emit(await throughput(v.db, url, concurrency));
          }
          for (const concurrency of [1, 16]) {
            log(`${v.db} ${v.sync ?? ''} throughput in transaction() at concurrency ${concurrency}`);
            emit(await throughput(v.db, url, concurrency, true));
          }
        });
      }
      if (ONLY !== 'throughput' && v.sync !== 'FULL') {
        // A database of its own, after the kernel has written out what the throughput runs left in its page
        // cache (hundreds of MB of WAL on SQLite): otherwise that writeback lands in the latency samples, and
        // most in the biggest scopes'.
        execFileSync('sync');
        await withDatabase(kind, async (url) => {
          log(`${v.db} latency: /24 /16 /8 /64 at 0% and 50% fill, interleaved`);
          for (const r of await latencies(v.db, url)) emit(r);
        });
      }
    }
  }
  log(`4 KiB overwrite+fdatasync p50 / p99 at end: ${fsyncProbe()}`);
  log(`done in ${((performance.now() - started) / 1000).toFixed(0)} s; ` + `load average at end: ${load()}`);
}

await main();
