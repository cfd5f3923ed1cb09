/**
 * Hosts emulated as namespaces for the host agent's tests: an underlay bridge in its own namespace, "host"
 * namespaces each with `eth1` on it (the guest traffic label, 10.99.0.<n>/24), `pub0` on a second bridge there
 * (the public traffic label: no address, the agent bridges it; `outside()` adds a namespace on it holding the
 * public gateway, the world routers source-NAT to) and a management link to this process, each running the real `stacknet host-agent` (dist/) against a small HTTP server here that plays the
 * management server's side of src/hosts/protocol.ts (register, heartbeat, long-polled desired state).
 *
 * The agents run under `nsenter --net`, not `ip netns exec`: the latter gives its process a slave mount
 * namespace, so the namespaces the agent adds (`ip netns add` bind-mounts /run/netns/<name>) would be invisible
 * to everyone else, a restarted agent included.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type {
  HostDesiredState,
  HostRegistered,
  HostRegistration,
  HostStatus,
} from '../../src/hosts/protocol.js';
import { publicBridgeName } from '../../src/hosts/protocol.js';
import {
  TestNet,
  deleteNamespace,
  eventually,
  exec,
  killNamespacePids,
  listNamespaces,
  run,
  type SpawnedProcess,
} from '../../src/netns/index.js';
import { agentArgv, repoRoot } from '../agent/vr-lab.js';

export interface LabHost {
  name: string;
  ns: string;
  /** Underlay address (eth1). */
  address: string;
  /** Where this process reaches the agent's HTTP port. */
  mgmt: string;
  dataDir: string;
  prefix: string;
  /** This process's end of the management link (the agent's --server). */
  serverAddress: string;
  agent: SpawnedProcess | null;
}

interface Registered {
  reg: HostRegistration;
  id: number;
  uuid: string;
  secret: string;
  status: HostStatus | null;
  heartbeats: number;
}

export const AGENT_PORT = 9890;
/** Each host's public traffic label (its leg on the public underlay). */
export const PUBLIC_LABEL = 'pub0';

export class HostLab {
  readonly net = new TestNet();
  readonly token = randomBytes(12).toString('hex');
  readonly hosts = new Map<string, LabHost>();
  /** Registrations by host name (a restarted agent must not register again). */
  readonly registrations = new Map<string, number>();
  private readonly byUuid = new Map<string, Registered>();
  private readonly desired = new Map<string, Omit<HostDesiredState, 'generation' | 'host'>>();
  private generation = 0;
  private waiters: (() => void)[] = [];
  private server: Server | null = null;
  private serverPort = 0;
  underlayNs = '';
  underlayBridge = '';
  /** The public underlay (every host's `pub0`, the outside namespace's `eth0`). */
  publicBridge = '';

  /**
   * `underlay`: the first three octets of the hosts' underlay /24 (another lab's, so two can run at once);
   * `root`: the checkout whose built `bin/stacknet.js` the agents run (a benchmark's baseline; default this one).
   */
  constructor(
    readonly underlay = '10.99.0',
    readonly root = repoRoot,
  ) {}

  async setup(): Promise<this> {
    this.server = createServer((req, res) => {
      this.serve(req, res).catch((e: Error) => {
        res.writeHead(500);
        res.end(e.message);
      });
    });
    this.server.listen(0, '0.0.0.0');
    await once(this.server, 'listening');
    this.serverPort = (this.server.address() as AddressInfo).port;
    this.underlayNs = await this.net.namespace('ul');
    this.underlayBridge = await this.net.bridge('ulbr', { ns: this.underlayNs });
    this.publicBridge = await this.net.bridge('pubbr', { ns: this.underlayNs });
    return this;
  }

  /** Host `name` (a single letter): its namespace, underlay leg, management link; the agent is not started. */
  async host(name: string, n: number): Promise<LabHost> {
    const ns = await this.net.namespace(`h${name}`);
    const address = `${this.underlay}.${n}`;
    await this.net.veth({
      ns,
      ifname: 'eth1',
      bridge: this.underlayBridge,
      outerNs: this.underlayNs,
      addresses: [`${address}/24`],
    });
    await this.net.veth({ ns, ifname: PUBLIC_LABEL, bridge: this.publicBridge, outerNs: this.underlayNs });
    const link = await this.net.hostLink(ns, 'mgmt0');
    const h: LabHost = {
      name,
      ns,
      address,
      mgmt: `${link.nsAddress}:${AGENT_PORT}`,
      dataDir: await this.net.tempDir(`h${name}`),
      prefix: `${this.net.prefix}-${name}-`,
      serverAddress: link.hostAddress,
      agent: null,
    };
    this.hosts.set(name, h);
    return h;
  }

