/**
 * `npm run bench:nat` — the router's public side (issue 13): what NAT costs, and how fast a rule is in force.
 *
 *   throughput   TCP (iperf3, one stream) from a guest to an upstream host through the router's source NAT, beside,
 *                in the same run and alternating, the same topology (guest bridge, router namespace, public bridge)
 *                with plain kernel forwarding and no nftables at all (`routed`), and one veth pair (`veth`).
 *   rule         time from pushing a port-forward rule (a delta over the control API) to the first packet
 *                forwarded by it, with the router already holding 0, 1,000, 10,000 rules; p50/p99. An upstream
 *                sender sends a UDP datagram a millisecond to the public port; a listener on the guest notes the
 *                first one that arrives.
 *   nft          at 10,000 rules: the full push (render, `nft --check`, `nft -f`, until the control API answers),
 *                and `nft -f` of the rendered ruleset alone, in the router's namespace.
 *
 * One JSON object per line on stdout; progress on stderr. Root; iperf3, nftables, iproute2; run `npm run build`
 * first (the router is the built CLI).
 *   npm run bench:nat -- [--seconds 5] [--reps 3] [--rules 0,1000,10000] [--rule-reps 30] [--only throughput,rule,nft]
 */
import { execFileSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import type { DesiredState, PortForwardRuleSpec, RuleSpec } from '../src/agent/desired-state.js';
import {
  addAddress,
  addRoute,
  eventually,
  execIn,
  setLinkUp,
  sysctlIn,
  type SpawnedProcess,
  type TestNet,
} from '../src/netns/index.js';
import { VrLab, repoRoot, type RouterUnderTest } from '../test/agent/vr-lab.js';
import { benchOutput, numberList, parseArgs, quantile } from './common.js';

interface Flags {
  seconds: number;
  reps: number;
  rules: number[];
  ruleReps: number;
  only: Set<string>;
  /** Print the router agent's output at the end (why a rule took the long path). */
  agentLog: boolean;
}

function parseFlags(argv: string[]): Flags {
  const f: Flags = {
    seconds: 5,
    reps: 3,
    rules: [0, 1000, 10000],
    ruleReps: 30,
    only: new Set(['throughput', 'rule', 'nft']),
    agentLog: false,
  };
  const usage =
    'npm run bench:nat -- [--seconds 5] [--reps 3] [--rules 0,1000,10000] [--rule-reps 30] [--only throughput,rule,nft] [--agent-log]';
  parseArgs(argv, usage, (a, v) => {
    if (a === '--seconds') f.seconds = Number(v());
    else if (a === '--reps') f.reps = Number(v());
    else if (a === '--rules') f.rules = numberList(v());
    else if (a === '--rule-reps') f.ruleReps = Number(v());
    else if (a === '--only') f.only = new Set(v().split(','));
    else if (a === '--agent-log') f.agentLog = true;
    else return false;
    return true;
  });
  return f;
}

const { log, emit } = benchOutput('nat');
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const load = () => loadavg().map((x) => round(x, 2));

// Addresses: the guest network, the public range (the upstream router at .1), the router's public IP.
const guestCidr = '10.64.0.0/24';
const guestGw = '10.64.0.1';
const guestVm = '10.64.0.11';
const upstream = '203.0.113.1';
const publicIp = '203.0.113.10';
const MAC = '02:64:00:00:00:11';

/** The router and guest of the NAT path: a VrLab router whose agent holds the public side. */
class NatRouter {
  gen = 1;
  rules: RuleSpec[] = [];
  vr!: RouterUnderTest;
  guest = '';
  wan = '';

  constructor(readonly lab: VrLab) {}

  async setup(): Promise<void> {
    const { lab } = this;
    this.vr = await lab.router('vr');
    // What the netns driver does for a router with a public side: eth2 on the public bridge, forwarding on.
    const pub = await lab.net.bridge('pub');
    await lab.net.veth({ ns: this.vr.ns, ifname: 'eth2', bridge: pub });
    await sysctlIn(this.vr.ns, 'net.ipv4.ip_forward', '1');
    this.wan = await lab.net.namespace('wan');
    await lab.net.veth({ ns: this.wan, ifname: 'eth0', bridge: pub, addresses: [`${upstream}/24`] });
    this.guest = await lab.guest('g', MAC);
    await addAddress(this.guest, 'eth0', `${guestVm}/24`);
    await addRoute(this.guest, { to: 'default', via: guestGw });
    await this.push();
  }

  state(): DesiredState {
    return this.lab.state(this.gen, [this.lab.host(11, MAC, 'vm1')], {
      public: {
        nics: [{ interface: 'eth2', vlan: 'untagged', gateway: upstream, prefix: 24, addresses: [publicIp] }],
        sourceNatIp: publicIp,
        staticNats: [],
        egressDefaultAllow: true,
      },
      ...(this.rules.length ? { rules: [...this.rules].sort((a, b) => (a.id < b.id ? -1 : 1)) } : {}),
    });
  }

  async push(): Promise<number> {
    const t = performance.now();
    const r = await this.vr.push(this.state(), { timeoutMs: 120_000 });
    if (!r.ok) throw new Error(`push: ${JSON.stringify(r).slice(0, 2000)}\n${this.vr.log()}`);
    return performance.now() - t;
  }

  /** `n` port forwards (tcp, distinct public ports) plus one firewall rule opening UDP to the public IP. */
  async fill(n: number): Promise<number> {
    this.gen++;
    this.rules = [
      {
        kind: 'firewall',
        id: 'fw-udp-all',
        protocol: 'udp',
        publicIp,
        ports: { start: 1, end: 65535 },
        sourceCidrs: ['0.0.0.0/0'],
      },
      ...Array.from({ length: n }, (_, i) => pf(`pf-fill-${String(i).padStart(6, '0')}`, 'tcp', 20000 + i)),
    ];
    return this.push();
  }

  /**
   * Until the agent has applied everything: its answer comes once guests are served from the new state, before
   * the firewall and NAT appliers have finished, and a delta arriving meanwhile waits for them.
   */
  async idle(): Promise<void> {
    await eventually(
      async () => {
        const s = await this.vr.status();
        if (s.conditions.find((c) => c.type === 'Progressing')?.status !== false) throw new Error('busy');
      },
      { timeoutMs: 60_000, intervalMs: 5, what: 'agent idle' },
    );
  }

  /** Upserts one rule by delta; resolves with the control API's round trip (ms). */
  async add(rule: RuleSpec): Promise<number> {
    const t = performance.now();
    const r = await this.vr.patch(
      { baseGeneration: this.gen, generation: this.gen + 1, rules: { upsert: [rule] } },
      { timeoutMs: 60_000 },
    );
    if (!r.ok) throw new Error(`delta: ${JSON.stringify(r).slice(0, 2000)}`);
    this.gen++;
    this.rules.push(rule);
    return performance.now() - t;
  }
}

function pf(id: string, protocol: 'tcp' | 'udp', port: number): PortForwardRuleSpec {
  return {
    kind: 'portForward',
    id,
    protocol,
    publicIp,
    publicPorts: { start: port, end: port },
    guestIp: guestVm,
    privatePorts: { start: port, end: port },
    sourceCidrs: ['0.0.0.0/0'],
  };
}

/** The same hops without the agent or any nftables: a guest, a forwarding namespace, an upstream host. */
async function routedPath(net: TestNet): Promise<{ client: string; server: string }> {
  const gbr = await net.bridge('rg');
  const pbr = await net.bridge('rp');
  const r = await net.namespace('rr');
  const g = await net.namespace('rgst');
  const w = await net.namespace('rwan');
  await net.veth({ ns: r, ifname: 'eth0', bridge: gbr, addresses: [`${guestGw}/24`] });
  await net.veth({ ns: r, ifname: 'eth2', bridge: pbr, addresses: [`${publicIp}/24`] });
  await sysctlIn(r, 'net.ipv4.ip_forward', '1');
  await net.veth({ ns: g, ifname: 'eth0', bridge: gbr, addresses: [`${guestVm}/24`] });
  await addRoute(g, { to: 'default', via: guestGw });
  await net.veth({ ns: w, ifname: 'eth0', bridge: pbr, addresses: [`${upstream}/24`] });
  await addRoute(w, { to: guestCidr, via: publicIp });
  return { client: g, server: w };
}

async function vethPath(net: TestNet): Promise<{ client: string; server: string }> {
  const a = await net.namespace('va');
  const b = await net.namespace('vb');
  const v = await net.veth({ ns: a, ifname: 'eth0', outerNs: b, addresses: [`${guestVm}/24`] });
  await addAddress(b, v.outerName, '10.64.0.1/24');
  await setLinkUp(b, v.outerName);
  return { client: a, server: b };
}

interface Iperf {
  gbps: number;
  retransmits: number;
  cpuSenderPct: number;
}

async function iperf(client: string, server: string, seconds: number): Promise<Iperf> {
  const r = await execIn(client, ['iperf3', '-c', server, '-t', String(seconds), '-J'], {
    timeoutMs: (seconds + 20) * 1000,
  });
  const j = JSON.parse(r.stdout) as {
    error?: string;
    end: {
      sum_received: { bits_per_second: number };
      sum_sent: { retransmits: number };
      cpu_utilization_percent: { host_total: number };
    };
  };
  if (j.error) throw new Error(`iperf3: ${j.error}`);
  return {
    gbps: round(j.end.sum_received.bits_per_second / 1e9, 3),
    retransmits: j.end.sum_sent.retransmits,
    cpuSenderPct: round(j.end.cpu_utilization_percent.host_total),
  };
}

async function throughput(lab: VrLab, nat: NatRouter, flags: Flags): Promise<void> {
  // The NAT path's upstream has no route back to the guest network: a connection that completes was source-NATed.
  const paths: Record<string, { client: string; server: string; target: string }> = {
    snat: { client: nat.guest, server: nat.wan, target: upstream },
    routed: { ...(await routedPath(lab.net)), target: upstream },
  };
  const v = await vethPath(lab.net);
  paths.veth = { ...v, target: '10.64.0.1' };
  const servers: SpawnedProcess[] = [];
  for (const p of Object.values(paths)) {
    servers.push(lab.net.spawnIn(p.server, ['iperf3', '-s', '-B', p.target]));
    await eventually(
      async () => {
        const r = await execIn(p.server, ['ss', '-ltn', `sport = :5201`]);
        if (!r.stdout.includes('5201')) throw new Error('iperf3 server not listening');
      },
      { timeoutMs: 5000, what: 'iperf3 server' },
    );
  }
  const got: Record<string, number[]> = {};
  for (let rep = 0; rep < flags.reps; rep++) {
    for (const [name, p] of Object.entries(paths)) {
      const r = await iperf(p.client, p.target, flags.seconds);
      (got[name] ??= []).push(r.gbps);
      log(`throughput ${name} rep ${rep + 1}: ${r.gbps} Gbit/s, ${r.retransmits} retransmits`);
      emit({ scenario: 'throughput', path: name, rep, seconds: flags.seconds, ...r, loadavg: load() });
    }
  }
  const med = Object.fromEntries(Object.entries(got).map(([k, xs]) => [k, quantile(xs, 0.5)]));
  emit({
    scenario: 'throughput-summary',
    median_gbps: med,
    // the target: NAT at most 10% below the plain path
    snat_vs_routed_pct: round((100 * (med.snat! - med.routed!)) / med.routed!),
    snat_vs_veth_pct: round((100 * (med.snat! - med.veth!)) / med.veth!),
  });
  for (const s of servers) await s.stop();
}

/** A line-protocol child (nat-probe.ts) in a namespace. */
class Probe {
  private readonly waiters = new Map<string, (v: string) => void>();
  private buf = '';
  readonly proc: SpawnedProcess;
  constructor(net: TestNet, ns: string, mode: 'listen' | 'send', ip: string) {
    this.proc = net.spawnIn(
      ns,
      [process.execPath, '--import', 'tsx', join(repoRoot, 'bench', 'nat-probe.ts'), mode, ip],
      {
        cwd: repoRoot,
        stdinPipe: true,
        onStdout: (b) => {
          this.buf += b.toString();
          let i;
          while ((i = this.buf.indexOf('\n')) >= 0) {
            const line = this.buf.slice(0, i);
            this.buf = this.buf.slice(i + 1);
            const [word, port, rest] = line.split(' ');
            const key = `${word} ${port}`;
            this.waiters.get(key)?.(rest ?? '');
            this.waiters.delete(key);
          }
        },
      },
    );
  }
  send(line: string): void {
    this.proc.child.stdin!.write(line + '\n');
  }
  wait(word: string, port: number, timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiters.delete(`${word} ${port}`);
        reject(new Error(`no '${word} ${port}' within ${timeoutMs} ms: ${this.proc.output().slice(-500)}`));
      }, timeoutMs);
      this.waiters.set(`${word} ${port}`, (v) => {
        clearTimeout(t);
        resolve(v);
      });
    });
  }
}

