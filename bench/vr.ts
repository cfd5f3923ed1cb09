/**
 * `npm run bench:vr` — how fast a populated virtual router serves a new VM, and what it costs everyone else.
 *
 * For each N (hosts already on the VR: N dhcp-host entries, N names, N leases — leases matter, see
 * shared/reference/dataplane-facts.md) it measures, with a raw DHCP client in a guest namespace that keeps
 * sending DISCOVER until answered:
 *   new-mac    time from the control-API call adding one host to its DHCPACK
 *   freed-ip   time from the call that removes a host and gives its address to a new MAC, to that MAC's DHCPACK
 *   freed-ip-same-shard  the same with the new MAC hashed to the old host's DHCP shard (only when sharded: the
 *              shard must both free the lease and load the new host; in freed-ip that is 1 in K)
 *   burst      (at --burst-n) 200 new hosts at once: time until all 200 are ACKed
 *   rebuild    the whole state (N hosts plus those added above) pushed to a brand-new router, as after a reboot
 *              or destroy + restartNetwork: time from the push to the last of --rebuild-sample hosts served
 *   memory     resident memory of the agent and its dnsmasq processes once populated (and changed)
 * and DNS meanwhile (bench/vr-dns-probe.ts, a process of its own: --dns-lanes sockets each sending one query per
 * --dns-interval ms, open loop, names of hosts that exist and of those just added; lost = no answer in 1 s):
 * dns_sent, dns_lost, dns_p50_ms, dns_p99_ms, dns_max_ms over each scenario's window, and the probe's own cost
 * (dns_probe_cpu_pct of one core, how late its timers fired). `dns-idle` is the same probe with nothing changing.
 * Every row names the `backend`: `dnsmasq-shards` (the agent: DNS in its own dnsmasq, DHCP in `dhcp_shards`
 * dnsmasq instances, src/agent/appliers/dnsmasq/shards.ts) or `dnsmasq` (one process for both, the baseline).
 * Beside each, in the same run, CloudStack's method driven directly against a second dnsmasq on the same bridge:
 * rewrite the whole hosts/names/lease files and restart dnsmasq, once per VM.
 *
 * `--compare <dir>,...` runs the agent's scenarios again, in the same run and lab, with the agent of another
 * build (a directory holding that commit's bin/ and built dist/, e.g. `git archive <commit>` + `tsc`); rows
 * name their `build`.
 *
 * One JSON object per line on stdout; progress on stderr.
 *   npm run bench:vr -- --n 100,1000,5000 --reps 20 --warmup 1 --burst 200 --burst-n 1000 [--no-baseline]
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import {
  DhcpProbe,
  eventually,
  exec,
  execIn,
  newRunPrefix,
  TestNet,
  type SpawnedProcess,
} from '../src/netns/index.js';
import type { DesiredState, HostSpec } from '../src/agent/desired-state.js';
import { shardCount, shardOf } from '../src/agent/appliers/dnsmasq/shards.js';
import { VrLab, repoRoot, type RouterUnderTest } from '../test/agent/vr-lab.js';
import { benchOutput, numberList, parseArgs, quantile } from './common.js';
import { VrDnsProbe, type DnsWindowStats } from './vr-dns-probe.js';

interface Flags {
  n: number[];
  reps: number;
  /** Unrecorded repetitions before each scenario (both methods alike): a fresh agent's first call runs cold code. */
  warmup: number;
  burst: number;
  burstN: number[];
  baseline: boolean;
  /** Per DNS probe lane; --dns-lanes lanes in parallel, staggered. */
  dnsIntervalMs: number;
  dnsLanes: number;
  rebuild: boolean;
  rebuildSample: number;
  /** Other agent builds to run the agent's scenarios with, after this checkout's. */
  compare: string[];
}

