/**
 * The router agent's core: accepts desired states (full or delta), coalesces bursts, applies by hash through
 * render → `dnsmasq --test` → atomic rename → the cheapest signal, supervises dnsmasq and keepalived, and reports
 * status. One instance per router; the control, metadata and password servers are thin shells around it.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DesiredState, DesiredStateDelta, HostSpec, VmMetadata } from './desired-state.js';
import { applyDelta } from './desired-state.js';
import type { DnsmasqPaths, Lease } from './render/dnsmasq.js';
import { dhcpHostLine, leaseTimeText, mergeLeases, nameLines, parseLeases } from './render/dnsmasq.js';
import { cidrContains, ipv6GatewayOf, parseIpv4Cidr } from './render/ip.js';
import { nftTableName } from './render/nftables.js';
import type { LoadedDnsmasq, Rendered, RenderContext } from './render/render.js';
import { leasesToRelease, loadedFrom, noteAdded, planDnsmasq, render } from './render/render.js';
import { ProcessSupervisor } from './process-supervisor.js';
import {
  dnsmasqTest,
  ensureAddress,
  ensureAddress6,
  inInitialNetNamespace,
  interfaceAddresses,
  interfaceExists,
  interfaceHolding,
  nftApply,
  readText,
  releaseLeases,
  removeAddress,
  run,
  stopReleaser,
} from './system.js';
import type { HeldEntry, QuarantinedEntry } from './validate-desired-state.js';
import {
  describeQuarantine,
  heldAfterDelta,
  reported,
  validateDelta,
  validateDesiredState,
} from './validate-desired-state.js';
import { leaseDirFor } from './lease-dir.js';

export interface AgentOptions {
  dataDir: string;
  guestInterface: string;
  controlAddress: string;
  controlPort: number;
  metadataPort: number;
  passwordPort: number;
  dnsmasqBinary: string;
  keepalivedBinary: string;
  /** Load the nftables ruleset when the desired state asks for it (never in the machine's own namespace). */
  firewall: boolean;
  /** Where dnsmasq keeps its lease file; default `leaseDirFor(dataDir)` (a tmpfs when there is one). */
  leaseDir?: string;
  log?: (message: string) => void;
}

export { leaseDirFor };

export type ConditionType = 'Available' | 'Progressing' | 'Degraded';
export interface Condition {
  type: ConditionType;
  status: boolean;
  reason: string;
  message: string;
  lastTransitionTime: string;
}

export interface AgentStatus {
  routerName: string | null;
  /** Generation of the desired state in force (applied). */
  generation: number | null;
  /** Latest accepted generation (equal to `generation` unless an apply is in flight). */
  desiredGeneration: number | null;
  hash: string | null;
  conditions: Condition[];
  role: 'standalone' | 'primary' | 'backup';
  dnsmasq: { running: boolean; pid: number | null; restarts: number; lastError: string | null };
  keepalived: { running: boolean; pid: number | null } | null;
  firewall: { loaded: boolean; message: string | null };
  counters: {
    applies: number;
    hostsdirAdds: number;
    reloads: number;
    restarts: number;
    leasesReleased: number;
  };
  lastFailure: { generation: number; reason: string; message: string } | null;
  /**
   * Guest addresses whose password in the state in force the guest acknowledged (`saved_password`). The server
   * drops those passwords from the desired state (as CloudStack's password server deletes an acknowledged one),
   * so the other router of a pair — or this one after a rebuild — never serves them again.
   */
  savedPasswords?: string[];
  /**
   * Entries of the state in force that are not served because they are invalid on their own or clash with
   * another (a bad MAC, an address two hosts claim, user data that is not base64); the rest of the state is.
   * `Degraded` is then true with reason `EntriesQuarantined`. At most `maxReportedQuarantine` are listed.
   */
  quarantined?: QuarantinedEntry[];
  leaseCount: number;
  leases?: Lease[];
}

export type SubmitResult =
  | { ok: true; status: AgentStatus }
  | {
      ok: false;
      httpStatus: number;
      error: string;
      message: string;
      field?: string;
      generation?: number | null;
      sendFull?: boolean;
    };

const retryable = new Set([
  'GuestInterfaceMissing',
  'GuestAddressFailed',
  'DnsmasqStartFailed',
  'KeepalivedStartFailed',
]);

const compactAfterFiles = 64;
const maxReportedQuarantine = 100;
/** New names go to dnsmasq's --hostsdir once additions have paused this long (see queueNames)... */
const namesQuietMs = 300;
/** ...or at the latest this long after the first of them was queued. */
const namesMaxDelayMs = 1500;

/** Pushes closer together than this are a burst... */
const burstGapMs = 25;
/** ...and an apply waits at most this long for the rest of it. */
const coalesceMs = 20;
const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Where the router's own guest address lives. A redundant router keeps it on `lo` (a /32), not on the guest
 * interface: dnsmasq takes the first address of the guest interface inside the subnet as its DHCP server
 * identifier, and guests renew by unicast to it. With only the VIP there, guests renew against the VIP, which
 * survives a failover. keepalived sends its adverts from it (`mcast_src_ip`), and the kernel still answers ARP
 * for it on the guest interface.
 */
function ownAddress(state: DesiredState, guestInterface: string): { dev: string; prefix: number } {
  return state.router.redundant
    ? { dev: 'lo', prefix: 32 }
    : { dev: guestInterface, prefix: parseIpv4Cidr(state.network.cidr).prefix };
}

class ApplyFailure extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

interface Waiter {
  generation: number;
  resolve: (r: SubmitResult) => void;
}

function passwordDigest(ip: string, password: string): string {
  return createHash('sha256').update(`${ip}\0${password}`).digest('hex');
}

