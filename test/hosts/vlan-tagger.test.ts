/**
 * The host agent's eBPF VLAN tagger (src/hostagent/vlan-tagger.ts) on its own: built by clang once per source
 * (a later process finds the object without clang), a missing clang said in words an operator can act on, and,
 * on a kernel without 802.1Q, a guest VLAN's device made level-based in a namespace (made, then nothing to do;
 * a filter lost, put back) and removed without touching an operator's filter or clsact on the label, the clsact
 * going only with the label's last filter. The frames themselves: test/hosts/host-agent.test.ts. Root.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { exec, run, TestNet } from '../../src/netns/index.js';
import {
  kernelHas8021q,
  parseVlanDevice,
  TAGGER_PREF_BASE,
  taggerObject,
} from '../../src/hostagent/vlan-tagger.js';

const isRoot = process.getuid?.() === 0;
const repo = fileURLToPath(new URL('../..', import.meta.url));
const has8021q = isRoot && (await kernelHas8021q());
const hasClang = (await exec(['clang', '--version']).catch(() => ({ code: 1 }))).code === 0;
const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'vlan-tagger-'));
  dirs.push(d);
  return d;
};
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Runs `code` (an ES module body, `m` the host-links and tagger modules) in a fresh node, in `ns` if given. */
async function child(code: string, ns?: string): Promise<unknown> {
  const body = `const m = { ...(await import(${JSON.stringify(join(repo, 'src/hostagent/host-links.ts'))})), ...(await import(${JSON.stringify(join(repo, 'src/hostagent/vlan-tagger.ts'))})) };
console.log(JSON.stringify((await (async () => { ${code} })()) ?? null));`;
  const argv = ['node', '--import', 'tsx', '--input-type=module', '-e', body];
  const r = await run(ns ? ['ip', 'netns', 'exec', ns, ...argv] : argv, { cwd: repo, timeoutMs: 60_000 });
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

test('VLAN device names', () => {
  assert.deepEqual(parseVlanDevice('eth1.300'), { label: 'eth1', vid: 300 });
  assert.deepEqual(parseVlanDevice('bond0.10.300'), { label: 'bond0.10', vid: 300 });
  assert.equal(parseVlanDevice('vx5000'), null);
  assert.equal(parseVlanDevice('eth1.4095'), null);
  assert.equal(parseVlanDevice('eth1.0'), null);
});

test('a missing clang is an error that says what to install', async () => {
  await assert.rejects(
    taggerObject({ clang: join(tempDir(), 'no-clang'), dir: tempDir() }),
    /this kernel has no 802\.1Q \(CONFIG_VLAN_8021Q\); VLAN networks need clang to build the eBPF VLAN tagger, or the 8021q module/,
  );
});

test(
  'built once per source: a later process finds the object without clang',
  { skip: !hasClang && 'no clang' },
  async () => {
    const dir = tempDir();
    const object = await taggerObject({ dir });
    assert.match(object, /vlan-tagger-[0-9a-f]{16}\.o$/);
    const mtime = statSync(object).mtimeMs;
    assert.equal(
      await child(`return m.taggerObject({ dir: ${JSON.stringify(dir)}, clang: '/nonexistent/clang' })`),
      object,
    );
    assert.equal(statSync(object).mtimeMs, mtime);
    const readelf = await exec(['readelf', '-S', object]).catch(() => null);
    if (readelf?.code === 0)
      for (const sec of ['vlan_tag', 'vlan_untag', 'license'])
        assert.match(readelf.stdout, new RegExp(` ${sec} `));
  },
);

describe('a VLAN device through the tagger, in a namespace', { skip: !isRoot && 'needs root' }, () => {
  const net = new TestNet();
  let ns = '';
  after(() => net.cleanup());
  const spec = (vnet: number) =>
    JSON.stringify({
      id: vnet,
      isolation: 'VLAN',
      vnet,
      trafficLabel: 'eth1',
      bridge: `brvl${vnet}`,
      peers: [],
      mtu: 1400,
    });
  const ensure = (vnet: number) =>
    child(`return m.ensureNetwork(${spec(vnet)}, '192.0.2.1', await m.linkTable())`, ns) as Promise<string[]>;
  const remove = (vnet: number) => child(`return m.removeNetwork('brvl${vnet}', 'eth1.${vnet}')`, ns);
  const filters = async () =>
    (await run(['tc', '-n', ns, 'filter', 'show', 'dev', 'eth1', 'ingress'])).stdout;
  const qdiscs = async () => (await run(['tc', '-n', ns, 'qdisc', 'show', 'dev', 'eth1'])).stdout;
  const links = async () =>
    (await run(['ip', '-n', ns, '-o', 'link', 'show'])).stdout
      .match(/^\d+: [^:@]+/gm)!
      .map((l) => l.replace(/^\d+: /, ''));

  test(
    "made, level-based, and removed leaving the operator's filter",
    {
      skip: (has8021q || !hasClang) && 'this kernel has 802.1Q (the agent makes sub-interfaces), or no clang',
    },
    async () => {
      ns = await net.namespace('vt');
      await net.veth({ ns, ifname: 'eth1' });
      await run(['ip', '-n', ns, 'link', 'set', 'eth1', 'up']);
      // The operator's own clsact and filter on the label.
      await run(['tc', '-n', ns, 'qdisc', 'add', 'dev', 'eth1', 'clsact']);
      await run([
        'tc',
        '-n',
        ns,
        'filter',
        'add',
        'dev',
        'eth1',
        'ingress',
        'pref',
        '10',
        'protocol',
        'all',
        'u32',
        'match',
        'u32',
        '0',
        '0',
        'classid',
        '1:1',
      ]);

      assert.deepEqual(await ensure(300), [
        'made eth1.300',
        'made brvl300',
        'vlan_tag filter on eth1t300',
        'vlan_untag filter on eth1',
      ]);
      assert.deepEqual(await ensure(301), [
        'made eth1.301',
        'made brvl301',
        'vlan_tag filter on eth1t301',
        'vlan_untag filter on eth1',
      ]);
      assert.deepEqual(await ensure(300), [], 'nothing to do the second time');
      const d = (await run(['ip', '-n', ns, '-d', '-o', 'link', 'show', 'eth1t300'])).stdout;
      assert.match(d, /mtu 1400 .*state UP/, 'the peer up with the MTU');
      assert.match(
        await filters(),
        new RegExp(
          `pref ${TAGGER_PREF_BASE + 300} bpf .*flowid 1:12c vlan-tagger-[0-9a-f]+\\.o:\\[vlan_untag\\][^]*Egress Redirect to device eth1t300`,
        ),
      );
      const tagOn = async (dev: string) =>
        (await run(['tc', '-n', ns, 'filter', 'show', 'dev', dev, 'ingress'])).stdout;
      assert.match(
        await tagOn('eth1t301'),
        /flowid 1:12d vlan-tagger-[0-9a-f]+\.o:\[vlan_tag\][^]*Egress Redirect to device eth1/,
      );

      // The peer's filter lost: put back, nothing else touched.
      await run(['tc', '-n', ns, 'filter', 'del', 'dev', 'eth1t300', 'ingress']);
      assert.deepEqual(await ensure(300), ['vlan_tag filter on eth1t300']);
      // The peer deleted (the pair with it): made again.
      await run(['ip', '-n', ns, 'link', 'del', 'eth1t300']);
      assert.deepEqual((await ensure(300)).slice(0, 1), ['made eth1.300']);
      assert.deepEqual(await ensure(300), []);

      await remove(300);
      let l = await links();
      assert.ok(!l.includes('eth1.300') && !l.includes('eth1t300') && !l.includes('brvl300'), l.join(' '));
      assert.doesNotMatch(await filters(), new RegExp(`pref ${TAGGER_PREF_BASE + 300} `));
      assert.match(await filters(), new RegExp(`pref ${TAGGER_PREF_BASE + 301} `));
      await remove(301);
      assert.match(await filters(), /pref 10 u32/, "the operator's filter stays");
      assert.doesNotMatch(await filters(), /bpf/);
      assert.match(await qdiscs(), /clsact/, "the clsact stays while the operator's filter is on it");
      await remove(301); // gone already: fine

      // Without the operator's filter, the clsact goes with the last of ours.
      await run(['tc', '-n', ns, 'filter', 'del', 'dev', 'eth1', 'ingress', 'pref', '10']);
      await ensure(302);
      await remove(302);
      assert.doesNotMatch(await qdiscs(), /clsact/);
      l = await links();
      assert.deepEqual(
        l.filter((x) => x !== 'lo' && x !== 'eth1'),
        [],
      );
    },
  );
});
