import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  runDhclient,
  runDhcpcd,
  runUdhcpc,
  removeState,
  type DhclientOptions,
  type DhcpcdOptions,
  type DhcpRunResult,
  type UdhcpcOptions,
} from './dhcp-clients.js';
import { exec, killPid, spawnIn, spawnTracked, type SpawnOptions, type SpawnedProcess } from './exec.js';
import {
  addAddress,
  createBridge,
  createNamespace,
  createVeth,
  deleteLink,
  deleteNamespace,
  killNamespacePids,
} from './links.js';
import { assertIfname, newRunPrefix } from './names.js';

export interface TestNetVeth {
  /** Namespace of the inner end. */
  ns: string;
  /** Inner end's name (inside ns). */
  ifname: string;
  /** Outer end's name (in the host, or in outerNs). */
  outerName: string;
  outerNs: string | undefined;
}

export interface VethRequest {
  ns: string;
  ifname?: string;
  /** Bridge to put the outer end on (in `outerNs`, or the host). */
  bridge?: string;
  outerNs?: string;
  mac?: string;
  /** Addresses (CIDR) for the inner end. */
  addresses?: string[];
}

interface V4Net {
  base: number;
  len: number;
}

function overlaps(a: V4Net, b: V4Net): boolean {
  const len = Math.min(a.len, b.len);
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return (a.base & mask) >>> 0 === (b.base & mask) >>> 0;
}

/** The destinations of the host's IPv4 routes (all tables), as networks. */
async function hostRoutes(): Promise<V4Net[]> {
  const r = await exec(['ip', '-4', '-o', 'route', 'show', 'table', 'all']);
  const out: V4Net[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /^(?:local |broadcast )?(\d+\.\d+\.\d+\.\d+)(?:\/(\d+))?\s/.exec(line);
    if (!m) continue;
    const [a, b, c, d] = m[1]!.split('.').map(Number) as [number, number, number, number];
    out.push({
      base: ((a << 24) | (b << 16) | (c << 8) | d) >>> 0,
      len: m[2] === undefined ? 32 : Number(m[2]),
    });
  }
  return out;
}

/**
 * A test data plane that remembers everything it creates and removes it all in `cleanup()` — processes by PID,
 * any process left in its namespaces, veths explicitly before namespaces (namespace teardown is asynchronous,
 * so a veth named like a dying one could otherwise collide), namespaces, bridges, /etc/netns/<ns>, temp dirs —
 * even after a failed test. Every name starts with `sn-<random>` so parallel test files never collide.
 */
export class TestNet {
  readonly prefix: string;
  private readonly namespaces: string[] = [];
  private readonly bridges: { name: string; ns: string | undefined }[] = [];
  private readonly veths: TestNetVeth[] = [];
  private readonly processes: SpawnedProcess[] = [];
  private readonly pids: number[] = [];
  private readonly dirs: string[] = [];
  private counter = 0;
  private cleaned = false;

  constructor(prefix = newRunPrefix()) {
    this.prefix = prefix;
  }

  /** `<prefix>-<role>`, checked to fit an interface name. */
  name(role: string): string {
    return assertIfname(`${this.prefix}-${role}`);
  }

  /** Creates namespace `<prefix>-<role>` (lo up, per-namespace resolv.conf). */
  async namespace(role: string): Promise<string> {
    const ns = `${this.prefix}-${role}`;
    this.namespaces.push(ns);
    await createNamespace(ns);
    return ns;
  }

  /** Creates bridge `<prefix>-<role>` in the host (or in `ns`), up. */
  async bridge(role: string, opts: { ns?: string } = {}): Promise<string> {
    const name = this.name(role);
    this.bridges.push({ name, ns: opts.ns });
    await createBridge(name, opts);
    return name;
  }

  /** A veth with one end (`ifname`, default eth0) in `ns` and the other in the host/outerNs, on `bridge`. */
  async veth(req: VethRequest): Promise<TestNetVeth> {
    const outerName = this.name(`v${++this.counter}`);
    const v: TestNetVeth = { ns: req.ns, ifname: req.ifname ?? 'eth0', outerName, outerNs: req.outerNs };
    this.veths.push(v);
    await createVeth({
      ns: req.ns,
      ifname: v.ifname,
      outerName,
      outerNs: req.outerNs,
      bridge: req.bridge,
      mac: req.mac,
    });
    for (const a of req.addresses ?? []) await addAddress(req.ns, v.ifname, a);
    return v;
  }

