/**
 * A virtual-router lab for the agent's integration tests and bench/vr.ts: a guest bridge, one or two VR namespaces
 * running the real `stacknet router-agent` (guest interface on the bridge, control interface on a link-local /30
 * from the host), an upstream DNS server (a second dnsmasq that logs every query it receives), and guest
 * namespaces. Everything is created through a TestNet, so `cleanup()` removes it all, also after a failure.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  getStatus,
  pushDelta,
  pushFull,
  type AgentStatus,
  type PushOptions,
  type PushResult,
} from '../../src/agent/control-client.js';
import { leaseDirFor } from '../../src/agent/lease-dir.js';
import type { DesiredState, DesiredStateDelta, HostSpec, PublicSpec } from '../../src/agent/desired-state.js';
import {
  TestNet,
  addAddress,
  addRoute,
  dig,
  eventually,
  setLinkUp,
  type SpawnedProcess,
} from '../../src/netns/index.js';

/** The condition `type` of a status (asserting it is there). */
export function condition(s: AgentStatus, type: string): AgentStatus['conditions'][number] {
  const c = s.conditions.find((x) => x.type === type);
  if (!c) throw new Error(`no ${type} condition in ${JSON.stringify(s.conditions)}`);
  return c;
}

export const repoRoot = resolve(new URL('.', import.meta.url).pathname, '..', '..');

/** The real CLI (`npm test` builds dist/ first). */
export function agentArgv(args: string[]): string[] {
  const bin = join(repoRoot, 'bin', 'stacknet.js');
  if (!existsSync(join(repoRoot, 'dist', 'cli', 'main.js'))) {
    throw new Error(
      'dist/ is not built: run `npm run build` (npm test does it) before the agent integration tests',
    );
  }
  return [process.execPath, bin, 'router-agent', ...args];
}

export interface LabOptions {
  /** Guest /24 third octet etc.: the guest CIDR (default 10.60.0.0/24, gateway .1). */
  cidr?: string;
  domain?: string;
  /** Records the upstream DNS answers (name → IPv4). */
  upstreamRecords?: Record<string, string>;
}

export interface PublicNetwork {
  bridge: string;
  /** The namespace holding the public gateway (and the `extra` outside addresses). */
  ns: string;
  gateway: string;
  prefix: number;
}

export class RouterUnderTest {
  agent: SpawnedProcess;
  constructor(
    readonly lab: VrLab,
    readonly role: string,
    readonly ns: string,
    readonly control: string,
    readonly secret: string,
    readonly dataDir: string,
    agent: SpawnedProcess,
    /** The agent's extra command-line flags (kept for `restart`). */
    readonly agentArgs: string[] = [],
  ) {
    this.agent = agent;
  }

  push(state: DesiredState, o?: PushOptions): Promise<PushResult> {
    return pushFull(this.control, this.secret, state, o);
  }

  patch(delta: DesiredStateDelta, o?: PushOptions): Promise<PushResult> {
    return pushDelta(this.control, this.secret, delta, o);
  }

  status(): Promise<AgentStatus> {
    return getStatus(this.control, this.secret, { leases: false });
  }

  /** Starts the agent again (after it was killed or stopped) with the same data dir and secret. */
  async restart(): Promise<void> {
    if (!this.agent.hasExited()) throw new Error(`agent ${this.role} is still running`);
    this.agent = this.lab.spawnAgent(this.ns, this.control, this.secret, this.dataDir, this.agentArgs);
    await this.lab.waitForControl(this);
  }

  /** The agent's log so far, and the tails of dnsmasq's output and log (for assertion messages). */
  log(): string {
    const tail = (f: string) => {
      try {
        return readFileSync(join(this.dataDir, f), 'utf8').slice(-3000);
      } catch {
        return '';
      }
    };
    return `--- agent ${this.role}\n${this.agent.output()}\n--- dnsmasq.out\n${tail('dnsmasq.out')}\n--- dnsmasq.log\n${tail('dnsmasq.log')}`;
  }
}

export class VrLab {
  readonly net = new TestNet();
  readonly cidr: string;
  readonly prefixLen: number;
  readonly domain: string;
  /** `10.60.0` for 10.60.0.0/24. */
  readonly base: string;
  bridge = '';
  upstreamNs = '';
  upstreamIp = '198.51.100.2';
  upstreamLog = '';
  private upstreamLink = 0;
  readonly routers: RouterUnderTest[] = [];

  constructor(readonly opts: LabOptions = {}) {
    this.cidr = opts.cidr ?? '10.60.0.0/24';
    const [addr, len] = this.cidr.split('/');
    this.prefixLen = Number(len);
    this.base = addr!.split('.').slice(0, 3).join('.');
    this.domain = opts.domain ?? 'lab.internal';
  }

  /** `10.60.0.<n>` */
  ip(n: number): string {
    return `${this.base}.${n}`;
  }

