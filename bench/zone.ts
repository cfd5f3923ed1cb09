/**
 * A big zone (issue 16): one zone holding `--addresses` allocated addresses (half public IPs over /16 public
 * ranges, half guest NICs in networks of `--vms-per-network` VMs; bench/zone-fill.ts), a management server
 * started on it, its RSS after start and after a round of list calls, and the latency of the list commands on
 * that zone. The filled database is kept (`--dir`: a SQLite file; PostgreSQL/MariaDB: database
 * `stacknet_bench_zone_<n>`) and reused by the next run; `--refill` starts again.
 * `--baseline <dir>` runs another built checkout (e.g. the commit before a change) against the same database,
 * alternating with this one `--rounds` times, so before and after are measured in the same run.
 *   npm run bench:zone -- [--dbs sqlite,postgres,mysql] [--addresses 1_000_000] [--vms-per-network 10_000]
 *                         [--dir /var/tmp/stacknet-bench-zone] [--calls 30] [--rounds 1] [--baseline <dir>]
 *                         [--refill] [--fill-only] [--start-timeout 120] [--pass-timeout 600] [--no-build]
 *                         [--server-node-options '--max-old-space-size=256'] [--memory-split]
 *                         [--server-env STACKNET_HEAP_GROWING_PERCENT=0 ...] [--heap-snapshot]
 *                         [--cases 'listPublicIpAddresses p'] [--trace-calls] [--idle-timeout 300]
 *                         [--restore-from <a copy of the filled SQLite file>]
 * Each start is followed from spawn: the server's peak RSS and the list latency while the reconciler's start-up
 * pass pushes every router (phase "startup pass"), then the settled RSS and the list round.
 * `--memory-split` loads a probe into the measured server (`--require`, `--expose-gc`): after start and after the
 * list round it reports where the RSS is (V8 heap used/committed by space, external and array buffers, malloc'd
 * by V8, anonymous and file-backed RSS), and after the list round again after a full GC (the live set).
 * `--heap-snapshot` (with `--memory-split`) then has the server write a V8 heap snapshot of that live set to
 * `<dir>/<variant>-<round>.heapsnapshot`; `node --import tsx bench/zone-heap.ts <file>` says what holds it.
 * Before the list round the bench waits (`--idle-timeout` s at most, 0: not) for the server's CPU to go under
 * 10 % of a core for 3 s: its start-up VM resync (every Running VM, 500 at a time) outlasts the router pass.
 * `--cases a,b` runs only the list cases whose name contains one of these strings.
 * `--trace-calls` loads a second probe into the measured server (`--import`): over each list case it records
 * every GC (kind, start, duration: perf_hooks) and what the heap allocated (v8.GCProfiler's before/after of each
 * GC), and takes a CPU profile (node:inspector's Profiler, 250 µs sampling), written to
 * `<dir>/<variant>-<round>-<case>.cpuprofile` (`node --import tsx bench/zone-profile.ts <file>` sums it up); the
 * case's line then also says how many scavenges and mark-compacts ran, their pause per call, the MB allocated
 * per call, and how much of the slowest calls' time was GC.
 * Prints one JSON object per line.
 */
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { sql } from 'kysely';
import { callApi } from '../src/api/client.js';
import type { ClientOptions } from '../src/api/client.js';
import { openStore } from '../src/store/db.js';
import { migrations } from '../src/store/migrations/index.js';
import type { DbKind } from '../src/store/db.js';
import { MYSQL_ADMIN_URL, PG_ADMIN_URL } from '../src/store/testing/test-databases.js';
import { startServer } from '../test/api/harness.js';
import { benchOutput, numberList, parseArgs, quantile } from './common.js';
import { fillZone, filledZone } from './zone-fill.js';
import type { FilledZone } from './zone-fill.js';

