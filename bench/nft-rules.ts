/**
 * `npm run bench:nft-rules` — what loading the public side's ruleset (appliers/netfilter) costs at scale: a router
 * with N port forwards and N firewall rules (N/100 public IPs, 100 of each per IP, sources from a few CIDRs), in a
 * scratch namespace. Measures, `--reps` times each: `nft --check` and `nft -f` of the full ruleset (what a full
 * push or a change of the tables' shape costs), the same replace with one rule more, and what the applier does
 * for a change of rules only: the element transaction between the two renders (`delta`: one forward and its
 * firewall rule added, then removed), and the short path of a delta adding rules (`ahead`: the new rules'
 * elements only).
 *
 *   npm run bench:nft-rules -- --n 1000,10000 --reps 10 [--agent]
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { elementChanges, parseRuleset } from '../src/agent/appliers/netfilter/netfilter-applier.js';
import { renderNetfilter, ruleElements } from '../src/agent/appliers/netfilter/render.js';
import type { RuleSpec } from '../src/agent/desired-state.js';
import { publicState } from '../src/agent/testing/nat-fixtures.js';
import { TestNet, execIn } from '../src/netns/index.js';

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : dflt;
};
const ns_ = arg('n', '1000,10000').split(',').map(Number);
const reps = Number(arg('reps', '10'));

function stateWith(n: number, extra = 0) {
  const s = publicState();
  const ips = Array.from(
    { length: Math.ceil((n + extra) / 100) },
    (_, i) => `100.${64 + (i >> 8)}.${i & 255}.1`,
  );
  const rules: RuleSpec[] = [];
  for (let i = 0; i < n + extra; i++) {
    const ip = ips[Math.floor(i / 100)]!;
    const port = 1000 + (i % 100) * 10;
    rules.push(
      {
        kind: 'portForward',
        id: `pf-${i}`,
        protocol: i % 2 ? 'udp' : 'tcp',
        publicIp: ip,
        publicPorts: { start: port, end: port + 4 },
        guestIp: `10.1.${(i >> 8) & 255}.${i & 255 || 1}`,
        privatePorts: { start: 8000, end: 8000 },
        sourceCidrs: ['0.0.0.0/0'],
      },
      {
        kind: 'firewall',
        id: `fw-${i}`,
        protocol: i % 2 ? 'udp' : 'tcp',
        publicIp: ip,
        ports: { start: port, end: port + 4 },
        sourceCidrs: [`198.${18 + (i % 2)}.${i % 256}.0/24`],
      },
    );
  }
  const nic = s.public!.nics[0]!;
  return {
    ...s,
    public: { ...s.public!, nics: [{ ...nic, addresses: [...nic.addresses, ...ips] }] },
    rules: [...s.rules!, ...rules],
  };
}

const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

async function main() {
  const net = new TestNet();
  try {
    const ns = await net.namespace('nftb');
    const dir = await net.tempDir('nftb');
    for (const n of ns_) {
      const t0 = performance.now();
      const full = renderNetfilter(stateWith(n), { guestInterface: 'eth0' });
      const renderMs = performance.now() - t0;
      const plusOne = renderNetfilter(stateWith(n, 1), { guestInterface: 'eth0' });
      const timed = async (text: string, check: boolean) => {
        const f = join(dir, 'r.nft');
        writeFileSync(f, text);
        const t = performance.now();
        const r = await execIn(ns, ['nft', ...(check ? ['--check'] : []), '-f', f]);
        if (r.code !== 0) throw new Error(r.stderr);
        return performance.now() - t;
      };
      await timed(full, false);
      const plus = stateWith(n, 1);
      const a = parseRuleset(full).sets;
      const b = parseRuleset(plusOne).sets;
      const add = elementChanges(a, b);
      const remove = elementChanges(b, a);
      const added = plus.rules.slice(-2);
      const ahead = added
        .flatMap((r) => ruleElements(plus, r)!)
        .map((e) => `add element ${e.table} ${e.set} { ${e.text} }\n`)
        .join('');
      const deltaAdd: number[] = [];
      const deltaRemove: number[] = [];
      const aheadAdd: number[] = [];
      for (let i = 0; i < reps; i++) {
        deltaAdd.push(await timed(add, false));
        deltaRemove.push(await timed(remove, false));
        aheadAdd.push(await timed(ahead, false));
        await timed(remove, false);
      }
      const check: number[] = [];
      const apply: number[] = [];
      const one: number[] = [];
      for (let i = 0; i < reps; i++) {
        check.push(await timed(full, true));
        apply.push(await timed(full, false));
        one.push(await timed(plusOne, false));
        await timed(full, false);
      }
      const line = {
        n,
        bytes: full.length,
        renderMs: Math.round(renderMs),
        checkMs: { p50: Math.round(pct(check, 50)), max: Math.round(Math.max(...check)) },
        applyMs: { p50: Math.round(pct(apply, 50)), max: Math.round(Math.max(...apply)) },
        oneMoreRuleMs: { p50: Math.round(pct(one, 50)), max: Math.round(Math.max(...one)) },
        deltaAddMs: { p50: Math.round(pct(deltaAdd, 50)), max: Math.round(Math.max(...deltaAdd)) },
        deltaRemoveMs: { p50: Math.round(pct(deltaRemove, 50)), max: Math.round(Math.max(...deltaRemove)) },
        aheadAddMs: { p50: Math.round(pct(aheadAdd, 50)), max: Math.round(Math.max(...aheadAdd)) },
      };
      console.log(JSON.stringify(line));
    }
  } finally {
    await net.cleanup();
  }
}

if (!process.argv.includes('--agent')) await main();

/**
 * `--agent`: the same through a real router agent (vr-lab): a full push of N forwards + N firewall rules, then
 * `--reps` deltas each adding one forward and its firewall rule. `inForceMs` is the time from sending the delta
 * until the kernel has committed them (`nft monitor` in the router's namespace); `appliedMs` until the agent
 * answers that the generation is applied (the whole O(N) path).
 */