function parseFlags(argv: string[]): Flags {
  const f: Flags = {
    n: [100, 1000, 5000],
    reps: 20,
    warmup: 1,
    burst: 200,
    burstN: [1000],
    baseline: true,
    dnsIntervalMs: 5,
    dnsLanes: 8,
    rebuild: true,
    rebuildSample: 50,
    compare: [],
  };
  const usage =
    'npm run bench:vr -- [--n 100,1000,5000] [--reps 20] [--warmup 1] [--burst 200] [--burst-n 1000] [--no-baseline] [--dns-lanes 8] [--dns-interval 5] [--no-rebuild] [--rebuild-sample 50] [--compare <dir>,...]';
  parseArgs(argv, usage, (a, v) => {
    if (a === '--n') f.n = numberList(v());
    else if (a === '--reps') f.reps = Number(v());
    else if (a === '--warmup') f.warmup = Number(v());
    else if (a === '--burst') f.burst = Number(v());
    else if (a === '--burst-n') f.burstN = numberList(v());
    else if (a === '--no-baseline') f.baseline = false;
    else if (a === '--dns-interval') f.dnsIntervalMs = Number(v());
    else if (a === '--dns-lanes') f.dnsLanes = Number(v());
    else if (a === '--no-rebuild') f.rebuild = false;
    else if (a === '--rebuild-sample') f.rebuildSample = Number(v());
    else if (a === '--compare')
      f.compare = v()
        .split(',')
        .map((d) => resolve(d));
    else return false;
    return true;
  });
  return f;
}

const { log, emit: emitRow } = benchOutput('vr');
const emit = emitRow;
const now = () => performance.now();
const round = (x: number) => Math.round(x * 10) / 10;

function summary(xs: number[]) {
  return {
    median_ms: round(quantile(xs, 0.5)),
    p99_ms: round(quantile(xs, 0.99)),
    max_ms: round(Math.max(...xs)),
    samples_ms: xs.map(round),
  };
}

/** Address number i (0-based) in a /16: 10.x.(1 + i/250).(1 + i%250): never .0 or .255, never 10.x.0.* (the routers). */
function ipAt(prefix: string, i: number): string {
  return `${prefix}.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`;
}

function macAt(kind: number, i: number): string {
  const h = (x: number) => x.toString(16).padStart(2, '0');
  return `02:${h(kind)}:00:${h((i >> 16) & 255)}:${h((i >> 8) & 255)}:${h(i & 255)}`;
}

const DOMAIN = 'bench.internal';

/** The lab, with the agent started from `agentRoot` (this checkout, or a `--compare` build). */
class BenchLab extends VrLab {
  agentRoot = repoRoot;

  override spawnAgent(ns: string, control: string, secret: string, dataDir: string): SpawnedProcess {
    if (this.agentRoot === repoRoot) return super.spawnAgent(ns, control, secret, dataDir);
    const argv = [
      process.execPath,
      join(this.agentRoot, 'bin', 'stacknet.js'),
      'router-agent',
      ...[
        '--control-address',
        control,
        '--data-dir',
        dataDir,
        '--secret',
        secret,
        '--guest-interface',
        'eth0',
      ],
    ];
    return this.net.spawnIn(ns, argv, { cwd: this.agentRoot });
  }
}

/** The VR under test: the real agent behind its control API. */
class AgentMethod {
  readonly name = 'agent';
  readonly backend = 'dnsmasq-shards';
  gen = 1;
  hosts: HostSpec[] = [];
  private rebuilds = 0;
  constructor(
    readonly lab: VrLab,
    public vr: RouterUnderTest,
    /** `build` of its rows: this checkout's commit or a `--compare` directory's name. */
    readonly build: string,
  ) {}

  /** Stops this router's agent (and with it its dnsmasq) and frees its guest address for the next router. */
  async retire(): Promise<void> {
    await this.vr.agent.stop(10_000);
    await execIn(this.vr.ns, ['ip', 'addr', 'flush', 'dev', 'eth0']);
  }

  /** A brand-new router in place of this one (the old agent stopped, its address gone); returns its push. */
  async freshRouter(): Promise<() => Promise<void>> {
    await this.retire();
    this.vr = await this.lab.router(`${this.vr.role.replace(/-\d+$/, '')}-${++this.rebuilds}`);
    return async () => {
      const r = await this.vr.push(this.state(), { timeoutMs: 300_000 });
      if (!r.ok) throw new Error(`rebuild: ${JSON.stringify(r)}`);
    };
  }

  server = '10.20.0.1';

  state(): DesiredState {
    const s = this.lab.state(this.gen, this.hosts);
    s.router.name = 'r-bench-VM';
    return s;
  }