const usage = 'npm run bench:zone -- [--dbs sqlite,postgres,mysql] [--addresses N] [--vms-per-network N] ...';
let dbs: DbKind[] = ['sqlite', 'postgres', 'mysql'];
let addresses = 1_000_000;
let vmsPerNetwork = 10_000;
let dir = '/var/tmp/stacknet-bench-zone';
let calls = 30;
let rounds = 1;
let baseline = '';
let refill = false;
let build = true;
let fillOnly = false;
let startTimeout = 120;
let passTimeout = 600;
/** At most this many seconds for the server to go idle (its VM resync done) before the list round; 0: no wait. */
let idleTimeout = 300;
/** SQLite: copy this file over the zone's database before each start (a copy of the filled one). */
let restoreFrom = '';
/** Node options for the measured servers only (e.g. --max-old-space-size=256: what the live set needs). */
let serverNodeOptions = '';
/** Load a probe into the measured servers that reports their memory split (V8 heap, external, malloc, RSS). */
let memorySplit = false;
/** After the list round, a heap snapshot of the measured server (needs the probe: `--memory-split`). */
let heapSnapshot = false;
/** Only the list cases whose name contains one of these (all when empty). */
let onlyCases: string[] = [];
/** GC and allocation per list case, and a CPU profile of each, from a probe in the measured server. */
let traceCalls = false;
/** Environment of the measured servers (e.g. STACKNET_HEAP_GROWING_PERCENT=0: V8's own heap growing). */
const serverEnv: Record<string, string> = {};
parseArgs(process.argv.slice(2), usage, (flag, value) => {
  if (flag === '--dbs') dbs = value().split(',') as DbKind[];
  else if (flag === '--addresses') addresses = numberList(value())[0]!;
  else if (flag === '--vms-per-network') vmsPerNetwork = numberList(value())[0]!;
  else if (flag === '--dir') dir = value();
  else if (flag === '--calls') calls = Number(value());
  else if (flag === '--rounds') rounds = Number(value());
  else if (flag === '--baseline') baseline = value();
  else if (flag === '--refill') refill = true;
  else if (flag === '--no-build') build = false;
  else if (flag === '--fill-only') fillOnly = true;
  else if (flag === '--start-timeout') startTimeout = Number(value());
  else if (flag === '--pass-timeout') passTimeout = Number(value());
  else if (flag === '--idle-timeout') idleTimeout = Number(value());
  else if (flag === '--restore-from') restoreFrom = value();
  else if (flag === '--server-node-options') serverNodeOptions = value();
  else if (flag === '--memory-split') memorySplit = true;
  else if (flag === '--heap-snapshot') heapSnapshot = memorySplit = true;
  else if (flag === '--cases') onlyCases = value().split(',');
  else if (flag === '--trace-calls') traceCalls = true;
  else if (flag === '--server-env') {
    const [k, ...v] = value().split('=');
    serverEnv[k!] = v.join('=');
  } else return false;
  return true;
});
const { log, emit } = benchOutput('zone');
const root = new URL('..', import.meta.url).pathname;

if (build) {
  const b = spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit', cwd: root });
  if (b.status !== 0) process.exit(b.status ?? 1);
}
mkdirSync(dir, { recursive: true });

const uptime = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