async function agentScenario(n: number): Promise<void> {
  const { VrLab } = await import('../test/agent/vr-lab.js');
  const lab = new VrLab({ cidr: '10.1.0.0/16' });
  try {
    await lab.setup();
    const pub = await lab.publicNetwork();
    const vr = await lab.router('vr');
    await lab.plugPublic(vr, pub);
    const base = stateWith(n);
    const nic = base.public!.nics[0]!;
    let gen = 1;
    const t0 = performance.now();
    const full = await vr.push(
      lab.state(gen, [], {
        network: { ...lab.state(1, []).network },
        public: { ...base.public!, nics: [{ ...nic, gateway: pub.gateway }] },
        rules: base.rules.sort((a, b) => (a.id < b.id ? -1 : 1)),
      }),
      { timeoutMs: 120_000 },
    );
    if (!full.ok) throw new Error(JSON.stringify(full));
    const fullMs = performance.now() - t0;
    const sent: number[] = [];
    // When the kernel commits each new firewall element: `nft monitor` in the router's namespace, stamped on arrival.
    const committed: number[] = [];
    const monitor = spawn('ip', ['netns', 'exec', vr.ns, 'nft', 'monitor', 'new', 'elements']);
    monitor.stdout.setEncoding('utf8');
    let partial = '';
    monitor.stdout.on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop()!;
      for (const l of lines) if (/ingress_l4/.test(l)) committed.push(Date.now());
    });
    await new Promise((r) => setTimeout(r, 300));
    const applied: number[] = [];
    for (let i = 0; i < reps; i++) {
      const port = 60000 + i;
      const ip = base.public!.nics[0]!.addresses[3]!;
      const upsert: RuleSpec[] = [
        {
          kind: 'portForward',
          id: `zz-pf-${i}`,
          protocol: 'tcp',
          publicIp: ip,
          publicPorts: { start: port, end: port },
          guestIp: '10.1.0.50',
          privatePorts: { start: 80, end: 80 },
          sourceCidrs: ['0.0.0.0/0'],
        },
        {
          kind: 'firewall',
          id: `zz-fw-${i}`,
          protocol: 'tcp',
          publicIp: ip,
          ports: { start: port, end: port },
          sourceCidrs: ['0.0.0.0/0'],
        },
      ];
      // Deltas spaced as a user's clicks are: the short path runs while nothing else is being applied.
      await new Promise((r) => setTimeout(r, 200));
      const t = performance.now();
      sent.push(Date.now());
      const p = vr.patch(
        { baseGeneration: gen, generation: gen + 1, rules: { upsert } },
        { timeoutMs: 60_000 },
      );
      gen += 1;
      const r = await p;
      if (!r.ok) throw new Error(JSON.stringify(r));
      applied.push(performance.now() - t);
    }
    const s = (xs: number[]) => ({
      p50: Math.round(pct(xs, 50)),
      p99: Math.round(pct(xs, 99)),
      max: Math.round(Math.max(...xs)),
    });
    // The agent logs when the short path's transaction is done (STACKNET_DEBUG_AHEAD, set below).
    const done = [...vr.agent.output().matchAll(/^(\S+) netfilter ahead: 0 in/gm)].map((m) =>
      Date.parse(m[1]!),
    );
    if (done.length !== sent.length)
      throw new Error(`short path taken ${done.length} of ${sent.length} times`);
    const inForce = done.map((d, i) => d - sent[i]!);
    console.log(
      JSON.stringify({
        agent: true,
        n,
        fullPushMs: Math.round(fullMs),
        inForceMs: s(inForce),
        appliedMs: s(applied),
      }),
    );
  } finally {
    await lab.cleanup();
  }
}

process.env.STACKNET_DEBUG_AHEAD = '1';
if (process.argv.includes('--agent')) for (const n of ns_) await agentScenario(n);
