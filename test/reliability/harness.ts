/**
 * Reliability harness: N real `bin/stacknet.js server` processes on one database URL, signed API clients
 * (src/api/client.ts), a burst of API calls from many concurrent clients, and the faults injected into it
 * (SIGKILL a server and restart it on the same port and data dir; terminate the database's connections).
 * Everything started is stopped by PID; `Cluster.stop()` removes the data dirs. The invariants to check
 * afterwards are in invariants.ts.
 *
 *   const cluster = await startCluster({ dbUrl, servers: 2, env: { ... } });
 *   await configure(cluster.admin(), { 'network.gc.interval': 2, 'network.gc.wait': 2 });
 *   const zone = await setupZone(cluster.admin());
 *   const nets = await createNetworks(cluster.admin(), zone, 8);
 *   const result = await runBurst(cluster, { clients: 64, ops, faults: [{ afterOps: 40, inject: () => ... }] });
 *   await cluster.stop();
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { callApi } from '../../src/api/client.js';
import type { ClientOptions } from '../../src/api/client.js';
import { dbKindOf, openStore } from '../../src/store/db.js';
import { eventually, freePort } from '../api/harness.js';

export { eventually, freePort };

const root = process.env.STACKNET_ROOT ?? new URL('../..', import.meta.url).pathname;

export interface ServerOptions {
  dbUrl: string;
  apiKey: string;
  secretKey: string;
  /** Extra environment for the process (STACKNET_*). */
  env?: Record<string, string>;
}

/** One server process that can be killed and started again on the same port and data dir. */
export class ManagedServer {
  readonly url: string;
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private out = '';
  /** Exits nobody asked for (not kill() / stop()): a server that died by itself. */
  readonly unexpectedExits: { code: number | null; signal: string | null }[] = [];
  private expectingExit = false;
  restarts = 0;

  private constructor(
    readonly name: string,
    readonly port: number,
    readonly dataDir: string,
    private readonly o: ServerOptions,
  ) {
    this.url = `http://127.0.0.1:${port}/client/api`;
  }

