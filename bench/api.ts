/**
 * API server under load: 64 concurrent signed clients against a spawned `stacknet server` (SQLite in a temp dir
 * unless --db-url), first a cheap list command, then an async command end to end (request → job done).
 * Prints one JSON object per line. Builds the CLI first (the server runs from dist/).
 *   npm run bench:api -- [--duration 30] [--clients 64] [--db-url postgres://...] [--no-build]
 *                        [--metrics both|on|off] [--scrape-seconds 1] [--rounds 1] [--log-level info]
 *                        [--amqp-url amqp://guest:guest@127.0.0.1:5672] (events on the bus, src/events: their cost)
 *                        [--phases list,domain,associate] (which phases run; all by default)
 *                        [--http-client http|fetch] (the clients' transport: node:http keep-alive, the default, or
 *                        fetch as before 2026-12-07; the same signed requests either way)
 *                        [--sqlite-sync NORMAL|FULL|EXTRA] (the SQLite server's STACKNET_SQLITE_SYNC; NORMAL by
 *                        default, as in every figure before 2026-12-07; the server's own default is FULL)
 * `--metrics both` (the default) runs every phase against a server with /metrics on (STACKNET_METRICS=on, scraped
 * every second like a busy Prometheus) and one with it off, alternating `--rounds` times, each server on a fresh
 * SQLite database (with --db-url, the same database), so the cost of the metrics is the difference.
 */
import { spawnSync } from 'node:child_process';
import { Agent } from 'node:http';
import { callApi, waitForJob } from '../src/api/client.js';
import type { ClientOptions } from '../src/api/client.js';
import { startServer } from '../test/api/harness.js';
import { benchAssociate } from './api-associate.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1]! : dflt;
}

const duration = Number(arg('--duration', '30')) * 1000;
const clients = Number(arg('--clients', '64'));
const dbUrl = arg('--db-url', '');
const amqpUrl = arg('--amqp-url', '');
const metricsArg = arg('--metrics', 'both');
const rounds = Number(arg('--rounds', '1'));
const scrapeSeconds = Number(arg('--scrape-seconds', '1'));
const logLevel = arg('--log-level', 'info');
const phases = new Set(arg('--phases', 'list,domain,associate').split(','));
const httpClient = arg('--http-client', 'http');
const sqliteSync = arg('--sqlite-sync', 'NORMAL').toUpperCase();
if (!['NORMAL', 'FULL', 'EXTRA'].includes(sqliteSync))
  throw new Error('--sqlite-sync must be NORMAL, FULL or EXTRA');
if (!['http', 'fetch'].includes(httpClient)) throw new Error('--http-client must be http or fetch');
if (!['both', 'on', 'off'].includes(metricsArg)) throw new Error('--metrics must be both, on or off');
let tags: Record<string, unknown> = {};

function p99(xs: number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.min(s.length - 1, Math.floor(s.length * 0.99))]! * 10) / 10;
}

async function phase(
  name: string,
  opts: ClientOptions,
  one: (client: number, i: number) => Promise<boolean>,
): Promise<void> {
  const lat: number[] = [];
  let failed = 0;
  const start = performance.now();
  const end = start + duration;
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let i = 0; performance.now() < end; i++) {
        const t = performance.now();
        let ok: boolean;
        try {
          ok = await one(c, i);
        } catch {
          ok = false;
        }
        if (ok) lat.push(performance.now() - t);
        else failed++;
      }
    }),
  );
  const secs = (performance.now() - start) / 1000;
  console.log(
    JSON.stringify({
      bench: 'api',
      phase: name,
      clients,
      seconds: Math.round(secs * 10) / 10,
      ok: lat.length,
      failed,
      per_second: Math.round(lat.length / secs),
      p50_ms: Math.round(([...lat].sort((a, b) => a - b)[Math.floor(lat.length / 2)] ?? 0) * 10) / 10,
      p99_ms: p99(lat),
      db: opts.url && (dbUrl ? dbUrl.split(':')[0] : 'sqlite'),
      ...tags,
    }),
  );
}