  async populate(n: number): Promise<void> {
    this.hosts = Array.from({ length: n }, (_, i) => ({
      mac: macAt(0xa0, i),
      ipv4: ipAt('10.20', i),
      hostname: `vm${i}`,
      defaultNic: true,
      vmId: `vm-${i}`,
    }));
    const r = await this.vr.push(this.state(), { timeoutMs: 300_000 });
    if (!r.ok) throw new Error(`populate: ${JSON.stringify(r)}`);
    const st = await this.vr.status();
    if (st.leaseCount < n) throw new Error(`populated VR has ${st.leaseCount} leases, wanted ${n}`);
  }

  private async delta(upsert: HostSpec[], remove: string[]): Promise<void> {
    const r = await this.vr.patch(
      { baseGeneration: this.gen, generation: this.gen + 1, hosts: { upsert, remove } },
      { timeoutMs: 120_000 },
    );
    if (!r.ok) throw new Error(`delta: ${JSON.stringify(r)}`);
    this.gen++;
    const gone = new Set(remove);
    this.hosts = [...this.hosts.filter((h) => !gone.has(h.mac)), ...upsert];
  }

  async addHosts(hs: HostSpec[]): Promise<void> {
    await this.delta(hs, []);
  }

  async replaceHost(old: HostSpec, next: HostSpec): Promise<void> {
    await this.delta([next], [old.mac]);
  }
}

/**
 * CloudStack's way (reference §4.4): every DHCP entry change rebuilds dhcphosts.txt, the hosts file and the lease
 * file from the whole databag, and since dhcphosts changed, restarts dnsmasq.
 */
class RewriteRestartMethod {
  readonly name = 'rewrite-restart';
  readonly backend = 'dnsmasq';
  server = '10.21.0.1';
  hosts: HostSpec[] = [];
  proc: SpawnedProcess | undefined;
  dir = '';
  constructor(
    readonly lab: VrLab,
    readonly ns: string,
  ) {}

  async init(): Promise<void> {
    this.dir = await this.lab.net.tempDir('cs');
    writeFileSync(
      join(this.dir, 'dnsmasq.conf'),
      [
        `pid-file=${this.dir}/dnsmasq.pid`,
        `dhcp-leasefile=${this.dir}/dnsmasq.leases`,
        'user=root',
        'no-hosts',
        'no-resolv',
        'bind-interfaces',
        'interface=eth0',
        'except-interface=lo',
        'domain-needed',
        'bogus-priv',
        'expand-hosts',
        `domain=${DOMAIN}`,
        `local=/${DOMAIN}/`,
        `addn-hosts=${this.dir}/hosts`,
        `dhcp-hostsfile=${this.dir}/dhcphosts.txt`,
        'dhcp-range=10.21.0.0,static,255.255.0.0,infinite',
        'dhcp-ignore=tag:!known',
        'dhcp-option=option:router,10.21.0.1',
        'dhcp-option=6,10.21.0.1',
        // CloudStack ships 2100; a fair baseline must not NAK past it.
        'dhcp-lease-max=65000',
        '',
      ].join('\n'),
    );
  }

  private writeAll(): void {
    const hostLines = this.hosts.map((h) => `${h.mac},${h.ipv4},${h.hostname},infinite`).join('\n') + '\n';
    const names = this.hosts.map((h) => `${h.ipv4}\t${h.hostname}`).join('\n') + '\n';
    const leases = this.hosts.map((h) => `0 ${h.mac} ${h.ipv4} ${h.hostname} *`).join('\n') + '\n';
    writeFileSync(join(this.dir, 'dhcphosts.txt'), hostLines);
    writeFileSync(join(this.dir, 'hosts'), `10.21.0.1\tdata-server\n${names}`);
    writeFileSync(join(this.dir, 'dnsmasq.leases'), leases);
  }

  private async restart(): Promise<void> {
    if (this.proc) await this.proc.stop(5000);
    this.proc = this.lab.net.spawnIn(this.ns, [
      'dnsmasq',
      '--keep-in-foreground',
      `--conf-file=${join(this.dir, 'dnsmasq.conf')}`,
    ]);
  }

  async populate(n: number): Promise<void> {
    this.hosts = Array.from({ length: n }, (_, i) => ({
      mac: macAt(0xc5, i),
      ipv4: ipAt('10.21', i),
      hostname: `vm${i}`,
      defaultNic: true,
      vmId: `vm-${i}`,
    }));
    this.writeAll();
    await this.restart();
  }

