/**
 * The doctor's run time on a big network: an in-process server on the SIMULATOR driver (the database part, the
 * desired-state build and the router inspection over files; no dnsmasq, DNS or nftables probes, which the
 * simulator SKIPs), one isolated /22 network with N VMs (default 1,000), then diagnoseVirtualMachine on a few
 * VMs and diagnoseNetwork, each timed through the HTTP layer (inject). One JSON object per line.
 *   npm run bench:doctor -- [--vms 1000] [--db-url postgres://...] [--runs 5]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildTestServer, injectClient, zoneWithTwoNetworks } from '../src/server/testing/test-server.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1]! : dflt;
}

const vmCount = Number(arg('--vms', '1000'));
const runs = Number(arg('--runs', '5'));
const dir = mkdtempSync(join(tmpdir(), 'stacknet-bench-doctor-'));
const dbUrl = arg('--db-url', `sqlite:${join(dir, 'bench.db')}`);
const keys = { apiKey: 'bench-doctor-key', secretKey: 'bench-doctor-secret' };
const server = await buildTestServer({ dataDir: dir, dbUrl, keys, poolSize: 8 });
const client = injectClient(() => server, keys);

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const r = (v: number) => Math.round(v * 10) / 10;
  return { median: r(s[Math.floor(s.length / 2)]!), max: r(s.at(-1)!) };
};

try {
  const id = await zoneWithTwoNetworks(client);
  const net: string = (
    await client.okCall('createNetwork', {
      zoneid: id.zone,
      name: 'big',
      displaytext: 'big',
      networkofferingid: id.off,
      gateway: '10.50.0.1',
      netmask: '255.255.252.0',
    })
  ).network.id;
  const t0 = performance.now();
  const ids: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < vmCount) {
        const i = next++;
        const r = await client.job(
          'deployVirtualMachine',
          { serviceofferingid: id.so, templateid: id.tpl, zoneid: id.zone, networkids: net, name: `vm${i}` },
          120_000,
        );
        if (!r.ok) throw new Error(`deploy vm${i}: ${JSON.stringify(r.error)}`);
        ids.push(r.result.virtualmachine.id);
      }
    }),
  );
  const setup = Math.round((performance.now() - t0) / 100) / 10;
  const db = dbUrl.split(':')[0];
  const timed = async (command: string, params: Record<string, string>) => {
    const t = performance.now();
    const d = (await client.okCall(command, params)).diagnosis;
    if (!d.healthy) throw new Error(`${command}: ${JSON.stringify(d.steps)}`);
    return { ms: performance.now() - t, inner: d.durationms as number };
  };
  const vmRuns = [];
  for (let i = 0; i < runs; i++)
    vmRuns.push(await timed('diagnoseVirtualMachine', { id: ids[(i * 197) % ids.length]! }));
  const netRuns = [];
  for (let i = 0; i < runs; i++) netRuns.push(await timed('diagnoseNetwork', { id: net }));
  for (const [command, rs] of [
    ['diagnoseVirtualMachine', vmRuns],
    ['diagnoseNetwork', netRuns],
  ] as const)
    console.log(
      JSON.stringify({
        bench: 'doctor',
        command,
        driver: 'simulator',
        db,
        vms: vmCount,
        runs,
        setupSeconds: setup,
        requestMs: stats(rs.map((r) => r.ms)),
        doctorMs: stats(rs.map((r) => r.inner)),
      }),
    );
} finally {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
}
