/**
 * An in-process server for a test file: no port of its own (requests go through `app.inject()`), the simulator
 * driver, the file's own admin API keys, a 50 ms job poll and a small pool. A test passes only what is its own.
 */
import assert from 'node:assert/strict';
import { buildServer } from '../build-server.js';
import { signedQuery } from '../../api/client.js';
import type { BuiltServer, ServerConfig } from '../build-server.js';
import { JOB_PENDING } from '../../api/jobs/repository.js';
import { finishedJobs } from '../../api/jobs/finished.js';
import { nowMs } from '../../store/db.js';

export function buildTestServer(
  o: Pick<ServerConfig, 'dataDir' | 'dbUrl'> &
    Partial<ServerConfig> & { keys: { apiKey: string; secretKey: string } },
): Promise<BuiltServer> {
  const { keys, ...config } = o;
  return buildServer({
    port: 0,
    host: '127.0.0.1',
    driver: 'simulator',
    jobPollMs: 50,
    poolSize: 4,
    adminApiKey: keys.apiKey,
    adminSecretKey: keys.secretKey,
    ...config,
  });
}

/**
 * Signed API calls to an in-process server through `inject()`: `call` answers status and the body under the
 * response's one key, `okCall` asserts 200, `job` runs an async command to its end (`{ok, result}` or `{ok:
 * false, error}`, the jobresult). `server` is a getter because test files build their server in `before()`.
 */
export function injectClient(server: () => BuiltServer, keys: { apiKey: string; secretKey: string }) {
  const call = async (command: string, params: Record<string, string> = {}) => {
    const r = await server().app.inject({
      method: 'GET',
      url: `/client/api?${signedQuery({ url: '', ...keys }, command, params)}`,
    });
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- answers are read loosely, as JSON
    return { status: r.statusCode, body: Object.values(r.json() as Record<string, unknown>)[0] as any };
  };
  const okCall = async (command: string, params: Record<string, string> = {}) => {
    const r = await call(command, params);
    assert.equal(r.status, 200, `${command}: ${JSON.stringify(r.body)}`);
    return r.body;
  };
  const job = async (command: string, params: Record<string, string> = {}, timeoutMs = 30_000) => {
    const { jobid } = await okCall(command, params);
    for (const deadline = Date.now() + timeoutMs; Date.now() < deadline;) {
      const q = await okCall('queryAsyncJobResult', { jobid });
      if (q.jobstatus !== 0)
        return q.jobstatus === 1 ? { ok: true, result: q.jobresult } : { ok: false, error: q.jobresult };
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`${command}: job ${jobid} not done in ${timeoutMs} ms`);
  };
  return { call, okCall, job };
}

/**
 * A zone ready for VMs through the API: a VLAN physical network (100-110) with Guest and Public traffic, the
 * public range 203.0.113.10-30 on VLAN 50, and two isolated networks, n1 (10.1.1.0/24) and n2 (10.2.2.0/24);
 * `so` and `tpl` are the built-in service offering and template a deploy names. `o`: a VXLAN physical network
 * instead (its VNI range `vnets`), and the Guest traffic's KVM network label.
 */
export async function zoneWithTwoNetworks(
  client: ReturnType<typeof injectClient>,
  o: { isolation?: 'VLAN' | 'VXLAN'; vnets?: string; kvmLabel?: string } = {},
) {
  const { okCall } = client;
  const okJob = async (command: string, params: Record<string, string>) => {
    const r = await client.job(command, params);
    assert.ok(r.ok, `${command}: ${JSON.stringify(r.error)}`);
    return r.result;
  };
  const zone: string = (
    await okCall('createZone', {
      name: 'z',
      networktype: 'Advanced',
      dns1: '192.0.2.53',
      internaldns1: '192.0.2.53',
    })
  ).zone.id;
  const pn: string = (
    await okJob('createPhysicalNetwork', {
      zoneid: zone,
      name: 'pn',
      isolationmethods: o.isolation ?? 'VLAN',
      vlan: o.vnets ?? '100-110',
    })
  ).physicalnetwork.id;
  for (const t of ['Guest', 'Public'])
    await okJob('addTrafficType', {
      physicalnetworkid: pn,
      traffictype: t,
      ...(t === 'Guest' && o.kvmLabel ? { kvmnetworklabel: o.kvmLabel } : {}),
    });
  await okJob('updatePhysicalNetwork', { id: pn, state: 'Enabled' });
  await okCall('createVlanIpRange', {
    zoneid: zone,
    vlan: '50',
    gateway: '203.0.113.1',
    netmask: '255.255.255.0',
    startip: '203.0.113.10',
    endip: '203.0.113.30',
    forvirtualnetwork: 'true',
  });
  const off: string = (
    await okCall('listNetworkOfferings', { name: 'DefaultIsolatedNetworkOfferingWithSourceNatService' })
  ).networkoffering[0].id;
  const network = async (name: string, gateway: string): Promise<string> =>
    (
      await okCall('createNetwork', {
        zoneid: zone,
        name,
        displaytext: name,
        networkofferingid: off,
        gateway,
        netmask: '255.255.255.0',
      })
    ).network.id;
  // deployVirtualMachine needs both, as CloudStack: the built-in "Small Instance" and template.
  const so: string = (await okCall('listServiceOfferings', { name: 'Small Instance' })).serviceoffering[0].id;
  const tpl: string = (await okCall('listTemplates', { templatefilter: 'featured' })).template[0].id;
  return {
    zone,
    pn,
    off,
    so,
    tpl,
    net: await network('n1', '10.1.1.1'),
    net2: await network('n2', '10.2.2.1'),
  };
}

/**
 * A job as a kill -9 after its commit leaves it: pending (or `status`), held by a server that is gone, run once;
 * the runner takes it over as it would after the lease lapsed.
 */
export async function rewindJob(
  server: BuiltServer,
  jobid: string,
  status: number = JOB_PENDING,
): Promise<void> {
  await server.store.db
    .updateTable('async_jobs')
    .set({
      status,
      result: null,
      result_code: 0,
      completed: null,
      lease_owner: 'a-server-killed-mid-job',
      lease_until: nowMs() - 1000,
      attempts: 1,
    })
    .where('uuid', '=', jobid)
    .execute();
  // A killed server's memory goes with it: this one must not answer the job as it finished (finished.ts).
  finishedJobs(server.store).forget(jobid);
}