  /**
   * The outside world on the public underlay: a namespace whose `eth0` holds the public gateway (`gateway/prefix`),
   * as the provider's router would; tests run servers there and check the source address they see.
   */
  async outside(gatewayCidr: string): Promise<string> {
    const ns = await this.net.namespace('out');
    await this.net.veth({
      ns,
      ifname: 'eth0',
      bridge: this.publicBridge,
      outerNs: this.underlayNs,
      addresses: [gatewayCidr],
    });
    return ns;
  }

  /**
   * The outside world on a tagged public VLAN: a namespace on the public underlay whose VLAN device `eth0.<vlan>`,
   * made by the agent's own code run there (src/hostagent/host-links.ts `ensurePublicBridge`: an 802.1Q
   * sub-interface, or the eBPF tagger on a kernel without 802.1Q), sits on a bridge holding the gateway
   * (`gateway/prefix`); returns the namespace.
   */
  async outsideTagged(gatewayCidr: string, vlan: string): Promise<string> {
    const ns = await this.net.namespace(`out${vlan}`);
    await this.net.veth({ ns, ifname: 'eth0', bridge: this.publicBridge, outerNs: this.underlayNs });
    await run(['ip', '-n', ns, 'link', 'set', 'eth0', 'up']);
    const hostLinks = join(repoRoot, 'src', 'hostagent', 'host-links.ts');
    const code = `const m = await import(${JSON.stringify(hostLinks)});
await m.ensurePublicBridge('eth0', ${JSON.stringify(vlan)}, await m.linkTable(), () => {});`;
    await run(['ip', 'netns', 'exec', ns, 'node', '--import', 'tsx', '--input-type=module', '-e', code], {
      cwd: repoRoot,
      timeoutMs: 60_000,
    });
    await run(['ip', '-n', ns, 'addr', 'add', gatewayCidr, 'dev', publicBridgeName(vlan)]);
    return ns;
  }

  /**
   * What tcpdump sees on the underlay bridge (or `bridge`: the public one) while `during` runs, `-e`: with the
   * link-level header (an 802.1Q tag shows as `ethertype 802.1Q (0x8100), ...: vlan N`); one line per frame
   * matching `filter`.
   */
  async tcpdump(
    filter: string,
    during: () => Promise<unknown>,
    bridge = this.underlayBridge,
  ): Promise<string[]> {
    const dump = this.net.spawnIn(this.underlayNs, [
      'tcpdump',
      '-i',
      bridge,
      '-e',
      '-n',
      '-l',
      // Each frame as it comes: else the last second's frames are still in the ring's open block at the SIGTERM.
      '--immediate-mode',
      filter,
    ]);
    // Its output is whole once its pipes close (after its exit).
    const closed = once(dump.child, 'close');
    try {
      await eventually(
        async () => {
          if (!/listening on/.test(dump.output())) throw new Error(`tcpdump: ${dump.output()}`);
        },
        { what: 'tcpdump listening' },
      );
      await during();
    } finally {
      await dump.stop(2000);
      await closed;
    }
    return dump
      .output()
      .split('\n')
      .filter((l) => /^\d\d:\d\d:/.test(l));
  }

  /** `stacknet host-agent` for host h, inside its namespace (argv through nsenter; see the file comment). */
  hostArgv(h: LabHost, args: string[]): string[] {
    const argv = agentArgv([]);
    argv[argv.length - 1] = 'host-agent';
    if (this.root !== repoRoot) argv[1] = join(this.root, 'bin', 'stacknet.js');
    return ['nsenter', `--net=/run/netns/${h.ns}`, ...argv, ...args];
  }

  /** `server`: a real management server's port on this machine (its address for h: h.serverAddress). */
  startAgent(
    h: LabHost,
    o: { serverPort?: number; args?: string[]; env?: NodeJS.ProcessEnv } = {},
  ): SpawnedProcess {
    h.agent = this.net.spawn(
      this.hostArgv(h, [
        '--server',
        `http://${h.serverAddress}:${o.serverPort ?? this.serverPort}`,
        '--token',
        this.token,
        ...(o.args ?? []),
        '--name',
        `host-${h.name}`,
        '--address',
        h.address,
        '--listen',
        '0.0.0.0',
        '--port',
        String(AGENT_PORT),
        '--data-dir',
        h.dataDir,
        '--guest-label',
        'eth1',
        '--public-label',
        PUBLIC_LABEL,
        '--prefix',
        h.prefix,
        '--control-cidr',
        '169.254.0.0/24',
        '--ping-interval',
        '1',
        '--log-format',
        'text',
      ]),
      {
        cwd: this.root,
        // The whole log of a run (a bench's A/B reads every pass and `virsh start` of it), not a 64 KiB tail.
        keepOutputBytes: 16 * 1024 * 1024,
        ...(o.env ? { env: { ...process.env, ...o.env } } : {}),
      },
    );
    return h.agent;
  }

