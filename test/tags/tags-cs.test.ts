/**
 * Resource tags with python `cs` (issue 14; Terraform tags every resource it manages): createTags, deleteTags,
 * listTags on networks, VPCs and public IPs, who may see and change them, CloudStack's refusals. On SQLite and
 * PostgreSQL.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ok, refused, startCsRig, stopCsRig } from '../api/harness.js';
import type { CsClient, ServerProcess, CsBridge } from '../api/harness.js';
import { testDbKinds } from '../../src/store/testing/test-databases.js';
import type { TestDatabase } from '../../src/store/testing/test-databases.js';
import { createTestZone, createUserClient } from '../networking/zone-fixture.js';

const kinds = testDbKinds().filter((k) => k === 'sqlite' || k === 'postgres');
const job = { fetch_result: true };

for (const kind of kinds) {
  describe(`resource tags with python cs (${kind})`, () => {
    let tdb: TestDatabase;
    let server: ServerProcess;
    let bridge: CsBridge;
    let admin: CsClient;
    let alice: CsClient;
    let bob: CsClient;
    let net: string;
    let vpc: string;
    let ip: string;

    before(async () => {
      ({ tdb, server, bridge, admin } = await startCsRig(kind));
      const client = (k: string, s: string) => bridge.client(server.url, k, s);
      alice = (await createUserClient(admin, client, 'tag-alice')).client;
      bob = (await createUserClient(admin, client, 'tag-bob')).client;
      const { zone } = await createTestZone(admin, {
        name: 'tag-zone',
        vlans: '600-609',
        publicVlan: '30',
        publicPrefix: '198.51.100',
        guestCidr: '10.8.0.0/16',
      });
      const offerings = ok(await alice('listNetworkOfferings', {}), 'listNetworkOfferings')
        .networkoffering as {
        id: string;
        name: string;
      }[];
      const iso = offerings.find((o) => o.name === 'DefaultIsolatedNetworkOfferingWithSourceNatService')!.id;
      net = ok(
        await alice('createNetwork', {
          zoneid: zone,
          name: 'web',
          displaytext: 'web',
          networkofferingid: iso,
        }),
        'createNetwork',
      ).network.id;
      const vpcOffering = ok(await alice('listVPCOfferings', {}), 'listVPCOfferings').vpcoffering[0].id;
      vpc = ok(
        await alice(
          'createVPC',
          { zoneid: zone, name: 'v', displaytext: 'v', cidr: '10.20.0.0/16', vpcofferingid: vpcOffering },
          job,
        ),
        'createVPC',
      ).vpc.id;
      ip = ok(await alice('associateIpAddress', { networkid: net }, job), 'associateIpAddress').ipaddress.id;
    });

    after(async () => {
      await stopCsRig({ tdb, server, bridge });
    });

    test('createTags on several resources, listTags by type, resource, key and value', async () => {
      ok(
        await alice(
          'createTags',
          {
            resourcetype: 'Network',
            resourceids: net,
            'tags[0].key': 'env',
            'tags[0].value': 'prod',
            'tags[1].key': 'team',
            'tags[1].value': 'web',
          },
          job,
        ),
        'createTags network',
      );
      // The type is matched case-insensitively, as CloudStack does.
      ok(
        await alice(
          'createTags',
          { resourcetype: 'vpc', resourceids: vpc, 'tags[0].key': 'env', 'tags[0].value': 'prod' },
          job,
        ),
        'createTags vpc',
      );
      ok(
        await alice(
          'createTags',
          { resourcetype: 'PublicIpAddress', resourceids: ip, 'tags[0].key': 'env', 'tags[0].value': 'dev' },
          job,
        ),
        'createTags ip',
      );
      const all = ok(await alice('listTags', {}), 'listTags');
      assert.equal(all.count, 4);
      const t = all.tag.find(
        (x: { resourceid: string; key: string }) => x.resourceid === net && x.key === 'team',
      );
      assert.equal(t.value, 'web');
      assert.equal(t.resourcetype, 'Network');
      assert.equal(t.account, 'tag-alice');
      assert.equal(t.domain, 'ROOT');
      assert.equal(ok(await alice('listTags', { resourcetype: 'Vpc' }), 'by type').count, 1);
      assert.equal(ok(await alice('listTags', { resourceid: net }), 'by resource').count, 2);
      assert.equal(ok(await alice('listTags', { key: 'env', value: 'prod' }), 'by pair').count, 2);
      assert.equal(ok(await alice('listTags', { keyword: 'de' }), 'by keyword').count, 1);
      // Another user sees none of them; the admin sees them with listall.
      assert.deepEqual(ok(await bob('listTags', {}), 'bob listTags'), {});
      assert.equal(ok(await admin('listTags', { listall: true }), 'admin listall').count, 4);
    });

    test('responses carry their tags, lists filter by tags[n], and tags go with their resource', async () => {
      const listedNet = ok(await alice('listNetworks', { id: net }), 'listNetworks').network[0];
      assert.deepEqual(
        listedNet.tags.map((t: { key: string; value: string }) => `${t.key}=${t.value}`).sort(),
        ['env=prod', 'team=web'],
      );
      // CloudStack's domain path form, as on accounts and events.
      assert.equal(listedNet.domainpath, 'ROOT');
      assert.equal(ok(await alice('listVPCs', { id: vpc }), 'listVPCs').vpc[0].tags[0].value, 'prod');
      const listedIp = ok(await alice('listPublicIpAddresses', { id: ip }), 'listPublicIpAddresses')
        .publicipaddress[0];
      assert.deepEqual(
        listedIp.tags.map((t: { key: string }) => t.key),
        ['env'],
      );
      assert.equal(listedIp.domainpath, 'ROOT');
      const byTag = (command: string, p: Record<string, string>) => alice(command, { listall: 'true', ...p });
      assert.equal(
        ok(await byTag('listNetworks', { 'tags[0].key': 'team', 'tags[0].value': 'web' }), 'by tag').count,
        1,
      );
      assert.deepEqual(
        ok(await byTag('listNetworks', { 'tags[0].key': 'team', 'tags[0].value': 'db' }), 'other value'),
        {},
      );
      // Several pairs must all match.
      assert.deepEqual(
        ok(
          await byTag('listNetworks', {
            'tags[0].key': 'team',
            'tags[0].value': 'web',
            'tags[1].key': 'env',
            'tags[1].value': 'dev',
          }),
          'two pairs',
        ),
        {},
      );
      assert.equal(ok(await byTag('listVPCs', { 'tags[0].key': 'env' }), 'vpc by key').count, 1);
      const ips = ok(
        await byTag('listPublicIpAddresses', { 'tags[0].key': 'env', 'tags[0].value': 'dev' }),
        'ips by tag',
      );
      assert.deepEqual(
        ips.publicipaddress.map((x: { id: string }) => x.id),
        [ip],
      );
      // A second IP, tagged then released: its tag goes with it.
      const other = ok(await alice('associateIpAddress', { networkid: net }, job), 'second IP').ipaddress.id;
      ok(
        await alice(
          'createTags',
          {
            resourcetype: 'PublicIpAddress',
            resourceids: other,
            'tags[0].key': 'temp',
            'tags[0].value': '1',
          },
          job,
        ),
        'tag it',
      );
      ok(await alice('disassociateIpAddress', { id: other }, job), 'release it');
      assert.deepEqual(ok(await alice('listTags', { key: 'temp' }), 'its tags'), {});
    });

    test("CloudStack's refusals: a duplicate key, an unknown type, someone else's resource, a tag without value", async () => {
      refused(
        await alice(
          'createTags',
          { resourcetype: 'Network', resourceids: net, 'tags[0].key': 'env', 'tags[0].value': 'x' },
          job,
        ),
        431,
        /already has a tag with key env/,
        'duplicate key',
      );
      refused(
        await alice(
          'createTags',
          { resourcetype: 'Teapot', resourceids: net, 'tags[0].key': 'a', 'tags[0].value': 'b' },
          job,
        ),
        431,
        /resourcetype/,
        'unknown type',
      );
      refused(
        await bob(
          'createTags',
          { resourcetype: 'Network', resourceids: net, 'tags[0].key': 'a', 'tags[0].value': 'b' },
          job,
        ),
        531,
        /does not have permission/,
        "someone else's network",
      );
      refused(
        await alice('createTags', { resourcetype: 'Network', resourceids: net, 'tags[0].key': 'a' }, job),
        431,
        /needs a value/,
        'no value',
      );
      // A refused batch leaves nothing: the first resource's tag is not kept when the second fails.
      refused(
        await alice(
          'createTags',
          {
            resourcetype: 'Network',
            resourceids: `${net},00000000-0000-4000-8000-000000000000`,
            'tags[0].key': 'batch',
            'tags[0].value': 'x',
          },
          job,
        ),
        431,
        /no Network has this id/,
        'batch with a missing resource',
      );
      assert.deepEqual(ok(await alice('listTags', { key: 'batch' }), 'after the refused batch'), {});
    });

    test('deleteTags by key, by key and value, and all of a resource; nothing matched is an error', async () => {
      refused(
        await alice('deleteTags', { resourcetype: 'Network', resourceids: net, 'tags[0].key': 'nope' }, job),
        431,
        /no tag matches/,
        'nothing matches',
      );
      ok(
        await alice(
          'deleteTags',
          { resourcetype: 'Network', resourceids: net, 'tags[0].key': 'env', 'tags[0].value': 'prod' },
          job,
        ),
        'delete by pair',
      );
      assert.equal(ok(await alice('listTags', { resourceid: net }), 'left').count, 1);
      refused(
        await bob('deleteTags', { resourcetype: 'Vpc', resourceids: vpc }, job),
        531,
        /does not have permission/,
        "bob deletes alice's tags",
      );
      ok(
        await alice('deleteTags', { resourcetype: 'Vpc', resourceids: vpc }, job),
        'delete all of a resource',
      );
      assert.deepEqual(ok(await alice('listTags', { resourcetype: 'Vpc' }), 'vpc tags'), {});
      const events = ok(await alice('listEvents', { type: 'DELETE_TAGS' }), 'events');
      assert.equal(events.count, 2);
    });

    test('network ACL items: tagged by their VPC owner, filtered by tags[n], tags go with the item', async () => {
      const list = ok(
        await alice('createNetworkACLList', { name: 'tagged', description: 'tagged', vpcid: vpc }, job),
        'createNetworkACLList',
      ).networkacllist.id;
      const item = async (port: string) =>
        ok(
          await alice(
            'createNetworkACL',
            { aclid: list, protocol: 'tcp', startport: port, endport: port, cidrlist: '10.0.0.0/8' },
            job,
          ),
          'createNetworkACL',
        ).networkacl.id as string;
      const web = await item('80');
      const db = await item('5432');
      const tag = (id: string, value: string) =>
        alice(
          'createTags',
          { resourcetype: 'NetworkACL', resourceids: id, 'tags[0].key': 'role', 'tags[0].value': value },
          job,
        );
      ok(await tag(web, 'web'), 'tag web');
      ok(await tag(db, 'db'), 'tag db');
      const listed = ok(await alice('listNetworkACLs', { aclid: list }), 'listNetworkACLs').networkacl as {
        id: string;
        tags: { key: string; value: string; resourcetype: string }[];
      }[];
      assert.deepEqual(
        listed.map((i) => [i.id, i.tags.map((t) => `${t.resourcetype}:${t.key}=${t.value}`)]).sort(),
        [
          [web, ['NetworkACL:role=web']],
          [db, ['NetworkACL:role=db']],
        ].sort(),
      );
      const byTag = ok(
        await alice('listNetworkACLs', { aclid: list, 'tags[0].key': 'role', 'tags[0].value': 'db' }),
        'by tag',
      );
      assert.deepEqual(
        byTag.networkacl.map((i: { id: string }) => i.id),
        [db],
      );
      // Someone else's item, and the built-in lists' items (ROOT's: root admin only).
      refused(
        await bob(
          'createTags',
          { resourcetype: 'NetworkACL', resourceids: web, 'tags[0].key': 'a', 'tags[0].value': 'b' },
          job,
        ),
        531,
        /does not have permission/,
        "bob on alice's item",
      );
      const builtIn = ok(await admin('listNetworkACLLists', { name: 'default_allow' }), 'default_allow')
        .networkacllist[0].id;
      const builtInItem = ok(await admin('listNetworkACLs', { aclid: builtIn }), 'its items').networkacl[0]
        .id;
      refused(
        await alice(
          'createTags',
          { resourcetype: 'NetworkACL', resourceids: builtInItem, 'tags[0].key': 'a', 'tags[0].value': 'b' },
          job,
        ),
        531,
        /does not have permission/,
        'a user on a built-in item',
      );
      // The item deleted, then the list: their tags go with them.
      ok(await alice('deleteNetworkACL', { id: web }, job), 'deleteNetworkACL');
      assert.deepEqual(
        ok(await alice('listTags', { resourcetype: 'NetworkACL', value: 'web' }), 'web tag gone'),
        {},
      );
      ok(await alice('deleteNetworkACLList', { id: list }, job), 'deleteNetworkACLList');
      assert.deepEqual(ok(await alice('listTags', { resourcetype: 'NetworkACL' }), 'all gone'), {});
    });
  });
}
