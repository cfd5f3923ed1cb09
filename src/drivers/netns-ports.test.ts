// The netns driver's port rules as real nftables has them (root): the guard chain's sets take a port in, move its
// addresses, upgrade an older build's chain of its own and take it out again, each in one transaction, against a
// real `nft` in a namespace of its own. What the rules stop is tested with traffic in test/e2e/rogue-dhcp.test.ts.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TestNet, run, runIn } from '../netns/index.js';
import {
  GUARD_TEXT,
  PORT_TABLE_TEXT,
  elementsText,
  portElements,
  portReplaceText,
  portRuleText,
  portState,
} from './netns-ports.js';

describe('netns driver: port rules in the guard chain sets', () => {
  const net = new TestNet();
  let ns = '';
  const nft = (text: string) => run(['nsenter', `--net=/run/netns/${ns}`, 'nft', '-f', '-'], { input: text });
  const listed = async () => (await runIn(ns, ['nft', 'list', 'table', 'bridge', 'stacknet'])).stdout;
  const nic = { id: 5, mac: '02:5E:00:00:05:05', ipv4s: ['10.9.0.5', '10.9.0.6'], ipv6: '2001:db8::5' };
  const other = { id: 55, mac: '02:5e:00:00:05:55', ipv4s: ['10.9.0.55'], ipv6: null };

  before(async () => {
    ns = await net.namespace('ports');
    await nft(PORT_TABLE_TEXT + GUARD_TEXT);
  });
  after(() => net.cleanup());

  it('a fresh port is its elements; the guard text can run again', async () => {
    await nft(elementsText('add', portElements(nic)) + elementsText('add', portElements(other)));
    await nft(GUARD_TEXT);
    const s = portState(await listed(), 'n5');
    assert.equal(s.target, 'guard');
    assert.equal(s.ownChain, false);
    assert.deepEqual(s.elements.map((e) => `${e.set} ${e.element}`).sort(), [
      'port_ip4 "n5" . 10.9.0.5',
      'port_ip4 "n5" . 10.9.0.6',
      'port_ip6 "n5" . 2001:db8::5',
      'port_mac "n5" . 02:5e:00:00:05:05',
      'ports "n5" : jump guard',
    ]);
    // n55 is not n5's: a port's name is matched whole.
    assert.deepEqual(
      portState(await listed(), 'n55').elements.map((e) => e.element),
      ['"n55" : jump guard', '"n55" . 02:5e:00:00:05:55', '"n55" . 10.9.0.55'],
    );
  });

  it('a replug moves the port to what it has now, and leaves the other port as it was', async () => {
    const before = portState(await listed(), 'n55');
    await nft(portReplaceText(await listed(), { ...nic, ipv4s: ['10.9.0.7'], ipv6: null }));
    const s = portState(await listed(), 'n5');
    assert.deepEqual(s.elements.map((e) => `${e.set} ${e.element}`).sort(), [
      'port_ip4 "n5" . 10.9.0.7',
      'port_mac "n5" . 02:5e:00:00:05:05',
      'ports "n5" : jump guard',
    ]);
    assert.deepEqual(portState(await listed(), 'n55'), before);
  });

  it("an older build's chain of its own is replaced by the sets, then everything of the port goes", async () => {
    const old = { id: 6, mac: '02:5e:00:00:05:06', ipv4s: ['10.9.0.8'], ipv6: null };
    await nft(portRuleText(old));
    let s = portState(await listed(), 'n6');
    assert.equal(s.target, 'p_n6');
    assert.equal(s.ownChain, true);
    await nft(portReplaceText(await listed(), old));
    s = portState(await listed(), 'n6');
    assert.equal(s.target, 'guard');
    assert.equal(s.ownChain, false);
    await nft(portReplaceText(await listed(), old, true));
    assert.deepEqual(portState(await listed(), 'n6'), { elements: [], target: null, ownChain: false });
    assert.equal(portState(await listed(), 'n55').target, 'guard');
  });
});