  async addHosts(hs: HostSpec[]): Promise<void> {
    // one VM at a time, as CloudStack's non-aggregated per-VM commands do
    for (const h of hs) {
      this.hosts.push(h);
      this.writeAll();
      await this.restart();
    }
  }

  /** CloudStack rebuilding a VR: every file written from the databag, dnsmasq started. */
  async freshRouter(): Promise<() => Promise<void>> {
    if (this.proc) await this.proc.stop(5000);
    this.proc = undefined;
    return async () => {
      this.writeAll();
      await this.restart();
    };
  }

  async replaceHost(old: HostSpec, next: HostSpec): Promise<void> {
    // remove=true + the new entry; the old lease line goes with the rebuild (CloudStack dhcp_releases it)
    this.hosts = this.hosts.filter((h) => h.mac !== old.mac);
    this.hosts.push(next);
    this.writeAll();
    await this.restart();
  }
}

type Method = AgentMethod | RewriteRestartMethod;

const buildOf = (m: Method) => (m instanceof AgentMethod ? { build: m.build } : {});
const who = (m: Method) => (m instanceof AgentMethod ? `agent@${m.build}` : m.name);

async function measureOne(probe: DhcpProbe, change: () => Promise<void>, mac: string, retryMs = 5) {
  const t0 = now();
  const served = probe.lease(mac, { retryMs, timeoutMs: 60_000 }).then((r) => ({ r, t: now() - t0 }));
  const api = change().then(() => now() - t0);
  const [s, apiMs] = await Promise.all([served, api]);
  if (!s.r.ok) throw new Error(`${mac} not served: ${JSON.stringify(s.r)}`);
  return { ms: s.t, apiMs, ip: s.r.ip };
}

/**
 * Runs `f` with the DNS probe querying `m`'s server: names of 64 hosts spread over those it has, alternating with
 * `added` (hosts just added, or being added: NXDOMAIN until the router has them, counted in dns_nxdomain).
 */
async function withDns<T>(
  dnsProbe: VrDnsProbe,
  m: Method,
  flags: Flags,
  added: string[],
  f: () => Promise<T>,
): Promise<[T, DnsWindowStats]> {
  const step = Math.max(1, Math.floor(m.hosts.length / 64));
  const existing = m.hosts.filter((_, i) => i % step === 0).map((h) => h.hostname ?? '');
  const names: string[] = [];
  for (let i = 0; i < Math.max(existing.length, added.length); i++) {
    if (existing.length) names.push(existing[i % existing.length]!);
    if (added.length) names.push(added[i % added.length]!);
  }
  await dnsProbe.begin({
    server: m.server,
    names: names.filter(Boolean).map((n) => `${n}.${DOMAIN}`),
    lanes: flags.dnsLanes,
    intervalMs: flags.dnsIntervalMs,
    timeoutMs: 1000,
  });
  try {
    const r = await f();
    return [r, await dnsProbe.end()];
  } catch (e) {
    await dnsProbe.end().catch(() => undefined);
    throw e;
  }
}

const dnsFields = (d: DnsWindowStats) => ({
  dns_sent: d.sent,
  dns_lost: d.lost,
  dns_max_ms: round(d.maxMs),
  dns_answered: d.answered,
  dns_p50_ms: round(d.p50Ms),
  dns_p99_ms: round(d.p99Ms),
  dns_nxdomain: d.rcodes['3'] ?? 0,
  dns_lanes: d.lanes,
  dns_interval_ms: d.intervalMs,
  dns_window_ms: round(d.wallMs),
  dns_probe_cpu_ms: round(d.probeCpuMs),
  dns_probe_cpu_pct: round((100 * d.probeCpuMs) / d.wallMs),
  dns_probe_timer_late_p99_ms: round(d.timerLateP99Ms),
  dns_probe_timer_late_max_ms: round(d.timerLateMaxMs),
});
const dnsLog = (d: DnsWindowStats) =>
  `DNS lost ${d.lost}/${d.sent} p50 ${round(d.p50Ms)} p99 ${round(d.p99Ms)} max ${round(d.maxMs)} ms (probe ${round((100 * d.probeCpuMs) / d.wallMs)}% CPU, timers late p99 ${round(d.timerLateP99Ms)} ms)`;