async function ruleLatency(lab: VrLab, nat: NatRouter, flags: Flags): Promise<void> {
  const listener = new Probe(lab.net, nat.guest, 'listen', guestVm);
  const sender = new Probe(lab.net, nat.wan, 'send', publicIp);
  let port = 40000;
  try {
    for (const n of flags.rules) {
      const fillMs = await nat.fill(n);
      await nat.idle();
      log(`${n} rules pushed in ${Math.round(fillMs)} ms`);
      emit({ scenario: 'fill', rules: n, full_push_ms: round(fillMs), loadavg: load() });
      const forwarded: number[] = [];
      const acked: number[] = [];
      for (let rep = 0; rep < flags.ruleReps; rep++) {
        await nat.idle();
        const p = port++;
        listener.send(String(p));
        await listener.wait('ready', p, 10_000);
        sender.send(String(p));
        const got = listener.wait('got', p, 10_000);
        const t0 = process.hrtime.bigint();
        acked.push(await nat.add(pf(`pf-probe-${p}`, 'udp', p)));
        const t1 = BigInt(await got);
        sender.send('stop');
        forwarded.push(Number(t1 - t0) / 1e6);
      }
      const s = (xs: number[]) => ({
        p50_ms: round(quantile(xs, 0.5)),
        p99_ms: round(quantile(xs, 0.99)),
        max_ms: round(Math.max(...xs)),
      });
      log(`${n} rules: forwarded p50 ${s(forwarded).p50_ms} p99 ${s(forwarded).p99_ms} ms`);
      emit({
        scenario: 'rule',
        rules: n,
        reps: flags.ruleReps,
        forwarded: { ...s(forwarded), samples_ms: forwarded.map((x) => round(x)) },
        api_acked: s(acked),
        loadavg: load(),
      });
    }
  } finally {
    await listener.proc.stop();
    await sender.proc.stop();
  }
}