  /**
   * A route from this namespace to h's underlay address over its management link: a server here reaches the
   * agent at the address it registered (the route goes with the link).
   */
  async routeToHost(h: LabHost): Promise<void> {
    await run(['ip', 'route', 'replace', `${h.address}/32`, 'via', h.mgmt.split(':')[0]!]);
  }

  /** Runs `stacknet host-agent cleanup` for h in its namespace. */
  async cleanupAgent(h: LabHost): Promise<string> {
    const r = await exec(this.hostArgv(h, ['cleanup', '--data-dir', h.dataDir, '--prefix', h.prefix]), {
      timeoutMs: 30_000,
      cwd: this.root,
    });
    if (r.code !== 0) throw new Error(`cleanup of host ${h.name}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  /** Sets host h's desired state (a new generation; waiting long polls answer at once). */
  setDesired(h: LabHost, d: Omit<HostDesiredState, 'generation' | 'host'>): void {
    this.desired.set(`host-${h.name}`, d);
    this.generation++;
    for (const w of this.waiters.splice(0)) w();
  }

  registered(h: LabHost): Registered | undefined {
    return [...this.byUuid.values()].find((r) => r.reg.name === `host-${h.name}`);
  }

  /** The status the host last sent in a heartbeat. */
  status(h: LabHost): HostStatus | null {
    return this.registered(h)?.status ?? null;
  }

  private state(r: Registered): HostDesiredState {
    const d = this.desired.get(r.reg.name) ?? { networks: [], routers: [], vms: [] };
    return { generation: this.generation, host: { id: r.id, uuid: r.uuid, name: r.reg.name }, ...d };
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://lab');
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = chunks.length ? (JSON.parse(Buffer.concat(chunks).toString()) as unknown) : undefined;
    const json = (status: number, v: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(v));
    };
    if (req.method === 'POST' && url.pathname === '/v1/hosts/register') {
      const reg = body as HostRegistration;
      if (reg.token !== this.token) return json(401, { error: 'Unauthorized' });
      this.registrations.set(reg.name, (this.registrations.get(reg.name) ?? 0) + 1);
      const r: Registered = {
        reg,
        id: this.byUuid.size + 1,
        uuid: randomUUID(),
        secret: randomBytes(16).toString('hex'),
        status: null,
        heartbeats: 0,
      };
      this.byUuid.set(r.uuid, r);
      const answer: HostRegistered = { id: r.id, uuid: r.uuid, secret: r.secret, pingInterval: 1 };
      return json(200, answer);
    }
    const m = /^\/v1\/hosts\/([^/]+)\/(heartbeat|desired)$/.exec(url.pathname);
    const r = m ? this.byUuid.get(m[1]!) : undefined;
    if (!m || !r) return json(404, { error: 'NotFound' });
    if (req.headers.authorization !== `Bearer ${r.secret}`) return json(401, { error: 'Unauthorized' });
    if (m[2] === 'heartbeat') {
      r.status = (body as { status: HostStatus }).status;
      r.heartbeats++;
      return json(200, { desiredGeneration: this.generation });
    }
    const after = url.searchParams.get('after');
    if (after !== null && this.generation <= Number(after)) {
      const wait = Math.min(Number(url.searchParams.get('waitMs') ?? 0), 30_000);
      await new Promise<void>((ok) => {
        const t = setTimeout(ok, wait);
        this.waiters.push(() => {
          clearTimeout(t);
          ok();
        });
      });
      if (this.generation <= Number(after)) {
        res.writeHead(304);
        res.end();
        return;
      }
    }
    return json(200, this.state(r));
  }

  /** Stops the agents and removes everything: the agents' own cleanup first, then whatever has our prefix. */
  async cleanup(): Promise<void> {
    for (const h of this.hosts.values()) await h.agent?.stop(3000);
    for (const h of this.hosts.values()) await this.cleanupAgent(h).catch(() => undefined);
    for (const ns of await listNamespaces())
      if ([...this.hosts.values()].some((h) => ns.startsWith(h.prefix))) {
        await killNamespacePids(ns).catch(() => undefined);
        await deleteNamespace(ns).catch(() => undefined);
      }
    for (const w of this.waiters.splice(0)) w();
    this.server?.closeAllConnections();
    this.server?.close();
    await this.net.cleanup();
  }

  dataFile(h: LabHost, ...p: string[]): string {
    return join(h.dataDir, ...p);
  }
}
