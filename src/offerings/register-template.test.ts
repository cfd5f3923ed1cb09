/**
 * registerTemplate through the HTTP layer (inject), SQLite: a KVM template whose URL the hosts read is stored with
 * its URL and checksum, listed, and a VM deployed from it gets its password (passwordenabled); bad input is a 431
 * naming the parameter and stores nothing.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase } from '../store/testing/test-databases.js';
import type { TestDatabase } from '../store/testing/test-databases.js';
import { buildTestServer, injectClient, zoneWithTwoNetworks } from '../server/testing/test-server.js';
import type { BuiltServer } from '../server/build-server.js';

describe('registerTemplate', () => {
  let tdb: TestDatabase;
  let s: BuiltServer;
  let dir: string;
  const keys = { url: '', apiKey: 'tpl-key', secretKey: 'tpl-secret' };
  const client = injectClient(() => s, keys);
  const { call, okCall, job } = client;
  let zone = '';
  let net = '';
  const good = {
    name: 'tiny',
    displaytext: 'tiny kernel + initrd',
    url: 'file:///var/cache/stacknet/test-template/x',
    format: 'TAR',
    hypervisor: 'KVM',
    checksum: `{SHA-256}${'ab'.repeat(32)}`,
    passwordenabled: 'true',
  };
  const templates = async () => (await s.store.db.selectFrom('templates').selectAll().execute()).length;

  before(async () => {
    tdb = await createTestDatabase('sqlite');
    dir = mkdtempSync(join(tmpdir(), 'stacknet-tpl-'));
    s = await buildTestServer({ dataDir: dir, dbUrl: tdb.url, keys });
    ({ zone, net } = await zoneWithTwoNetworks(client));
  });

  after(async () => {
    await s?.close();
    await tdb?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('refuses what a host could not boot, with a 431 naming the parameter, and stores nothing', async () => {
    const before = await templates();
    for (const [param, value] of [
      ['hypervisor', 'VMware'],
      ['format', 'VHD'],
      ['url', 'ftp://example.org/x.qcow2'],
      ['checksum', 'not-hex'],
      ['ostypeid', '00000000-0000-4000-8000-000000000000'],
      ['zoneid', '00000000-0000-4000-8000-000000000000'],
    ] as const) {
      const r = await call('registerTemplate', { ...good, [param]: value });
      assert.equal(r.status, 431, `${param}=${value}: ${JSON.stringify(r.body)}`);
      assert.match(r.body.errortext, new RegExp(`parameter ${param}`), r.body.errortext);
    }
    assert.equal(await templates(), before);
  });

  test('a registered template is listed with its URL kept, and a VM from it gets a password', async () => {
    const t = (await okCall('registerTemplate', { ...good, zoneid: zone })).template[0];
    assert.equal(t.name, 'tiny');
    assert.equal(t.format, 'TAR');
    assert.equal(t.hypervisor, 'KVM');
    assert.equal(t.passwordenabled, true);
    assert.equal(t.zoneid, zone);
    const row = await s.store.db
      .selectFrom('templates')
      .select(['url', 'checksum'])
      .where('uuid', '=', t.id)
      .executeTakeFirstOrThrow();
    assert.deepEqual(row, { url: good.url, checksum: good.checksum });
    const listed = (await okCall('listTemplates', { templatefilter: 'all', id: t.id })).template;
    assert.equal(listed.length, 1);
    const so = (await okCall('listServiceOfferings', { name: 'Small Instance' })).serviceoffering[0].id;
    const vm = await job('deployVirtualMachine', {
      zoneid: zone,
      serviceofferingid: so,
      templateid: t.id,
      networkids: net,
    });
    assert.ok(vm.ok, JSON.stringify(vm.error));
    assert.equal(vm.result.virtualmachine.templateid, t.id);
    assert.ok(vm.result.virtualmachine.password);
  });
});
