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
 *                         [--refill] [--fill-only] [--start-timeout 120] [--no-build]
 * Prints one JSON object per line.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
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
  else return false;
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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
  if (variant === 'baseline') await rollBackForBaseline(url);
  const tags = { db: kind, variant, round, addresses: zone.public_addresses + zone.guest_addresses };
  const serverRoot = variant === 'baseline' ? baseline : root;
  const t0 = performance.now();
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer(
      url,
      { STACKNET_SERVER_KEY_FILE: join(dir, 'server.key'), STACKNET_LOG_LEVEL: 'warn' },
      [],
      { root: serverRoot, healthzTimeoutMs: startTimeout * 1000 },
    );
  } catch (e) {
    emit({ phase: 'start', ...tags, error: (e as Error).message.slice(0, 200), load: uptime() });
    return;
  }
  const startSeconds = (performance.now() - t0) / 1000;
  try {
    const api: ClientOptions = { url: server.url, apiKey: server.apiKey, secretKey: server.secretKey };
    const started = await settledMemory(server.pid);
    emit({
      phase: 'start',
      ...tags,
      healthz_seconds: Math.round(startSeconds * 10) / 10,
      ...started,
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
    for (const [name, command, params] of cases) {
      const lat: number[] = [];
      let count: unknown;
      let failed = 0;
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
        count = (r.body as { count?: unknown }).count;
      }
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
      });
    }
    emit({ phase: 'after lists', ...tags, ...memoryOf(server.pid), load: uptime() });
  } finally {
    await server.stop();
  }
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