/**
 * A full push at the largest size: render, `nft --check`, `nft -f` of every table, until the control API answers.
 * The ruleset alone (check, replace, element transactions) is `npm run bench:nft-rules`.
 */
async function nftApply(nat: NatRouter, flags: Flags): Promise<void> {
  const n = Math.max(...flags.rules);
  const xs: number[] = [];
  for (let i = 0; i < 3; i++) {
    await nat.fill(0);
    await nat.idle();
    xs.push(await nat.fill(n));
    await nat.idle();
  }
  emit({ scenario: 'nft', rules: n, full_push_ms: xs.map((x) => round(x)), loadavg: load() });
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2));
  const version = (cmd: string, args: string[]) => {
    try {
      return execFileSync(cmd, args).toString().split('\n')[0]!.trim();
    } catch {
      return '';
    }
  };
  emit({
    scenario: 'env',
    cpus: cpus().length,
    cpu: cpus()[0]?.model,
    node: process.version,
    nft: version('nft', ['--version']),
    iperf3: version('iperf3', ['--version']),
    commit: version('git', ['-C', repoRoot, 'rev-parse', '--short', 'HEAD']),
    loadavg: load(),
    at: new Date().toISOString(),
    flags: { ...flags, only: [...flags.only] },
  });
  const lab = new VrLab({ cidr: guestCidr });
  try {
    await lab.setup();
    const nat = new NatRouter(lab);
    await nat.setup();
    if (flags.only.has('throughput')) await throughput(lab, nat, flags);
    if (flags.only.has('rule')) await ruleLatency(lab, nat, flags);
    if (flags.only.has('nft')) await nftApply(nat, flags);
    if (flags.agentLog) log(nat.vr.log());
  } finally {
    await lab.cleanup();
  }
  emit({ scenario: 'end', loadavg: load(), at: new Date().toISOString() });
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exitCode = 1;
});
