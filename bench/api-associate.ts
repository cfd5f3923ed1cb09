/**
 * associateIpAddress end to end (request → job done) under `clients` concurrent signed clients, on a /16 public
 * range so the pool never runs dry during the run (allocation cost must not depend on the pool's size). Invoked
 * from bench/api.ts against its server; prints one JSON line like the other phases.
 */
import { readFileSync } from 'node:fs';
import { callApi, waitForJob } from '../src/api/client.js';
import type { ClientOptions } from '../src/api/client.js';
import { dbCpuWindow } from './db-cpu.js';

export interface AssociateBenchOptions {
  clients: number;
  durationMs: number;
  db: string;
  /** Extra fields on the JSON line (bench/api.ts: `metrics`, `round`). */
  tags?: Record<string, unknown>;
  /** Distinguishes the zone of a second run against the same database. */
  suffix?: string;
  /** The server's process id: its CPU time per job is reported (what the machine's load cannot inflate). */
  serverPid?: number;
  /** The server's database (not SQLite): the database server's CPU time per job is reported (bench/db-cpu.ts). */
  dbUrl?: string;
}

/** CPU milliseconds (user + system) a process has used, from /proc (Linux); NaN elsewhere. */
function processCpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    // utime and stime are fields 14 and 15 of stat (11 and 12 after the command), in clock ticks (100/s).
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return NaN;
  }
}

const pct = (sorted: number[], q: number): number =>
  sorted.length === 0
    ? 0
    : Math.round(sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))]! * 10) / 10;

async function must(
  opts: ClientOptions,
  command: string,
  params: Record<string, string>,
  async = false,
): Promise<Record<string, unknown>> {
  const r = await callApi(opts, command, params);
  if (r.status !== 200) throw new Error(`${command}: HTTP ${r.status} ${r.text}`);
  if (!async) return r.body as Record<string, unknown>;
  const job = await waitForJob(opts, (r.body as { jobid: string }).jobid, { intervalMs: 20 });
  if (job.jobstatus !== 1) throw new Error(`${command}: job failed ${JSON.stringify(job.jobresult)}`);
  return job.jobresult as Record<string, unknown>;
}

/** stacknet_db_statements_total by pool from the server's /metrics (empty when it has none: metrics off). */
export async function statementCounts(opts: ClientOptions): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  try {
    const r = await fetch(opts.url.replace('/client/api', '/metrics'));
    if (!r.ok) return out;
    for (const m of (await r.text()).matchAll(/^stacknet_db_statements_total\{pool="(\w+)"\} (\d+)/gm))
      out[m[1]!] = Number(m[2]);
  } catch {
    /* no metrics */
  }
  return out;
}

/**
 * A zone for association benches: Advanced, a physical network and one public range of 65,533 addresses (VLAN 30,
 * 100.64.0.0/16). Its uuid.
 */
export async function associateZone(opts: ClientOptions, name: string): Promise<string> {
  const zone = (await must(opts, 'createZone', {
    name,
    networktype: 'Advanced',
    dns1: '8.8.8.8',
    internaldns1: '10.0.0.2',
  })) as { zone: { id: string } };
  const zoneid = zone.zone.id;
  await must(opts, 'createPhysicalNetwork', { zoneid, name: `${name}-pn`, vlan: '1000-1999' }, true);
  await must(opts, 'createVlanIpRange', {
    zoneid,
    vlan: '30',
    gateway: '100.64.0.1',
    netmask: '255.255.0.0',
    startip: '100.64.0.2',
    endip: '100.64.255.254',
  });
  return zoneid;
}

export async function benchAssociate(opts: ClientOptions, o: AssociateBenchOptions): Promise<void> {
  const zoneid = await associateZone(opts, `bench-${process.pid}${o.suffix ?? ''}`);
  const lat: number[] = [];
  let failed = 0;
  let polls = 0;
  const before = await statementCounts(opts);
  const dbCpu = await dbCpuWindow(o.dbUrl ?? '');
  const serverCpu0 = o.serverPid ? processCpuMs(o.serverPid) : NaN;
  const clientCpu0 = process.cpuUsage();
  const start = performance.now();
  const end = start + o.durationMs;
  await Promise.all(
    Array.from({ length: o.clients }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        try {
          const r = await callApi(opts, 'associateIpAddress', { zoneid });
          if (r.status !== 200) {
            failed++;
            continue;
          }
          const job = await waitForJob(opts, (r.body as { jobid: string }).jobid, {
            intervalMs: 50,
            onPoll: () => polls++,
          });
          if (job.jobstatus === 1) lat.push(performance.now() - t);
          else failed++;
        } catch {
          failed++;
        }
      }
    }),
  );
  const secs = (performance.now() - start) / 1000;
  const serverCpu = o.serverPid ? processCpuMs(o.serverPid) - serverCpu0 : NaN;
  const clientCpu = process.cpuUsage(clientCpu0);
  const dbCpuMs = await dbCpu.stop();
  const after = await statementCounts(opts);
  const perOk = (ms: number) =>
    Number.isNaN(ms) ? undefined : Math.round((ms / Math.max(1, lat.length)) * 100) / 100;
  // Statements per associateIpAddress end to end (request, job, the client's polls), by pool.
  const perJob = Object.fromEntries(
    Object.keys(after).map((k) => [
      k,
      Math.round(((after[k]! - (before[k] ?? 0)) / Math.max(1, lat.length)) * 10) / 10,
    ]),
  );
  const sorted = [...lat].sort((a, b) => a - b);
  console.log(
    JSON.stringify({
      bench: 'api',
      phase: 'associateIpAddress (async, to job done)',
      clients: o.clients,
      seconds: Math.round(secs * 10) / 10,
      ok: lat.length,
      failed,
      allocations_per_second: Math.round(lat.length / secs),
      p50_ms: pct(sorted, 0.5),
      p99_ms: pct(sorted, 0.99),
      pool: 65533,
      server_cpu_ms_per_job: perOk(serverCpu),
      ...(Number.isNaN(dbCpuMs) ? {} : { db_cpu_ms_per_job: perOk(dbCpuMs) }),
      client_cpu_ms_per_job: perOk((clientCpu.user + clientCpu.system) / 1000),
      polls_per_job: Math.round((polls / Math.max(1, lat.length)) * 100) / 100,
      ...(Object.keys(perJob).length ? { statements_per_job: perJob } : {}),
      db: o.db,
      ...o.tags,
    }),
  );
}
