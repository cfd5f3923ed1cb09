/**
 * runDiagnostics and getDiagnosticsData through the HTTP layer (inject) on the simulator driver, on every
 * database: root admin only, every refusal of a bad request (type, address, params, files, target), a stopped
 * router, the simulator's own answer, and the archive download route with its expiry. Running the tools in a
 * real router: test/e2e/diagnostics-netns.test.ts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, testDbKinds } from '../store/testing/test-databases.js';
import type { TestDatabase } from '../store/testing/test-databases.js';
import { buildTestServer, injectClient, zoneWithTwoNetworks } from '../server/testing/test-server.js';
import type { BuiltServer } from '../server/build-server.js';
import { keepArchive } from './archives.js';

for (const kind of testDbKinds()) {
  describe(`runDiagnostics and getDiagnosticsData on the simulator (${kind})`, () => {
    let tdb: TestDatabase;
    let s: BuiltServer;
    let dir: string;
    const keys = { url: '', apiKey: 'diag-key', secretKey: 'diag-secret' };
    const client = injectClient(() => s, keys);
    const { call, okCall, job } = client;
    let router = '';

    /** An async command refused: the job's errorcode and text. */
    const refused = async (command: string, params: Record<string, string>, code: number, text: RegExp) => {
      const r = await job(command, params);
      assert.ok(!r.ok, `${command} ${JSON.stringify(params)} should be refused: ${JSON.stringify(r.result)}`);
      assert.equal(r.error.errorcode, code, JSON.stringify(r.error));
      assert.match(r.error.errortext, text);
    };

    before(async () => {
      tdb = await createTestDatabase(kind);
      dir = mkdtempSync(join(tmpdir(), 'stacknet-diag-'));
      s = await buildTestServer({ dataDir: dir, dbUrl: tdb.url, keys });
      const id = await zoneWithTwoNetworks(client);
      const vm = await job('deployVirtualMachine', {
        serviceofferingid: id.so,
        templateid: id.tpl,
        zoneid: id.zone,
        networkids: id.net,
        name: 'vm1',
      });
      assert.ok(vm.ok, JSON.stringify(vm.error));
      router = (await okCall('listRouters', { networkid: id.net })).router[0].id;
    });

    after(async () => {
      await s?.close();
      await tdb?.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    test('only the root admin has the commands: a domain admin and a user get 432', async () => {
      const domain = (await okCall('listDomains', {})).domain[0].id;
      for (const [name, accounttype] of [
        ['diaguser', '0'],
        ['diagdomadmin', '2'],
      ] as const) {
        const a = await okCall('createAccount', {
          username: name,
          password: `${name}-pw`,
          email: `${name}@example.org`,
          firstname: name,
          lastname: 'test',
          accounttype,
          domainid: domain,
        });
        const k = (await okCall('registerUserKeys', { id: a.account.user[0].id })).userkeys;
        const other = injectClient(() => s, { apiKey: k.apikey, secretKey: k.secretkey });
        for (const [command, params] of [
          ['runDiagnostics', { targetid: router, type: 'ping', ipaddress: '10.1.1.1' }],
          ['getDiagnosticsData', { targetid: router }],
        ] as const) {
          const r = await other.call(command, params);
          assert.equal(r.status, 432, `${name} ${command}: ${JSON.stringify(r.body)}`);
        }
      }
    });

    test('runDiagnostics refuses a bad type, address or params with 431 naming the parameter', async () => {
      const base = { targetid: router, type: 'ping', ipaddress: '10.1.1.10' };
      await refused('runDiagnostics', { ...base, type: 'nslookup' }, 431, /type.*not a valid diagnostics/i);
      await refused('runDiagnostics', { ...base, ipaddress: '10.1.1.300' }, 431, /ipaddress.*IPv4/);
      await refused('runDiagnostics', { ...base, ipaddress: 'example.com' }, 431, /ipaddress/);
      await refused('runDiagnostics', { ...base, ipaddress: '10.1.1.10; reboot' }, 431, /ipaddress/);
      for (const params of [
        '-c 1; reboot',
        '$(reboot)',
        '`id`',
        '-c 1 | nc x 1',
        '-I ../../etc',
        'a&&b',
        '-p=1',
      ])
        await refused('runDiagnostics', { ...base, params }, 431, /params.*unwanted characters/);
      await refused(
        'runDiagnostics',
        { ...base, type: 'arping', ipaddress: 'fd00::10' },
        431,
        /arping works on IPv4 only/,
      );
      await refused(
        'runDiagnostics',
        { ...base, targetid: '5f0b7c8e-0000-4000-8000-000000000000' },
        431,
        /Unable to find a system vm/,
      );
      const r = await call('runDiagnostics', { targetid: router, type: 'ping' });
      assert.equal(r.status, 431, 'ipaddress is required');
    });

    test('getDiagnosticsData refuses files outside the router state directory with 431', async () => {
      for (const files of ['/etc/passwd', '../secret', 'data/../../x', 'dnsmasq.conf,/etc/shadow'])
        await refused(
          'getDiagnosticsData',
          { targetid: router, files },
          431,
          /files.*only files under the router's own state directory/,
        );
    });

    test('on the simulator both commands say they need a real router', async () => {
      const text = /is not supported on a simulated router: r-\d+-VM runs on the simulator driver/;
      await refused('runDiagnostics', { targetid: router, type: 'ping', ipaddress: '10.1.1.1' }, 530, text);
      await refused('getDiagnosticsData', { targetid: router, files: 'dnsmasq.conf' }, 530, text);
    });

    test('a router that is not Running: CloudStack\'s "Unable to find host"', async () => {
      const stop = await job('stopRouter', { id: router });
      assert.ok(stop.ok, JSON.stringify(stop.error));
      await refused(
        'runDiagnostics',
        { targetid: router, type: 'ping', ipaddress: '10.1.1.1' },
        530,
        /Unable to find host for virtual machine instance: r-\d+-VM \(the router is Stopped/,
      );
      await refused('getDiagnosticsData', { targetid: router }, 530, /Unable to find host/);
      assert.ok((await job('startRouter', { id: router })).ok);
    });

    test('archives: the URL follows endpoint.url, downloads until max.file.age, then 404 and removed', async () => {
      await okCall('updateConfiguration', {
        name: 'endpoint.url',
        value: 'http://mgmt.example:8080/client/api',
      });
      const url = await keepArchive(s.store, Buffer.from('not really a tarball'), Date.now());
      const m = /^http:\/\/mgmt\.example:8080\/client\/diagnostics\/([0-9a-f]{48}\.tar\.gz)$/.exec(url);
      assert.ok(m, url);
      const file = join(dir, 'diagnostics', m[1]!);
      const got = await s.app.inject({ url: `/client/diagnostics/${m[1]}` });
      assert.equal(got.statusCode, 200);
      assert.equal(got.headers['content-type'], 'application/gzip');
      assert.equal(got.body, 'not really a tarball');
      for (const bad of ['nothing.tar.gz', `${'0'.repeat(48)}.tar.gz`, '..%2Fserver.key'])
        assert.equal((await s.app.inject({ url: `/client/diagnostics/${bad}` })).statusCode, 404, bad);
      // Older than diagnostics.data.max.file.age (default one day): gone.
      const old = (Date.now() - 86_401_000) / 1000;
      utimesSync(file, old, old);
      assert.equal((await s.app.inject({ url: `/client/diagnostics/${m[1]}` })).statusCode, 404);
      assert.equal(existsSync(file), false, 'the expired archive is removed');
      // A shorter age applies at once; making the next archive sweeps the expired ones.
      await okCall('updateConfiguration', { name: 'diagnostics.data.max.file.age', value: '60' });
      const stale = join(dir, 'diagnostics', `${'a'.repeat(48)}.tar.gz`);
      mkdirSync(join(dir, 'diagnostics'), { recursive: true });
      writeFileSync(stale, 'x');
      const minuteAgo = (Date.now() - 61_000) / 1000;
      utimesSync(stale, minuteAgo, minuteAgo);
      await keepArchive(s.store, Buffer.from('y'), Date.now());
      assert.equal(existsSync(stale), false, 'swept when the next archive is made');
      await okCall('resetConfiguration', { name: 'diagnostics.data.max.file.age' });
    });

    test('the settings are in the catalogue with CloudStack names and defaults', async () => {
      const r = await okCall('listConfigurations', { keyword: 'diagnostics.data' });
      const byName = Object.fromEntries(
        (r.configuration as { name: string; value: string }[]).map((c) => [c.name, c.value]),
      );
      assert.equal(byName['diagnostics.data.retrieval.timeout'], '1800');
      assert.equal(byName['diagnostics.data.max.file.age'], '86400');
    });
  });
}