async function runScenarios(
  m: Method,
  probe: DhcpProbe,
  dnsProbe: VrDnsProbe,
  n: number,
  flags: Flags,
): Promise<void> {
  const kindNew = m.name === 'agent' ? 0xa1 : 0xc6;
  const prefix = m.name === 'agent' ? '10.20' : '10.21';
  let next = n; // next free address index
  let macSeq = 0;
  const fresh = (): HostSpec => {
    const i = macSeq++;
    return {
      mac: macAt(kindNew, i),
      ipv4: ipAt(prefix, next++),
      hostname: `new${i}`,
      defaultNic: true,
      vmId: `n-${i}`,
    };
  };
  const emit = (o: Record<string, unknown>) => emitRow({ backend: m.backend, ...buildOf(m), ...o });
  const justAdded = (): string[] => m.hosts.slice(-64).map((h) => h.hostname ?? '');

  // DNS with nothing changing: the floor the scenarios' figures stand on (this machine, this load, this probe)
  {
    const [, dns] = await withDns(dnsProbe, m, flags, [], () => new Promise((r) => setTimeout(r, 2000)));
    emit({ method: m.name, n, scenario: 'dns-idle', ...dnsFields(dns) });
    log(`${who(m)} n=${n} dns-idle ${dnsLog(dns)}`);
  }

  // new MAC (`--reps 0`: none of the per-change scenarios, e.g. for the rebuild alone)
  if (flags.reps > 0) {
    const times: number[] = [];
    const apis: number[] = [];
    const [, dns] = await withDns(dnsProbe, m, flags, justAdded(), async () => {
      for (let k = -flags.warmup; k < flags.reps; k++) {
        const h = fresh();
        const r = await measureOne(probe, () => m.addHosts([h]), h.mac);
        if (r.ip !== h.ipv4) throw new Error(`${h.mac} got ${r.ip}, wanted ${h.ipv4}`);
        if (k < 0) continue;
        times.push(r.ms);
        apis.push(r.apiMs);
      }
    });
    emit({
      method: m.name,
      n,
      scenario: 'new-mac',
      reps: times.length,
      ...summary(times),
      api_median_ms: round(quantile(apis, 0.5)),
      ...dnsFields(dns),
    });
    log(
      `${who(m)} n=${n} new-mac median ${round(quantile(times, 0.5))} ms p99 ${round(quantile(times, 0.99))} ms, ${dnsLog(dns)}`,
    );
  }

  // a just-freed address given to a new MAC (the old host held a lease on it); with DHCP shards also a new MAC
  // of the old host's own shard
  const shards = m instanceof AgentMethod ? shardCount(m.hosts.length) : 1;
  for (const sameShard of flags.reps <= 0 ? [] : shards > 1 ? [false, true] : [false]) {
    const scenario = sameShard ? 'freed-ip-same-shard' : 'freed-ip';
    const times: number[] = [];
    const apis: number[] = [];
    const [, dns] = await withDns(dnsProbe, m, flags, justAdded(), async () => {
      for (let k = -flags.warmup; k < flags.reps; k++) {
        const old = m.hosts[k + flags.warmup]!;
        let i = macSeq++;
        while (sameShard && shardOf(macAt(kindNew, i), shards) !== shardOf(old.mac, shards)) i = macSeq++;
        const h: HostSpec = {
          mac: macAt(kindNew, i),
          ipv4: old.ipv4,
          hostname: `re${i}`,
          defaultNic: true,
          vmId: `r-${i}`,
        };
        const r = await measureOne(probe, () => m.replaceHost(old, h), h.mac);
        if (r.ip !== h.ipv4) throw new Error(`${h.mac} got ${r.ip}, wanted ${h.ipv4}`);
        if (k < 0) continue;
        times.push(r.ms);
        apis.push(r.apiMs);
      }
    });
    emit({
      method: m.name,
      n,
      scenario,
      reps: times.length,
      ...summary(times),
      api_median_ms: round(quantile(apis, 0.5)),
      ...dnsFields(dns),
    });
    log(
      `${who(m)} n=${n} ${scenario} median ${round(quantile(times, 0.5))} ms p99 ${round(quantile(times, 0.99))} ms, ${dnsLog(dns)}`,
    );
  }

  // burst
  if (flags.burstN.includes(n) && flags.burst > 0) {
    const hs = Array.from({ length: flags.burst }, fresh);
    const [res, dns] = await withDns(
      dnsProbe,
      m,
      flags,
      hs.map((h) => h.hostname ?? ''),
      async () => {
        const t0 = now();
        const served = Promise.all(
          hs.map((h) =>
            probe.lease(h.mac, { retryMs: 50, timeoutMs: 300_000 }).then((r) => ({ r, t: now() - t0 })),
          ),
        );
        const api = m.addHosts(hs).then(() => now() - t0);
        const [all, apiMs] = await Promise.all([served, api]);
        const bad = all.filter((x) => !x.r.ok);
        if (bad.length) throw new Error(`${bad.length} of the burst not served: ${JSON.stringify(bad[0])}`);
        return { times: all.map((x) => x.t), apiMs };
      },
    );
    emit({
      method: m.name,
      n,
      scenario: 'burst',
      hosts: flags.burst,
      all_served_ms: round(Math.max(...res.times)),
      median_host_ms: round(quantile(res.times, 0.5)),
      api_ms: round(res.apiMs),
      ...dnsFields(dns),
    });
    log(
      `${who(m)} n=${n} burst of ${flags.burst}: all served in ${round(Math.max(...res.times))} ms, ${dnsLog(dns)}`,
    );
  }
}