if (!process.argv.includes('--no-build')) {
  const build = spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
  if (build.status !== 0) process.exit(build.status ?? 1);
}

const { mkdtempSync, rmSync } = await import('node:fs');
const { join } = await import('node:path');
const { tmpdir } = await import('node:os');

async function run(metrics: 'on' | 'off', round: number): Promise<void> {
  tags = {
    metrics,
    round,
    log_level: logLevel,
    bus: amqpUrl ? 'on' : 'off',
    scrape_seconds: scrapeSeconds,
    http_client: httpClient,
    ...(dbUrl ? {} : { sqlite_sync: sqliteSync }),
  };
  const dir = mkdtempSync(join(tmpdir(), 'stacknet-bench-'));
  const server = await startServer(
    dbUrl || `sqlite:${join(dir, 'bench.db')}`,
    {
      STACKNET_SQLITE_SYNC: sqliteSync,
      STACKNET_METRICS: metrics,
      STACKNET_LOG_LEVEL: logLevel,
      // The server's own Node options (a profiler's --import, say), kept out of the bench's process.
      ...(process.env.BENCH_SERVER_NODE_OPTIONS
        ? { NODE_OPTIONS: process.env.BENCH_SERVER_NODE_OPTIONS }
        : {}),
      ...(amqpUrl ? { STACKNET_AMQP_URL: amqpUrl, STACKNET_AMQP_EXCHANGE: 'stacknet-bench' } : {}),
      // A fresh MariaDB database migrates in 5–12 s on a quiet machine, and several times that on a loaded one.
    },
    [],
    { healthzTimeoutMs: 180_000 },
  );
  // Keep-alive connections through node:http, one per client at most (src/api/client.ts `agent`): fetch's own
  // objects cost the bench, on the same two cores as the server, more CPU than signing and parsing.
  const agent = httpClient === 'http' ? new Agent({ keepAlive: true, maxSockets: clients }) : undefined;
  const opts: ClientOptions = { url: server.url, apiKey: server.apiKey, secretKey: server.secretKey, agent };
  // A scraper, as Prometheus would be (by default every second: 15–30 s is usual, so that is the dear end).
  let scrapes = 0;
  const scraper =
    metrics === 'on'
      ? setInterval(() => {
          void fetch(server.url.replace('/client/api', '/metrics'))
            .then((r) => r.text())
            .then(
              () => scrapes++,
              () => undefined,
            );
        }, scrapeSeconds * 1000)
      : undefined;
  try {
    if (phases.has('list'))
      await phase(
        'listAccounts',
        opts,
        async () => (await callApi(opts, 'listAccounts', { listall: 'true' })).status === 200,
      );
    const runId = `${process.pid}-${metrics}-${round}`;
    if (phases.has('domain'))
      await phase('createDomain+deleteDomain (async, to job done)', opts, async (c, i) => {
        const d = await callApi(opts, 'createDomain', { name: `b${runId}-${c}-${i}` });
        if (d.status !== 200) return false;
        const id = (d.body as { domain: { id: string } }).domain.id;
        const q = await callApi(opts, 'deleteDomain', { id });
        if (q.status !== 200) return false;
        const job = await waitForJob(opts, (q.body as { jobid: string }).jobid, { intervalMs: 50 });
        return job.jobstatus === 1;
      });
    if (phases.has('associate'))
      await benchAssociate(opts, {
        clients,
        durationMs: duration,
        db: dbUrl ? dbUrl.split(':')[0]! : 'sqlite',
        tags,
        suffix: `-${metrics}-${round}`,
        serverPid: server.pid,
        dbUrl,
      });
  } finally {
    if (scraper) clearInterval(scraper);
    if (metrics === 'on') console.log(JSON.stringify({ bench: 'api', scrapes, ...tags }));
    agent?.destroy();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const order: ('on' | 'off')[] = metricsArg === 'both' ? ['off', 'on'] : [metricsArg as 'on' | 'off'];
for (let round = 1; round <= rounds; round++)
  // Alternate which goes first, so that a machine getting busier or quieter does not favour one.
  for (const m of round % 2 === 1 ? order : [...order].reverse()) await run(m, round);
