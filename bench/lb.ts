/**
 * `npm run bench:lb` — the router's public load balancer (issue 18), through the real agent and haproxy.
 *
 *   latency   HTTP requests at a fixed rate (one connection each) from the "internet" namespace, through the LB
 *             (three guests, roundrobin) and, alternating in the same run, "direct" to one of those guests through
 *             a port forward on the same router (the kernel's DNAT over the same hops): achieved requests/s, p50,
 *             p99, errors.
 *   member    time from pushing a new member (a delta) to the first request it answers, p50/p99; the client sends a
 *             request every millisecond or so and notes when the new guest first answers.
 *   reload    with 1,000 LB rules: the push of a change (render, `haproxy -c`, SIGUSR2, until the agent is idle
 *             again), and requests lost by a client at a steady rate across those reloads.
 *
 * One JSON object per line on stdout; progress on stderr. Root; haproxy, busybox, nftables; `npm run build` first.
 *   npm run bench:lb -- [--rate 1000] [--seconds 5] [--reps 3] [--member-reps 20] [--rules 1000] [--only latency,member,reload]
 */
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import type { DesiredState, RuleSpec } from '../src/agent/desired-state.js';
import { lbRule, tcpFirewall } from '../src/agent/testing/nat-fixtures.js';
import { eventually, execIn } from '../src/netns/index.js';
import { VrLab, type PublicNetwork, type RouterUnderTest } from '../test/agent/vr-lab.js';
import { benchOutput, parseArgs, quantile } from './common.js';

const { log, emit } = benchOutput('lb');
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

const f = {
  rate: 1000,
  seconds: 5,
  reps: 3,
  memberReps: 20,
  rules: 1000,
  only: new Set(['latency', 'member', 'reload']),
};
parseArgs(
  process.argv.slice(2),
  'npm run bench:lb -- [--rate 1000] [--seconds 5] [--reps 3] [--member-reps 20] [--rules 1000] [--only latency,member,reload]',
  (a, v) => {
    if (a === '--rate') f.rate = Number(v());
    else if (a === '--seconds') f.seconds = Number(v());
    else if (a === '--reps') f.reps = Number(v());
    else if (a === '--member-reps') f.memberReps = Number(v());
    else if (a === '--rules') f.rules = Number(v());
    else if (a === '--only') f.only = new Set(v().split(','));
    else return false;
    return true;
  },
);

const SNAT = '203.0.113.10';
const LB = '203.0.113.12';
const names = ['g1', 'g2', 'g3', 'g4'];

/**
 * The client, run by node inside the internet namespace. `rate <url> <rps> <seconds>`: requests at a fixed rate
 * (open loop), one connection each; prints {sent, ok, errors, p50, p99} (ms). `until <url> <body>`: a request
 * after another until one answers `body`; prints "ready" after the first answer, then the wall-clock ms of the
 * matching one.
 */
const clientJs = `
const http = require('node:http');
const [mode, url, a, b] = process.argv.slice(2);
const get = () => new Promise((ok) => {
  const t = performance.now();
  const req = http.get(url, { agent: false, headers: { connection: 'close' }, timeout: 2000 }, (res) => {
    let body = '';
    res.on('data', (d) => (body += d));
    res.on('end', () => ok({ ms: performance.now() - t, body: body.trim(), ok: res.statusCode === 200 }));
  });
  req.on('timeout', () => req.destroy());
  req.on('error', () => ok({ ms: performance.now() - t, body: '', ok: false }));
});
if (mode === 'rate') {
  const rps = Number(a), seconds = Number(b), lat = [];
  let sent = 0, errors = 0, pending = 0;
  const t0 = performance.now();
  const timer = setInterval(() => {
    const due = Math.floor(((performance.now() - t0) / 1000) * rps);
    while (sent < due && sent < rps * seconds) {
      sent++; pending++;
      get().then((r) => { pending--; if (r.ok) lat.push(r.ms); else errors++; });
    }
    if (sent >= rps * seconds && pending === 0) {
      clearInterval(timer);
      lat.sort((x, y) => x - y);
      const q = (p) => lat[Math.min(lat.length - 1, Math.ceil(p * lat.length) - 1)];
      const elapsed = (performance.now() - t0) / 1000;
      console.log(JSON.stringify({ sent, ok: lat.length, errors, rps: lat.length / elapsed, p50: q(0.5), p99: q(0.99) }));
    }
  }, 1);
} else {
  (async () => {
    await get();
    console.log('ready');
    for (;;) {
      const r = await get();
      if (r.body === a) { console.log(String(Date.now())); return; }
    }
  })();
}
`;