/**
 * A router rebuilt from the database: the whole state pushed to a brand-new router while a sample of its hosts
 * (evenly spread, the last one included) keep asking for their address; time to the last of them served.
 */
async function rebuildScenario(m: Method, probe: DhcpProbe, n: number, flags: Flags): Promise<void> {
  const push = await m.freshRouter();
  const hosts = m.hosts;
  const step = Math.max(1, Math.floor(hosts.length / flags.rebuildSample));
  const sample = hosts.filter((_, i) => i % step === 0 || i === hosts.length - 1);
  const t0 = now();
  const served = Promise.all(
    sample.map((h) =>
      probe
        .lease(h.mac, { retryMs: 20, maxRetryMs: 100, timeoutMs: 600_000 })
        .then((r) => ({ r, h, t: now() - t0 })),
    ),
  );
  const apiMs = await push().then(() => now() - t0);
  const all = await served;
  const bad = all.filter((x) => !x.r.ok || x.r.ip !== x.h.ipv4);
  if (bad.length)
    throw new Error(`rebuild: ${bad.length} of the sample not served right: ${JSON.stringify(bad[0])}`);
  const last = Math.max(...all.map((x) => x.t));
  emitRow({
    method: m.name,
    backend: m.backend,
    ...buildOf(m),
    n,
    scenario: 'rebuild',
    hosts: hosts.length,
    sampled: sample.length,
    last_served_ms: round(last),
    api_ms: round(apiMs),
  });
  log(
    `${who(m)} n=${n} rebuild of ${hosts.length} hosts: last of ${sample.length} sampled served in ${round(last)} ms`,
  );
}

