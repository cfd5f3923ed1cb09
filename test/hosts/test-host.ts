/**
 * A host agent's side of the channel (src/hosts/protocol.ts), played by a test: a real HTTP server on its own
 * loopback address answering the server's calls (`GET /v1/status`, the router relay `/v1/routers/<name>/...`
 * into an in-process simulated router agent with the real agent's acceptance rules), registering, heartbeating
 * and long-polling its desired state with a real HTTP client. "Converging" is taking the desired VMs and
 * routers as what runs: the server side is what is under test, not a host.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { SimulatedRouter } from '../../src/drivers/simulator.js';
import type { DesiredState, DesiredStateDelta } from '../../src/agent/desired-state.js';
import { HOST_RELAY_AUTH_HEADER } from '../../src/hosts/protocol.js';
import type { HostDesiredState, HostRegistration, HostStatus } from '../../src/hosts/protocol.js';

export class TestHost {
  uuid = '';
  secret = '';
  desired: HostDesiredState | null = null;
  heartbeating = true;
  heartbeats = 0;
  readonly routers = new Map<string, SimulatedRouter>();
  /** What the host says of a VM instead of what its spec asks (e.g. Error), by instance name. */
  readonly vmOverride = new Map<string, HostStatus['vms'][number]>();
  private server: Server | null = null;
  private timer: NodeJS.Timeout | null = null;
  private polling = true;
  private poller: Promise<void> | null = null;
  port = 0;

  constructor(
    readonly name: string,
    readonly address: string,
    readonly serverUrl: string,
    private readonly dir: string,
  ) {}

  status(): HostStatus {
    const d = this.desired;
    return {
      appliedGeneration: d?.generation ?? null,
      vms: (d?.vms ?? []).map(
        (v) => this.vmOverride.get(v.instanceName) ?? { instanceName: v.instanceName, state: v.state },
      ),
      routers: [...this.routers.keys()].map((name) => ({ name, running: true })),
      errors: [],
    };
  }

  async listen(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(0, this.address, r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  registration(token: string): HostRegistration {
    return {
      token,
      name: this.name,
      address: this.address,
      port: this.port,
      capabilities: {
        cpus: 4,
        cpuSpeedMhz: 2000,
        memoryMiB: 4096,
        kvm: false,
        trafficLabels: { guest: 'eth9', public: 'pub9' },
        vmBackends: ['libvirt', 'netns'],
        version: 'test',
      },
    };
  }

  async call(method: string, path: string, body?: unknown, secret = this.secret) {
    const r = await fetch(`${this.serverUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- answers are read loosely
    return { status: r.status, json: (text ? JSON.parse(text) : null) as any };
  }

  async register(token: string): Promise<void> {
    const r = await this.call('POST', '/v1/hosts/register', this.registration(token));
    if (r.status !== 200) throw new Error(`register: ${r.status} ${JSON.stringify(r.json)}`);
    this.uuid = r.json.uuid;
    this.secret = r.json.secret;
  }

  /** Heartbeats every `everyMs` while `heartbeating`, and converges to every desired state the server has. */
  start(everyMs = 250): void {
    this.timer = setInterval(() => {
      if (!this.heartbeating) return;
      void this.call('POST', `/v1/hosts/${this.uuid}/heartbeat`, { status: this.status() }).then(
        () => this.heartbeats++,
        () => undefined,
      );
    }, everyMs);
    this.poller = (async () => {
      while (this.polling) {
        const after = this.desired?.generation;
        const q = after === undefined ? '' : `?after=${after}&waitMs=1000`;
        try {
          const r = await this.call('GET', `/v1/hosts/${this.uuid}/desired${q}`);
          if (r.status === 200) this.converge(r.json as HostDesiredState);
          else if (r.status !== 304) await new Promise((res) => setTimeout(res, 200));
        } catch {
          await new Promise((res) => setTimeout(res, 200));
        }
      }
    })();
  }

  private converge(d: HostDesiredState): void {
    for (const r of d.routers)
      if (!this.routers.has(r.name))
        this.routers.set(r.name, new SimulatedRouter(r.name, join(this.dir, r.name)));
    for (const name of [...this.routers.keys()])
      if (!d.routers.some((r) => r.name === name)) this.routers.delete(name);
    this.desired = d;
  }

  async stop(): Promise<void> {
    this.polling = false;
    if (this.timer) clearInterval(this.timer);
    await this.poller;
    await new Promise<void>((r) => this.server?.close(() => r()) ?? r());
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const send = (code: number, body: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.headers[HOST_RELAY_AUTH_HEADER] !== `Bearer ${this.secret}`)
      return send(401, { error: 'Unauthorized', message: 'not the host secret' });
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/v1/status') return send(200, this.status());
    const m = /^\/v1\/routers\/([^/]+)(\/.*)$/.exec(url.pathname);
    const sim = m ? this.routers.get(decodeURIComponent(m[1]!)) : undefined;
    if (!m || !sim) return send(404, { error: 'NotFound', message: `no router here: ${url.pathname}` });
    const spec = this.desired?.routers.find((r) => r.name === sim.name);
    if (req.headers.authorization !== `Bearer ${spec?.secret}`)
      return send(401, { error: 'Unauthorized', message: 'not the router secret' });
    if (m[2] === '/v1/status') return send(200, await sim.getStatus());
    if (m[2] === '/v1/desired-state' && (req.method === 'PUT' || req.method === 'PATCH')) {
      const r =
        req.method === 'PUT'
          ? await sim.pushFull(JSON.parse(body) as DesiredState)
          : await sim.pushDelta(JSON.parse(body) as DesiredStateDelta);
      const { httpStatus, ...rest } = r;
      return send(httpStatus, r.ok ? r.status : rest);
    }
    return send(404, { error: 'NotFound', message: `${req.method} ${m[2]}` });
  }
}