  /**
   * A point-to-point link from the host to `ns` on a random link-local /30 (like CloudStack's control
   * network): returns both addresses. Random so parallel test files do not put the same subnet on two links.
   */
  async hostLink(
    ns: string,
    ifname = 'ctl0',
  ): Promise<TestNetVeth & { hostAddress: string; nsAddress: string }> {
    const v = await this.veth({ ns, ifname });
    // Random, and clear of every route the host already has (other test files' links, a driver's control
    // network): a more specific /30 inside someone's subnet would steal their traffic.
    const taken = await hostRoutes();
    let third = 0;
    let fourth = 0;
    for (let i = 0; i < 50; i++) {
      third = 1 + Math.floor(Math.random() * 253);
      fourth = Math.floor(Math.random() * 63) * 4;
      const base = ((169 << 24) | (254 << 16) | (third << 8) | fourth) >>> 0;
      if (!taken.some((r) => overlaps(r, { base, len: 30 }))) break;
    }
    const hostAddress = `169.254.${third}.${fourth + 1}`;
    const nsAddress = `169.254.${third}.${fourth + 2}`;
    await addAddress(undefined, v.outerName, `${hostAddress}/30`);
    await addAddress(ns, ifname, `${nsAddress}/30`);
    return { ...v, hostAddress, nsAddress };
  }

  /** Starts argv inside `ns`; the process is stopped by cleanup(). */
  spawnIn(ns: string, argv: string[], opts: SpawnOptions = {}): SpawnedProcess {
    const p = spawnIn(ns, argv, opts);
    this.processes.push(p);
    return p;
  }

  /** Starts argv in the host namespace; stopped by cleanup(). */
  spawn(argv: string[], opts: SpawnOptions = {}): SpawnedProcess {
    const p = spawnTracked(argv, opts);
    this.processes.push(p);
    return p;
  }

  /** Track a process we did not spawn ourselves (e.g. a daemon that wrote a pid file). */
  trackPid(pid: number): void {
    this.pids.push(pid);
  }

  /** A temp dir removed by cleanup(). */
  async tempDir(label = 'tmp'): Promise<string> {
    const d = await mkdtemp(join(tmpdir(), `${this.prefix}-${label}-`));
    this.dirs.push(d);
    return d;
  }

  /** Remove `path` (a file or directory something we started creates outside our temp dirs) at cleanup(). */
  removeOnCleanup(path: string): void {
    this.dirs.push(path);
  }

  async udhcpc(ns: string, ifname: string, opts: UdhcpcOptions = {}): Promise<DhcpRunResult> {
    const r = await runUdhcpc(ns, ifname, opts);
    if (r.process) this.processes.push(r.process);
    return r;
  }

  async dhclient(ns: string, ifname: string, opts: DhclientOptions = {}): Promise<DhcpRunResult> {
    const r = await runDhclient(ns, ifname, opts);
    if (r.process) this.processes.push(r.process);
    return r;
  }

  async dhcpcd(ns: string, ifname: string, opts: DhcpcdOptions = {}): Promise<DhcpRunResult> {
    const r = await runDhcpcd(ns, ifname, opts);
    if (r.process) this.processes.push(r.process);
    return r;
  }

  /** Removes everything this TestNet created. Safe to call twice; collects errors and throws them at the end. */
  async cleanup(): Promise<void> {
    if (this.cleaned) return;
    this.cleaned = true;
    const errors: unknown[] = [];
    const attempt = async (f: () => Promise<unknown>) => {
      try {
        await f();
      } catch (e) {
        errors.push(e);
      }
    };
    await Promise.all(this.processes.reverse().map((p) => attempt(() => p.stop(1500))));
    await Promise.all(this.pids.map((pid) => attempt(() => killPid(pid, 1500))));
    // Daemons started by what we ran (dnsmasq, keepalived) live on in our namespaces: they are ours too.
    await Promise.all(this.namespaces.map((ns) => attempt(() => killNamespacePids(ns))));
    for (const v of this.veths.reverse()) await attempt(() => deleteLink(v.outerName, { ns: v.outerNs }));
    for (const ns of this.namespaces.reverse()) {
      await attempt(() => deleteNamespace(ns));
      await attempt(() => removeState(ns));
    }
    for (const b of this.bridges.reverse()) {
      if (b.ns && this.namespaces.includes(b.ns)) continue;
      await attempt(() => deleteLink(b.name, { ns: b.ns }));
    }
    for (const d of this.dirs) await attempt(() => rm(d, { recursive: true, force: true }));
    if (errors.length > 0) {
      throw new AggregateError(errors, `TestNet ${this.prefix} cleanup: ${errors.map(String).join('; ')}`);
    }
  }
}
