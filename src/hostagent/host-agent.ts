/**
 * `stacknet host-agent`: one per host. Registers with the management server (once: the identity is kept in
 * `<dataDir>/host.json`), heartbeats every ping interval, long-polls its desired state and converges the host
 * to the whole of it (converge.ts), again after each heartbeat so drift heals. Serves the server on its own
 * port: the relay to the routers' control APIs, its status and the VMs' consoles. The channel is in
 * src/hosts/protocol.ts.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { cpus, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { timingSafeEqual } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { accessSync, constants } from 'node:fs';
import type {
  HostDesiredState,
  HostHeartbeatAnswer,
  HostRegistered,
  HostRegistration,
  HostStatus,
} from '../hosts/protocol.js';
import { HostConverger } from './converge.js';
import type { VmBackend } from './vm-backend.js';

export interface HostAgentOptions {
  /** The management server's base URL (`http://server:8080`). */
  server: string;
  /** The registration token (only used when the data dir holds no identity yet). */
  token: string;
  name: string;
  /** The underlay address: registered, VXLAN's local end. */
  address: string;
  port: number;
  /** Where the agent's HTTP server listens (default: `address`). */
  listen?: string;
  dataDir: string;
  guestLabel: string;
  /** The interface (or bridge) routers' public interfaces reach the outside on, unless the server names one. */
  publicLabel?: string;
  prefix: string;
  controlCidr: string;
  /** Seconds between heartbeats until the server says otherwise. */
  pingInterval: number;
  /** How long one long poll of the desired state waits (ms). */
  longPollMs?: number;
  zoneId?: string;
  backend: VmBackend;
  log: (m: string) => void;
}

interface Identity extends HostRegistered {
  server: string;
  name: string;
}

const here = dirname(fileURLToPath(import.meta.url));
/** How often a pass that is still running logs what it is at. */
const PASS_WATCH_MS = 30_000;

function version(): string {
  try {
    return (
      JSON.parse(readFileSync(resolve(here, '..', '..', 'package.json'), 'utf8')) as { version: string }
    ).version;
  } catch {
    return 'unknown';
  }
}

/**
 * /dev/kvm runs ordinary guests: the libvirt backend's domains are of type kvm, else qemu (emulation). Opening
 * /dev/kvm is not enough: a VM whose host offers nested KVM through PVM (`kvm_pvm`, no vmx/svm in the CPU flags,
 * as on these machines since 2026-12-06) opens /dev/kvm, starts qemu, and then the guest spins at full CPU with an
 * empty console while the host kernel logs "kvm-pvm: INTERNAL_ERROR in batch emul" (PVM runs only kernels built
 * for it). So hardware KVM is asked for too: the kvm_intel or kvm_amd module (built in, it is still listed).
 */
export function kvmUsable(): boolean {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return false;
  }
  return existsSync('/sys/module/kvm_intel') || existsSync('/sys/module/kvm_amd');
}

function sameSecret(given: string | undefined, want: string): boolean {
  if (!given) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(`Bearer ${want}`);
  return a.length === b.length && timingSafeEqual(a, b);
}

export class HostAgent {
  readonly converger: HostConverger;
  private identity: Identity | null = null;
  private desired: HostDesiredState | null = null;
  private status: HostStatus = { appliedGeneration: null, vms: [], routers: [], errors: [] };
  private server: Server | null = null;
  private stopped = false;
  private poll: AbortController | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private converging: Promise<void> | null = null;
  /** The desired state the pass under way converges. */
  private passing: HostDesiredState | null = null;
  /** The desired state the last pass converged (what a newer state's new VMs are told apart from). */
  private passed: HostDesiredState | null = null;
  /** VMs started early from newer states while a pass runs (converge.ts `ensureNewVms`): every batch under way. */
  private early: Promise<void> = Promise.resolve();
  /** The newest state an early batch last ran for. */
  private earlyDone: HostDesiredState | null = null;
  private readonly hooks = {
    vm: (v: HostStatus['vms'][number]) => this.vmChanged(v),
    keep: () => this.desired?.vms ?? [],
    keepNetworks: () => this.desired?.networks ?? [],
  };
  private again = false;
  private lastConverged = 0;
  private pingInterval: number;
  /** A report (the status, pushed) in flight, and whether the status changed again meanwhile. */
  private reporting: Promise<void> | null = null;
  private reportAgain = false;
  /** The status as last sent (heartbeat or report). */
  private lastSent = '';

