/**
 * GET /metrics and the structured request log, on every database, in process (inject): a scrape parses, and the
 * counters move after a successful call, a refused one, a job and an allocation; pool, job-queue and router
 * gauges are read from the database at scrape time; every request is one JSON line with its command, caller,
 * job id, errorcode and duration. STACKNET_METRICS=off (metrics: false) leaves /metrics out.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, testDbKinds } from '../../src/store/testing/test-databases.js';
import type { TestDatabase } from '../../src/store/testing/test-databases.js';
import { buildTestServer, injectClient, zoneWithTwoNetworks } from '../../src/server/testing/test-server.js';
import type { BuiltServer } from '../../src/server/build-server.js';
import { createLogger } from '../../src/logging/logger.js';
import { hasSample, parseExposition, sampleSum } from '../../src/metrics/exposition.js';
import type { Sample } from '../../src/metrics/exposition.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

for (const kind of testDbKinds()) {
  describe(`metrics and request logs (${kind})`, () => {
    let tdb: TestDatabase;
    let s: BuiltServer;
    let dir: string;
    const lines: string[] = [];
    const keys = { url: '', apiKey: 'metrics-key', secretKey: 'metrics-secret' };
    const client = injectClient(() => s, keys);
    const { call, okCall, job } = client;
    let id: Awaited<ReturnType<typeof zoneWithTwoNetworks>>;

    const scrape = async (): Promise<Sample[]> => {
      const r = await s.app.inject({ url: '/metrics' });
      assert.equal(r.statusCode, 200, r.body);
      assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
      return parseExposition(r.body);
    };
    const logged = () => lines.map((l) => JSON.parse(l) as Record<string, any>);

    before(async () => {
      tdb = await createTestDatabase(kind);
      dir = mkdtempSync(join(tmpdir(), 'stacknet-metrics-'));
      s = await buildTestServer({
        dataDir: dir,
        dbUrl: tdb.url,
        keys,
        logger: createLogger({ level: 'info', destination: { write: (l: string) => lines.push(l) } }),
      });
      id = await zoneWithTwoNetworks(client);
    });

    after(async () => {
      await s?.close();
      await tdb?.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    test('API requests by command and errorcode, with latency histograms', async () => {
      const before = await scrape();
      await okCall('listZones');
      const bad = await call('listNetworks', { id: 'not-a-uuid' });
      assert.equal(bad.status, 431);
      const unknown = await call('noSuchCommand');
      assert.equal(unknown.status, 432);
      const m = await scrape();
      const delta = (labels: Record<string, string>) =>
        sampleSum(m, 'stacknet_api_requests_total', labels) -
        sampleSum(before, 'stacknet_api_requests_total', labels);
      assert.equal(delta({ command: 'listZones', errorcode: '0' }), 1);
      assert.equal(delta({ command: 'listNetworks', errorcode: '431' }), 1);
      // Unknown commands share one label value: a client cannot grow the series without bound.
      assert.equal(delta({ command: 'unknown', errorcode: '432' }), 1);
      assert.equal(sampleSum(m, 'stacknet_api_requests_total', { command: 'createZone', errorcode: '0' }), 1);
      assert.ok(sampleSum(m, 'stacknet_api_request_duration_seconds_count', { command: 'listZones' }) >= 1);
      assert.ok(
        hasSample(m, 'stacknet_api_request_duration_seconds_bucket', { command: 'listZones', le: '+Inf' }),
      );
    });

    test('jobs, allocations, pool utilisation and routers move with a deploy', async () => {
      const before = await scrape();
      const r = await job('deployVirtualMachine', {
        serviceofferingid: id.so,
        templateid: id.tpl,
        zoneid: id.zone,
        networkids: id.net,
        name: 'metrics-vm',
      });
      assert.ok(r.ok, JSON.stringify(r.error));
      // The gateway is never handed out: an allocation refused by the address service.
      const refused = await job('deployVirtualMachine', {
        serviceofferingid: id.so,
        templateid: id.tpl,
        zoneid: id.zone,
        networkids: id.net,
        ipaddress: '10.1.1.1',
        name: 'metrics-vm-2',
      });
      assert.equal(refused.ok, false);
      const m = await scrape();
      const d = (name: string, labels: Record<string, string> = {}) =>
        sampleSum(m, name, labels) - sampleSum(before, name, labels);
      assert.equal(d('stacknet_jobs_total', { command: 'deployVirtualMachine', result: 'succeeded' }), 1);
      assert.equal(d('stacknet_jobs_total', { command: 'deployVirtualMachine', result: 'failed' }), 1);
      assert.ok(d('stacknet_job_duration_seconds_count', { command: 'deployVirtualMachine' }) >= 2);
      // Guest address of the VM (and the router's, and the source-NAT public address on first deploy).
      assert.ok(d('stacknet_address_allocations_total', { kind: 'net' }) >= 1);
      assert.ok(d('stacknet_address_allocation_failures_total', { kind: 'net' }) >= 1);
      assert.ok(hasSample(m, 'stacknet_jobs_pending', { state: 'queued' }));
      assert.ok(hasSample(m, 'stacknet_jobs_pending', { state: 'running' }));
      const guest = { pool: 'guest', id: id.net };
      assert.equal(sampleSum(m, 'stacknet_pool_addresses', guest), 253);
      assert.ok(sampleSum(m, 'stacknet_pool_addresses_used', guest) >= 1);
      assert.equal(sampleSum(m, 'stacknet_pool_addresses', { pool: 'guest', id: id.net2 }), 253);
      assert.equal(sampleSum(m, 'stacknet_pool_addresses', { pool: 'public', name: 'vlan://50' }), 21);
      assert.ok(sampleSum(m, 'stacknet_pool_addresses_used', { pool: 'public' }) >= 1);
      assert.ok(hasSample(m, 'stacknet_router_generation_lag'));
      assert.ok(hasSample(m, 'stacknet_routers_degraded'));
    });

    test('every request is one JSON log line with command, caller, job id, errorcode and duration', async () => {
      lines.length = 0;
      const { jobid } = await okCall('deployVirtualMachine', {
        serviceofferingid: id.so,
        templateid: id.tpl,
        zoneid: id.zone,
        networkids: id.net2,
        name: 'logged-vm',
      });
      await call('listNetworks', { id: 'not-a-uuid' });
      for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
        if (logged().some((l) => l.msg === 'job finished' && l.jobid === jobid)) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const all = logged();
      const deploy = all.filter((l) => l.msg === 'api request' && l.command === 'deployVirtualMachine');
      assert.equal(deploy.length, 1, JSON.stringify(all));
      const line = deploy[0]!;
      assert.equal(line.jobid, jobid);
      assert.equal(line.errorcode, 0);
      assert.equal(line.account, 'admin');
      assert.equal(line.user, 'admin');
      assert.equal(line.level, 'info');
      assert.equal(typeof line.durationMs, 'number');
      assert.match(line.time, /^\d{4}-\d\d-\d\dT/);
      const refused = all.find((l) => l.command === 'listNetworks');
      assert.equal(refused?.errorcode, 431);
      assert.match(refused?.errortext, /not-a-uuid|id/);
      const done = all.find((l) => l.msg === 'job finished' && l.jobid === jobid);
      assert.equal(done?.command, 'deployVirtualMachine');
      assert.equal(done?.result, 'succeeded');
      assert.equal(typeof done?.durationMs, 'number');
    });
  });
}

test('STACKNET_METRICS=off: no /metrics', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'stacknet-metrics-off-'));
  const s = await buildTestServer({
    dataDir: dir,
    dbUrl: `sqlite:${join(dir, 'db.sqlite')}`,
    keys: { apiKey: 'k', secretKey: 's' },
    metrics: false,
  });
  try {
    assert.equal((await s.app.inject({ url: '/metrics' })).statusCode, 404);
    assert.equal(s.metrics, undefined);
  } finally {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