/** The kept database of `kind` for this size, created empty when missing (or when refilling). */
async function keptDatabase(kind: DbKind): Promise<string> {
  const name = `stacknet_bench_zone_${addresses}`;
  if (kind === 'sqlite') {
    const file = join(dir, `${name}.db`);
    if (refill) for (const f of [file, `${file}-wal`, `${file}-shm`]) rmSync(f, { force: true });
    return `sqlite:${file}`;
  }
  const adminUrl = kind === 'postgres' ? PG_ADMIN_URL : MYSQL_ADMIN_URL;
  const admin = await openStore(adminUrl, { poolSize: 1 });
  try {
    if (refill) await sql.raw(`DROP DATABASE IF EXISTS ${name}`).execute(admin.db);
    const exists =
      kind === 'postgres'
        ? await sql`select 1 from pg_database where datname = ${name}`.execute(admin.db)
        : await sql`select 1 from information_schema.schemata where schema_name = ${name}`.execute(admin.db);
    if (exists.rows.length === 0) await sql.raw(`CREATE DATABASE ${name}`).execute(admin.db);
  } finally {
    await admin.close();
  }
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

function memoryOf(pid: number): { rss_mb: number; hwm_mb: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
  return { rss_mb: Math.round(kb('VmRSS') / 102.4) / 10, hwm_mb: Math.round(kb('VmHWM') / 102.4) / 10 };
}

/** The process's user + system CPU time in ms (/proc/<pid>/stat, in clock ticks of 10 ms). */
function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The probe `--memory-split` loads into the server: SIGUSR2 appends the memory split to $STACKNET_BENCH_PROBE_OUT,
 * SIGWINCH the same and again after a full GC.
 */
const PROBE = `
const fs = require('node:fs');
const v8 = require('node:v8');
const mb = (x) => Math.round(x / 104857.6) / 10;
function split() {
  const m = process.memoryUsage();
  const h = v8.getHeapStatistics();
  const smaps = fs.readFileSync('/proc/self/smaps_rollup', 'utf8');
  const kb = (f) => Number(smaps.split('\\n').find((l) => l.startsWith(f + ':'))?.split(/ +/)[1] ?? NaN);
  const spaces = {};
  for (const s of v8.getHeapSpaceStatistics())
    spaces[s.space_name.replace(/_space$/, '')] = [mb(s.space_used_size), mb(s.space_size)];
  return {
    rss_mb: mb(m.rss), anon_mb: mb(kb('Anonymous') * 1024), file_mb: mb((kb('Rss') - kb('Anonymous')) * 1024),
    heap_used_mb: mb(m.heapUsed), heap_total_mb: mb(m.heapTotal), heap_limit_mb: mb(h.heap_size_limit),
    external_mb: mb(m.external), array_buffers_mb: mb(m.arrayBuffers), v8_malloced_mb: mb(h.malloced_memory),
    spaces_used_committed_mb: spaces,
  };
}
const report = (gc) => {
  const out = { before_gc: split() };
  if (gc && global.gc) { global.gc(); out.after_gc = split(); }
  fs.appendFileSync(process.env.STACKNET_BENCH_PROBE_OUT, JSON.stringify(out) + '\\n');
};
process.on('SIGUSR2', () => report(false));
process.on('SIGWINCH', () => report(true));
process.on('SIGURG', () => {
  const file = v8.writeHeapSnapshot(process.env.STACKNET_BENCH_HEAP_SNAPSHOT);
  fs.appendFileSync(process.env.STACKNET_BENCH_PROBE_OUT, JSON.stringify({ heap_snapshot: file }) + '\\n');
});
`;

/**
 * The probe `--trace-calls` loads into the server (`--import`): SIGTTIN starts a CPU profile, v8.GCProfiler and a
 * record of GCs (perf_hooks), SIGTTOU stops them and appends to $STACKNET_BENCH_TRACE_OUT what they saw: each GC
 * (epoch ms, duration ms, kind: 1 scavenge, 4 mark-compact, 8 incremental marking, 16 weak callbacks), the bytes
 * allocated (used heap at the end − at the start + what each GC freed) and the CPU profile's file.
 */
const TRACE_PROBE = `
import fs from 'node:fs';
import v8 from 'node:v8';
import { Session } from 'node:inspector';
import { PerformanceObserver, performance } from 'node:perf_hooks';
const out = process.env.STACKNET_BENCH_TRACE_OUT;
// V8 flags to try on the measured server (\`--server-env STACKNET_BENCH_V8_FLAGS='--no-page-promotion'\`).
if (process.env.STACKNET_BENCH_V8_FLAGS) v8.setFlagsFromString(process.env.STACKNET_BENCH_V8_FLAGS);
let gcs = null, gcProfiler = null, session = null, used0 = 0, n = 0;
const record = (list) => {
  if (gcs) for (const e of list.getEntries())
    gcs.push([performance.timeOrigin + e.startTime, e.duration, e.detail?.kind ?? e.kind]);
};
const obs = new PerformanceObserver(record);
obs.observe({ entryTypes: ['gc'] });
const usedOf = (h) => h.usedHeapSize ?? h.used_heap_size ?? 0;
process.on('SIGTTIN', () => {
  session = new Session();
  session.connect();
  session.post('Profiler.enable', () =>
    session.post('Profiler.setSamplingInterval', { interval: 250 }, () =>
      session.post('Profiler.start', () => {
        gcs = [];
        // STACKNET_BENCH_HEAP_SAMPLING=<bytes>: also V8's sampling heap profiler, keeping the samples of objects a
        // mark-compact collected but dropping those a scavenge did: what it reports is what the case allocated that
        // outlived a scavenge (what was promoted, and the young survivors at the end), by allocating stack; with
        // STACKNET_BENCH_HEAP_SAMPLING_ALL=1 every sample is kept: what the case allocated.
        if (process.env.STACKNET_BENCH_HEAP_SAMPLING)
          session.post('HeapProfiler.startSampling', {
            samplingInterval: Number(process.env.STACKNET_BENCH_HEAP_SAMPLING),
            includeObjectsCollectedByMajorGC: true,
            includeObjectsCollectedByMinorGC: process.env.STACKNET_BENCH_HEAP_SAMPLING_ALL === '1',
          });
        gcProfiler = new v8.GCProfiler();
        gcProfiler.start();
        used0 = v8.getHeapStatistics().used_heap_size;
        fs.appendFileSync(out, JSON.stringify({ started: true }) + '\\n');
      })));
});
process.on('SIGTTOU', () => {
  const used1 = v8.getHeapStatistics().used_heap_size;
  const stats = gcProfiler.stop();
  let freed = 0;
  const types = {};
  // Per GC type: how many, and what they moved into the old generation (old + large-object space after − before:
  // for a scavenge, what it promoted) and the external memory when they started.
  const space = (g, when, name) =>
    (g[when].heapSpaceStatistics ?? []).filter((s) => s.spaceName === name || s.space_name === name)
      .reduce((a, s) => a + (s.spaceUsedSize ?? s.space_used_size ?? 0), 0);
  const old = (g, when) => space(g, when, 'old_space') + space(g, when, 'large_object_space');
  for (const g of stats?.statistics ?? []) {
    freed += usedOf(g.beforeGC.heapStatistics) - usedOf(g.afterGC.heapStatistics);
    const t = (types[g.gcType] ??= { n: 0, to_old_mb: 0, external_mb_max: 0, used_mb_before_max: 0 });
    t.n++;
    t.to_old_mb += (old(g, 'afterGC') - old(g, 'beforeGC')) / 1048576;
    const h = g.beforeGC.heapStatistics;
    t.external_mb_max = Math.max(t.external_mb_max, (h.externalMemory ?? h.external_memory ?? 0) / 1048576);
    t.used_mb_before_max = Math.max(t.used_mb_before_max, usedOf(h) / 1048576);
  }
  const heap = process.env.STACKNET_BENCH_HEAP_SAMPLING
    ? new Promise((done) => session.post('HeapProfiler.stopSampling', (e, h) => done(e ? null : h.profile)))
    : Promise.resolve(null);
  session.post('Profiler.stop', async (err, r) => {
    const file = out + '.' + ++n + '.cpuprofile';
    if (!err) fs.writeFileSync(file, JSON.stringify(r.profile));
    const h = await heap;
    if (h) fs.writeFileSync(file.replace(/cpuprofile$/, 'heapprofile'), JSON.stringify(h));
    session.disconnect();
    setTimeout(() => {
      record({ getEntries: () => obs.takeRecords?.() ?? [] });
      fs.appendFileSync(out, JSON.stringify({ gcs, types, allocated: used1 - used0 + freed, profile: err ? null : file }) + '\\n');
      gcs = null;
    }, 100);
  });
});
`;

/**
 * The server's memory split (the probe's answer to a signal), or undefined without `--memory-split`; with
 * `snapshot`, the probe's answer once it has written a heap snapshot.
 */
async function splitOf(
  pid: number,
  out: string,
  gc: boolean,
  snapshot = false,
): Promise<Record<string, unknown> | undefined> {
  if (!memorySplit) return undefined;
  const before = existsSync(out) ? readFileSync(out, 'utf8').split('\n').filter(Boolean).length : 0;
  process.kill(pid, snapshot ? 'SIGURG' : gc ? 'SIGWINCH' : 'SIGUSR2');
  for (let i = 0; i < (snapshot ? 3000 : 200); i++) {
    await sleep(100);
    const lines = existsSync(out) ? readFileSync(out, 'utf8').split('\n').filter(Boolean) : [];
    if (lines.length > before) return JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
  }
  return { error: 'no answer from the memory probe in 20 s' };
}

/** Signals the trace probe and waits for its next line (SIGTTIN: started; SIGTTOU: what it saw). */
async function traceSignal(pid: number, out: string, signal: 'SIGTTIN' | 'SIGTTOU'): Promise<TraceLine> {
  const lines = () => (existsSync(out) ? readFileSync(out, 'utf8').split('\n').filter(Boolean) : []);
  const before = lines().length;
  process.kill(pid, signal);
  for (let i = 0; i < 600; i++) {
    await sleep(50);
    const now = lines();
    if (now.length > before) return JSON.parse(now[now.length - 1]!) as TraceLine;
  }
  throw new Error(`no answer from the trace probe to ${signal} in 30 s`);
}

interface TraceLine {
  gcs: [number, number, number][];
  types: Record<
    string,
    { n: number; to_old_mb: number; external_mb_max: number; used_mb_before_max: number }
  >;
  allocated: number;
  profile: string | null;
}

/**
 * What the probe saw over a case: GCs by kind and their pause per call, MB allocated per call, and, for the
 * slowest 1% and 5% of the calls, their mean latency and the GC pause inside them (GCs overlapping the call).
 */
function traceFigures(t: TraceLine, spans: [number, number][], profileFile: string) {
  const r1 = (x: number) => Math.round(x * 10) / 10;
  const n = Math.max(1, spans.length);
  const kinds: Record<string, { n: number; ms: number; max_ms: number }> = {};
  const name = (k: number) =>
    ({ 1: 'scavenge', 4: 'mark_compact', 8: 'incremental', 16: 'weak_cb' })[k] ?? `kind${k}`;
  for (const [, d, k] of t.gcs) {
    const x = (kinds[name(k)] ??= { n: 0, ms: 0, max_ms: 0 });
    x.n++;
    x.ms += d;
    x.max_ms = Math.max(x.max_ms, d);
  }
  for (const x of Object.values(kinds)) [x.ms, x.max_ms] = [r1(x.ms), r1(x.max_ms)];
  const gcIn = ([a, b]: [number, number]) =>
    t.gcs.reduce((s, [st, d]) => s + Math.max(0, Math.min(b, st + d) - Math.max(a, st)), 0);
  const calls = spans.map((s) => ({ ms: s[1] - s[0], gc: gcIn(s) })).sort((a, b) => b.ms - a.ms);
  const slowest = (q: number) => {
    const top = calls.slice(0, Math.max(1, Math.round(q * calls.length)));
    return {
      calls: top.length,
      mean_ms: r1(top.reduce((s, c) => s + c.ms, 0) / top.length),
      mean_gc_ms: r1(top.reduce((s, c) => s + c.gc, 0) / top.length),
      with_gc: top.filter((c) => c.gc > 0).length,
    };
  };
  if (t.profile) renameSync(t.profile, profileFile);
  const heapProfile = t.profile?.replace(/cpuprofile$/, 'heapprofile');
  if (heapProfile && existsSync(heapProfile))
    renameSync(heapProfile, profileFile.replace(/cpuprofile$/, 'heapprofile'));
  return {
    gc: kinds,
    gc_ms_per_call: r1(t.gcs.reduce((s, [, d]) => s + d, 0) / n),
    gc_types: Object.fromEntries(
      Object.entries(t.types).map(([k, v]) => [
        k,
        {
          ...v,
          to_old_mb: r1(v.to_old_mb),
          external_mb_max: r1(v.external_mb_max),
          used_mb_before_max: r1(v.used_mb_before_max),
        },
      ]),
    ),
    allocated_mb_per_call: Math.round(t.allocated / n / 10485.76) / 100,
    slowest_1pct: slowest(0.01),
    slowest_5pct: slowest(0.05),
    others_mean_gc_ms: (() => {
      const rest = calls.slice(Math.max(1, Math.round(0.05 * calls.length)));
      return r1(rest.reduce((s, c) => s + c.gc, 0) / Math.max(1, rest.length));
    })(),
    profile: t.profile ? profileFile : null,
  };
}

/** The management server this process started (its child running `stacknet.js server`), once it exists. */
function serverPid(): number | undefined {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== process.pid) continue;
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').includes('stacknet.js\0server')) return Number(d);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

/**
 * The start-up pass as the server lives it: from spawn, every 250 ms, the server's RSS and how many routers the
 * simulator has applied a state to (`<data>/routers/<name>/applied-state.json`, written on a router's first
 * apply in a fresh data directory: the start-up pass pushes every router once).
 */
function watchStartupPass(dataDir: string, routers: number) {
  const t0 = performance.now();
  const w = {
    peak_rss_mb: 0,
    applied: 0,
    pass_seconds: NaN,
    pid: undefined as number | undefined,
    /** The biggest state a simulated router keeps (its applied-state.json; the simulator holds it in memory). */
    max_state_mb: 0,
  };
  const timer = setInterval(() => {
    w.pid ??= serverPid();
    if (w.pid) {
      try {
        // A server that exited (a zombie until reaped) has no VmRSS: NaN, not a figure.
        const rss = memoryOf(w.pid).rss_mb;
        if (Number.isFinite(rss)) w.peak_rss_mb = Math.max(w.peak_rss_mb, rss);
      } catch {
        // exited
      }
    }
    const dir = join(dataDir, 'routers');
    const applied = existsSync(dir)
      ? readdirSync(dir).filter((r) => existsSync(join(dir, r, 'applied-state.json'))).length
      : 0;
    if (applied > w.applied && existsSync(dir))
      for (const r of readdirSync(dir)) {
        const f = join(dir, r, 'applied-state.json');
        if (existsSync(f))
          w.max_state_mb = Math.max(w.max_state_mb, Math.round(statSync(f).size / 104857.6) / 10);
      }
    if (applied >= routers && Number.isNaN(w.pass_seconds)) w.pass_seconds = (performance.now() - t0) / 1000;
    w.applied = applied;
  }, 250);
  return {
    w,
    done: () => !Number.isNaN(w.pass_seconds),
    stop: () => clearInterval(timer),
    seconds: () => (performance.now() - t0) / 1000,
  };
}

async function activeRouters(url: string): Promise<number> {
  const store = await openStore(url, { poolSize: 1 });
  try {
    const r = await store.db
      .selectFrom('routers')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('state', 'in', ['Running', 'Starting'])
      .where('removed', 'is', null)
      .executeTakeFirstOrThrow();
    return Number(r.n);
  } finally {
    await store.close();
  }
}

/** RSS once it stops moving (the reconciler converging the routers at start), at most `maxMs`. */
async function settledMemory(pid: number, maxMs = 60_000): Promise<{ rss_mb: number; hwm_mb: number }> {
  const end = Date.now() + maxMs;
  let last = memoryOf(pid);
  for (;;) {
    await sleep(2000);
    const now = memoryOf(pid);
    if (Math.abs(now.rss_mb - last.rss_mb) < 2 || Date.now() > end) return now;
    last = now;
  }
}

/**
 * Seconds until the server's CPU stays under 10 % of one core for 3 s (its start-up work done), at most `maxMs`
 * (then NaN); 0 when `maxMs` is 0.
 */
async function idleAfter(pid: number, maxMs: number): Promise<number> {
  const t0 = Date.now();
  let quiet = 0;
  while (maxMs > 0 && Date.now() - t0 < maxMs) {
    const c0 = cpuMsOf(pid);
    await sleep(1000);
    quiet = cpuMsOf(pid) - c0 < 100 ? quiet + 1 : 0;
    if (quiet >= 3) return Math.round((Date.now() - t0) / 100) / 10;
  }
  return maxMs > 0 ? NaN : 0;
}

/**
 * The baseline's server refuses a database with migrations it does not know (Kysely: "corrupted migrations"):
 * before it runs, this checkout's newer migrations are rolled back (their `down`), and the change's server applies
 * them again when it starts (that time is in its `healthz_seconds`).
 */
async function rollBackForBaseline(url: string): Promise<void> {
  const known = new Set(
    Object.keys(
      ((await import(join(baseline, 'dist/store/migrations/index.js'))) as { migrations: object }).migrations,
    ),
  );
  const store = await openStore(url, { poolSize: 1 });
  try {
    const done = await sql<{ name: string }>`select name from kysely_migration order by name desc`.execute(
      store.db,
    );
    for (const { name } of done.rows) {
      if (known.has(name)) continue;
      log(`rolling back ${name} for the baseline`);
      await migrations[name]!.down!(store.db as never);
      await sql`delete from kysely_migration where name = ${name}`.execute(store.db);
    }
  } finally {
    await store.close();
  }
}

async function measure(kind: DbKind, url: string, zone: FilledZone, variant: string, round: number) {
  if (restoreFrom && kind === 'sqlite') {
    // Every start from the same file: a run writes to the database (router generations, agents' reports).
    const file = url.slice('sqlite:'.length);
    for (const f of [`${file}-wal`, `${file}-shm`]) rmSync(f, { force: true });
    copyFileSync(restoreFrom, file);
  }
  if (variant === 'baseline') await rollBackForBaseline(url);
  const tags = {
    db: kind,
    variant,
    round,
    addresses: zone.public_addresses + zone.guest_addresses,
    ...(Object.keys(serverEnv).length ? { env: serverEnv } : {}),
  };
  const serverRoot = variant === 'baseline' ? baseline : root;
  const routers = await activeRouters(url);
  // Our own data directory (the harness's default is not told to us): the simulator's router files show the pass.
  const dataDir = mkdtempSync(join(dir, 'server-data-'));
  const pass = watchStartupPass(dataDir, routers);
  const probeFile = join(dir, 'memory-probe.cjs');
  const probeOut = join(dataDir, 'memory.jsonl');
  if (memorySplit) writeFileSync(probeFile, PROBE);
  const traceProbeFile = join(dir, 'trace-probe.mjs');
  const traceOut = join(dataDir, 'trace.jsonl');
  if (traceCalls) writeFileSync(traceProbeFile, TRACE_PROBE);
  const nodeOptions = [
    serverNodeOptions,
    memorySplit ? `--require ${probeFile} --expose-gc` : '',
    traceCalls ? `--import ${traceProbeFile}` : '',
  ]
    .filter(Boolean)
    .join(' ');
  const t0 = performance.now();
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer(
      url,
      {
        STACKNET_SERVER_KEY_FILE: join(dir, 'server.key'),
        STACKNET_LOG_LEVEL: 'warn',
        STACKNET_DATA_DIR: dataDir,
        ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}),
        ...(memorySplit ? { STACKNET_BENCH_PROBE_OUT: probeOut } : {}),
        ...(traceCalls ? { STACKNET_BENCH_TRACE_OUT: traceOut } : {}),
        ...(heapSnapshot
          ? { STACKNET_BENCH_HEAP_SNAPSHOT: join(dir, `${variant}-${round}.heapsnapshot`) }
          : {}),
        ...serverEnv,
      },
      [],
      { root: serverRoot, healthzTimeoutMs: startTimeout * 1000 },
    );
  } catch (e) {
    pass.stop();
    rmSync(dataDir, { recursive: true, force: true });
    emit({
      phase: 'start',
      ...tags,
      error: (e as Error).message.slice(0, 200),
      routers,
      routers_applied: pass.w.applied,
      peak_rss_mb: pass.w.peak_rss_mb,
      max_state_mb: pass.w.max_state_mb,
      load: uptime(),
    });
    return;
  }
  const startSeconds = (performance.now() - t0) / 1000;
  try {
    const api: ClientOptions = { url: server.url, apiKey: server.apiKey, secretKey: server.secretKey };
    await duringStartupPass(api, zone, pass, routers, startSeconds, tags);
    const started = await settledMemory(server.pid);
    // The start-up VM resync (src/vms/subsystem.ts: every Running VM, 500 a page, 500,000 here) goes on after
    // the router pass and takes the event loop a page at a time: lists measured meanwhile measure it too.
    const idle = await idleAfter(server.pid, idleTimeout * 1000);
    emit({
      phase: 'start',
      ...tags,
      healthz_seconds: Math.round(startSeconds * 10) / 10,
      ...started,
      idle_wait_seconds: idle,
      memory: await splitOf(server.pid, probeOut, false),
      load: uptime(),
    });
    const zoneid = zone.zoneid;
    const deep = Math.floor(zone.public_addresses / 500) - 1;
    const vmDeep = Math.floor(zone.guest_addresses / 500) - 1;
    const cases: [string, string, Record<string, string>][] = [
      [
        'listPublicIpAddresses p1',
        'listPublicIpAddresses',
        { zoneid, listall: 'true', page: '1', pagesize: '500' },
      ],
      [
        `listPublicIpAddresses p${deep}`,
        'listPublicIpAddresses',
        { zoneid, listall: 'true', page: String(deep), pagesize: '500' },
      ],
      [
        'listPublicIpAddresses network p1',
        'listPublicIpAddresses',
        { associatednetworkid: zone.networkids[0]!, listall: 'true', page: '1', pagesize: '500' },
      ],
      [
        'listVirtualMachines p1',
        'listVirtualMachines',
        { zoneid, listall: 'true', page: '1', pagesize: '500' },
      ],
      [
        `listVirtualMachines p${vmDeep}`,
        'listVirtualMachines',
        { zoneid, listall: 'true', page: String(vmDeep), pagesize: '500' },
      ],
      [
        'listVirtualMachines network p1',
        'listVirtualMachines',
        { networkid: zone.networkids[0]!, listall: 'true', page: '1', pagesize: '500' },
      ],
      ['listVolumes p1', 'listVolumes', { zoneid, listall: 'true', page: '1', pagesize: '500' }],
      ['listNics', 'listNics', { virtualmachineid: zone.vmid }],
      ['listNetworks', 'listNetworks', { zoneid, listall: 'true' }],
      ['listCapacity', 'listCapacity', { zoneid }],
      ['listZones', 'listZones', {}],
      ['listRouters', 'listRouters', { zoneid, listall: 'true' }],
    ];
    if (traceCalls) {
      // The same probe over 20 s without calls: what the server allocates and collects by itself meanwhile
      // (the reconciler, agents' reports), to set apart from the calls' own.
      await traceSignal(server.pid, traceOut, 'SIGTTIN');
      const cpu0 = cpuMsOf(server.pid);
      const t0 = performance.timeOrigin + performance.now();
      await sleep(20_000);
      const span: [number, number] = [t0, performance.timeOrigin + performance.now()];
      const cpuMs = cpuMsOf(server.pid) - cpu0;
      const t = traceFigures(
        await traceSignal(server.pid, traceOut, 'SIGTTOU'),
        [span],
        join(dir, `${variant}-${round}-idle.cpuprofile`),
      );
      emit({ phase: 'idle 20 s', ...tags, server_cpu_ms: cpuMs, trace: t, load: uptime() });
    }
    for (const [name, command, params] of cases) {
      if (onlyCases.length && !onlyCases.some((c) => name.includes(c))) continue;
      const lat: number[] = [];
      /** Each call's start and end, epoch ms (the probe's GCs are in the same clock). */
      const spans: [number, number][] = [];
      let count: unknown;
      let failed = 0;
      if (traceCalls) await traceSignal(server.pid, traceOut, 'SIGTTIN');
      const cpu0 = cpuMsOf(server.pid);
      for (let i = 0; i < calls; i++) {
        const t = performance.now();
        // No answer at all (undici gives up on headers after 300 s) is a failed call, not the end of the run.
        const r = await callApi(api, command, params).catch((e: Error) => ({
          status: 0,
          text: String(e.cause ?? e.message),
          body: {},
        }));
        const ms = performance.now() - t;
        if (r.status !== 200) {
          failed++;
          if (failed === 1)
            log(`${name}: HTTP ${r.status} ${r.text.slice(0, 300)} after ${Math.round(ms)} ms`);
          if (r.status === 0) break;
          continue;
        }
        lat.push(ms);
        spans.push([performance.timeOrigin + t, performance.timeOrigin + t + ms]);
        count = (r.body as { count?: unknown }).count;
      }
      const cpuMs = cpuMsOf(server.pid) - cpu0;
      const trace = traceCalls
        ? traceFigures(
            await traceSignal(server.pid, traceOut, 'SIGTTOU'),
            spans,
            join(dir, `${variant}-${round}-${name.replace(/\W+/g, '_')}.cpuprofile`),
          )
        : undefined;
      const r1 = (x: number) => Math.round(x * 10) / 10;
      emit({
        phase: 'list',
        case: name,
        ...tags,
        calls,
        failed,
        count,
        p50_ms: r1(quantile(lat, 0.5)),
        p99_ms: r1(quantile(lat, 0.99)),
        max_ms: r1(Math.max(...lat)),
        // The server's CPU over the calls, per call (what the load moves least; ticks of 10 ms, so a mean).
        server_cpu_ms_per_call: r1(cpuMs / Math.max(1, calls)),
        ...(trace ? { trace } : {}),
        load: uptime(),
      });
    }
    emit({
      phase: 'after lists',
      ...tags,
      ...memoryOf(server.pid),
      memory: await splitOf(server.pid, probeOut, true),
      load: uptime(),
    });
    if (heapSnapshot)
      emit({ phase: 'heap snapshot', ...tags, ...(await splitOf(server.pid, probeOut, false, true)) });
  } finally {
    pass.stop();
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/**
 * While the start-up pass runs (until every router holds a state, at most `passTimeout` s): list calls back to
 * back (listPublicIpAddresses page 1 of 500, and listRouters), their latency, and the server's peak RSS.
 */
async function duringStartupPass(
  api: ClientOptions,
  zone: FilledZone,
  pass: ReturnType<typeof watchStartupPass>,
  routers: number,
  healthzSeconds: number,
  tags: Record<string, unknown>,
): Promise<void> {
  const cases: [string, Record<string, string>][] = [
    ['listPublicIpAddresses', { zoneid: zone.zoneid, listall: 'true', page: '1', pagesize: '500' }],
    ['listRouters', { zoneid: zone.zoneid, listall: 'true' }],
  ];
  const lat = new Map<string, number[]>(cases.map(([c]) => [c, []]));
  let failed = 0;
  for (let i = 0; !pass.done() && pass.seconds() < passTimeout; i++) {
    const [command, params] = cases[i % cases.length]!;
    const t = performance.now();
    const r = await callApi(api, command, params).catch(() => ({ status: 0 }));
    if (r.status === 200) lat.get(command)!.push(performance.now() - t);
    else failed++;
  }
  const r1 = (x: number) => Math.round(x * 10) / 10;
  const figures = Object.fromEntries(
    [...lat].map(([c, xs]) => [
      c,
      {
        calls: xs.length,
        p50_ms: r1(quantile(xs, 0.5)),
        p99_ms: r1(quantile(xs, 0.99)),
        max_ms: r1(Math.max(...xs)),
      },
    ]),
  );
  emit({
    phase: 'startup pass',
    ...tags,
    routers,
    routers_applied: pass.w.applied,
    healthz_seconds: r1(healthzSeconds),
    pass_seconds: r1(pass.w.pass_seconds),
    peak_rss_mb: pass.w.peak_rss_mb,
    max_state_mb: pass.w.max_state_mb,
    ...(pass.w.pid ? memoryOf(pass.w.pid) : {}),
    failed,
    ...figures,
    load: uptime(),
  });
}

const variants = baseline ? ['baseline', 'change'] : ['change'];
if (baseline && !existsSync(join(baseline, 'dist'))) throw new Error(`${baseline} is not built (no dist/)`);
for (const kind of dbs) {
  const url = await keptDatabase(kind);
  let zone = refill ? undefined : await filledZone(url);
  if (!zone) {
    log(`${kind}: filling a zone with ${addresses} addresses (kept for the next run)`);
    const half = Math.floor(addresses / 2);
    zone = await fillZone({
      url,
      publicAddresses: addresses - half,
      networks: Math.ceil(half / vmsPerNetwork),
      vmsPerNetwork,
      serverKeyFile: join(dir, 'server.key'),
      log,
    });
    emit({ phase: 'fill', db: kind, ...zone, networkids: undefined, load: uptime() });
  }
  if (fillOnly) continue;
  for (let round = 1; round <= rounds; round++)
    for (const v of round % 2 === 1 ? variants : [...variants].reverse())
      await measure(kind, url, zone, v, round);
}