/** Resident memory (MB) of the processes in namespace `ns`, by program name. */
async function memory(ns: string): Promise<Record<string, number>> {
  const pids = (await exec(['ip', 'netns', 'pids', ns])).stdout.split(/\s+/).filter(Boolean);
  const out: Record<string, number> = {};
  for (const pid of pids) {
    try {
      const st = readFileSync(`/proc/${pid}/status`, 'utf8');
      const name = /^Name:\s+(\S+)/m.exec(st)?.[1] ?? '?';
      const kb = Number(/^VmRSS:\s+(\d+)/m.exec(st)?.[1] ?? 0);
      const key = name === 'node' || name.startsWith('MainThread') ? 'agent' : name;
      out[`${key}_rss_mb`] = round((out[`${key}_rss_mb`] ?? 0) + kb / 1024);
      out[`${key}_processes`] = (out[`${key}_processes`] ?? 0) + 1;
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

async function runN(n: number, flags: Flags): Promise<void> {
  const lab = new BenchLab({ cidr: '10.20.0.0/16', domain: DOMAIN });
  // Its namespaces, bridges and veths are named `shd-<random>-…` (this bench's own prefix).
  Object.defineProperty(lab, 'net', { value: new TestNet(`shd-${newRunPrefix(5).slice(3)}`) });
  try {
    await lab.setup();
    const probeNs = await lab.net.namespace('probe');
    await lab.net.veth({
      ns: probeNs,
      bridge: lab.bridge,
      addresses: ['10.20.255.254/16', '10.21.255.254/16'],
    });
    const probe = await DhcpProbe.start(probeNs, { track: (p) => lab.net.trackPid(p.pid) });
    const dnsProbe = await VrDnsProbe.start(lab.net, probeNs);
    try {
      // This checkout's agent, then each --compare build, one after the other on the same lab and probe (or in
      // the --compare order if it names this checkout, `.`, itself).
      const builds = flags.compare.includes(repoRoot) ? flags.compare : [repoRoot, ...flags.compare];
      for (const [b, root] of builds.entries()) {
        lab.agentRoot = root;
        const build = root === repoRoot ? gitDescribe() : basename(root);
        const vr = await lab.router(`vr${b}-0`);
        const agent = new AgentMethod(lab, vr, build);
        const t = now();
        await agent.populate(n);
        log(`agent@${build} populated with ${n} hosts in ${Math.round(now() - t)} ms`);
        await eventually(
          async () => {
            const r = await probe.lease(agent.hosts[0]!.mac, { timeoutMs: 2000 });
            if (!r.ok) throw new Error('populated VR does not answer');
          },
          { timeoutMs: 30_000 },
        );
        await runScenarios(agent, probe, dnsProbe, n, flags);
        const st = await agent.vr.status();
        const row = { method: 'agent', backend: agent.backend, build, n };
        emit({
          ...row,
          scenario: 'counters',
          dhcp_shards: st.dhcpShards ?? 1,
          ...st.counters,
          dnsmasq_restarts_by_supervisor: st.dnsmasq.restarts,
        });
        emit({
          ...row,
          scenario: 'memory',
          hosts: agent.hosts.length,
          dhcp_shards: st.dhcpShards ?? 1,
          ...(await memory(agent.vr.ns)),
        });
        if (flags.rebuild) await rebuildScenario(agent, probe, n, flags);
        await agent.retire();
      }

      if (flags.baseline) {
        const csNs = await lab.net.namespace('cs');
        await lab.net.veth({ ns: csNs, bridge: lab.bridge, addresses: ['10.21.0.1/16'] });
        const cs = new RewriteRestartMethod(lab, csNs);
        await cs.init();
        const t = now();
        await cs.populate(n);
        await eventually(
          async () => {
            const r = await probe.lease(cs.hosts[0]!.mac, { timeoutMs: 2000 });
            if (!r.ok) throw new Error('baseline does not answer');
          },
          { timeoutMs: 60_000 },
        );
        log(`rewrite-restart baseline populated with ${n} hosts in ${Math.round(now() - t)} ms`);
        await runScenarios(cs, probe, dnsProbe, n, flags);
        if (flags.rebuild) await rebuildScenario(cs, probe, n, flags);
      }
    } finally {
      await dnsProbe.close().catch(() => undefined);
      await probe.close();
    }
  } finally {
    await lab.cleanup();
  }
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2));
  let dnsmasqVersion = '';
  try {
    dnsmasqVersion = /version (\S+)/.exec(execFileSync('dnsmasq', ['--version']).toString())?.[1] ?? '';
  } catch {
    /* reported as empty */
  }
  emit({
    scenario: 'env',
    cpus: cpus().length,
    cpu: cpus()[0]?.model,
    node: process.version,
    dnsmasq: dnsmasqVersion,
    commit: gitDescribe(),
    // other work on the machine skews every figure: the load average says how much there was
    loadavg: loadavg().map((x) => Math.round(x * 100) / 100),
    at: new Date().toISOString(),
    flags,
  });
  for (const n of flags.n) {
    log(`N = ${n}`);
    await runN(n, flags);
  }
  emit({
    scenario: 'end',
    loadavg: loadavg().map((x) => Math.round(x * 100) / 100),
    at: new Date().toISOString(),
  });
}

function gitDescribe(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot }).toString().trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src/agent'], { cwd: repoRoot })
      .toString()
      .trim();
    return dirty ? `${head}+uncommitted src/agent` : head;
  } catch {
    return '';
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exitCode = 1;
});
