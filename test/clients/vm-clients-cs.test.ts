/**
 * What Terraform's cloudstack_instance and the CloudStack UI's Instances pages need on the VM side (issue 14),
 * with python `cs` on SQLite and PostgreSQL: the provider's call sequence (deploy, read with listVirtualMachines
 * and listVolumes type=ROOT, update, resetSSHKeyForVirtualMachine on a stopped VM, destroy with expunge, read after
 * an out-of-band delete), createSSHKeyPair, listDiskOfferings, listVirtualMachinesMetrics, and each command's
 * refusals.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPrivateKey, createPublicKey } from 'node:crypto';
import { ok, refused, startCsRig, stopCsRig } from '../api/harness.js';
import type { CsClient, ServerProcess, CsBridge } from '../api/harness.js';
import { testDbKinds } from '../../src/store/testing/test-databases.js';
import type { TestDatabase } from '../../src/store/testing/test-databases.js';
import { openStore } from '../../src/store/db.js';
import type { Store } from '../../src/store/db.js';
import { loadBuildInput } from '../../src/routers/repository.js';
import { buildDesiredState } from '../../src/routers/desired-state-builder.js';
import { createTestZone, createUserClient } from '../networking/zone-fixture.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

const kinds = testDbKinds().filter((k) => k === 'sqlite' || k === 'postgres');
const job = { fetch_result: true };
const FIVE_GIB = 5 * 1024 ** 3;

/** The MD5 fingerprint of an OpenSSH public key line, computed here independently of the server. */
const md5Fingerprint = (line: string) =>
  createHash('md5')
    .update(Buffer.from(line.split(' ')[1]!, 'base64'))
    .digest('hex')
    .match(/../g)!
    .join(':');