  static async start(name: string, o: ServerOptions): Promise<ManagedServer> {
    const s = new ManagedServer(name, await freePort(), mkdtempSync(join(tmpdir(), 'stacknet-rel-')), o);
    await s.spawn();
    return s;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  alive(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  output(): string {
    return this.out;
  }

  client(): ClientOptions {
    return { url: this.url, apiKey: this.o.apiKey, secretKey: this.o.secretKey };
  }

  private async spawn(): Promise<void> {
    const child = spawn(process.execPath, [join(root, 'bin/stacknet.js'), 'server'], {
      env: {
        ...process.env,
        STACKNET_PORT: String(this.port),
        STACKNET_HOST: '127.0.0.1',
        STACKNET_DATA_DIR: this.dataDir,
        STACKNET_DB_URL: this.o.dbUrl,
        STACKNET_ADMIN_API_KEY: this.o.apiKey,
        STACKNET_ADMIN_SECRET_KEY: this.o.secretKey,
        STACKNET_ADMIN_PASSWORD: 'admin-test-password',
        ...this.o.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this.expectingExit = false;
    const tag = `--- ${this.name} pid ${child.pid} ---\n`;
    this.out += tag;
    child.stdout!.on('data', (d) => (this.out += String(d)));
    child.stderr!.on('data', (d) => (this.out += String(d)));
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        if (!this.expectingExit) this.unexpectedExits.push({ code, signal });
        this.out += `--- ${this.name} pid ${child.pid} exited: code ${code} signal ${signal} ---\n`;
        resolve();
      }),
    );
    await eventually(
      async () => {
        if (child.exitCode !== null || child.signalCode !== null)
          throw new Error(`${this.name} exited while starting:\n${this.out}`);
        const r = await fetch(`http://127.0.0.1:${this.port}/healthz`).catch(() => undefined);
        return r?.ok ? true : undefined;
      },
      60_000,
      `${this.name} to answer /healthz`,
    );
  }

  /** Sends `signal` (SIGKILL by default) and waits for the process to be gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.alive()) return;
    this.expectingExit = true;
    this.child!.kill(signal);
    await this.exited;
  }

  /** Starts the process again, same port and data dir (after kill()). */
  async restart(): Promise<void> {
    assert.ok(!this.alive(), `${this.name} is still running`);
    this.restarts++;
    await this.spawn();
  }

  /** SIGTERM, then SIGKILL after 30 s; removes the data dir. Returns the exit code (null when killed). */
  async stop(): Promise<number | null> {
    let code: number | null = this.child?.exitCode ?? null;
    if (this.alive()) {
      this.expectingExit = true;
      const child = this.child!;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await this.exited;
      clearTimeout(killer);
      code = child.exitCode;
    }
    rmSync(this.dataDir, { recursive: true, force: true });
    return code;
  }
}

export interface Cluster {
  dbUrl: string;
  servers: ManagedServer[];
  /** Admin API credentials on server `i` (default 0). */
  admin(i?: number): ClientOptions;
  /** The URLs of the servers running now. */
  liveUrls(): string[];
  /** Stops every server (SIGTERM) and removes their data dirs; returns each one's exit code. */
  stop(): Promise<(number | null)[]>;
}

export interface ClusterOptions {
  dbUrl: string;
  /** How many servers (default 2). */
  servers?: number;
  env?: Record<string, string>;
}

/** Starts the servers one after the other (the first migrates and bootstraps the admin with the test keys). */
export async function startCluster(o: ClusterOptions): Promise<Cluster> {
  const apiKey = `rel-admin-key-${process.pid}`;
  const secretKey = `rel-admin-secret-${process.pid}`;
  const servers: ManagedServer[] = [];
  const cluster: Cluster = {
    dbUrl: o.dbUrl,
    servers,
    admin: (i = 0) => servers[i]!.client(),
    liveUrls: () => servers.filter((s) => s.alive()).map((s) => s.url),
    stop: async () => Promise.all(servers.map((s) => s.stop())),
  };
  try {
    for (let i = 0; i < (o.servers ?? 2); i++) {
      // Every server on one database shares the first one's server key, which seals the secrets in it.
      const keyFile: Record<string, string> =
        i === 0 ? {} : { STACKNET_SERVER_KEY_FILE: join(servers[0]!.dataDir, 'server.key') };
      servers.push(
        await ManagedServer.start(`server${i}`, {
          dbUrl: o.dbUrl,
          apiKey,
          secretKey,
          env: { ...keyFile, ...o.env },
        }),
      );
    }
  } catch (e) {
    await cluster.stop();
    throw e;
  }
  return cluster;
}

// ------------------------------------------------------------------------------------------- API helpers

/** A successful synchronous call's body, or a failed assertion naming the command. */
export async function call(
  c: ClientOptions,
  command: string,
  params: Record<string, string> = {},
): Promise<Record<string, unknown>> {
  const r = await callApi(c, command, params);
  assert.equal(r.status, 200, `${command}: HTTP ${r.status} ${r.text}`);
  return r.body as Record<string, unknown>;
}

/** An async command run to completion; its jobresult, or a failed assertion. */
export async function callJob(
  c: ClientOptions,
  command: string,
  params: Record<string, string> = {},
): Promise<Record<string, unknown>> {
  const r = await call(c, command, params);
  const job = await pollJob([c.url], c, String(r.jobid));
  assert.ok(job, `${command}: job ${String(r.jobid)} did not finish`);
  assert.equal(job.status, 1, `${command}: job failed ${JSON.stringify(job.result)}`);
  return job.result as Record<string, unknown>;
}

/** Global settings through updateConfiguration (e.g. lower GC and expunge intervals for a test). */
export async function configure(c: ClientOptions, settings: Record<string, string | number>): Promise<void> {
  for (const [name, value] of Object.entries(settings)) {
    await call(c, 'updateConfiguration', { name, value: String(value) });
  }
}

export interface ZoneSetup {
  zoneId: string;
  physicalNetworkId: string;
  offeringId: string;
  /** The built-in service offering and template deployVirtualMachine names. */
  serviceOfferingId: string;
  templateId: string;
}

/**
 * A zone with a physical network (Guest + Public, `vlans`), one public range and the default isolated offering
 * with source NAT. Public range: 10.<octet>.0.2 to 10.<octet>.<publicSize / 256>.x.
 */
export async function setupZone(
  c: ClientOptions,
  o: { name?: string; vlans?: string; publicStart?: string; publicEnd?: string; publicGateway?: string } = {},
): Promise<ZoneSetup> {
  const zone = (
    (await call(c, 'createZone', {
      name: o.name ?? 'rel-zone',
      networktype: 'Advanced',
      dns1: '192.0.2.53',
      internaldns1: '192.0.2.53',
    })) as { zone: { id: string } }
  ).zone.id;
  const pn = (
    (await callJob(c, 'createPhysicalNetwork', {
      zoneid: zone,
      name: 'rel-pn',
      isolationmethods: 'VLAN',
      vlan: o.vlans ?? '100-999',
    })) as { physicalnetwork: { id: string } }
  ).physicalnetwork.id;
  for (const t of ['Guest', 'Public'])
    await callJob(c, 'addTrafficType', { physicalnetworkid: pn, traffictype: t });
  await callJob(c, 'updatePhysicalNetwork', { id: pn, state: 'Enabled' });
  await call(c, 'createVlanIpRange', {
    zoneid: zone,
    vlan: '50',
    gateway: o.publicGateway ?? '10.250.0.1',
    netmask: '255.255.0.0',
    startip: o.publicStart ?? '10.250.0.2',
    endip: o.publicEnd ?? '10.250.15.254',
    forvirtualnetwork: 'true',
  });
  const offering = (
    (await call(c, 'listNetworkOfferings', {
      name: 'DefaultIsolatedNetworkOfferingWithSourceNatService',
    })) as { networkoffering: { id: string }[] }
  ).networkoffering[0]!.id;
  const serviceOfferingId = (
    (await call(c, 'listServiceOfferings', { name: 'Small Instance' })) as {
      serviceoffering: { id: string }[];
    }
  ).serviceoffering[0]!.id;
  const templateId = (
    (await call(c, 'listTemplates', { templatefilter: 'featured' })) as { template: { id: string }[] }
  ).template[0]!.id;
  return { zoneId: zone, physicalNetworkId: pn, offeringId: offering, serviceOfferingId, templateId };
}

/** `count` new isolated networks (state Allocated: no VLAN, no source NAT yet), 10.<first+i>.0.0/24. */
export async function createNetworks(
  c: ClientOptions,
  zone: ZoneSetup,
  count: number,
  o: { prefix?: string; firstOctet?: number } = {},
): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const name = `${o.prefix ?? 'rel'}-${i}`;
    const r = (await call(c, 'createNetwork', {
      zoneid: zone.zoneId,
      name,
      displaytext: name,
      networkofferingid: zone.offeringId,
      gateway: `10.${(o.firstOctet ?? 1) + i}.0.1`,
      netmask: '255.255.255.0',
    })) as { network: { id: string } };
    ids.push(r.network.id);
  }
  return ids;
}

