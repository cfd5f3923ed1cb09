/**
 * The fixed cost of one signed API request in the server (HTTP, parsing, signature, envelope, request log,
 * metrics), apart from any command's own work: 64 keep-alive clients send a command that does almost nothing —
 * queryAsyncJobResult of a job that finished (`query`) or listZones with one zone (`zones`) — and the server's
 * CPU per request is read from /proc. Prints one JSON line per phase. Runs the built server (`npm run build`;
 * STACKNET_ROOT=<tree> for another build, as bench/api.ts).
 *   node --import tsx bench/http-floor.ts [--duration 10] [--clients 64] [--phases query,zones]
 *                                         [--metrics on|off] [--log-level info] [--db-url URL]
 */
import { Agent } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { callApi, waitForJob } from '../src/api/client.js';
import type { ClientOptions } from '../src/api/client.js';
import { startServer } from '../test/api/harness.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1]! : dflt;
}
const duration = Number(arg('--duration', '10')) * 1000;
const clients = Number(arg('--clients', '64'));
const phases = arg('--phases', 'query,zones').split(',');
const metrics = arg('--metrics', 'on');
const logLevel = arg('--log-level', 'info');
const dbUrl = arg('--db-url', '');

/** CPU milliseconds (user + system) of a process, from /proc/<pid>/stat (clock ticks of 10 ms). */
function processCpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

const dir = mkdtempSync(join(tmpdir(), 'stacknet-floor-'));
const server = await startServer(dbUrl || `sqlite:${join(dir, 'bench.db')}`, {
  STACKNET_METRICS: metrics,
  STACKNET_LOG_LEVEL: logLevel,
  ...(process.env.BENCH_SERVER_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_SERVER_NODE_OPTIONS } : {}),
});
const agent = new Agent({ keepAlive: true, maxSockets: clients });
const opts: ClientOptions = { url: server.url, apiKey: server.apiKey, secretKey: server.secretKey, agent };
try {
  const zone = await callApi(opts, 'createZone', {
    name: `floor-${process.pid}`,
    networktype: 'Advanced',
    dns1: '8.8.8.8',
    internaldns1: '10.0.0.2',
  });
  if (zone.status !== 200) throw new Error(`createZone: ${zone.text}`);
  const domain = await callApi(opts, 'createDomain', { name: `floor-${process.pid}` });
  const id = (domain.body as { domain: { id: string } }).domain.id;
  const del = await callApi(opts, 'deleteDomain', { id });
  const jobid = (del.body as { jobid: string }).jobid;
  if ((await waitForJob(opts, jobid, { intervalMs: 20 })).jobstatus !== 1) throw new Error('job failed');
  const calls: Record<string, [string, Record<string, string>]> = {
    query: ['queryAsyncJobResult', { jobid }],
    zones: ['listZones', {}],
  };
  for (const phase of phases) {
    const call = calls[phase];
    if (!call) throw new Error(`unknown phase ${phase} (use ${Object.keys(calls).join(', ')})`);
    let ok = 0;
    let failed = 0;
    const cpu0 = processCpuMs(server.pid);
    const client0 = process.cpuUsage();
    const start = performance.now();
    const end = start + duration;
    await Promise.all(
      Array.from({ length: clients }, async () => {
        while (performance.now() < end) {
          const r = await callApi(opts, call[0], call[1]).catch(() => undefined);
          if (r?.status === 200) ok++;
          else failed++;
        }
      }),
    );
    const secs = (performance.now() - start) / 1000;
    const cpu = processCpuMs(server.pid) - cpu0;
    const client = process.cpuUsage(client0);
    console.log(
      JSON.stringify({
        bench: 'http-floor',
        phase: `${call[0]}`,
        clients,
        seconds: Math.round(secs * 10) / 10,
        ok,
        failed,
        per_second: Math.round(ok / secs),
        server_cpu_us_per_request: Math.round((cpu * 1000) / Math.max(1, ok)),
        client_cpu_us_per_request: Math.round((client.user + client.system) / Math.max(1, ok)),
        db: dbUrl ? dbUrl.split(':')[0] : 'sqlite',
        metrics,
        log_level: logLevel,
        loadavg: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
      }),
    );
  }
} finally {
  agent.destroy();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
