// A VPC tier router's `vpc` section from the database: the live tiers (tiers with a live router) are its peers,
// the lowest live tier is the edge, and bumping the VPC (as a tier's router coming or going does) bumps every
// tier router of the VPC and no other.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createTestStore, testDbKinds } from '../store/testing/test-databases.js';
import type { Executor } from '../store/db.js';
import { buildDesiredState } from './desired-state-builder.js';
import { bumpVpcRouters, loadBuildInput, routerById } from './repository.js';
import { insertNetwork, insertRouter, insertZoneAndNetwork } from './testing/fixtures.js';

async function insertVpc(ex: Executor, zoneId: number, cidr: string): Promise<number> {
  const offering = await ex.selectFrom('vpc_offerings').select('id').executeTakeFirstOrThrow();
  const uuid = randomUUID();
  await ex
    .insertInto('vpcs')
    .values({
      uuid,
      zone_id: zoneId,
      account_id: 2,
      domain_id: 1,
      name: 'vpc1',
      display_text: null,
      cidr,
      vpc_offering_id: offering.id,
      network_domain: null,
      state: 'Enabled',
      dns1: null,
      dns2: null,
      created: Date.now(),
      removed: null,
    })
    .execute();
  const v = await ex.selectFrom('vpcs').select('id').where('uuid', '=', uuid).executeTakeFirstOrThrow();
  return Number(v.id);
}

const generation = async (ex: Executor, id: number) => Number((await routerById(ex, id))!.desired_generation);

for (const kind of testDbKinds()) {
  test(`VPC tier routers: peers, edge and bumps from the database (${kind})`, async () => {
    const t = await createTestStore(kind);
    try {
      const db = t.store.db;
      const { zoneId, networkId: isolated } = await insertZoneAndNetwork(db);
      const vpcId = await insertVpc(db, zoneId, '10.9.0.0/16');
      const tier = (n: number) =>
        insertNetwork(db, zoneId, { cidr: `10.9.${n}.0/24`, gateway: `10.9.${n}.1`, vpcId, vnet: 200 + n });
      const a = await tier(10);
      const b = await tier(2);
      const c = await tier(3);
      const ra = await insertRouter(db, zoneId, a);
      const rb = await insertRouter(db, zoneId, b);
      const ri = await insertRouter(db, zoneId, isolated);
      // Tier c has no router yet: nobody answers for it on the transit, so it is nobody's peer.

      const stateOf = async (rid: number) =>
        buildDesiredState(await loadBuildInput(db, (await routerById(db, rid))!, 9));
      assert.deepEqual((await stateOf(ra)).vpc, {
        cidr: '10.9.0.0/16',
        transitInterface: 'vpc0',
        edge: true,
        edgeGateway: null,
        peers: [{ cidr: '10.9.2.0/24', gateway: '10.9.2.1' }],
      });
      assert.deepEqual((await stateOf(rb)).vpc, {
        cidr: '10.9.0.0/16',
        transitInterface: 'vpc0',
        edge: false,
        edgeGateway: '10.9.10.1',
        peers: [{ cidr: '10.9.10.0/24', gateway: '10.9.10.1' }],
      });
      assert.equal((await stateOf(ri)).vpc, undefined, 'an isolated network has no VPC section');

      // Tier c gets its router: every tier router of the VPC is bumped, the isolated network's is not.
      const before = [await generation(db, ra), await generation(db, rb), await generation(db, ri)];
      const rc = await insertRouter(db, zoneId, c);
      await bumpVpcRouters(db, vpcId);
      assert.deepEqual(
        [await generation(db, ra), await generation(db, rb), await generation(db, ri)],
        [before[0]! + 1, before[1]! + 1, before[2]!],
      );
      assert.deepEqual(
        (await stateOf(rb)).vpc?.peers.map((p) => p.cidr),
        ['10.9.3.0/24', '10.9.10.0/24'],
      );
      assert.equal((await stateOf(rc)).vpc?.edgeGateway, '10.9.10.1');

      // The edge tier's router goes: the next live tier (lowest id) becomes the edge, and leaves the peers.
      await db.updateTable('routers').set({ removed: Date.now() }).where('id', '=', ra).execute();
      const sb = (await stateOf(rb)).vpc!;
      assert.deepEqual([sb.edge, sb.edgeGateway, sb.peers.map((p) => p.cidr)], [true, null, ['10.9.3.0/24']]);
      assert.equal((await stateOf(rc)).vpc?.edgeGateway, '10.9.2.1');
    } finally {
      await t.cleanup();
    }
  });
}