// ------------------------------------------------------------------------------------------------ burst

export interface BurstOp {
  command: string;
  params: Record<string, string>;
}

export interface OpOutcome {
  op: BurstOp;
  /**
   * ok: the command (and its job) succeeded; failed: a CloudStack error (HTTP status or job errorcode in
   * `code`); unreachable: the request never got an answer (the server was down or died under it); lost: the job
   * was queued but no answer about it was had before the deadline.
   */
  kind: 'ok' | 'failed' | 'unreachable' | 'lost';
  code?: number;
  text?: string;
  jobId?: string;
  result?: unknown;
}

export interface BurstResult {
  outcomes: OpOutcome[];
  /** Count per kind, and per error code for failed ones ("failed:530"). */
  counts: Record<string, number>;
  faults: { afterOps: number; at: number; what: string }[];
}

export interface Fault {
  /** Inject once this many ops have been started ... */
  afterOps: number;
  /** ... or this many ms after the burst began, whichever comes first. */
  afterMs?: number;
  /** What it does, for the report. */
  what: string;
  inject(): Promise<void>;
}

/** Polls queryAsyncJobResult on any live URL until the job is done or the deadline passes. */
export async function pollJob(
  urls: string[] | (() => string[]),
  c: ClientOptions,
  jobId: string,
  timeoutMs = 180_000,
): Promise<{ status: number; code: number; result: unknown } | undefined> {
  const deadline = Date.now() + timeoutMs;
  let turn = 0;
  while (Date.now() < deadline) {
    const live = typeof urls === 'function' ? urls() : urls;
    const url = live[turn++ % Math.max(1, live.length)];
    if (url) {
      try {
        const r = await callApi({ ...c, url }, 'queryAsyncJobResult', { jobid: jobId });
        if (r.status === 200) {
          const j = r.body as { jobstatus: number; jobresultcode: number; jobresult?: unknown };
          if (j.jobstatus !== 0) return { status: j.jobstatus, code: j.jobresultcode, result: j.jobresult };
        }
      } catch {
        // that server is down: ask another one next time
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return undefined;
}

/**
 * `clients` concurrent signed clients take ops off one queue until it is empty, each on a live server in turn;
 * async commands are followed to their job result (polled on any live server: the one that took the request may
 * have been killed). An op whose request got no answer is not sent again (it may have been done). Faults are
 * injected while the burst runs, each once its op count is reached (the clients keep going meanwhile).
 */
export async function runBurst(
  cluster: Pick<Cluster, 'liveUrls' | 'admin'>,
  o: {
    clients: number;
    ops: BurstOp[];
    faults?: Fault[];
    jobTimeoutMs?: number;
    credentials?: ClientOptions;
  },
): Promise<BurstResult> {
  const creds = o.credentials ?? cluster.admin();
  const queue = [...o.ops];
  const outcomes: OpOutcome[] = [];
  const faults = [...(o.faults ?? [])].sort((a, b) => a.afterOps - b.afterOps);
  const injected: BurstResult['faults'] = [];
  const pendingFaults: Promise<void>[] = [];
  let started = 0;
  const t0 = Date.now();
  const fire = (f: Fault) => {
    const i = faults.indexOf(f);
    if (i < 0) return;
    faults.splice(i, 1);
    injected.push({ afterOps: started, at: Date.now() - t0, what: f.what });
    pendingFaults.push(f.inject());
  };
  const maybeInject = () => {
    for (const f of faults.filter((x) => started >= x.afterOps)) fire(f);
  };
  const timers = faults
    .filter((f) => f.afterMs !== undefined)
    .map((f) => setTimeout(() => fire(f), f.afterMs));
  let turn = 0;
  const worker = async () => {
    for (;;) {
      const op = queue.shift();
      if (!op) return;
      started++;
      maybeInject();
      const live = cluster.liveUrls();
      const url = live[turn++ % Math.max(1, live.length)];
      if (!url) {
        outcomes.push({ op, kind: 'unreachable', text: 'no server running' });
        continue;
      }
      outcomes.push(await runOp({ ...creds, url }, op, () => cluster.liveUrls(), o.jobTimeoutMs));
    }
  };
  await Promise.all(Array.from({ length: o.clients }, worker));
  for (const t of timers) clearTimeout(t);
  await Promise.all(pendingFaults);
  const counts: Record<string, number> = {};
  for (const x of outcomes) {
    counts[x.kind] = (counts[x.kind] ?? 0) + 1;
    if (x.kind === 'failed') counts[`failed:${x.code}`] = (counts[`failed:${x.code}`] ?? 0) + 1;
  }
  return { outcomes, counts, faults: injected };
}

async function runOp(
  c: ClientOptions,
  op: BurstOp,
  liveUrls: () => string[],
  jobTimeoutMs?: number,
): Promise<OpOutcome> {
  let r;
  try {
    r = await callApi(c, op.command, op.params, { signal: AbortSignal.timeout(120_000) });
  } catch (e) {
    return { op, kind: 'unreachable', text: (e as Error).message };
  }
  const body = r.body as Record<string, unknown> | string;
  if (r.status !== 200 || typeof body !== 'object') {
    const err = typeof body === 'object' ? (body as { errortext?: string }).errortext : r.text;
    return { op, kind: 'failed', code: r.status, text: String(err) };
  }
  if (typeof body.jobid !== 'string') return { op, kind: 'ok', result: body };
  const job = await pollJob(liveUrls, c, body.jobid, jobTimeoutMs);
  if (!job) return { op, kind: 'lost', jobId: body.jobid };
  if (job.status === 1) return { op, kind: 'ok', jobId: body.jobid, result: job.result };
  const e = job.result as { errorcode?: number; errortext?: string } | undefined;
  return { op, kind: 'failed', jobId: body.jobid, code: e?.errorcode ?? job.code, text: e?.errortext };
}

// ------------------------------------------------------------------------------------------------ faults

/**
 * Terminates every connection to the test database but this one (PostgreSQL: pg_terminate_backend on the
 * database's backends; MariaDB: KILL CONNECTION on the threads using the schema). Returns how many.
 */
export async function terminateDbConnections(dbUrl: string): Promise<number> {
  const kind = dbKindOf(dbUrl);
  const name = new URL(dbUrl).pathname.slice(1);
  const admin = await openStore(dbUrl, { poolSize: 1 });
  try {
    if (kind === 'postgres') {
      const r = await sql<{ n: number }>`select count(*) filter (where pg_terminate_backend(pid)) as n
        from pg_stat_activity where datname = ${name} and pid <> pg_backend_pid()`.execute(admin.db);
      return Number(r.rows[0]?.n ?? 0);
    }
    if (kind === 'mysql') {
      const me = await sql<{ id: number }>`select connection_id() as id`.execute(admin.db);
      const threads = await sql<{ id: number }>`select id from information_schema.processlist
        where db = ${name} and id <> ${me.rows[0]!.id}`.execute(admin.db);
      let n = 0;
      for (const t of threads.rows) {
        // A thread may have gone by itself meanwhile.
        await sql
          .raw(`KILL CONNECTION ${Number(t.id)}`)
          .execute(admin.db)
          .then(() => n++)
          .catch(() => undefined);
      }
      return n;
    }
    throw new Error('terminateDbConnections: SQLite has no connections to terminate');
  } finally {
    await admin.close();
  }
}

/** A fault that SIGKILLs `server`, waits `downMs`, and starts it again. */
export function killAndRestart(server: ManagedServer, downMs = 500): Fault {
  return {
    afterOps: 0,
    what: `SIGKILL ${server.name} and restart it after ${downMs} ms`,
    async inject() {
      await server.kill('SIGKILL');
      await new Promise((r) => setTimeout(r, downMs));
      await server.restart();
    },
  };
}