for (const kind of kinds) {
  describe(`VM-side client commands with python cs (${kind})`, () => {
    let tdb: TestDatabase;
    let server: ServerProcess;
    let bridge: CsBridge;
    let store: Store;
    let admin: CsClient;
    let alice: CsClient;
    let bob: CsClient;
    const id = {} as Record<'zone' | 'net' | 'so' | 'tpl' | 'vm', string>;

    /** The public-keys metadata the network's router is to serve the VM at `ip`, and the router's generation. */
    const routerKeys = async (ip: string) => {
      const net = await store.db
        .selectFrom('networks')
        .select('id')
        .where('uuid', '=', id.net)
        .executeTakeFirstOrThrow();
      const router = await store.db
        .selectFrom('routers')
        .selectAll()
        .where('network_id', '=', net.id)
        .where('removed', 'is', null)
        .executeTakeFirstOrThrow();
      const gen = Number(router.desired_generation);
      const state = buildDesiredState(await loadBuildInput(store.db, router, gen));
      return { gen, keys: state.metadata[ip]?.metaData['public-keys'] };
    };

    before(async () => {
      ({ tdb, server, bridge, admin } = await startCsRig(kind));
      const client = (k: string, s: string) => bridge.client(server.url, k, s);
      alice = (await createUserClient(admin, client, 'vmc-alice')).client;
      bob = (await createUserClient(admin, client, 'vmc-bob')).client;
      store = await openStore(tdb.url, { poolSize: 2 });
      id.zone = (
        await createTestZone(admin, {
          name: 'vmc-zone',
          vlans: '700-709',
          publicVlan: '31',
          publicPrefix: '203.0.113',
          guestCidr: '10.9.0.0/16',
        })
      ).zone;
      const offerings = ok(await alice('listNetworkOfferings', {}), 'listNetworkOfferings').networkoffering;
      const iso = offerings.find(
        (o: any) => o.name === 'DefaultIsolatedNetworkOfferingWithSourceNatService',
      ).id;
      id.net = ok(
        await alice('createNetwork', {
          zoneid: id.zone,
          name: 'app',
          displaytext: 'app',
          networkofferingid: iso,
        }),
        'createNetwork',
      ).network.id;
      id.so = ok(await alice('listServiceOfferings', { name: 'Small Instance' }), 'so').serviceoffering[0].id;
      id.tpl = ok(await alice('listTemplates', { templatefilter: 'featured' }), 'tpl').template[0].id;
    });

    after(async () => {
      await store?.close();
      await stopCsRig({ tdb, server, bridge });
    });

    test('createSSHKeyPair: an RSA pair, the private key answered once, CloudStack fingerprint', async () => {
      const k = ok(await alice('createSSHKeyPair', { name: 'tf-key' }), 'createSSHKeyPair').keypair;
      assert.equal(k.name, 'tf-key');
      assert.equal(k.account, 'vmc-alice');
      assert.match(
        k.privatekey,
        /^-----BEGIN RSA PRIVATE KEY-----\n[\s\S]+-----END RSA PRIVATE KEY-----\n?$/,
      );
      const listed = ok(await alice('listSSHKeyPairs', { name: 'tf-key' }), 'listSSHKeyPairs').sshkeypair[0];
      assert.equal(listed.fingerprint, k.fingerprint);
      assert.equal(listed.privatekey, undefined, 'the private key is never answered again');
      // The stored public key is the private key's own public half, and the fingerprint is its blob's MD5.
      const row = await store.db
        .selectFrom('ssh_keypairs')
        .selectAll()
        .where('uuid', '=', k.id)
        .executeTakeFirstOrThrow();
      assert.match(row.public_key, /^ssh-rsa AAAAB3NzaC1yc2E[A-Za-z0-9+/=]+ tf-key$/);
      assert.doesNotMatch(JSON.stringify(row), /PRIVATE/);
      assert.equal(k.fingerprint, md5Fingerprint(row.public_key));
      const fromPrivate = createPublicKey(createPrivateKey(k.privatekey)).export({ format: 'jwk' });
      const blob = Buffer.from(row.public_key.split(' ')[1]!, 'base64');
      assert.ok(
        blob.includes(Buffer.from(fromPrivate.n!, 'base64url')),
        'the public key is the private key’s',
      );
      // A registered key and a second generated one sit beside it; names are unique per account.
      ok(await alice('createSSHKeyPair', { name: 'tf-key-2' }), 'second key');
      refused(
        await alice('createSSHKeyPair', { name: 'tf-key' }),
        431,
        /name.*tf-key.*already/s,
        'same name',
      );
      refused(await alice('createSSHKeyPair', {}), 431, /name/, 'no name');
      refused(
        await alice('createSSHKeyPair', { name: 'x', account: 'vmc-bob', domainid: await rootDomain(admin) }),
        531,
        /.+/,
        'a user creating a key for another account',
      );
      // The same name in another account is another key.
      ok(await bob('createSSHKeyPair', { name: 'tf-key' }), 'bob tf-key');
    });

    test("Terraform's instance: deploy, read with the ROOT volume, update, reset SSH key, destroy", async () => {
      const vm = ok(
        await alice(
          'deployVirtualMachine',
          {
            zoneid: id.zone,
            networkids: id.net,
            serviceofferingid: id.so,
            templateid: id.tpl,
            name: 'web1',
            keypair: 'tf-key',
          },
          job,
        ),
        'deploy',
      ).virtualmachine;
      id.vm = vm.id;
      assert.equal(vm.state, 'Running');
      assert.equal(vm.arch, 'x86_64');
      assert.equal(typeof vm.hostname, 'string', 'a running VM names the host it runs on');
      // The read step.
      const read = ok(await alice('listVirtualMachines', { id: vm.id }), 'listVirtualMachines')
        .virtualmachine[0];
      assert.equal(read.keypairs, 'tf-key');
      const vols = ok(await alice('listVolumes', { type: 'ROOT', virtualmachineid: vm.id }), 'listVolumes');
      assert.equal(vols.count, 1);
      const root = vols.volume[0];
      assert.equal(root.type, 'ROOT');
      assert.equal(root.name, `ROOT-${vm.instancename.split('-')[2]}`);
      assert.equal(root.virtualmachineid, vm.id);
      assert.notEqual(root.id, vm.id);
      assert.equal(root.vmname, 'web1');
      assert.equal(root.vmdisplayname, 'web1');
      assert.equal(root.vmstate, 'Running');
      assert.equal(root.size, FIVE_GIB);
      assert.equal(root.zoneid, id.zone);
      assert.equal(root.zonename, 'vmc-zone');
      assert.equal(root.state, 'Ready');
      assert.equal(root.deviceid, 0);
      assert.equal(root.storagetype, 'shared');
      assert.equal(root.account, 'vmc-alice');
      assert.equal(root.domain, 'ROOT');
      assert.match(root.created, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000$/);
      assert.deepEqual(root.tags, []);
      // The template answers the size its VMs' disks have.
      assert.equal(
        ok(await alice('listTemplates', { templatefilter: 'featured', id: id.tpl }), 't').template[0].size,
        FIVE_GIB,
      );
      // The volume by its own id, name and keyword; nothing of another type; other users see nothing.
      assert.equal(
        ok(await alice('listVolumes', { id: root.id }), 'by id').volume[0].virtualmachineid,
        vm.id,
      );
      assert.equal(ok(await alice('listVolumes', { name: root.name }), 'by name').count, 1);
      assert.equal(ok(await alice('listVolumes', { keyword: 'root-' }), 'by keyword').count, 1);
      assert.deepEqual(ok(await alice('listVolumes', { keyword: 'nothing' }), 'keyword miss'), {});
      assert.deepEqual(ok(await alice('listVolumes', { type: 'DATADISK' }), 'data disks'), {});
      assert.deepEqual(ok(await bob('listVolumes', { virtualmachineid: vm.id }), 'bob'), {});
      assert.deepEqual(ok(await bob('listVolumes', { id: root.id }), 'bob by id'), {});
      // The admin finds it by its VM, and in the account's listing with listall or account+domainid.
      assert.equal(ok(await admin('listVolumes', { virtualmachineid: vm.id }), 'admin').count, 1);
      assert.deepEqual(ok(await admin('listVolumes', {}), 'admin own'), {});
      assert.equal(ok(await admin('listVolumes', { listall: true }), 'admin listall').count, 1);
      assert.equal(
        ok(
          await admin('listVolumes', { account: 'vmc-alice', domainid: await rootDomain(admin) }),
          'by account',
        ).count,
        1,
      );
      assert.equal(
        ok(await alice('listVolumes', { zoneid: id.zone, page: 1, pagesize: 1 }), 'paged').count,
        1,
      );
      // (`cs` fills in pagesize when only page is given, so the pair check is seen with pagesize alone.)
      refused(await alice('listVolumes', { pagesize: 1 }), 431, /page/, 'pagesize without page');
      refused(
        await alice('listVolumes', { domainid: '00000000-0000-4000-8000-000000000000' }),
        431,
        /domainid/,
        'unknown domain',
      );

      // Update: the display name at once; the keys only while stopped.
      ok(await alice('updateVirtualMachine', { id: vm.id, displayname: 'web-one' }), 'update');
      assert.equal(
        ok(await alice('listVolumes', { virtualmachineid: vm.id }), 'after update').volume[0].vmdisplayname,
        'web-one',
      );
      refused(
        await alice('resetSSHKeyForVirtualMachine', { id: vm.id, keypair: 'tf-key-2' }, job),
        431,
        /Running.*stop/,
        'reset on a running VM',
      );
      ok(await alice('stopVirtualMachine', { id: vm.id }, job), 'stop');
      assert.equal(
        ok(await alice('listVirtualMachines', { id: vm.id }), 'stopped').virtualmachine[0].hostname,
        undefined,
        'a stopped VM runs on no host',
      );
      refused(
        await alice('resetSSHKeyForVirtualMachine', { id: vm.id }, job),
        431,
        /keypair/,
        'no key named',
      );
      refused(
        await alice('resetSSHKeyForVirtualMachine', { id: vm.id, keypair: 'nope' }, job),
        431,
        /nope/,
        'unknown key',
      );
      refused(
        await bob('resetSSHKeyForVirtualMachine', { id: vm.id, keypair: 'tf-key' }, job),
        431,
        /id/,
        "another user's VM",
      );
      const ip = vm.nic[0].ipaddress as string;
      const before = await routerKeys(ip);
      const keyOf = async (name: string) =>
        (
          await store.db
            .selectFrom('ssh_keypairs')
            .select('public_key')
            .where('name', '=', name)
            .where(
              'account_id',
              '=',
              (
                await store.db
                  .selectFrom('vms')
                  .select('account_id')
                  .where('uuid', '=', vm.id)
                  .executeTakeFirstOrThrow()
              ).account_id,
            )
            .executeTakeFirstOrThrow()
        ).public_key;
      assert.equal(before.keys, await keyOf('tf-key'));
      const reset = ok(
        await alice('resetSSHKeyForVirtualMachine', { id: vm.id, keypairs: 'tf-key-2' }, job),
        'resetSSHKey',
      ).virtualmachine;
      assert.equal(reset.keypairs, 'tf-key-2');
      assert.equal(reset.state, 'Stopped');
      // The router's desired state moved on and serves the new key as the VM's public-keys metadata.
      const afterReset = await routerKeys(ip);
      assert.ok(afterReset.gen > before.gen, `generation ${before.gen} -> ${afterReset.gen}`);
      assert.equal(afterReset.keys, await keyOf('tf-key-2'));
      const events = ok(await alice('listEvents', { type: 'VM.RESETSSHKEY' }), 'events').event;
      assert.equal(events.length, 1);
      ok(await alice('startVirtualMachine', { id: vm.id }, job), 'start');

      // Destroy with expunge; a later read (the resource deleted out of band) finds nothing, without error.
      ok(await alice('destroyVirtualMachine', { id: vm.id, expunge: true }, job), 'destroy');
      assert.deepEqual(ok(await alice('listVirtualMachines', { id: vm.id }), 'read VM after delete'), {});
      assert.deepEqual(
        ok(await alice('listVolumes', { type: 'ROOT', virtualmachineid: vm.id }), 'read volume after delete'),
        {},
      );
      refused(
        await alice('resetSSHKeyForVirtualMachine', { id: vm.id, keypair: 'tf-key' }, job),
        431,
        /id/,
        'reset on an expunged VM',
      );
      // The provider's retry for a missing object: CloudStack's "every project", of which stacknet has none.
      assert.deepEqual(
        ok(await alice('listVolumes', { virtualmachineid: vm.id, projectid: -1 }), 'projectid=-1'),
        {},
      );
    });

    test('a destroyed, not yet expunged VM keeps its volume in Destroy state', async () => {
      const vm = ok(
        await alice(
          'deployVirtualMachine',
          { zoneid: id.zone, networkids: id.net, serviceofferingid: id.so, templateid: id.tpl, name: 'tmp1' },
          job,
        ),
        'deploy',
      ).virtualmachine;
      ok(await alice('destroyVirtualMachine', { id: vm.id }, job), 'destroy');
      const v = ok(await admin('listVolumes', { virtualmachineid: vm.id }), 'destroyed').volume[0];
      assert.equal(v.state, 'Destroy');
      assert.equal(v.vmstate, 'Destroyed');
      assert.equal(v.destroyed, true);
      ok(await admin('expungeVirtualMachine', { id: vm.id }, job), 'expunge');
      assert.deepEqual(ok(await admin('listVolumes', { virtualmachineid: vm.id }), 'expunged'), {});
    });

    test('listVirtualMachinesMetrics: the VM list with CloudStack-formatted totals and zero counters', async () => {
      const vm = ok(
        await alice(
          'deployVirtualMachine',
          { zoneid: id.zone, networkids: id.net, serviceofferingid: id.so, templateid: id.tpl, name: 'm1' },
          job,
        ),
        'deploy',
      ).virtualmachine;
      const m = ok(await alice('listVirtualMachinesMetrics', { id: vm.id }), 'metrics');
      assert.equal(m.count, 1);
      const r = m.virtualmachine[0];
      assert.equal(r.name, 'm1');
      assert.equal(r.arch, 'x86_64');
      // Small Instance: 1 CPU at 500 MHz, 512 MB.
      assert.equal(r.cputotal, '0.5 Ghz');
      assert.equal(r.memorytotal, '0.50 GiB');
      for (const f of ['networkread', 'networkwrite', 'diskread', 'diskwrite'])
        assert.equal(r[f], '0.00 MiB', f);
      assert.equal(r.diskiopstotal, 0);
      assert.equal(r.networkkbsread, 0);
      // The same scoping as listVirtualMachines.
      assert.deepEqual(ok(await bob('listVirtualMachinesMetrics', {}), 'bob'), {});
      assert.equal(
        ok(await admin('listVirtualMachinesMetrics', { listall: true }), 'admin').count,
        ok(await admin('listVirtualMachines', { listall: true }), 'admin vms').count,
      );
      refused(await alice('listVirtualMachinesMetrics', { pagesize: 5 }), 431, /page/, 'pagesize alone');
      ok(await alice('destroyVirtualMachine', { id: vm.id, expunge: true }, job), 'cleanup');
    });

    test("listDiskOfferings: CloudStack's default catalogue", async () => {
      const all = ok(await alice('listDiskOfferings', {}), 'listDiskOfferings');
      assert.deepEqual(
        all.diskoffering.map((o: any) => `${o.name}:${o.disksize}:${o.iscustomized}`),
        ['Small:5:false', 'Medium:20:false', 'Large:100:false', 'Custom:0:true'],
      );
      const small = all.diskoffering[0];
      assert.equal(small.displaytext, 'Small Disk, 5 GB');
      assert.equal(small.storagetype, 'shared');
      assert.equal(
        ok(await alice('listDiskOfferings', { id: small.id }), 'by id').diskoffering[0].name,
        'Small',
      );
      assert.equal(ok(await alice('listDiskOfferings', { keyword: 'custom' }), 'keyword').count, 1);
      assert.equal(
        ok(await alice('listDiskOfferings', { name: 'Large' }), 'name').diskoffering[0].disksize,
        100,
      );
      const page2 = ok(await alice('listDiskOfferings', { page: 2, pagesize: 3 }), 'page 2');
      assert.equal(page2.count, 4);
      assert.deepEqual(
        page2.diskoffering.map((o: any) => o.name),
        ['Custom'],
      );
      assert.deepEqual(ok(await alice('listDiskOfferings', { encrypt: true }), 'encrypting'), {});
      refused(await alice('listDiskOfferings', { id: 'not-a-uuid' }), 431, /id/, 'malformed id');
      refused(await alice('listDiskOfferings', { pagesize: 2 }), 431, /page/, 'pagesize alone');
    });
  });
}

async function rootDomain(admin: CsClient): Promise<string> {
  return ok(await admin('listDomains', { name: 'ROOT' }), 'listDomains').domain[0].id;
}