function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.entries(v as Record<string, unknown>)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, x]) => `${JSON.stringify(k)}:${canonicalJson(x)}`)
      .join(',')}}`;
  return JSON.stringify(v);
}

function writeAtomic(file: string, text: string): void {
  const dir = file.slice(0, file.lastIndexOf('/'));
  const tmp = join(dir, `.${file.slice(dir.length + 1)}.tmp`);
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir)
      .filter((f) => !f.startsWith('.'))
      .sort();
  } catch {
    return [];
  }
}

export class RouterAgent {
  readonly paths: DnsmasqPaths & {
    output: string;
    nft: string;
    keepalivedConf: string;
    keepalivedPid: string;
    vrrpPid: string;
    keepalivedOutput: string;
    state: string;
    quarantine: string;
    saved: string;
  };
  private readonly ctx: RenderContext;
  readonly leaseDir: string;
  private applied: { state: DesiredState; rendered: Rendered } | null = null;
  private pending: DesiredState | null = null;
  private inFlight: DesiredState | null = null;
  private loop: Promise<void> | null = null;
  private waiters: Waiter[] = [];
  private loaded: LoadedDnsmasq | null = null;
  private addSeq = 0;
  private firewallLoaded = false;
  private firewallMessage: string | null = null;
  private failure: { generation: number; reason: string; message: string } | null = null;
  private conditions = new Map<ConditionType, Condition>();
  private holdsVip = false;
  private vipTimer: NodeJS.Timeout | null = null;
  /** Guest address → digest of the password the guest acknowledged (`saved_password`). */
  private savedPasswords = new Map<string, string>();
  private addressesWeAdded = new Set<string>();
  private closed = false;
  readonly dnsmasq: ProcessSupervisor;
  readonly keepalived: ProcessSupervisor;
  readonly counters = { applies: 0, hostsdirAdds: 0, reloads: 0, restarts: 0, leasesReleased: 0 };

  constructor(readonly options: AgentOptions) {
    const d = options.dataDir;
    this.leaseDir = options.leaseDir ?? leaseDirFor(d);
    this.paths = {
      conf: join(d, 'dnsmasq.conf'),
      pidFile: join(d, 'dnsmasq.pid'),
      leaseFile: join(this.leaseDir, 'dnsmasq.leases'),
      logFile: join(d, 'dnsmasq.log'),
      dhcpHostsFile: join(d, 'dhcphosts.txt'),
      dhcpHostsDir: join(d, 'dhcphosts.d'),
      namesFile: join(d, 'names.txt'),
      namesDir: join(d, 'names.d'),
      output: join(d, 'dnsmasq.out'),
      nft: join(d, 'nftables.nft'),
      keepalivedConf: join(d, 'keepalived.conf'),
      keepalivedPid: join(d, 'keepalived.pid'),
      vrrpPid: join(d, 'keepalived-vrrp.pid'),
      keepalivedOutput: join(d, 'keepalived.out'),
      state: join(d, 'applied-state.json'),
      quarantine: join(d, 'quarantined.json'),
      saved: join(d, 'saved-passwords.json'),
    };
    this.ctx = {
      paths: this.paths,
      guestInterface: options.guestInterface,
      controlInterface: interfaceHolding(options.controlAddress),
      controlPort: options.controlPort,
      metadataPort: options.metadataPort,
      passwordPort: options.passwordPort,
    };
    this.dnsmasq = new ProcessSupervisor({
      name: 'dnsmasq',
      binary: options.dnsmasqBinary,
      args: ['--keep-in-foreground', `--conf-file=${this.paths.conf}`],
      pidFile: this.paths.pidFile,
      identity: `--conf-file=${this.paths.conf}`,
      outputFile: this.paths.output,
      beforeStart: () => this.preseedLeases(),
      onEvent: (e) => this.log(`dnsmasq ${e.type} ${JSON.stringify(e)}`),
    });
    this.keepalived = new ProcessSupervisor({
      name: 'keepalived',
      binary: options.keepalivedBinary,
      args: [
        '--dont-fork',
        '--log-console',
        '--vrrp',
        `--use-file=${this.paths.keepalivedConf}`,
        `--pid=${this.paths.keepalivedPid}`,
        `--vrrp_pid=${this.paths.vrrpPid}`,
      ],
      pidFile: this.paths.keepalivedPid,
      identity: `--use-file=${this.paths.keepalivedConf}`,
      outputFile: this.paths.keepalivedOutput,
      onEvent: (e) => this.log(`keepalived ${e.type} ${JSON.stringify(e)}`),
    });
    this.setCondition('Available', false, 'NoDesiredState', 'waiting for the first desired state');
    this.setCondition('Progressing', false, 'Idle', '');
    this.setCondition('Degraded', false, 'AsExpected', '');
  }

  private log(message: string): void {
    this.options.log?.(message);
  }

  /** Load the last applied state, adopt a running dnsmasq, and converge without restarting it if nothing changed. */
  async start(): Promise<void> {
    // 0700: the applied state holds one-shot passwords and user data.
    for (const dir of [this.options.dataDir, this.leaseDir, this.paths.dhcpHostsDir, this.paths.namesDir])
      mkdirSync(dir, { recursive: true, mode: 0o700 });
    try {
      const saved = JSON.parse(readFileSync(this.paths.saved, 'utf8')) as Record<string, string>;
      this.savedPasswords = new Map(Object.entries(saved));
    } catch {
      /* nothing acknowledged yet */
    }
    let saved: DesiredState | null = null;
    try {
      let retry: HeldEntry[] = [];
      try {
        retry = JSON.parse(readFileSync(this.paths.quarantine, 'utf8')) as HeldEntry[];
      } catch {
        /* nothing was quarantined */
      }
      const v = validateDesiredState(JSON.parse(readFileSync(this.paths.state, 'utf8')), { retry });
      if (v.ok) {
        saved = v.value;
        this.held.set(saved, v.quarantined);
      }
    } catch {
      /* first start */
    }
    if (saved?.router.redundant)
      this.holdsVip = interfaceAddresses(this.options.guestInterface).includes(saved.network.gateway);
    if (saved && this.dnsmasq.adopt()) {
      // A dnsmasq left by a previous agent keeps serving untouched; on a backup (the VIP moved while no agent
      // was watching) it must not answer DHCP next to the primary's.
      if (this.serving(saved)) this.loaded = this.readLoaded();
      else await this.dnsmasq.stop();
    }
    if (saved?.router.redundant) this.keepalived.adopt();
    this.vipTimer = setInterval(() => this.checkVip(), 100);
    this.vipTimer.unref();
    if (saved) {
      this.pending = saved;
      this.forceNext = true;
      await this.kick();
    }
  }

  private forceNext = false;
  private lastApplyEnd = -Infinity;
  private lastArrival = -Infinity;
  private burst = false;
  /** Pushes being received by the control API (body not yet parsed and submitted). */
  private incoming = 0;

  /** The control API calls this around receiving a push, so bursts can be coalesced. */
  receiving(delta: 1 | -1): void {
    this.incoming = Math.max(0, this.incoming + delta);
  }

  /** Stop everything this agent runs (keepalived first, so the peer takes the address at once). */
  async stop(opts: { leaveRunning?: boolean } = {}): Promise<void> {
    this.closed = true;
    if (this.vipTimer) clearInterval(this.vipTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.loop) await this.loop.catch(() => undefined);
    this.flushPersist();
    this.flushNames();
    stopReleaser();
    if (opts.leaveRunning) {
      this.dnsmasq.detach();
      this.keepalived.detach();
      return;
    }
    await this.keepalived.stop();
    await this.dnsmasq.stop();
    // A stopped router's leases are rebuilt from the desired state at its next start (pre-seed).
    if (this.leaseDir !== this.options.dataDir) rmSync(this.leaseDir, { recursive: true, force: true });
  }

  private serving(state: DesiredState | null = this.applied?.state ?? null): boolean {
    return !state?.router.redundant || this.holdsVip;
  }

  get role(): AgentStatus['role'] {
    const s = this.applied?.state ?? this.inFlight;
    if (!s?.router.redundant) return 'standalone';
    return this.holdsVip ? 'primary' : 'backup';
  }

  private checkVip(): void {
    const s = this.applied?.state;
    if (!s?.router.redundant || this.closed) return;
    const holds = interfaceAddresses(this.options.guestInterface).includes(s.network.gateway);
    if (holds === this.holdsVip) return;
    this.holdsVip = holds;
    this.log(`redundant state: ${holds ? 'PRIMARY' : 'BACKUP'}`);
    // DHCP/DNS follow the primary (reference §4.11): the backup runs no dnsmasq, so it never answers DHCP.
    if (holds) {
      this.loaded = this.readLoaded();
      this.dnsmasq.ensureRunning().catch((e: Error) => this.degrade('DnsmasqStartFailed', e.message));
    } else {
      this.dnsmasq.stop().catch(() => undefined);
    }
  }

  // ---- accepting desired states ----

  /** The newest accepted state: what a delta's base generation is checked against. */
  private latest(): DesiredState | null {
    return this.pending ?? this.inFlight ?? this.applied?.state ?? null;
  }

  /** The desired state in force (what GET /v1/desired-state returns). */
  get appliedState(): DesiredState | null {
    return this.applied?.state ?? null;
  }

  get currentGeneration(): number | null {
    return this.latest()?.generation ?? null;
  }

  /** Entries set aside from each accepted state (see validate-desired-state.ts). */
  private readonly held = new WeakMap<DesiredState, HeldEntry[]>();

  private heldOf(state: DesiredState | null | undefined): HeldEntry[] {
    return (state && this.held.get(state)) ?? [];
  }

  submitFull(doc: unknown, wait = true): Promise<SubmitResult> {
    const v = validateDesiredState(doc);
    if (!v.ok)
      return Promise.resolve({
        ok: false,
        httpStatus: 400,
        error: 'InvalidDesiredState',
        field: v.field,
        message: `${v.field} ${v.message}`,
      });
    const state = v.value;
    const latest = this.latest();
    if (latest && state.generation < latest.generation)
      return Promise.resolve({
        ok: false,
        httpStatus: 409,
        error: 'StaleGeneration',
        generation: latest.generation,
        message: `generation ${state.generation} is older than ${latest.generation}, which this router already has`,
      });
    if (latest && state.generation === latest.generation && canonicalJson(state) !== canonicalJson(latest))
      return Promise.resolve({
        ok: false,
        httpStatus: 409,
        error: 'GenerationConflict',
        generation: latest.generation,
        message: `generation ${state.generation} was already accepted with different content; bump the generation`,
      });
    this.held.set(state, v.quarantined);
    return this.enqueue(state, wait);
  }

  submitDelta(doc: unknown, wait = true): Promise<SubmitResult> {
    const v = validateDelta(doc);
    if (!v.ok)
      return Promise.resolve({
        ok: false,
        httpStatus: 400,
        error: 'InvalidDelta',
        field: v.field,
        message: `${v.field} ${v.message}`,
      });
    const delta: DesiredStateDelta = v.value;
    const latest = this.latest();
    if (!latest || latest.generation !== delta.baseGeneration)
      return Promise.resolve({
        ok: false,
        httpStatus: 409,
        error: 'BaseGenerationMismatch',
        generation: latest?.generation ?? null,
        sendFull: true,
        message: `delta is based on generation ${delta.baseGeneration} but this router has ${latest?.generation ?? 'none'}; send the full desired state`,
      });
    const ahead = this.addAhead(latest, delta) || this.replaceAhead(latest, delta);
    const next = applyDelta(latest, delta);
    const full = validateDesiredState(next, {
      schema: false,
      retry: heldAfterDelta(this.heldOf(latest), delta, v.quarantined),
    });
    // The early file holds a host the state does not get (refused, or quarantined by a rule between entries):
    // put dnsmasq back on the applied state (a reload).
    if (ahead && (!full.ok || !this.keepsUpserts(full.value, delta))) this.reapplyApplied();
    if (!full.ok)
      return Promise.resolve({
        ok: false,
        httpStatus: 400,
        error: 'InvalidDelta',
        field: full.field,
        message: `after applying the delta, ${full.field} ${full.message}`,
      });
    this.held.set(full.value, full.quarantined);
    return this.enqueue(full.value, wait);
  }

  private keepsUpserts(state: DesiredState, delta: DesiredStateDelta): boolean {
    const macs = new Set(state.hosts.map((h) => h.mac.toLowerCase()));
    return (delta.hosts?.upsert ?? []).every((h) => macs.has(h.mac.toLowerCase()));
  }

  private index: {
    state: DesiredState;
    macs: Set<string>;
    byMac: Map<string, HostSpec>;
    ips: Set<string>;
    names: Set<string>;
  } | null = null;

  /** MACs, addresses and names of a state, for checking additions against it without walking every host. */
  private hostIndex(state: DesiredState): NonNullable<RouterAgent['index']> {
    if (this.index?.state !== state) {
      const macs = new Set<string>();
      const byMac = new Map<string, HostSpec>();
      const ips = new Set<string>();
      const names = new Set<string>();
      for (const h of state.hosts) {
        macs.add(h.mac.toLowerCase());
        byMac.set(h.mac.toLowerCase(), h);
        ips.add(h.ipv4);
        names.add(h.hostname.toLowerCase());
      }
      this.index = { state, macs, byMac, ips, names };
    }
    return this.index;
  }

  /**
   * The short path of a new VM: a delta that only adds default-NIC hosts (with their metadata and passwords)
   * to the state in force, while nothing else is pending, is checked against the index of that state (the rules
   * of validateDesiredState that involve the new hosts, O(delta)) and its hosts file goes into dnsmasq's
   * --dhcp-hostsdir at once — before the O(N) work of applying the delta to the full document, validating,
   * rendering and hashing it, which follows as usual and finds the hosts already loaded. dnsmasq's pick-up then
   * overlaps with that work instead of waiting for it. Anything else takes the normal path.
   */
  private addAhead(base: DesiredState, delta: DesiredStateDelta): boolean {
    const a = this.applied;
    const loaded = this.loaded;
    if (this.loop || this.pending || this.inFlight || !a || a.state !== base || !loaded) return false;
    if (!this.dnsmasq.running || !this.serving(base) || loaded.conf !== a.rendered.dnsmasqConf) return false;
    if (delta.router || delta.network || delta.firewall || (delta.hosts?.remove?.length ?? 0) > 0)
      return false;
    const ups = delta.hosts?.upsert ?? [];
    if (ups.length === 0) return false;
    const idx = this.hostIndex(base);
    const cidr = parseIpv4Cidr(base.network.cidr);
    const leased = this.leasedIps();
    const macs = new Set<string>();
    const ips = new Set<string>();
    const names = new Set<string>();
    for (const h of ups) {
      const mac = h.mac.toLowerCase();
      const name = h.hostname.toLowerCase();
      if (!h.defaultNic || macs.has(mac) || idx.macs.has(mac) || loaded.macs.has(mac)) return false;
      if (ips.has(h.ipv4) || idx.ips.has(h.ipv4) || loaded.ips.has(h.ipv4) || !cidrContains(cidr, h.ipv4))
        return false;
      if (h.ipv4 === base.network.gateway || h.ipv4 === base.router.guestIp) return false;
      const holder = leased.get(h.ipv4);
      if (holder !== undefined && holder !== mac) return false;
      if (names.has(name) || idx.names.has(name) || name === 'data-server') return false;
      macs.add(mac);
      ips.add(h.ipv4);
      names.add(name);
    }
    const lease = leaseTimeText(base);
    const lines = ups.map((h) => dhcpHostLine(h, lease));
    writeAtomic(
      join(this.paths.dhcpHostsDir, `g${delta.generation}-${++this.addSeq}`),
      lines.join('\n') + '\n',
    );
    noteAdded(loaded, lines, []);
    this.counters.hostsdirAdds++;
    return true;
  }

  /**
   * The short path of an address reuse (a VM expunged, its address given to a new one): a delta that removes
   * default-NIC hosts and adds new ones, nothing else pending. Such a change needs a SIGHUP (a deleted or changed
   * hostsdir entry stays loaded; a new entry for an address another entry holds is refused), which costs dnsmasq
   * a full load; here the full files are derived from the rendered state in force (lines of the removed hosts
   * out, the new ones in — no validation, render or sort of the whole document first), the stale leases are
   * released and the SIGHUP goes out; the O(N) apply follows and finds dnsmasq loaded with exactly its state.
   */
  private replaceAhead(base: DesiredState, delta: DesiredStateDelta): boolean {
    const a = this.applied;
    const loaded = this.loaded;
    if (this.loop || this.pending || this.inFlight || !a || a.state !== base || !loaded) return false;
    if (!this.dnsmasq.running || !this.serving(base) || loaded.conf !== a.rendered.dnsmasqConf) return false;
    if (delta.router || delta.network || delta.firewall || loaded.taggedMacs.size > 0) return false;
    const removes = new Set((delta.hosts?.remove ?? []).map((m) => m.toLowerCase()));
    if (removes.size === 0) return false;
    const idx = this.hostIndex(base);
    const removed: HostSpec[] = [];
    for (const mac of removes) {
      const h = idx.byMac.get(mac);
      if (!h || !h.defaultNic) return false;
      removed.push(h);
    }
    const freedIps = new Set(removed.map((h) => h.ipv4));
    const freedNames = new Set(removed.map((h) => h.hostname.toLowerCase()));
    const cidr = parseIpv4Cidr(base.network.cidr);
    const leased = this.leasedIps();
    const macs = new Set<string>();
    const ips = new Set<string>();
    const names = new Set<string>();
    const ups = delta.hosts?.upsert ?? [];
    for (const h of ups) {
      const mac = h.mac.toLowerCase();
      const name = h.hostname.toLowerCase();
      if (!h.defaultNic || macs.has(mac) || idx.macs.has(mac)) return false;
      if (ips.has(h.ipv4) || (idx.ips.has(h.ipv4) && !freedIps.has(h.ipv4)) || !cidrContains(cidr, h.ipv4))
        return false;
      if (h.ipv4 === base.network.gateway || h.ipv4 === base.router.guestIp) return false;
      const holder = leased.get(h.ipv4);
      if (holder !== undefined && holder !== mac && !removes.has(holder)) return false;
      if (names.has(name) || (idx.names.has(name) && !freedNames.has(name)) || name === 'data-server')
        return false;
      macs.add(mac);
      ips.add(h.ipv4);
      names.add(name);
    }
    const lease = leaseTimeText(base);
    const domain = base.network.domain;
    const hostLines = a.rendered.dhcpHosts
      .split('\n')
      .filter((l) => l && !removes.has(l.slice(0, l.indexOf(',')).toLowerCase()));
    for (const h of ups) hostLines.push(dhcpHostLine(h, lease));
    const goneNames = new Set(removed.flatMap((h) => nameLines(h, domain)));
    const nameText = a.rendered.names.split('\n').filter((l) => l && !goneNames.has(l));
    for (const h of ups) nameText.push(...nameLines(h, domain));
    this.writeFull(
      { ...a.rendered, dhcpHosts: hostLines.join('\n') + '\n', names: nameText.join('\n') + '\n' },
      true,
    );
    const released = this.releaseStale(
      base,
      this.readLeases().filter((l) => removes.has(l.mac)),
    );
    this.dnsmasq.signal('SIGHUP');
    this.counters.reloads++;
    released.catch(() => undefined);
    return true;
  }

  private reapplyApplied(): void {
    if (!this.applied) return;
    this.pending = this.pending ?? this.applied.state;
    this.forceNext = true;
    void this.kick();
  }

  private enqueue(state: DesiredState, wait: boolean): Promise<SubmitResult> {
    const t = performance.now();
    this.burst = t - this.lastArrival < burstGapMs;
    this.lastArrival = t;
    this.pending = state;
    this.setCondition('Progressing', true, 'Applying', `applying generation ${state.generation}`);
    const p = wait
      ? new Promise<SubmitResult>((resolve) => this.waiters.push({ generation: state.generation, resolve }))
      : Promise.resolve<SubmitResult>({ ok: true, status: this.status(false) });
    void this.kick();
    return p;
  }

  /**
   * One apply at a time; whatever arrives meanwhile is merged into the next one (only the newest state is
   * applied), so N updates arriving together cost at most two applies, never N reloads.
   */
  private kick(): Promise<void> {
    if (this.loop) return this.loop;
    this.loop = (async () => {
      while (this.pending && !this.closed) {
        // When pushes arrive in quick succession (a burst), gather them while they keep coming and apply the
        // newest in one go (one hostsdir file, at most one SIGHUP) instead of paying dnsmasq's re-read per host;
        // a lone change goes out at once.
        await new Promise((r) => setImmediate(r));
        if (this.burst) {
          const until = performance.now() + coalesceMs;
          while (performance.now() < until && (this.incoming > 0 || performance.now() - this.lastArrival < 5))
            await delay(1);
        }
        if (!this.pending) break;
        const s = this.pending;
        this.pending = null;
        this.inFlight = s;
        const force = this.forceNext;
        this.forceNext = false;
        try {
          await this.apply(s, force);
          this.failure = null;
          this.settleDegraded();
          if (!this.pending) this.setCondition('Progressing', false, 'UpToDate', '');
          this.settle(s.generation, null);
          // Ready for the next addition's check (addAhead), built while nothing is waiting.
          if (!this.pending && this.applied) this.hostIndex(this.applied.state);
          this.pruneSaved(s);
        } catch (e) {
          const f = e instanceof ApplyFailure ? e : new ApplyFailure('ApplyFailed', (e as Error).message);
          this.failure = { generation: s.generation, reason: f.reason, message: f.message };
          this.log(`generation ${s.generation} not applied: ${f.reason}: ${f.message}`);
          this.setCondition(
            'Degraded',
            true,
            f.reason,
            `generation ${s.generation} not applied (${f.message}); generation ${this.applied?.state.generation ?? 'none'} keeps serving`,
          );
          if (!this.pending) this.setCondition('Progressing', false, 'UpToDate', '');
          this.settle(s.generation, f);
          this.scheduleRetry(s, f.reason);
        } finally {
          this.inFlight = null;
          this.lastApplyEnd = performance.now();
        }
      }
      this.setCondition('Progressing', false, 'UpToDate', '');
      this.refreshAvailable();
    })().finally(() => {
      this.loop = null;
    });
    return this.loop;
  }

  private retryTimer: NodeJS.Timeout | null = null;
  private retryDelayMs = 1000;

  /**
   * Failures of the environment (interface not there yet, dnsmasq or keepalived would not start) heal by
   * themselves, so the agent retries the same state with backoff; a configuration dnsmasq or nft rejects fails the
   * same way every time and waits for the server to send something else.
   */
  private scheduleRetry(state: DesiredState, reason: string): void {
    if (!retryable.has(reason) || this.closed) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const wait = this.retryDelayMs;
    this.retryDelayMs = Math.min(this.retryDelayMs * 2, 30_000);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.closed || this.pending || this.failure?.generation !== state.generation) return;
      this.pending = state;
      this.forceNext = true;
      void this.kick();
    }, wait);
    this.retryTimer.unref();
  }

  private settle(generation: number, failure: ApplyFailure | null): void {
    if (!failure) this.retryDelayMs = 1000;
    const still: Waiter[] = [];
    for (const w of this.waiters) {
      if (w.generation > generation) {
        still.push(w);
      } else if (failure && w.generation === generation) {
        w.resolve({
          ok: false,
          httpStatus: 422,
          error: failure.reason,
          message: failure.message,
          generation: this.applied?.state.generation ?? null,
        });
      } else {
        w.resolve({ ok: true, status: this.status(false) });
      }
    }
    this.waiters = still;
  }

  // ---- applying ----

  private readLoaded(): LoadedDnsmasq {
    const hostLines = readText(this.paths.dhcpHostsFile).split('\n');
    for (const f of listDir(this.paths.dhcpHostsDir))
      hostLines.push(...readText(join(this.paths.dhcpHostsDir, f)).split('\n'));
    const nameLines = readText(this.paths.namesFile).split('\n');
    for (const f of listDir(this.paths.namesDir))
      nameLines.push(...readText(join(this.paths.namesDir, f)).split('\n'));
    return loadedFrom(readText(this.paths.conf), hostLines, nameLines);
  }

  /**
   * Write the full files and empty the DHCP hostsdir (before the SIGHUP, or it would re-read removed hosts;
   * deleting from --dhcp-hostsdir costs dnsmasq nothing). The DNS hostsdir is different: dnsmasq processes each
   * removal from it with a full lease re-match (about a second per file at 5,000 hosts, measured by bench:vr),
   * so while dnsmasq runs its files are kept when every name in them is still wanted (names.txt repeats them;
   * dnsmasq drops duplicate hosts entries) and only files holding a removed name are rewritten. With dnsmasq
   * stopped (restart, backup) they are simply deleted.
   */
  private writeFull(rendered: Rendered, dnsmasqRunning: boolean): void {
    this.dropQueuedNames();
    writeAtomic(this.paths.dhcpHostsFile, rendered.dhcpHosts);
    writeAtomic(this.paths.namesFile, rendered.names);
    for (const f of listDir(this.paths.dhcpHostsDir))
      rmSync(join(this.paths.dhcpHostsDir, f), { force: true });
    const wanted = new Set(rendered.names.split('\n').filter(Boolean));
    for (const f of listDir(this.paths.namesDir)) {
      const file = join(this.paths.namesDir, f);
      if (!dnsmasqRunning) {
        rmSync(file, { force: true });
        continue;
      }
      const lines = readText(file).split('\n').filter(Boolean);
      const keep = lines.filter((l) => wanted.has(l));
      if (keep.length === lines.length) continue;
      if (keep.length === 0) rmSync(file, { force: true });
      else writeAtomic(file, keep.join('\n') + '\n');
    }
    writeAtomic(this.paths.conf, rendered.dnsmasqConf);
    this.loaded = loadedFrom(
      rendered.dnsmasqConf,
      rendered.dhcpHosts.split('\n'),
      rendered.names.split('\n'),
    );
  }

  /**
   * Many small files in the hostsdir slow dnsmasq's start and SIGHUP, so past a threshold the DHCP additions are
   * folded into dhcphosts.txt. No signal is needed: the full file holds exactly what dnsmasq has loaded, and a
   * file deleted from --dhcp-hostsdir is not unloaded. (names.d is left alone: deleting a --hostsdir file does
   * unload its names, so it is folded only at the next reload.)
   */
  private compactHostsDir(rendered: Rendered): void {
    const files = listDir(this.paths.dhcpHostsDir);
    if (files.length < compactAfterFiles) return;
    writeAtomic(this.paths.dhcpHostsFile, rendered.dhcpHosts);
    for (const f of files) rmSync(join(this.paths.dhcpHostsDir, f), { force: true });
  }

  private leaseCache: { key: string; leases: Lease[]; byIp?: Map<string, string> } | null = null;

  /** Address → MAC of dnsmasq's leases (cached with the parsed file). */
  private leasedIps(): Map<string, string> {
    this.readLeases();
    const c = this.leaseCache;
    if (!c) return new Map();
    c.byIp ??= new Map(c.leases.map((l) => [l.ip, l.mac]));
    return c.byIp;
  }

  /** dnsmasq's lease file, parsed once per change of the file (status and every apply read it). */
  private readLeases(): Lease[] {
    let key: string;
    try {
      const st = statSync(this.paths.leaseFile);
      key = `${st.mtimeMs}:${st.size}:${st.ino}`;
    } catch {
      return [];
    }
    if (this.leaseCache?.key !== key)
      this.leaseCache = { key, leases: parseLeases(readText(this.paths.leaseFile)) };
    return this.leaseCache.leases;
  }

  private queuedNames: string[] = [];
  private namesTimer: NodeJS.Timeout | null = null;

  /**
   * A file in --hostsdir costs dnsmasq the same full lease re-match as one in --dhcp-hostsdir (its inotify
   * handler re-runs the DHCP config/lease update too; O(leases × hosts)). Names are therefore written a little
   * later and batched, so a new VM's DHCP answer waits for one re-match, not two. While additions keep coming
   * (VMs deployed one after another) the names wait for a pause, up to namesMaxDelayMs: a names re-match in the
   * middle of the stream would block the next VM's DHCP answer (bench:vr saw it in the p99). Until then the
   * name resolves from the VM's lease once it has one.
   */
  private queueNames(lines: string[]): void {
    if (lines.length === 0) return;
    if (this.queuedNames.length === 0) this.namesFirstQueued = performance.now();
    this.queuedNames.push(...lines);
    if (this.namesTimer) clearTimeout(this.namesTimer);
    const wait = Math.min(namesQuietMs, this.namesFirstQueued + namesMaxDelayMs - performance.now());
    this.namesTimer = setTimeout(() => this.flushNames(), Math.max(0, wait));
  }

  private namesFirstQueued = 0;

  private flushNames(): void {
    if (this.namesTimer) clearTimeout(this.namesTimer);
    this.namesTimer = null;
    if (this.queuedNames.length === 0) return;
    // A host that already holds its lease resolves by it (dnsmasq names a lease `host` and `host.<domain>` from
    // its dhcp-host line; the address could only be leased to that host's MAC), so its IPv4 line would buy
    // nothing for the re-match it costs; names.txt gets it at the next full write.
    const leased = this.leasedIps();
    const lines = this.queuedNames.filter((l) => {
      const ip = l.slice(0, l.indexOf('\t'));
      return ip.includes(':') || !leased.has(ip);
    });
    this.queuedNames = [];
    if (lines.length === 0) return;
    writeAtomic(join(this.paths.namesDir, `n-${++this.addSeq}`), lines.join('\n') + '\n');
  }

  private dropQueuedNames(): void {
    if (this.namesTimer) clearTimeout(this.namesTimer);
    this.namesTimer = null;
    this.queuedNames = [];
  }

  private preseedState: DesiredState | null = null;

  private preseedLeases(): void {
    const s = this.preseedState ?? this.applied?.state;
    if (!s) return;
    writeAtomic(
      this.paths.leaseFile,
      mergeLeases(s, readText(this.paths.leaseFile), Math.floor(Date.now() / 1000)),
    );
  }

  private async apply(state: DesiredState, force: boolean): Promise<void> {
    const prev = this.applied;
    const rendered = render(state, this.ctx);
    if (!force && prev && prev.rendered.hash === rendered.hash) {
      this.applied = { state, rendered };
      this.persist(state);
      return;
    }
    this.counters.applies++;
    const gi = this.options.guestInterface;
    if (!interfaceExists(gi))
      throw new ApplyFailure('GuestInterfaceMissing', `interface ${gi} does not exist`);

    // Validate everything before touching what is serving.
    // `dnsmasq --test` only parses the configuration file (host lines are ours and schema-checked), so it runs
    // only when that file changes: a host addition stays off the spawn-a-process path.
    if (rendered.dnsmasqConf !== prev?.rendered.dnsmasqConf || force) {
      const tmpConf = join(this.options.dataDir, '.dnsmasq.conf.test');
      writeFileSync(tmpConf, rendered.dnsmasqConf);
      const complaint = await dnsmasqTest(this.options.dnsmasqBinary, tmpConf);
      rmSync(tmpConf, { force: true });
      if (complaint) throw new ApplyFailure('DnsmasqRejectedConfig', complaint);
    }
    const wantFirewall = state.firewall.enabled && this.options.firewall;
    if (wantFirewall && inInitialNetNamespace()) {
      this.firewallMessage = 'not loaded: the agent runs in the machine’s own network namespace';
    } else if (wantFirewall && (!this.firewallLoaded || prev?.rendered.nftables !== rendered.nftables)) {
      const tmpNft = join(this.options.dataDir, '.nftables.nft.test');
      writeFileSync(tmpNft, rendered.nftables);
      const err = await nftApply(tmpNft, true);
      rmSync(tmpNft, { force: true });
      if (err) throw new ApplyFailure('FirewallRejected', err);
    }

    const own = ownAddress(state, gi);
    const addrErr = await ensureAddress(own.dev, state.router.guestIp, own.prefix);
    if (addrErr)
      throw new ApplyFailure('GuestAddressFailed', `cannot add ${state.router.guestIp} to ${gi}: ${addrErr}`);
    if (prev && this.addressesWeAdded.has(prev.state.router.guestIp)) {
      const old = ownAddress(prev.state, gi);
      if (prev.state.router.guestIp !== state.router.guestIp || old.dev !== own.dev)
        await removeAddress(old.dev, prev.state.router.guestIp, old.prefix);
    }
    this.addressesWeAdded.add(state.router.guestIp);
    await this.ensureIpv6(state, prev?.state ?? null);
    if (state.router.redundant) this.holdsVip = interfaceAddresses(gi).includes(state.network.gateway);

    await this.applyDnsmasq(state, rendered, prev);
    this.applied = { state, rendered };
    this.preseedState = null;
    this.persist(state);
    await this.applyFirewall(state, rendered, prev?.rendered ?? null);
    await this.applyKeepalived(rendered);
  }

  /**
   * The VR's IPv6 gateway address on the guest interface, before dnsmasq (re)starts: dnsmasq advertises a prefix
   * only on an interface holding an address in it. A redundant pair would need the address to move with the
   * VIP (keepalived); not done, so a redundant router advertises nothing.
   */
  private async ensureIpv6(state: DesiredState, prev: DesiredState | null): Promise<void> {
    const gi = this.options.guestInterface;
    const want = state.router.redundant ? null : ipv6GatewayOf(state.network);
    const had = prev && !prev.router.redundant ? ipv6GatewayOf(prev.network) : null;
    if (had && had !== want) {
      const len = prev!.network.ipv6Cidr!.split('/')[1]!;
      await run('ip', ['-6', 'addr', 'del', `${had}/${len}`, 'dev', gi]);
    }
    if (!want) return;
    const err = await ensureAddress6(gi, want, Number(state.network.ipv6Cidr!.split('/')[1]));
    if (err) throw new ApplyFailure('GuestAddressFailed', `cannot add ${want} to ${gi}: ${err}`);
  }

  private async applyDnsmasq(
    state: DesiredState,
    rendered: Rendered,
    prev: { state: DesiredState; rendered: Rendered } | null,
  ): Promise<void> {
    const active = this.serving(state);
    if (!active && this.dnsmasq.running) await this.dnsmasq.stop();
    if (!this.dnsmasq.running) this.loaded = active ? null : this.loaded;
    const plan = planDnsmasq(this.loaded, state, rendered, this.readLeases());
    this.log(
      `generation ${state.generation}: ${plan.kind}${plan.kind === 'add' ? ` ${plan.hostLines.length} host(s)` : ''}`,
    );
    switch (plan.kind) {
      case 'none':
        return;
      case 'add': {
        // One file per batch: dnsmasq reads a new file in the hostsdir by inotify, no reload (dataplane-facts).
        // (No host lines when addAhead has already written them; only the names are left.)
        if (plan.hostLines.length > 0) {
          const name = `g${state.generation}-${++this.addSeq}`;
          writeAtomic(join(this.paths.dhcpHostsDir, name), plan.hostLines.join('\n') + '\n');
          this.counters.hostsdirAdds++;
        }
        this.queueNames(plan.nameLines);
        noteAdded(this.loaded!, plan.hostLines, plan.nameLines);
        this.compactHostsDir(rendered);
        return;
      }
      case 'reload': {
        // dnsmasq 2.90 segfaults on SIGHUP while a lease exists for a hosts-file entry with a `set:` tag
        // (reproduced here); render keeps tagged hosts in dnsmasq.conf, and files from anything older restart.
        const tagged = (this.loaded?.taggedMacs.size ?? 0) > 0;
        if (active && this.dnsmasq.running && !tagged) {
          this.writeFull(rendered, true);
          // Releasing what the state no longer has frees those addresses for the next MAC at once (issue #10436).
          // The release and the SIGHUP go out together: dnsmasq handles both in its one loop, in either order
          // with the same result (a new MAC's DISCOVER for a reused address is answered once both are done), so
          // the reload does not wait for the release helper's round trip.
          const released = this.releaseStale(state, leasesToRelease(this.readLeases(), state));
          this.dnsmasq.signal('SIGHUP');
          this.counters.reloads++;
          await released;
          return;
        }
        if (!active || !this.dnsmasq.running) {
          this.writeFull(rendered, false);
          return;
        }
      }
      // falls through
      case 'restart': {
        if (!active) {
          this.writeFull(rendered, false);
          return;
        }
        this.preseedState = state;
        try {
          // Stopped before its watched directories change, so it does not process a storm of file events first.
          await this.dnsmasq.stop();
          this.writeFull(rendered, false);
          await this.dnsmasq.ensureRunning();
          this.counters.restarts++;
        } catch (e) {
          // dnsmasq --test passed but it would not start (an address it cannot bind, ...): put the last good
          // configuration back so the network keeps being served.
          if (prev) {
            await this.dnsmasq.stop();
            this.writeFull(prev.rendered, false);
            this.preseedState = prev.state;
            await this.dnsmasq.ensureRunning().catch(() => undefined);
          }
          throw new ApplyFailure('DnsmasqStartFailed', (e as Error).message);
        }
      }
    }
  }

  private async releaseStale(state: DesiredState, stale: Lease[]): Promise<void> {
    if (stale.length === 0) return;
    const cidr = parseIpv4Cidr(state.network.cidr);
    // dnsmasq checks the server identifier against the address it answers from; with a VIP there are two
    // candidates, so send one release per local address (the wrong one is ignored).
    for (const server of interfaceAddresses(this.options.guestInterface).filter((a) =>
      cidrContains(cidr, a),
    )) {
      const err = await releaseLeases(this.options.guestInterface, server, stale);
      if (err) this.log(`dhcp release failed: ${err}`);
    }
    this.counters.leasesReleased += stale.length;
  }

  private async applyFirewall(state: DesiredState, rendered: Rendered, prev: Rendered | null): Promise<void> {
    const want = state.firewall.enabled && this.options.firewall && !inInitialNetNamespace();
    if (want && (!this.firewallLoaded || prev?.nftables !== rendered.nftables)) {
      writeAtomic(this.paths.nft, rendered.nftables);
      const err = await nftApply(this.paths.nft, false);
      if (err) throw new ApplyFailure('FirewallFailed', err);
      this.firewallLoaded = true;
      this.firewallMessage = null;
    } else if (!want && this.firewallLoaded) {
      const tmp = join(this.options.dataDir, '.nft-delete.nft');
      writeFileSync(tmp, `table inet ${nftTableName}\ndelete table inet ${nftTableName}\n`);
      await nftApply(tmp, false);
      rmSync(tmp, { force: true });
      this.firewallLoaded = false;
    }
  }

  private async applyKeepalived(rendered: Rendered): Promise<void> {
    if (!rendered.keepalivedConf) {
      if (this.keepalived.running) await this.keepalived.stop();
      return;
    }
    // Compared with the file, not the previous render: an agent restarted next to a running keepalived must not
    // signal it when nothing changed.
    const changed = readText(this.paths.keepalivedConf) !== rendered.keepalivedConf;
    if (changed) writeAtomic(this.paths.keepalivedConf, rendered.keepalivedConf);
    if (!this.keepalived.running) {
      try {
        await this.keepalived.ensureRunning();
      } catch (e) {
        throw new ApplyFailure('KeepalivedStartFailed', (e as Error).message);
      }
    } else if (changed) {
      // keepalived re-reads its configuration on SIGHUP without dropping the VIP (no restart: CloudStack PRs
      // #940/#1064 show restarts on every change produce MASTER/MASTER).
      this.keepalived.signal('SIGHUP');
    }
  }

  private persistTimer: NodeJS.Timeout | null = null;

  /**
   * The applied state is saved off the request path (a few ms for thousands of hosts): losing the last write in
   * a crash only means the restarted agent reloads once and the server re-sends the newest generation.
   */
  private persist(_state: DesiredState): void {
    if (this.persistTimer) return;
    this.persistTimer = setTimeout(() => this.flushPersist(), 50);
  }

  private flushPersist(): void {
    if (this.persistTimer) clearTimeout(this.persistTimer);
    this.persistTimer = null;
    if (!this.applied) return;
    writeAtomic(this.paths.state, JSON.stringify(this.applied.state));
    const q = this.heldOf(this.applied.state);
    if (q.length > 0) writeAtomic(this.paths.quarantine, JSON.stringify(q));
    else rmSync(this.paths.quarantine, { force: true });
  }

  // ---- status ----

  private setCondition(type: ConditionType, status: boolean, reason: string, message: string): void {
    const old = this.conditions.get(type);
    if (old && old.status === status && old.reason === reason && old.message === message) return;
    this.conditions.set(type, {
      type,
      status,
      reason,
      message,
      lastTransitionTime: old && old.status === status ? old.lastTransitionTime : new Date().toISOString(),
    });
  }

  /**
   * Degraded when nothing failed: true while the state in force has quarantined entries (the rest is served;
   * the message names them so the operator can fix the rows), false otherwise.
   */
  private settleDegraded(): void {
    const s = this.applied?.state;
    const q = this.heldOf(s);
    if (!s || q.length === 0) {
      this.setCondition('Degraded', false, 'AsExpected', '');
      return;
    }
    const message = `generation ${s.generation} applied without ${q.length} ${q.length === 1 ? 'entry' : 'entries'}: ${describeQuarantine(q)}`;
    if (this.conditions.get('Degraded')?.message !== message) this.log(message);
    this.setCondition('Degraded', true, 'EntriesQuarantined', message);
  }

  private degrade(reason: string, message: string): void {
    this.setCondition('Degraded', true, reason, message);
  }

  private refreshAvailable(): void {
    if (!this.applied) {
      this.setCondition('Available', false, 'NoDesiredState', 'no desired state applied yet');
    } else if (!this.serving()) {
      this.setCondition(
        'Available',
        true,
        'Backup',
        'backup of a redundant pair: services follow the primary',
      );
    } else if (this.dnsmasq.running) {
      this.setCondition('Available', true, 'Serving', `serving generation ${this.applied.state.generation}`);
    } else {
      this.setCondition(
        'Available',
        false,
        'DnsmasqDown',
        this.dnsmasq.lastError ?? 'dnsmasq is not running',
      );
    }
  }

  status(withLeases = true): AgentStatus {
    this.refreshAvailable();
    // Problems of the running daemon (not of a pushed state) show as Degraded while they last.
    const recentCrashes = this.dnsmasq.crashes.filter((t) => Date.now() - t < 60_000).length;
    const reason = this.conditions.get('Degraded')?.reason;
    if (!this.failure) {
      if (this.dnsmasq.lastError && !this.dnsmasq.running)
        this.setCondition('Degraded', true, 'DnsmasqStartFailed', this.dnsmasq.lastError);
      else if (recentCrashes >= 3)
        this.setCondition(
          'Degraded',
          true,
          'DnsmasqCrashLoop',
          `dnsmasq died ${recentCrashes} times in the last minute`,
        );
      else if (reason === 'DnsmasqStartFailed' || reason === 'DnsmasqCrashLoop') this.settleDegraded();
    }
    const leases = this.readLeases();
    const st: AgentStatus = {
      routerName: this.applied?.state.router.name ?? null,
      generation: this.applied?.state.generation ?? null,
      desiredGeneration: this.latest()?.generation ?? null,
      hash: this.applied?.rendered.hash ?? null,
      conditions: (['Available', 'Progressing', 'Degraded'] as const).map((t) => this.conditions.get(t)!),
      role: this.role,
      dnsmasq: {
        running: this.dnsmasq.running,
        pid: this.dnsmasq.running ? this.dnsmasq.pid : null,
        restarts: this.dnsmasq.restarts,
        lastError: this.dnsmasq.lastError,
      },
      keepalived: this.applied?.state.router.redundant
        ? { running: this.keepalived.running, pid: this.keepalived.running ? this.keepalived.pid : null }
        : null,
      firewall: { loaded: this.firewallLoaded, message: this.firewallMessage },
      counters: { ...this.counters },
      lastFailure: this.failure,
      savedPasswords: this.savedNow(),
      quarantined: reported(this.heldOf(this.applied?.state).slice(0, maxReportedQuarantine)),
      leaseCount: leases.length,
    };
    if (withLeases) st.leases = leases;
    return st;
  }

  // ---- metadata and passwords (served from memory) ----

  /** Only the primary (or a standalone router) serves metadata and passwords; a backup holds no VIP anyway. */
  get servesGuests(): boolean {
    return this.applied !== null && this.serving();
  }

  isRouterAddress(local: string): boolean {
    const s = this.applied?.state;
    return !!s && (local === s.network.gateway || local === s.router.guestIp);
  }

  metadataFor(ip: string): VmMetadata | undefined {
    const md = this.applied?.state.metadata;
    return md && Object.prototype.hasOwnProperty.call(md, ip) ? md[ip] : undefined;
  }

  /**
   * `send_my_password`: the guest's password, again and again until the guest acknowledges it with
   * `saved_password` — CloudStack's password server forgets a password only on that acknowledgement, so a guest
   * whose first answer was lost (timeout, retry) still gets it. Then `saved_password` (null here).
   */
  passwordFor(ip: string): string | null {
    const pw = this.applied?.state.passwords[ip];
    if (pw === undefined) return null;
    if (this.savedPasswords.get(ip) === passwordDigest(ip, pw)) return null;
    return pw;
  }

  private savedNow(): string[] {
    const pws = this.applied?.state.passwords ?? {};
    return Object.entries(pws)
      .filter(([ip, pw]) => this.savedPasswords.get(ip) === passwordDigest(ip, pw))
      .map(([ip]) => ip)
      .sort();
  }

  /**
   * Forget acknowledgements of passwords the state no longer has: the server dropped them after the report, or
   * replaced them (resetPasswordForVirtualMachine: a new password for the address is served until acknowledged).
   */
  private pruneSaved(state: DesiredState): void {
    let changed = false;
    for (const [ip, digest] of this.savedPasswords) {
      const pw = state.passwords[ip];
      if (pw === undefined || passwordDigest(ip, pw) !== digest) {
        this.savedPasswords.delete(ip);
        changed = true;
      }
    }
    if (changed) this.persistSaved();
  }

  /**
   * `saved_password` from the guest's own address: it has stored the password; never serve that one again. The
   * address is reported in `status.savedPasswords` until the server has dropped the password.
   */
  ackPassword(ip: string): void {
    const pw = this.applied?.state.passwords[ip];
    if (pw === undefined) return;
    const digest = passwordDigest(ip, pw);
    if (this.savedPasswords.get(ip) === digest) return;
    this.savedPasswords.set(ip, digest);
    this.persistSaved();
  }

  private persistSaved(): void {
    writeAtomic(this.paths.saved, JSON.stringify(Object.fromEntries(this.savedPasswords)));
  }
}
