/**
 * Issue 13, the netns driver's VPC transit (drivers/netns-vpc.ts): a tier router gets `vpc0` on its VPC's bridge
 * `br-vpc<id>` in the switch namespace and forwarding on; a router outside a VPC gets neither; destroying a tier
 * router takes its port, and the last one the bridge. Real router agents, started by the driver; no database.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { NetnsDriver } from '../../src/drivers/netns.js';
import { vpcBridgeName } from '../../src/drivers/netns-vpc.js';
import type { RouterRuntime } from '../../src/drivers/types.js';
import { leaseDirFor } from '../../src/agent/lease-dir.js';
import { TestNet, exec, execIn, listLinks } from '../../src/netns/index.js';

const isRoot = process.getuid?.() === 0;

describe('netns driver: the VPC transit of tier routers', { skip: !isRoot && 'needs root' }, () => {
  const net = new TestNet();
  const prefix = `${net.prefix}-`;
  const third = 10 + (randomBytes(1)[0]! % 240);
  const switchNs = `${prefix}switch`;
  const vpcId = 40 + (randomBytes(1)[0]! % 200);
  let driver: NetnsDriver;
  let dataDir = '';

  const router = (id: number, vpc: number | null): RouterRuntime => ({
    id,
    uuid: `r-${id}`,
    name: `r-${id}-VM`,
    network: { id, vnet: 960 + id, isolation: 'VLAN', cidr: `10.96.${id}.0/24`, gateway: `10.96.${id}.1` },
    guestIp: `10.96.${id}.1`,
    guestMac: `02:00:00:96:00:0${id}`,
    redundant: false,
    vpcId: vpc,
    zoneId: 1,
    publicNics: [],
    controlIp: `169.254.${third}.${10 + id}`,
    controlPort: 3922,
    secret: randomBytes(16).toString('hex'),
  });
  const ra = router(1, vpcId);
  const rb = router(2, vpcId);
  const ri = router(3, null);
  const ns = (r: RouterRuntime) => `${prefix}${r.name}`;
  const ports = async () =>
    (await exec(['ip', '-n', switchNs, '-o', 'link', 'show', 'master', vpcBridgeName(vpcId)])).stdout
      .split('\n')
      .map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1])
      .filter(Boolean)
      .sort();
  const forwarding = async (r: RouterRuntime) =>
    (await execIn(ns(r), ['sysctl', '-n', 'net.ipv4.ip_forward'])).stdout.trim();

  before(async () => {
    dataDir = await net.tempDir('driver');
    driver = new NetnsDriver({ dataDir, prefix, controlCidr: `169.254.${third}.0/24` });
    for (const r of [ra, rb, ri]) net.removeOnCleanup(leaseDirFor(join(dataDir, 'routers', r.name, 'data')));
  });

  after(async () => {
    await NetnsDriver.cleanup(dataDir);
    await net.cleanup();
  });

  test('tier routers share the VPC bridge through vpc0 and forward; an isolated router has no transit', async () => {
    for (const r of [ra, rb, ri]) await driver.ensureRouter(r);
    assert.deepEqual(await ports(), ['t1', 't2']);
    for (const r of [ra, rb]) {
      assert.ok((await listLinks(ns(r))).includes('vpc0'), `vpc0 in ${r.name}`);
      assert.equal(await forwarding(r), '1');
    }
    assert.ok(!(await listLinks(ns(ri))).includes('vpc0'));
    assert.ok(!(await listLinks(switchNs)).includes('t3'));
    // Again after a reboot (the agent restarts in the same namespace): nothing doubled, the port still there.
    await driver.rebootRouter(ra);
    await driver.ensureRouter(ra);
    assert.deepEqual(await ports(), ['t1', 't2']);
  });

  test('destroying a tier router takes its port; the last one takes the bridge', async () => {
    await driver.destroyRouter(ra);
    assert.deepEqual(await ports(), ['t2']);
    assert.ok((await listLinks(switchNs)).includes(vpcBridgeName(vpcId)));
    await driver.destroyRouter(rb);
    assert.ok(
      !(await listLinks(switchNs)).includes(vpcBridgeName(vpcId)),
      'the bridge goes with its last port',
    );
    await driver.destroyRouter(ri);
  });
});