async function main(): Promise<void> {
  const lab = new VrLab({ cidr: '10.65.0.0/24' });
  try {
    await lab.setup();
    const pub: PublicNetwork = await lab.publicNetwork();
    const vr: RouterUnderTest = await lab.router('vr');
    await lab.plugPublic(vr, pub);
    const dir = await lab.net.tempDir('lb-bench');
    const client = join(dir, 'client.cjs');
    writeFileSync(client, clientJs);
    const ip = (i: number) => lab.ip(11 + i);
    for (const [i, name] of names.entries()) await lab.webGuest(name, `02:ae:00:00:00:0${i + 1}`, 11 + i);
    let generation = 0;
    let rules: RuleSpec[] = [];
    const state = (): DesiredState =>
      lab.state(
        generation,
        names.map((n, i) => lab.host(11 + i, `02:ae:00:00:00:0${i + 1}`, n)),
        {
          public: lab.publicSide(pub, [SNAT, LB]),
          rules: [...rules].sort((a, b) => (a.id < b.id ? -1 : 1)),
        },
      );
    /** Pushes the state; resolves once every applier (haproxy among the last) is done, with the time (ms). */
    const push = async (): Promise<number> => {
      generation++;
      const t = performance.now();
      const r = await vr.push(state(), { timeoutMs: 120_000 });
      if (!r.ok) throw new Error(`push: ${JSON.stringify(r).slice(0, 1500)}`);
      // The answer comes once guests are served; haproxy applies after that.
      await eventually(
        async () => {
          const s = await vr.status();
          if (s.conditions.find((c) => c.type === 'Progressing')?.status !== false) throw new Error('busy');
        },
        { timeoutMs: 60_000, intervalMs: 2, what: 'agent idle' },
      );
      return performance.now() - t;
    };
    const run = async (args: string[]) => {
      const r = await execIn(pub.ns, [process.execPath, client, ...args], { timeoutMs: 120_000 });
      if (r.code !== 0) throw new Error(`client: ${r.stderr}`);
      return r.stdout;
    };
    const base: RuleSpec[] = [
      lbRule('lb-web', LB, 80, 8080, [ip(0), ip(1), ip(2)]),
      tcpFirewall('fw-web', LB, 80, ['0.0.0.0/0']),
      {
        kind: 'portForward',
        id: 'pf-direct',
        protocol: 'tcp',
        publicIp: LB,
        publicPorts: { start: 81, end: 81 },
        guestIp: ip(0),
        privatePorts: { start: 8080, end: 8080 },
        sourceCidrs: ['0.0.0.0/0'],
      },
      tcpFirewall('fw-direct', LB, 81, ['0.0.0.0/0']),
    ];
    rules = base;
    await push();
    await eventually(
      async () => {
        const up = Object.values((await vr.status()).lb?.['lb-web'] ?? {}).filter((s) => s === 'UP');
        if (up.length !== 3) throw new Error('members not up');
      },
      { timeoutMs: 15_000, what: 'LB members UP' },
    );
    const context = { cpus: cpus().length, load: loadavg().map((x) => round(x)) };

    if (f.only.has('latency')) {
      for (let rep = 1; rep <= f.reps; rep++)
        for (const [path, port] of [
          ['lb', 80],
          ['direct', 81],
        ] as const) {
          log(`latency ${path} rep ${rep}`);
          const r = JSON.parse(
            await run(['rate', `http://${LB}:${port}/`, String(f.rate), String(f.seconds)]),
          );
          emit({
            scenario: 'latency',
            path,
            rep,
            rate: f.rate,
            ...r,
            rps: round(r.rps, 0),
            p50: round(r.p50),
            p99: round(r.p99),
            ...context,
          });
        }
    }

    if (f.only.has('member')) {
      const times: number[] = [];
      for (let rep = 1; rep <= f.memberReps; rep++) {
        // g4 joins lb-web by a delta; the client notes when it first answers.
        const waiter = lab.net.spawnIn(pub.ns, [process.execPath, client, 'until', `http://${LB}:80/`, 'g4']);
        await eventually(
          async () => {
            if (!waiter.output().includes('ready')) throw new Error('client not ready');
          },
          { timeoutMs: 10_000, intervalMs: 5, what: 'client ready' },
        );
        const withG4 = lbRule('lb-web', LB, 80, 8080, [ip(0), ip(1), ip(2), ip(3)]);
        const t0 = Date.now();
        const r = await vr.patch({
          baseGeneration: generation,
          generation: ++generation,
          rules: { upsert: [withG4] },
        });
        if (!r.ok) throw new Error(`delta: ${JSON.stringify(r).slice(0, 1500)}`);
        await waiter.exited;
        const seen = Number(/(\d{13})/.exec(waiter.output())?.[1]);
        times.push(seen - t0);
        rules = base;
        await push();
      }
      emit({
        scenario: 'member',
        reps: times.length,
        p50: quantile(times, 0.5),
        p99: quantile(times, 0.99),
        max: Math.max(...times),
        ...context,
      });
    }

    if (f.only.has('reload')) {
      log(`reload: ${f.rules} LB rules`);
      const many = Array.from({ length: f.rules - 1 }, (_, i) =>
        lbRule(`lb-${String(i).padStart(5, '0')}`, LB, 20000 + i, 8080, [ip(0), ip(1), ip(2)]),
      );
      rules = [...base, ...many];
      const first = await push();
      const pushes: number[] = [];
      const rate = Math.min(f.rate, 200);
      const stream = run(['rate', `http://${LB}:80/`, String(rate), String(f.seconds * 2)]);
      for (let i = 0; i < 5; i++) {
        // One rule's members change: every push is a reload of the whole configuration.
        rules = [...base, ...many.slice(1), lbRule('lb-00000', LB, 20000, 8080, [ip(i % 3)])];
        pushes.push(await push());
        await new Promise((r) => setTimeout(r, (f.seconds * 1000) / 5));
      }
      const s = JSON.parse(await stream);
      // What haproxy really holds: one listener per rule (a refused configuration would leave the old one).
      const ss = await execIn(vr.ns, ['ss', '-Hltn', 'sport', '>=', ':20000']);
      const degraded = (await vr.status()).conditions.find((c) => c.type === 'Degraded');
      emit({
        scenario: 'reload',
        rules: f.rules,
        firstPushMs: round(first, 0),
        reloadPushP50: round(quantile(pushes, 0.5), 0),
        reloadPushMax: round(Math.max(...pushes), 0),
        streamRate: rate,
        sent: s.sent,
        lost: s.sent - s.ok,
        listeners: ss.stdout.split('\n').filter((l) => l.trim()).length,
        degraded: degraded?.status ? degraded.reason : null,
        ...context,
      });
    }
  } finally {
    await lab.cleanup();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
