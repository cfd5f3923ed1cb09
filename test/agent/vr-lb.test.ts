// Issue 18, the public load balancer with real packets: three guests each run a busybox httpd answering its own
// name (and /health), the "internet" namespace of a public network is the client (curl), and the real agent runs
// haproxy on the router. Spreads are counted, never timed.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { eventually, execIn, type SpawnedProcess } from '../../src/netns/index.js';
import type { DesiredState, RuleSpec } from '../../src/agent/desired-state.js';
import { lbRule, tcpFirewall } from '../../src/agent/testing/nat-fixtures.js';
import { VrLab, condition, type PublicNetwork, type RouterUnderTest } from './vr-lab.js';

const SNAT = '203.0.113.10';
const LB = '203.0.113.12';
const names = ['g1', 'g2', 'g3'];

describe('router agent: public load balancer (haproxy)', () => {
  const lab = new VrLab({ cidr: '10.63.0.0/24' });
  let vr: RouterUnderTest;
  let pub: PublicNetwork;
  const servers: (SpawnedProcess | null)[] = [];
  let webRoot = '';
  let generation = 0;
  let state: DesiredState;
  const members = () => names.map((_, i) => lab.ip(11 + i));

  const serves: (() => SpawnedProcess)[] = [];
  // busybox httpd closes each connection after its answer: one request, one connection, one balancing choice.
  const serve = (i: number) => {
    servers[i] = serves[i]!();
  };

  /** `n` requests, one connection each, from the internet namespace; the names that answered ('' = failed). */
  const get = async (n: number, port: number, extra: string[] = []): Promise<string[]> => {
    const url = `http://${LB}:${port}/`;
    const r = await execIn(
      pub.ns,
      [
        'sh',
        '-c',
        `for i in $(seq ${n}); do curl -s -m 2 -H 'Connection: close' ${extra.join(' ')} ${url} || echo; done`,
      ],
      { timeoutMs: 5000 + n * 2500 },
    );
    return r.stdout.split('\n').slice(0, n);
  };
  const count = (answers: string[]) => {
    const c: Record<string, number> = {};
    for (const a of answers) c[a] = (c[a] ?? 0) + 1;
    return c;
  };

  const push = async (rules: RuleSpec[]) => {
    state = lab.state(++generation, state.hosts, {
      public: state.public!,
      rules: [...rules].sort((a, b) => (a.id < b.id ? -1 : 1)),
    });
    const r = await vr.push(state);
    assert.ok(r.ok, `push failed: ${JSON.stringify(r)}\n${vr.log()}`);
  };
  /** The haproxy master's workers (children of the pid in its pid file): a reload replaces them. */
  const workers = (): string[] => {
    const master = readFileSync(join(vr.dataDir, 'haproxy.pid'), 'utf8').trim();
    const children = `/proc/${master}/task/${master}/children`;
    return readFileSync(children, 'utf8').trim().split(/\s+/).filter(Boolean);
  };
  const health = async (id: string) => (await vr.status()).lb?.[id] ?? {};
  const allUp = (id: string, ips = members()) =>
    eventually(
      async () => {
        const h = await health(id);
        for (const ip of ips) assert.equal(h[ip], 'UP', `${ip} in ${JSON.stringify(h)}`);
      },
      { timeoutMs: 10_000, what: `members of ${id} UP` },
    );

  before(async () => {
    await lab.setup();
    pub = await lab.publicNetwork();
    vr = await lab.router('vr');
    await lab.plugPublic(vr, pub);
    webRoot = await lab.net.tempDir('www');
    for (const [i, name] of names.entries()) {
      const g = await lab.webGuest(name, `02:ad:00:00:00:0${i + 1}`, 11 + i);
      serves.push(g.serve);
      servers.push(g.server);
    }
    state = lab.state(
      generation,
      names.map((n, i) => lab.host(11 + i, `02:ad:00:00:00:0${i + 1}`, n)),
      { public: lab.publicSide(pub, [SNAT, LB]) },
    );
    await push([]);
  });

  after(async () => {
    await lab.cleanup();
  });

  it('without a firewall rule the LB port is dropped (counted); with one, roundrobin spreads evenly', async () => {
    const rr = lbRule('lb-rr', LB, 80, 8080, members());
    await push([rr]);
    await allUp('lb-rr');
    const drops = async () => {
      const r = await execIn(vr.ns, ['nft', 'list', 'chain', 'inet', 'stacknet_public', 'input']);
      return Number(/counter packets (\d+) bytes \d+ drop comment "public-input"/.exec(r.stdout)?.[1]);
    };
    const before = await drops();
    assert.deepEqual(await get(1, 80), [''], 'no firewall rule: nothing answers');
    assert.ok((await drops()) > before, 'the drop is counted');
    await push([rr, tcpFirewall('fw-80', LB, 80, ['0.0.0.0/0'])]);
    const c = count(await get(30, 80));
    assert.deepEqual(c, { g1: 10, g2: 10, g3: 10 }, JSON.stringify(c));
  });

  it('source keeps one client on one guest', async () => {
    await push([
      lbRule('lb-src', LB, 80, 8080, members(), { algorithm: 'source' }),
      tcpFirewall('fw-80', LB, 80, ['0.0.0.0/0']),
    ]);
    await allUp('lb-src');
    const c = count(await get(12, 80));
    assert.equal(Object.keys(c).length, 1, JSON.stringify(c));
    assert.ok(names.includes(Object.keys(c)[0]!), JSON.stringify(c));
  });

  it('an LbCookie policy keeps a cookie-carrying client on one guest; without the cookie it spreads', async () => {
    await push([
      lbRule('lb-ck', LB, 80, 8080, members(), {
        stickiness: { method: 'LbCookie', params: { 'cookie-name': 'SRV', nocache: 'true' } },
      }),
      tcpFirewall('fw-80', LB, 80, ['0.0.0.0/0']),
    ]);
    await allUp('lb-ck');
    const jar = join(webRoot, 'cookies.txt');
    const sticky = count(await get(9, 80, ['-b', jar, '-c', jar]));
    assert.equal(Object.keys(sticky).length, 1, JSON.stringify(sticky));
    assert.deepEqual(count(await get(9, 80)), { g1: 3, g2: 3, g3: 3 });
  });

  it('a health check takes a stopped backend out within its thresholds, and back in when it returns', async () => {
    await push([
      lbRule('lb-hc', LB, 80, 8080, members(), {
        healthCheck: {
          pingPath: '/health',
          intervalSeconds: 1,
          timeoutSeconds: 1,
          healthyThreshold: 2,
          unhealthyThreshold: 2,
        },
      }),
      tcpFirewall('fw-80', LB, 80, ['0.0.0.0/0']),
    ]);
    await allUp('lb-hc');
    await servers[1]!.stop();
    // fall 2 × inter 1 s (+ the poll): DOWN well within 5 s.
    await eventually(async () => assert.equal((await health('lb-hc'))[lab.ip(12)], 'DOWN'), {
      timeoutMs: 5000,
      what: 'g2 DOWN',
    });
    assert.deepEqual(count(await get(10, 80)), { g1: 5, g3: 5 }, 'no request to the stopped guest');
    serve(1);
    await eventually(async () => assert.equal((await health('lb-hc'))[lab.ip(12)], 'UP'), {
      timeoutMs: 5000,
      what: 'g2 UP again',
    });
    assert.deepEqual(count(await get(9, 80)), { g1: 3, g2: 3, g3: 3 });
  });

  it('a member added by a delta takes its share of the traffic (runtime API, then the reload)', async () => {
    await push([
      lbRule('lb-rr', LB, 80, 8080, members().slice(0, 2)),
      tcpFirewall('fw-80', LB, 80, ['0.0.0.0/0']),
    ]);
    await allUp('lb-rr', members().slice(0, 2));
    assert.deepEqual(count(await get(4, 80)), { g1: 2, g2: 2 });
    const before = workers();
    const r = await vr.patch({
      baseGeneration: generation,
      generation: ++generation,
      rules: { upsert: [lbRule('lb-rr', LB, 80, 8080, members())] },
    });
    assert.ok(r.ok, JSON.stringify(r));
    await allUp('lb-rr');
    // The runtime API served g3 at once; the full apply's reload follows and starts a new worker whose
    // roundrobin starts again from the first server. Counted once that worker alone serves.
    await eventually(
      async () => {
        const now = workers();
        assert.equal(now.length, 1, `workers ${now.join(',')}`);
        assert.ok(!before.includes(now[0]!), `worker ${now[0]} is the one from before the reload`);
      },
      { timeoutMs: 10_000, what: 'the reloaded worker alone' },
    );
    assert.deepEqual(count(await get(9, 80)), { g1: 3, g2: 3, g3: 3 });
    assert.match(readFileSync(join(vr.dataDir, 'haproxy.cfg'), 'utf8'), new RegExp(`server ${lab.ip(13)} `));
  });

  it('reloads under a steady request stream lose no request (counted)', async () => {
    const rules = (extra: number) => [
      lbRule('lb-rr', LB, 80, 8080, members()),
      tcpFirewall('fw-80', LB, 80, ['0.0.0.0/0']),
      // A second rule changed on each push: every push is a reload of haproxy.
      lbRule('lb-other', LB, 81, 8080, members().slice(0, 1 + (extra % 3))),
    ];
    await push(rules(0));
    await allUp('lb-rr');
    const master = readFileSync(join(vr.dataDir, 'haproxy.pid'), 'utf8');
    const n = 400;
    const stream = lab.net.spawnIn(pub.ns, [
      'sh',
      '-c',
      `ok=0; for i in $(seq ${n}); do curl -s -m 2 -H 'Connection: close' http://${LB}:80/ >/dev/null && ok=$((ok+1)); done; echo ok=$ok`,
    ]);
    for (let i = 1; i <= 8; i++) await push(rules(i));
    await stream.exited;
    assert.match(stream.output(), new RegExp(`ok=${n}\\b`), stream.output());
    // Reloaded (SIGUSR2 to the same master), not restarted.
    assert.equal(readFileSync(join(vr.dataDir, 'haproxy.pid'), 'utf8'), master);
    assert.equal(condition(await vr.status(), 'Degraded').status, false);
  });

  it('the agent killed and started again adopts the running haproxy, which served meanwhile', async () => {
    const master = readFileSync(join(vr.dataDir, 'haproxy.pid'), 'utf8').trim();
    vr.agent.child.kill('SIGKILL');
    await vr.agent.exited;
    assert.deepEqual(count(await get(3, 80)), { g1: 1, g2: 1, g3: 1 }, 'served without the agent');
    await vr.restart();
    await allUp('lb-rr');
    assert.equal(readFileSync(join(vr.dataDir, 'haproxy.pid'), 'utf8').trim(), master, 'not restarted');
    assert.ok(
      readFileSync(`/proc/${master}/cmdline`, 'utf8').includes('haproxy'),
      'the same master still runs',
    );
  });

  it('a configuration haproxy refuses leaves the last good one serving and the router Degraded', async () => {
    const good = [lbRule('lb-rr', LB, 80, 8080, members()), tcpFirewall('fw-80', LB, 80, ['0.0.0.0/0'])];
    await push(good);
    state = lab.state(++generation, state.hosts, {
      public: state.public!,
      rules: [
        ...good,
        lbRule('lb-bad', LB, 82, 8080, members(), {
          stickiness: { method: 'SourceBased', params: { tablesize: 'lots' } },
        }),
      ].sort((a, b) => (a.id < b.id ? -1 : 1)),
    });
    const r = await vr.push(state);
    assert.equal(r.ok, false, JSON.stringify(r));
    const s = await vr.status();
    assert.equal(condition(s, 'Degraded').reason, 'HaproxyRejected', JSON.stringify(s.conditions));
    assert.equal(count(await get(3, 80))[''], undefined, 'the last good configuration serves');
  });

  it('no LB rule: haproxy stopped', async () => {
    await push([]);
    const s = await vr.status();
    assert.equal(s.lb, undefined);
    // The master's pid (from its pid file): no pgrep, other routers' haproxy may run on this machine.
    const pid = Number(readFileSync(join(vr.dataDir, 'haproxy.pid'), 'utf8'));
    await eventually(async () => assert.throws(() => readFileSync(`/proc/${pid}/cmdline`)), {
      timeoutMs: 5000,
      what: 'haproxy gone',
    });
  });
});