  async setup(): Promise<this> {
    this.bridge = await this.net.bridge('br');
    // The upstream resolver the VR forwards to; it logs every query, so a test can prove what was NOT forwarded.
    this.upstreamNs = await this.net.namespace('up');
    await addAddress(this.upstreamNs, 'lo', `${this.upstreamIp}/32`);
    const dir = await this.net.tempDir('upstream');
    this.upstreamLog = join(dir, 'queries.log');
    const records = { 'outside.example': '203.0.113.7', ...(this.opts.upstreamRecords ?? {}) };
    this.net.spawnIn(this.upstreamNs, [
      'dnsmasq',
      '--keep-in-foreground',
      '--conf-file=/dev/null',
      `--pid-file=${dir}/dnsmasq.pid`,
      '--user=root',
      '--no-hosts',
      '--no-resolv',
      // Bound to the service address only; it sits on lo and is reached over each router's link.
      '--bind-interfaces',
      `--listen-address=${this.upstreamIp}`,
      '--log-queries',
      `--log-facility=${this.upstreamLog}`,
      ...Object.entries(records).map(([n, a]) => `--host-record=${n},${a}`),
    ]);
    return this;
  }

  /** Everything the upstream resolver was asked so far. */
  upstreamQueries(): string {
    try {
      return readFileSync(this.upstreamLog, 'utf8')
        .split('\n')
        .filter((l) => /query\[/.test(l))
        .join('\n');
    } catch {
      return '';
    }
  }

  spawnAgent(
    ns: string,
    control: string,
    secret: string,
    dataDir: string,
    extraArgs: string[] = [],
  ): SpawnedProcess {
    return this.net.spawnIn(
      ns,
      agentArgv([
        '--control-address',
        control,
        '--data-dir',
        dataDir,
        '--secret',
        secret,
        '--guest-interface',
        'eth0',
        ...extraArgs,
      ]),
      { cwd: repoRoot },
    );
  }

  async waitForControl(r: RouterUnderTest): Promise<void> {
    await eventually(
      async () => {
        if (r.agent.hasExited()) throw new Error(`agent ${r.role} exited:\n${r.agent.output()}`);
        const res = await fetch(`http://${r.control}/healthz`, { signal: AbortSignal.timeout(500) });
        if (res.status !== 200) throw new Error(`healthz ${res.status}`);
      },
      { timeoutMs: 15_000, intervalMs: 50, what: `agent ${r.role} control API` },
    );
  }

  /**
   * A VR namespace `role` with eth0 on the guest bridge (the agent adds its guest address), ctl0 on a host
   * link (control API), up0 towards the upstream resolver, and the agent running inside (with `agentArgs`, e.g.
   * `--dhcp-shards 4`).
   */
  async router(role: string, agentArgs: string[] = []): Promise<RouterUnderTest> {
    const ns = await this.net.namespace(role);
    await this.net.veth({ ns, ifname: 'eth0', bridge: this.bridge });
    const ctl = await this.net.hostLink(ns, 'ctl0');
    const n = ++this.upstreamLink;
    // One point-to-point link per router to the upstream resolver: 198.51.100.(4n+1) in the VR, the resolver
    // answers on 198.51.100.2 reached through that link.
    const up = await this.net.veth({ ns: this.upstreamNs, ifname: `u${n}`, outerNs: ns });
    await setLinkUp(ns, up.outerName);
    await addAddress(ns, up.outerName, `198.51.100.${4 * n + 1}/30`);
    await addAddress(this.upstreamNs, `u${n}`, `198.51.100.${4 * n + 2}/30`);
    await addRoute(ns, { to: `${this.upstreamIp}/32`, via: `198.51.100.${4 * n + 2}` });
    const secret = randomBytes(16).toString('hex');
    const dataDir = await this.net.tempDir(`${role}-data`);
    // dnsmasq's lease file lives on tmpfs outside the data dir; a killed agent leaves it behind.
    this.net.removeOnCleanup(leaseDirFor(resolve(dataDir)));
    const control = `${ctl.nsAddress}:3922`;
    const agent = this.spawnAgent(ns, control, secret, dataDir, agentArgs);
    const r = new RouterUnderTest(this, role, ns, control, secret, dataDir, agent, agentArgs);
    this.routers.push(r);
    await this.waitForControl(r);
    return r;
  }

  /**
   * A public network (reusable by any test of the router's public side): a bridge, and an "internet" namespace
   * whose eth0 on it holds the public gateway (`gateway`/`prefix`), plus `extra` addresses on its lo standing for
   * hosts further out (the routers reach them through the gateway). Plug routers in with `plugPublic`.
   */
  async publicNetwork(
    opts: { gateway?: string; prefix?: number; extra?: string[] } = {},
  ): Promise<PublicNetwork> {
    const gateway = opts.gateway ?? '203.0.113.1';
    const prefix = opts.prefix ?? 24;
    const bridge = await this.net.bridge('pub');
    const ns = await this.net.namespace('inet');
    await this.net.veth({ ns, ifname: 'eth0', bridge, addresses: [`${gateway}/${prefix}`] });
    await setLinkUp(ns, 'lo');
    for (const a of opts.extra ?? []) await addAddress(ns, 'lo', `${a}/32`);
    return { bridge, ns, gateway, prefix };
  }

  /** The router's public interface `ifname` (eth2, eth3...) on the public network's bridge, without addresses. */
  async plugPublic(r: RouterUnderTest, pub: PublicNetwork, ifname = 'eth2'): Promise<void> {
    await this.net.veth({ ns: r.ns, ifname, bridge: pub.bridge });
  }

  /** The public side of a router on `pub`'s eth2: `addresses`, the first one source NAT; no static NAT, egress denied. */
  publicSide(pub: PublicNetwork, addresses: string[]): PublicSpec {
    return {
      nics: [{ interface: 'eth2', vlan: 'untagged', gateway: pub.gateway, prefix: pub.prefix, addresses }],
      sourceNatIp: addresses[0]!,
      staticNats: [],
      egressDefaultAllow: false,
    };
  }

  /**
   * Pushes the two routers of a pair their states at once (each must take it): `a` (r-1-VM at .2, priority 100,
   * the primary) and `b` (r-2-VM at .3, priority 90), each state made by `make`.
   */
  async pushPair(
    a: RouterUnderTest,
    b: RouterUnderTest,
    make: (name: string, guestIp: string, priority: number) => DesiredState,
  ): Promise<void> {
    const rs = await Promise.all([
      a.push(make('r-1-VM', this.ip(2), 100)),
      b.push(make('r-2-VM', this.ip(3), 90)),
    ]);
    rs.forEach((r, i) => {
      const who = i ? b : a;
      if (!r.ok) throw new Error(`${who.role} push: ${JSON.stringify(r)}\n${who.log()}`);
    });
  }

  /**
   * A guest at `ip(n)` (static, default route via `.1`) serving HTTP on 8080 with busybox httpd: `/` answers its
   * name, `/health` ok. busybox closes each connection after its answer. `serve()` starts the server again.
   */
  async webGuest(
    name: string,
    mac: string,
    n: number,
  ): Promise<{ ns: string; serve: () => SpawnedProcess; server: SpawnedProcess }> {
    const ns = await this.guest(name, mac);
    await addAddress(ns, 'eth0', `${this.ip(n)}/${this.prefixLen}`);
    await addRoute(ns, { to: 'default', via: this.ip(1) });
    const root = await this.net.tempDir(`www-${name}`);
    mkdirSync(root, { recursive: true });
    writeFileSync(join(root, 'index.html'), `${name}\n`);
    writeFileSync(join(root, 'health'), 'ok\n');
    const serve = () => this.net.spawnIn(ns, ['busybox', 'httpd', '-f', '-p', '8080', '-h', root]);
    return { ns, serve, server: serve() };
  }

  /** A guest namespace with eth0 (MAC `mac`) on the guest bridge. */
  async guest(role: string, mac: string): Promise<string> {
    const ns = await this.net.namespace(role);
    await this.net.veth({ ns, ifname: 'eth0', bridge: this.bridge, mac });
    return ns;
  }

  host(n: number, mac: string, hostname: string, extra: Partial<HostSpec> = {}): HostSpec {
    return { mac, ipv4: this.ip(n), hostname, defaultNic: true, vmId: `vm-${hostname}`, ...extra };
  }

  /** A desired state for this lab's network (non-redundant router at .1 unless overridden). */
  state(generation: number, hosts: HostSpec[], extra: Partial<DesiredState> = {}): DesiredState {
    return {
      generation,
      router: { name: 'r-1-VM', guestIp: this.ip(1) },
      network: {
        cidr: this.cidr,
        gateway: this.ip(1),
        domain: this.domain,
        dnsServers: [this.upstreamIp],
        useExternalDns: false,
        leaseTime: 3600,
      },
      hosts,
      metadata: {},
      passwords: {},
      firewall: { enabled: true },
      ...extra,
    };
  }

  /** Waits until `server` answers DNS from namespace `ns`. */
  async dnsUp(ns: string, server: string): Promise<void> {
    await eventually(
      async () => {
        const r = await dig(ns, `data-server.${this.domain}`, server);
        if (r.status === 'TIMEOUT' || r.status === 'ERROR') throw new Error(`DNS at ${server}: ${r.status}`);
      },
      { timeoutMs: 10_000, what: `DNS at ${server}` },
    );
  }

  async cleanup(): Promise<void> {
    await this.net.cleanup();
  }
}
