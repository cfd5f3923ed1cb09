/**
 * End to end on the netns driver (root): time from deployVirtualMachine being called to the guest holding its
 * address over real DHCP (the moment our udhcpc hook recorded the lease), for 1 VM alone and bursts of 50 and 200
 * deployed concurrently into a fresh network each. Spawns `stacknet server --driver netns` on SQLite in a temp
 * dir, drives it through the signed API, cleans up with `stacknet netns cleanup`. One JSON line per case.
 *   npm run bench:e2e -- [--bursts 1,50,200] [--db-url postgres://...] [--no-build]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { callApi, waitForJob } from '../src/api/client.js';
import type { ClientOptions } from '../src/api/client.js';
import { readLease } from '../src/netns/index.js';
import { startServer } from '../test/api/harness.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1]! : dflt;
}

const bursts = arg('--bursts', '1,50,200').split(',').map(Number);
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(s.length * p))]! : 0;
};

async function api(o: ClientOptions, command: string, params: Record<string, string> = {}) {
  const r = await callApi(o, command, params);
  if (r.status !== 200) throw new Error(`${command}: HTTP ${r.status} ${r.text}`);
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return r.body as any;
}

async function job(o: ClientOptions, command: string, params: Record<string, string>) {
  const r = await api(o, command, params);
  const j = await waitForJob(o, r.jobid, { intervalMs: 50 });
  if (j.jobstatus !== 1) throw new Error(`${command}: ${JSON.stringify(j.jobresult)}`);
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return j.jobresult as any;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench:e2e needs root (the netns driver)');
  if (!process.argv.includes('--no-build')) spawnSync('npm', ['run', 'build'], { stdio: 'inherit' });
  const prefix = `sn-${randomBytes(3).toString('hex')}-`;
  const dataDir = mkdtempSync(join(tmpdir(), 'stacknet-bench-e2e-'));
  const dbUrl = arg('--db-url', `sqlite:${join(dataDir, 'stacknet.db')}`);
  const server = await startServer(dbUrl, {
    STACKNET_DRIVER: 'netns',
    STACKNET_DATA_DIR: dataDir,
    STACKNET_NETNS_PREFIX: prefix,
    ...(process.env.STACKNET_TRACE_VMS ? { STACKNET_TRACE_VMS: '1' } : {}),
    STACKNET_CONTROL_CIDR: `169.254.${10 + (randomBytes(1)[0]! % 240)}.0/24`,
  });
  const o: ClientOptions = { url: server.url, apiKey: server.apiKey, secretKey: server.secretKey };
  try {
    const zone = (
      await api(o, 'createZone', {
        name: 'bench',
        networktype: 'Advanced',
        dns1: '192.0.2.53',
        internaldns1: '192.0.2.53',
      })
    ).zone;
    const pn = (
      await job(o, 'createPhysicalNetwork', {
        zoneid: zone.id,
        name: 'pn',
        isolationmethods: 'VLAN',
        vlan: '100-999',
      })
    ).physicalnetwork;
    for (const t of ['Guest', 'Public'])
      await job(o, 'addTrafficType', { physicalnetworkid: pn.id, traffictype: t });
    await job(o, 'updatePhysicalNetwork', { id: pn.id, state: 'Enabled' });
    await api(o, 'createVlanIpRange', {
      zoneid: zone.id,
      vlan: '50',
      gateway: '203.0.113.1',
      netmask: '255.255.255.0',
      startip: '203.0.113.10',
      endip: '203.0.113.200',
      forvirtualnetwork: 'true',
    });
    const off = (
      await api(o, 'listNetworkOfferings', { name: 'DefaultIsolatedNetworkOfferingWithSourceNatService' })
    ).networkoffering[0];
    const so = (await api(o, 'listServiceOfferings', { name: 'Small Instance' })).serviceoffering[0].id;
    const tpl = (await api(o, 'listTemplates', { templatefilter: 'featured' })).template[0].id;
    for (const [k, n] of bursts.entries()) {
      const net = (
        await api(o, 'createNetwork', {
          zoneid: zone.id,
          name: `b${n}`,
          displaytext: `b${n}`,
          networkofferingid: off.id,
          gateway: `10.${10 + k}.0.1`,
          netmask: '255.255.252.0',
        })
      ).network;
      // Implement the network and start its router first: the figure is per VM, not the router's boot.
      const warm = await job(o, 'deployVirtualMachine', {
        serviceofferingid: so,
        templateid: tpl,
        zoneid: zone.id,
        networkids: net.id,
        name: `w${k}`,
      });
      void warm;
      const t0 = new Map<number, number>();
      const started = Date.now();
      const jobs = await Promise.all(
        Array.from({ length: n }, async (_, i) => {
          t0.set(i, Date.now());
          const r = await api(o, 'deployVirtualMachine', {
            serviceofferingid: so,
            templateid: tpl,
            zoneid: zone.id,
            networkids: net.id,
            name: `v${k}x${i}`,
          });
          return { i, jobid: r.jobid as string };
        }),
      );
      const lastReturned = Date.now();
      const lat: number[] = [];
      await Promise.all(
        jobs.map(async ({ i, jobid }) => {
          const j = await waitForJob(o, jobid, { intervalMs: 100, timeoutMs: 300_000 });
          // eslint-disable-next-line @typescript-eslint/no-explicit-any
          const vm = (j.jobresult as any).virtualmachine;
          const ns = `${prefix}${vm.instancename}`;
          for (;;) {
            const l = await readLease(ns, 'eth0');
            if (l && l.ip === vm.nic[0].ipaddress) {
              lat.push(l.at - t0.get(i)!);
              return;
            }
            if (Date.now() - started > 300_000)
              throw new Error(`${vm.name} never held ${vm.nic[0].ipaddress}`);
            await new Promise((r) => setTimeout(r, 100));
          }
        }),
      );
      console.log(
        JSON.stringify({
          bench: 'e2e deploy→DHCP',
          burst: n,
          medianMs: pct(lat, 0.5),
          p99Ms: pct(lat, 0.99),
          maxMs: Math.max(...lat),
          callsReturnedMs: lastReturned - started,
          allHeldMs: Date.now() - started,
        }),
      );
    }
  } finally {
    if (process.env.STACKNET_TRACE_VMS)
      console.error(
        server
          .output()
          .split('\n')
          .filter((l) => l.includes('[trace]'))
          .join('\n'),
      );
    await server.stop();
    execFileSync(process.execPath, ['bin/stacknet.js', 'netns', 'cleanup', '--data-dir', dataDir], {
      stdio: 'ignore',
    });
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