  constructor(private readonly o: HostAgentOptions) {
    this.pingInterval = o.pingInterval;
    this.converger = new HostConverger({
      dataDir: o.dataDir,
      prefix: o.prefix,
      hostAddress: o.address,
      controlCidr: o.controlCidr,
      ...(o.publicLabel ? { publicLabel: o.publicLabel } : {}),
      backends: new Map([[o.backend.name, o.backend]]),
      log: o.log,
    });
  }

  private url(path: string): string {
    return `${this.o.server.replace(/\/$/, '')}${path}`;
  }

  private async call<T>(
    method: string,
    path: string,
    body?: unknown,
    signal?: AbortSignal,
  ): Promise<{ status: number; json: T | null }> {
    const headers: Record<string, string> = {};
    if (this.identity) headers.authorization = `Bearer ${this.identity.secret}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(this.url(path), {
      method,
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: signal ?? AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    if (res.status >= 400)
      throw new HttpError(res.status, `${method} ${path}: ${res.status} ${text.slice(0, 500)}`);
    return { status: res.status, json: text ? (JSON.parse(text) as T) : null };
  }

  /** The identity in host.json when it is this host's on this server; otherwise registers and keeps the answer. */
  private async register(): Promise<void> {
    const file = join(this.o.dataDir, 'host.json');
    if (existsSync(file)) {
      const id = JSON.parse(readFileSync(file, 'utf8')) as Identity;
      if (id.name === this.o.name && id.server === this.o.server) {
        this.identity = id;
        if (id.pingInterval) this.pingInterval = id.pingInterval;
        return;
      }
    }
    this.identity = null;
    const c = cpus();
    const reg: HostRegistration = {
      token: this.o.token,
      name: this.o.name,
      ...(this.o.zoneId ? { zoneId: this.o.zoneId } : {}),
      address: this.o.address,
      port: this.o.port,
      capabilities: {
        cpus: c.length,
        cpuSpeedMhz: c[0]?.speed || 1000,
        memoryMiB: Math.floor(totalmem() / 1024 / 1024),
        kvm: kvmUsable(),
        trafficLabels: {
          guest: this.o.guestLabel,
          ...(this.o.publicLabel ? { public: this.o.publicLabel } : {}),
        },
        vmBackends: [this.o.backend.name],
        version: version(),
      },
    };
    const r = await this.call<HostRegistered>('POST', '/v1/hosts/register', reg);
    const id: Identity = { ...r.json!, server: this.o.server, name: this.o.name };
    writeFileSync(file, JSON.stringify(id, null, 2), { mode: 0o600 });
    this.identity = id;
    if (id.pingInterval) this.pingInterval = id.pingInterval;
    this.o.log(`registered as host ${id.id} (${id.uuid})`);
  }

  async start(): Promise<void> {
    await this.o.backend.start();
    this.converger.created.add('backends', this.o.backend.name);
    // A host may come up before its server: keep trying (the token is checked by the server, not here).
    for (;;) {
      try {
        await this.register();
        break;
      } catch (e) {
        if (e instanceof HttpError && e.status === 401)
          throw new Error(`registration refused: ${e.message}`, { cause: e });
        this.o.log(`register: ${(e as Error).message}; trying again in 2 s`);
        await new Promise((ok) => setTimeout(ok, 2000));
      }
    }
    await this.listen();
    void this.pollLoop();
    void this.heartbeat();
  }

  /** Stops talking to the server and serving; everything on the host keeps running. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.poll?.abort();
    if (this.heartbeatTimer) clearTimeout(this.heartbeatTimer);
    await new Promise<void>((ok) => (this.server ? this.server.close(() => ok()) : ok()));
    await this.converging;
    await this.early;
    await this.reporting;
  }

  private async heartbeat(): Promise<void> {
    if (this.stopped) return;
    const began = Date.now();
    try {
      const a = await this.sendStatus();
      // The long poll answers a newer generation by itself; a poll that is stuck (a lost answer) is restarted.
      if (a.desiredGeneration > (this.desired?.generation ?? -1)) this.poll?.abort();
    } catch (e) {
      await this.authFailed(e);
      this.o.log(`heartbeat: ${(e as Error).message}`);
    }
    // Level-based: converge again each beat, so what drifted (a deleted bridge, a lost FDB entry) comes back; at
    // most every 5 s however short the ping interval (tests): a pass costs a few processes.
    if (this.desired && Date.now() - this.lastConverged >= Math.max(this.pingInterval * 1000, 5000) - 100)
      this.kick(true);
    // Twice per ping interval, counted from this beat's start: a beat one interval after the last one's answer
    // was always that answer's round trip late, and on a loaded machine (seconds per answer), when the server
    // called a host Disconnected after one interval of silence, hosts went Disconnected between two beats and a
    // burst's routers moved from host to host. The server now waits ping.interval × ping.timeout
    // (src/hosts/service.ts, CloudStack's timing); the second beat per interval is kept as margin.
    if (!this.stopped)
      this.heartbeatTimer = setTimeout(
        () => void this.heartbeat(),
        Math.max(0, this.pingInterval * 500 - (Date.now() - began)),
      );
  }

  private async sendStatus(): Promise<HostHeartbeatAnswer> {
    const status = this.status;
    this.lastSent = JSON.stringify(status);
    const r = await this.call<HostHeartbeatAnswer>('POST', `/v1/hosts/${this.identity!.uuid}/heartbeat`, {
      status,
    });
    const a = r.json!;
    if (a.pingInterval) this.pingInterval = a.pingInterval;
    return a;
  }

  /**
   * Pushes the status now, between heartbeats (a VM changed state, a pass ended with another status): the
   * server's jobs waiting for a VM learn it at once instead of at the next beat or their next look. One report
   * in flight; a change meanwhile sends one more, of the newest status. A failed report is left to the heartbeat.
   */
  private report(): void {
    if (this.stopped || !this.identity) return;
    if (this.reporting) {
      this.reportAgain = true;
      return;
    }
    this.reporting = (async () => {
      do {
        this.reportAgain = false;
        await this.sendStatus().catch((e: Error) => this.o.log(`report: ${e.message}`));
      } while (this.reportAgain && !this.stopped);
      this.reporting = null;
    })();
  }

  /** A VM's new state from the pass under way: into the status at once, and reported when it changed. */
  private vmChanged(v: HostStatus['vms'][number]): void {
    const was = this.status.vms.find((x) => x.instanceName === v.instanceName);
    if (was && was.state === v.state && was.message === v.message) return;
    this.status = {
      ...this.status,
      vms: [...this.status.vms.filter((x) => x.instanceName !== v.instanceName), v],
      // Its failure of an earlier pass is over once it is in its state.
      errors:
        v.state === 'Error'
          ? this.status.errors
          : this.status.errors.filter((e) => e.what !== `vm ${v.instanceName}`),
    };
    this.report();
  }

  /** The server no longer knows this secret (the host was deleted, or re-registered elsewhere): register again. */
  private async authFailed(e: unknown): Promise<void> {
    if (e instanceof HttpError && e.status === 401) {
      this.o.log('the server refused the host secret: registering again');
      this.identity = null;
      writeFileSync(join(this.o.dataDir, 'host.json'), '{}');
      await this.register().catch((x: Error) => this.o.log(`register: ${x.message}`));
    }
  }

  private async pollLoop(): Promise<void> {
    while (!this.stopped) {
      this.poll = new AbortController();
      const timer = setTimeout(() => this.poll?.abort(), (this.o.longPollMs ?? 25_000) + 10_000);
      try {
        const after = this.desired ? `after=${this.desired.generation}&` : '';
        const r = await this.call<HostDesiredState>(
          'GET',
          `/v1/hosts/${this.identity!.uuid}/desired?${after}waitMs=${this.o.longPollMs ?? 25_000}`,
          undefined,
          this.poll.signal,
        );
        if (r.status === 200 && r.json) {
          const was = new Set((this.desired?.vms ?? []).map((v) => `${v.instanceName} ${v.state}`));
          this.desired = r.json;
          // Which VMs it adds or changes, with when it came: a burst's waits are read from this log.
          const fresh = r.json.vms.filter((v) => !was.has(`${v.instanceName} ${v.state}`));
          this.o.log(
            `generation ${r.json.generation} received${fresh.length ? `: ${fresh.map((v) => `${v.instanceName} ${v.state}`).join(', ')}` : ''}${this.converging ? ' (a pass runs)' : ''}`,
          );
          this.kick();
        }
      } catch (e) {
        if (this.stopped) break;
        if (!this.poll.signal.aborted) {
          await this.authFailed(e);
          this.o.log(`desired state: ${(e as Error).message}`);
          await new Promise((ok) => setTimeout(ok, 1000));
        }
      } finally {
        clearTimeout(timer);
      }
    }
  }

  /**
   * One converge at a time; a new state while one runs makes one more run after it (of the newest state). A
   * resync (each heartbeat) is dropped while one runs: on a slow host converges must not run back to back.
   */
  private kick(resync = false): void {
    if (this.converging) {
      if (!resync) {
        this.again = true;
        // VMs placed here meanwhile start now, not after the pass (its ports, listing and removals): a burst of
        // deploys onto one host otherwise starts its second VM a whole pass late. Batches run side by side (each
        // VM taken by one; a host's second VM of a burst does not wait for the first one's `virsh start`); each
        // acts on a VM only while the newest state names it so (converge.ts `superseded`), so a batch of an older
        // state never undoes a newer one's, e.g. starts again a VM a newer state stopped (seen in a bench's
        // teardown). Once per state.
        const newest = this.desired;
        const current = this.passing;
        if (!this.stopped && newest && current && newest !== current && newest !== this.earlyDone) {
          this.earlyDone = newest;
          const batch = this.converger.ensureNewVms(newest, current, this.hooks).then(
            () => undefined,
            (e: Error) => this.o.log(`starting new VMs early: ${e.message}`),
          );
          this.early = Promise.all([this.early, batch]).then(() => undefined);
        }
      }
      return;
    }
    this.converging = (async () => {
      do {
        this.again = false;
        const d = this.desired!;
        this.passing = d;
        const t0 = Date.now();
        // The VMs this state adds (a deploy placed here) start before the pass, when their networks' bridges are
        // here: the pass's networks, routers and removals (a few hundred ms of processes) are not on their way.
        // The pass then finds them in their state and leaves them be (`started`).
        let started: ReadonlySet<string> = new Set();
        if (this.passed && this.passed !== d)
          started = await this.converger
            .ensureNewVms(d, this.passed, this.hooks)
            .catch((e: Error) => (this.o.log(`starting new VMs first: ${e.message}`), new Set<string>()));
        // A pass that runs long says so, and what it is at (each item has its deadline: converge.ts).
        const watch = setInterval(
          () =>
            this.o.log(
              `generation ${d.generation}: pass running for ${Math.round((Date.now() - t0) / 1000)} s${this.converger.doing() ? `: ${this.converger.doing()}` : ''}`,
            ),
          PASS_WATCH_MS,
        );
        try {
          const r = await this.converger.converge(d, this.hooks, started);
          this.passed = d;
          this.o.log(
            `converged generation ${d.generation} in ${Date.now() - t0} ms${r.errors.length ? ` (${r.errors.length} errors)` : ''}`,
          );
          // A VM a newer state names, started early (ensureNewVms), keeps its entry until the next pass has it.
          const named = new Set(r.vms.map((v) => v.instanceName));
          const newer = new Set(this.desired!.vms.map((v) => v.instanceName));
          const early = this.status.vms.filter(
            (v) => !named.has(v.instanceName) && newer.has(v.instanceName),
          );
          this.status = {
            ...r,
            vms: [...r.vms, ...early],
            appliedGeneration: r.errors.length ? this.status.appliedGeneration : d.generation,
          };
        } catch (e) {
          this.o.log(`generation ${d.generation}: pass failed: ${(e as Error).message}`);
          this.status = {
            ...this.status,
            errors: [{ what: 'converge', message: (e as Error).message }],
          };
        } finally {
          clearInterval(watch);
        }
        // What the pass changed (a generation applied, a router up, an error) reaches the server now, not at the
        // next beat; a resync that changed nothing sends nothing.
        if (JSON.stringify(this.status) !== this.lastSent) this.report();
      } while (this.again && !this.stopped);
      this.lastConverged = Date.now();
      this.converging = null;
    })();
  }

  // ------------------------------------------------------------------------------------------ HTTP

  private listen(): Promise<void> {
    const server = createServer((req, res) => {
      this.serve(req, res).catch((e: Error) =>
        reply(res, 500, { error: 'InternalError', message: e.message }),
      );
    });
    this.server = server;
    return new Promise((ok, fail) => {
      server.once('error', (e: Error) =>
        fail(new Error(`cannot listen on ${this.o.listen ?? this.o.address}:${this.o.port}: ${e.message}`)),
      );
      server.listen(this.o.port, this.o.listen ?? this.o.address, () => ok());
    });
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://agent');
    const relay = /^\/v1\/routers\/([^/]+)(\/.*)$/.exec(url.pathname);
    if (relay) return this.relay(req, res, decodeURIComponent(relay[1]!), `${relay[2]}${url.search}`);
    if (!this.identity || !sameSecret(req.headers.authorization, this.identity.secret))
      return reply(res, 401, {
        error: 'Unauthorized',
        message: 'Authorization: Bearer <host secret> expected',
      });
    if (req.method === 'GET' && url.pathname === '/v1/status') return reply(res, 200, this.status);
    const con = /^\/v1\/vms\/([^/]+)\/console$/.exec(url.pathname);
    if (req.method === 'GET' && con) {
      const text = await this.o.backend.console(decodeURIComponent(con[1]!));
      if (text === null)
        return reply(res, 404, { error: 'NotFound', message: `no VM ${con[1]} on this host` });
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(text);
      return;
    }
    reply(res, 404, { error: 'NotFound', message: `${req.method} ${url.pathname}` });
  }

  /**
   * Relays a request to the router's control API on the control bridge, as is. Allowed with the host secret in
   * `X-Host-Authorization: Bearer <host secret>`, or with the router's own secret in `Authorization` (the
   * server's router transport, `control-client.ts` with the relay URL as its address, sends only that); the
   * router agent checks `Authorization` itself either way.
   */
  private relay(req: IncomingMessage, res: ServerResponse, name: string, path: string): Promise<void> {
    const r = this.desired?.routers.find((x) => x.name === name);
    const hostAuth = req.headers['x-host-authorization'];
    const allowed =
      (this.identity &&
        sameSecret(typeof hostAuth === 'string' ? hostAuth : undefined, this.identity.secret)) ||
      (r && sameSecret(req.headers.authorization, r.secret));
    if (!allowed) {
      reply(res, 401, { error: 'Unauthorized', message: 'the host secret or the router secret is expected' });
      return Promise.resolve();
    }
    if (!r) {
      reply(res, 404, { error: 'NotFound', message: `no router ${name} on this host` });
      return Promise.resolve();
    }
    const headers = { ...req.headers };
    delete headers['x-host-authorization'];
    delete headers.host;
    return new Promise((done) => {
      const up = httpRequest(
        { host: r.controlIp, port: r.controlPort, path, method: req.method, headers },
        (ur) => {
          res.writeHead(ur.statusCode ?? 502, ur.headers);
          ur.pipe(res);
          ur.on('end', () => done());
          ur.on('error', () => done());
        },
      );
      up.on('error', (e) => {
        if (!res.headersSent)
          reply(res, 502, { error: 'RouterUnreachable', message: `router ${name}: ${e.message}` });
        else res.destroy();
        done();
      });
      req.pipe(up);
    });
  }
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
