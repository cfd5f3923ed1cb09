/**
 * Two builds side by side, associateIpAddress request → job done (or, with `--work poll`, queryAsyncJobResult of a
 * finished job: a signed request's fixed cost in the server): both servers run at once, each on its own
 * database, and 64 signed clients drive one of them at a time in short alternating slices, so that a machine
 * shared with other work loads both alike (sequential runs minutes apart differed by more than the change
 * measured). Prints one JSON line per build: jobs a second while driven and server CPU ms per job (from /proc),
 * with each slice's CPU per job to show the spread; with PostgreSQL or MariaDB URLs also the database's CPU per job
 * (its connections' processes or threads, bench/db-cpu.ts), and with metrics on the statements per job. The
 * bench client's CPU per job is this process's while it drove that side.
 *   node --import tsx bench/ab-associate.ts --a <built tree> --b <built tree> [--slices 16] [--slice-seconds 2]
 *        [--clients 64] [--db-url-a URL --db-url-b URL] (default: SQLite in temp dirs) [--metrics on|off]
 *        [--work associate|poll|list] (poll, list: listAccounts listall=true, a read command; per_slice and
 *        server_cpu_ms_per_job then count requests, not jobs)
 * A tree is a checkout with `npx tsc -p tsconfig.build.json` run in it (as HELPER-RULES' base build).
 */
import { Agent } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { callApi, waitForJob } from '../src/api/client.js';
import type { ClientOptions } from '../src/api/client.js';
import { startServer } from '../test/api/harness.js';
import { associateZone, statementCounts } from './api-associate.js';
import { dbCpuWindow } from './db-cpu.js';
import type { ServerProcess } from '../test/api/harness.js';

function arg(name: string, dflt?: string): string {
  const i = process.argv.indexOf(name);
  if (i >= 0) return process.argv[i + 1]!;
  if (dflt === undefined) throw new Error(`${name} is required`);
  return dflt;
}
const trees = { a: arg('--a'), b: arg('--b') };
const slices = Number(arg('--slices', '16'));
const sliceMs = Number(arg('--slice-seconds', '2')) * 1000;
const clients = Number(arg('--clients', '64'));
const metrics = arg('--metrics', 'on');
const work = arg('--work', 'associate');
if (work !== 'associate' && work !== 'poll' && work !== 'list')
  throw new Error('--work must be associate, poll or list');

function processCpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

interface Side {
  name: 'a' | 'b';
  server: ServerProcess;
  dir: string;
  opts: ClientOptions;
  agent: Agent;
  zoneid: string;
  /** A job that finished: what `--work poll` asks about. */
  doneJob: string;
  jobs: number;
  failed: number;
  cpuMs: number;
  dbCpuMs: number;
  clientCpuMs: number;
  statements: number;
  ms: number;
  perSlice: number[];
  perSliceDb: number[];
}

async function start(name: 'a' | 'b'): Promise<Side> {
  const dir = mkdtempSync(join(tmpdir(), `stacknet-ab-${name}-`));
  const url = arg(`--db-url-${name}`, '') || `sqlite:${join(dir, 'bench.db')}`;
  const server = await startServer(url, { STACKNET_METRICS: metrics, STACKNET_SQLITE_SYNC: 'NORMAL' }, [], {
    root: trees[name],
    // A fresh MariaDB database migrates in 5–12 s on a quiet machine, and several times that on a loaded one.
    healthzTimeoutMs: 180_000,
  });
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  const opts = { url: server.url, apiKey: server.apiKey, secretKey: server.secretKey, agent };
  const zoneid = await associateZone(opts, `ab-${name}-${process.pid}`);
  const done = await callApi(opts, 'associateIpAddress', { zoneid });
  const doneJob = (done.body as { jobid: string }).jobid;
  if ((await waitForJob(opts, doneJob, { intervalMs: 20 })).jobstatus !== 1)
    throw new Error('the first job failed');
  return {
    name,
    server,
    dir,
    opts,
    agent,
    zoneid,
    doneJob,
    jobs: 0,
    failed: 0,
    cpuMs: 0,
    dbCpuMs: 0,
    clientCpuMs: 0,
    statements: 0,
    ms: 0,
    perSlice: [],
    perSliceDb: [],
  };
}

