/**
 * The router's public interfaces on the netns driver (root), driven by the reconciler: a network whose source-NAT
 * IP is on VLAN 10 gets a router with eth2 on br-p10 and a zone upstream namespace holding the gateway; an IP from
 * VLAN 20 plugs eth3 into the running router (same agent process); destroy and cleanup leave nothing behind.
 * The router's public addresses are the agent's (from the desired state): the router then reaches each gateway.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestStore } from '../store/testing/test-databases.js';
import { transaction } from '../store/db.js';
import { NetnsDriver } from '../drivers/netns.js';
import { exec, listLinks, listNamespaces, run } from '../netns/index.js';
import { RouterReconciler } from './reconciler.js';
import { bumpPublicIpRouters, routerById } from './repository.js';
import { insertPublicIp, insertRouter, insertZoneAndNetwork } from './testing/fixtures.js';

const isRoot = process.getuid?.() === 0;

async function until(what: string, pred: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const addrsOf = async (ns: string, dev: string) =>
  (await exec(['ip', '-n', ns, '-o', '-4', 'addr', 'show', 'dev', dev])).stdout;

/** `eth2` → the bridge its peer sits on, from inside the switch namespace. */
async function masterOf(switchNs: string, link: string): Promise<string | null> {
  const out = (await exec(['ip', '-n', switchNs, '-o', 'link', 'show', 'dev', link])).stdout;
  return /\bmaster (\S+)/.exec(out)?.[1] ?? null;
}

test(
  'netns: public NICs per VLAN, upstream gateway, hot-plugged eth3, all removed',
  { skip: !isRoot && 'needs root' },
  async () => {
    const t = await createTestStore('sqlite');
    const dir = mkdtempSync(join(tmpdir(), 'stacknet-pubnetns-'));
    const prefix = `sn-${randomBytes(3).toString('hex')}-`;
    const third = 10 + (randomBytes(1)[0]! % 240);
    const driver = new NetnsDriver({ dataDir: dir, prefix, controlCidr: `169.254.${third}.0/24` });
    const rec = new RouterReconciler({ store: t.store, driver, serverId: 'ms-a' });
    const sw = `${prefix}switch`;
    try {
      const db = t.store.db;
      const { zoneId, networkId } = await insertZoneAndNetwork(db);
      const up = driver.upstreamNamespace(zoneId);
      assert.equal(up, `${prefix}up-z${zoneId}`);
      await insertPublicIp(db, zoneId, {
        address: '192.0.2.90',
        gateway: '192.0.2.1',
        vlan: 'vlan://10',
        networkId,
        sourceNat: true,
      });
      const rid = await insertRouter(db, zoneId, networkId, { controlIp: `169.254.${third}.7` });
      const name = (await routerById(db, rid))!.name;
      const rns = `${prefix}${name}`;
      // One pass: the driver ensures the router (whatever the agent then says of the desired state).
      await rec.reconcile(rid);
      const pid = readFileSync(join(dir, 'routers', name, 'agent.pid'), 'utf8');
      assert.ok((await listLinks(rns)).includes('eth2'));
      assert.equal(await masterOf(sw, `r${rid}e2`), 'br-p10');
      assert.equal(await masterOf(sw, `u${zoneId}p10`), 'br-p10');
      const upAddrs = (await exec(['ip', '-n', up, '-o', '-4', 'addr', 'show'])).stdout;
      assert.match(upAddrs, /\bp10\s+inet 192\.0\.2\.1\/24/);
      assert.equal(
        (await exec(['ip', 'netns', 'exec', rns, 'sysctl', '-n', 'net.ipv4.ip_forward'])).stdout.trim(),
        '1',
      );
      // The agent puts the source-NAT address on eth2; the router then reaches the upstream gateway on VLAN 10.
      await until('eth2 addressed', async () => {
        await rec.reconcile(rid);
        return /192\.0\.2\.90\/24/.test(await addrsOf(rns, 'eth2'));
      });
      await run(['ip', 'netns', 'exec', rns, 'busybox', 'ping', '-c', '1', '-W', '2', '192.0.2.1']);

      // An IP from VLAN 20 is associated: the next pass plugs eth3 into the running router.
      await transaction(t.store, async (tx) => {
        await insertPublicIp(tx, zoneId, {
          address: '198.51.100.7',
          gateway: '198.51.100.1',
          vlan: '20',
          networkId,
        });
        await bumpPublicIpRouters(tx, { network_id: networkId, vpc_id: null });
      });
      await rec.reconcile(rid);
      assert.equal(readFileSync(join(dir, 'routers', name, 'agent.pid'), 'utf8'), pid, 'same agent process');
      assert.ok((await listLinks(rns)).includes('eth3'));
      assert.equal(await masterOf(sw, `r${rid}e3`), 'br-p20');
      assert.match(
        (await exec(['ip', '-n', up, '-o', '-4', 'addr', 'show'])).stdout,
        /\bp20\s+inet 198\.51\.100\.1\/24/,
      );
      await until('eth3 addressed', async () => {
        await rec.reconcile(rid);
        return /198\.51\.100\.7\/24/.test(await addrsOf(rns, 'eth3'));
      });
      await run(['ip', 'netns', 'exec', rns, 'busybox', 'ping', '-c', '1', '-W', '2', '198.51.100.1']);
      // Nothing changed: another pass keeps everything where it is.
      await rec.reconcile(rid);
      assert.equal(await masterOf(sw, `r${rid}e3`), 'br-p20');
      assert.match(await addrsOf(rns, 'eth3'), /198\.51\.100\.7/);

      // Destroyed: the router's public veths go with it; cleanup removes the upstream and the switch.
      await db
        .updateTable('routers')
        .set({ state: 'Destroyed', removed: Date.now() })
        .where('id', '=', rid)
        .execute();
      assert.equal(await rec.reconcile(rid), 'destroyed');
      const swLinks = await listLinks(sw);
      assert.ok(!swLinks.some((l) => l.startsWith(`r${rid}`)), swLinks.join(' '));
      assert.ok(!(await listNamespaces()).includes(rns));
      await NetnsDriver.cleanup(dir);
      const left = (await listNamespaces()).filter((n) => n.startsWith(prefix));
      assert.deepEqual(left, []);
    } finally {
      await rec.stop();
      await NetnsDriver.cleanup(dir);
      await t.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