/** 64 clients on `s` for `ms`: associateIpAddress, then poll its job until done, again and again. */
async function drive(s: Side, ms: number, counted: boolean): Promise<void> {
  let ok = 0;
  let failed = 0;
  const statements0 = counted ? await statementCounts(s.opts) : {};
  const db = counted ? await dbCpuWindow(arg(`--db-url-${s.name}`, '')) : undefined;
  const cpu0 = processCpuMs(s.server.pid);
  const client0 = process.cpuUsage();
  const t0 = performance.now();
  const end = t0 + ms;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < end) {
        try {
          if (work === 'poll' || work === 'list') {
            const q =
              work === 'poll'
                ? await callApi(s.opts, 'queryAsyncJobResult', { jobid: s.doneJob })
                : await callApi(s.opts, 'listAccounts', { listall: 'true' });
            if (q.status === 200) ok++;
            else failed++;
            continue;
          }
          const r = await callApi(s.opts, 'associateIpAddress', { zoneid: s.zoneid });
          const job =
            r.status === 200
              ? await waitForJob(s.opts, (r.body as { jobid: string }).jobid, { intervalMs: 50 })
              : undefined;
          if (job?.jobstatus === 1) ok++;
          else failed++;
        } catch {
          failed++;
        }
      }
    }),
  );
  if (!counted) return;
  const cpu = processCpuMs(s.server.pid) - cpu0;
  const client = process.cpuUsage(client0);
  const elapsed = performance.now() - t0;
  const dbMs = (await db?.stop()) ?? NaN;
  const statements1 = await statementCounts(s.opts);
  s.jobs += ok;
  s.failed += failed;
  s.cpuMs += cpu;
  s.dbCpuMs += dbMs;
  s.clientCpuMs += (client.user + client.system) / 1000;
  for (const [k, n] of Object.entries(statements1)) s.statements += n - (statements0[k] ?? 0);
  s.ms += elapsed;
  s.perSlice.push(Math.round((cpu / Math.max(1, ok)) * 100) / 100);
  if (!Number.isNaN(dbMs)) s.perSliceDb.push(Math.round((dbMs / Math.max(1, ok)) * 100) / 100);
}

function median(xs: number[]): number {
  const o = [...xs].sort((a, b) => a - b);
  const m = o.length >> 1;
  return o.length % 2 ? o[m]! : Math.round(((o[m - 1]! + o[m]!) / 2) * 1000) / 1000;
}

const sides = [await start('a'), await start('b')];
try {
  // Warm both (JIT, SQLite page cache), uncounted: a first slice costs half as much again as the later ones.
  for (let i = 0; i < 3; i++) for (const s of sides) await drive(s, sliceMs, false);
  for (let i = 0; i < slices; i++)
    // ABBA: neither build always goes first.
    for (const s of i % 2 === 0 ? sides : [...sides].reverse()) await drive(s, sliceMs, true);
  for (const s of sides)
    console.log(
      JSON.stringify({
        bench: 'ab-associate',
        build: s.name,
        tree: trees[s.name],
        db: arg(`--db-url-${s.name}`, '') ? arg(`--db-url-${s.name}`).split(':')[0] : 'sqlite',
        work,
        clients,
        slices,
        jobs: s.jobs,
        failed: s.failed,
        jobs_per_second: Math.round(s.jobs / (s.ms / 1000)),
        server_cpu_ms_per_job: Math.round((s.cpuMs / Math.max(1, s.jobs)) * 1000) / 1000,
        ...(Number.isNaN(s.dbCpuMs)
          ? {}
          : { db_cpu_ms_per_job: Math.round((s.dbCpuMs / Math.max(1, s.jobs)) * 1000) / 1000 }),
        client_cpu_ms_per_job: Math.round((s.clientCpuMs / Math.max(1, s.jobs)) * 1000) / 1000,
        ...(s.statements
          ? { statements_per_job: Math.round((s.statements / Math.max(1, s.jobs)) * 10) / 10 }
          : {}),
        // Medians of the slices: a slice that another session's burst landed on weighs no more than the others.
        median_slice_server_cpu_ms_per_job: median(s.perSlice),
        ...(s.perSliceDb.length ? { median_slice_db_cpu_ms_per_job: median(s.perSliceDb) } : {}),
        per_slice_cpu_ms_per_job: s.perSlice,
        ...(s.perSliceDb.length ? { per_slice_db_cpu_ms_per_job: s.perSliceDb } : {}),
        metrics,
        loadavg: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
      }),
    );
} finally {
  for (const s of sides) {
    s.agent.destroy();
    await s.server.stop();
    rmSync(s.dir, { recursive: true, force: true });
  }
}
