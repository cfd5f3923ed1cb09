/**
 * End to end: time from deployVirtualMachine being called to the guest holding its address, for 1 VM alone and
 * bursts deployed concurrently into a fresh network each. Spawns `stacknet server` on a fresh database, drives
 * it through the signed API, cleans up (`stacknet netns cleanup`, the database dropped). One JSON line per case.
 *
 * - netns driver (root): "holds its address" is the moment our udhcpc hook recorded the lease on the address
 *   the database gave the VM (checked against listVirtualMachines and the job's result).
 * - simulator driver (`--driver simulator`): there is no guest, so it is the moment the deploy job finished.
 * - hosts driver (`--driver hosts`, root; bursts 1,6 by default): libvirt VMs on three host agents, the moment
 *   the guest's console shows its lease, beside the guest's own boot time (bench/e2e-hosts.ts).
 *
 * The server runs with STACKNET_TRACE_VMS=1 and each line carries every stage's median and share of the
 * per-VM time (`stages`), the reconciler's passes (`passes`) and the driver's VM-start phases (`driver`), see
 * docs/benchmarks.md "Deploy bursts". The load average (/proc/loadavg) before and after goes with each line, and
 * (root, cgroup v1 cpuacct) the CPU time the burst cost (`cpu`): everything the bench, the server and what they
 * started ran, the server's share, the bench's own, and by command for the processes alive at the end.
 *   npm run bench:e2e -- [--bursts 1,50,200] [--driver netns|simulator|hosts] [--db sqlite|postgres|mysql]
 *                        [--server-root DIR] [--label TEXT] [--no-build]
 * `--server-root` runs another checkout's built server (A/B against a baseline); `--label` tags the lines.
 * `last` is the last guest's own stamps after the burst's first call (call, answer, job, commit, routers, driver,
 * udhcpc, lease); `BENCH_E2E_DUMP=<path>` writes every VM's stamps and the server's trace to `<path>-<burst>.json`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { waitForJob } from '../src/api/client.js';
import type { ClientOptions } from '../src/api/client.js';
import { leaseStatePath, readLease } from '../src/netns/index.js';
import { createEmptyTestDatabase } from '../src/store/testing/test-databases.js';
import type { TestDatabase } from '../src/store/testing/test-databases.js';
import type { DbKind } from '../src/store/db.js';
import { benchApi, benchJob, loadavg, sleep } from './common.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1]! : dflt;
}

const driver = arg('--driver', 'netns');
const bursts = arg('--bursts', driver === 'hosts' ? '1,6' : '1,50,200')
  .split(',')
  .map(Number);
const dbKind = arg('--db', 'sqlite') as DbKind;
const serverRoot = resolve(arg('--server-root', '.'));
const label = arg('--label', '');
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(s.length * p))]! : 0;
};

interface ListedVm {
  name: string;
  instancename: string;
  state: string;
  nic: { ipaddress: string }[];
}

/** The VM namespaces the netns driver made so far under this prefix (`<prefix>i-<account>-<id>-VM`). */
function vmNamespaces(prefix: string): string[] {
  try {
    return readdirSync('/run/netns').filter(
      (ns) => ns.startsWith(prefix) && /^i-\d+-\d+-VM$/.test(ns.slice(prefix.length)),
    );
  } catch {
    return [];
  }
}

/** Every VM of the network, one page of 500 at a time. */
async function listVms(o: ClientOptions, networkid: string): Promise<ListedVm[]> {
  const out: ListedVm[] = [];
  for (let page = 1; ; page++) {
    const r = await benchApi(o, 'listVirtualMachines', {
      networkid,
      listall: 'true',
      page: String(page),
      pagesize: '500',
    });
    const vms = (r.listvirtualmachinesresponse ?? r).virtualmachine ?? [];
    out.push(...(vms as ListedVm[]));
    if (vms.length < 500) return out;
  }
}

/**
 * CPU time, not only wall time: on a machine others share, wall time moves with their load, CPU time much less.
 * The bench moves itself into a cgroup of its own (v1 cpuacct, root) before it starts the server, so everything
 * the burst runs is counted (the server, the router agent and its dnsmasq, `ip`, `nft`, the detached guests and
 * their hooks), then reads the group, the server's own /proc stat and its own usage around each burst.
 */
const CPUACCT = '/sys/fs/cgroup/cpuacct';
const cpuGroup = existsSync(`${CPUACCT}/cgroup.procs`)
  ? `${CPUACCT}/stacknet-bench-${process.pid}`
  : undefined;
function joinCpuGroup(): void {
  if (!cpuGroup) return;
  try {
    mkdirSync(cpuGroup);
    writeFileSync(`${cpuGroup}/cgroup.procs`, String(process.pid));
  } catch {
    /* no cgroup: the line carries no cpu figures */
  }
}
function leaveCpuGroup(): void {
  if (!cpuGroup) return;
  try {
    writeFileSync(`${CPUACCT}/cgroup.procs`, String(process.pid));
    rmdirSync(cpuGroup);
  } catch {
    /* a process left behind keeps the group: it goes when that process does (rmdir by hand) */
  }
}
const clkTck = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();
/**
 * Per process of the group now: its command, and its own and its waited-for children's CPU ms (the server's
 * `ip`, `nft` and start shells; a guest's hooks and their `ip`; the router agent's checks).
 */
function cpuByPid(): Map<number, { comm: string; self: number; children: number }> {
  const out = new Map<number, { comm: string; self: number; children: number }>();
  let pids: string[];
  try {
    pids = readFileSync(`${cpuGroup}/cgroup.procs`, 'utf8').split('\n').filter(Boolean);
  } catch {
    return out;
  }
  for (const pid of pids) {
    try {
      const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const comm = st.slice(st.indexOf('(') + 1, st.lastIndexOf(')'));
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      const ms = (a: number, b: number) => ((Number(f[a]) + Number(f[b])) * 1000) / clkTck;
      out.set(Number(pid), { comm, self: ms(11, 12), children: ms(13, 14) });
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

/** What each command's processes (and their waited-for children) used between two cpuByPid snapshots, in ms. */
function cpuByComm(
  a: ReturnType<typeof cpuByPid>,
  b: ReturnType<typeof cpuByPid>,
  /** Names for some pids instead of their command (the server, the bench). */
  names: Map<number, string>,
): Record<string, { selfMs: number; childrenMs: number; n: number }> {
  const out: Record<string, { selfMs: number; childrenMs: number; n: number }> = {};
  for (const [pid, x] of b) {
    const was = a.get(pid);
    const o = (out[names.get(pid) ?? x.comm] ??= { selfMs: 0, childrenMs: 0, n: 0 });
    o.selfMs += Math.round(x.self - (was?.self ?? 0));
    o.childrenMs += Math.round(x.children - (was?.children ?? 0));
    o.n++;
  }
  return out;
}

/** ms of CPU so far: the whole group, the server process, this bench. */
function cpuNow(serverPid: number): { group?: number; server?: number; bench: number } {
  const u = process.cpuUsage();
  const out: { group?: number; server?: number; bench: number } = { bench: (u.user + u.system) / 1000 };
  try {
    out.group = Number(readFileSync(`${cpuGroup}/cpuacct.usage`, 'utf8')) / 1e6;
  } catch {
    /* none */
  }
  try {
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    const f = readFileSync(`/proc/${serverPid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    out.server = ((Number(f[11]) + Number(f[12])) * 1000) / clkTck;
  } catch {
    /* gone */
  }
  return out;
}

type Trace = Record<string, number | string | boolean>;

/** linked → plugged of each batch of the driver's VM starts (its VMs share the stamps), in plugging order. */
function batchRules(drv: Trace[]): number[] {
  const seen = new Map<string, number>();
  for (const t of drv)
    if (Number(t.batch) > 1) seen.set(`${t.linked} ${t.plugged}`, Number(t.plugged) - Number(t.linked));
  return [...seen.keys()]
    .sort((a, b) => Number(a.split(' ')[0]) - Number(b.split(' ')[0]))
    .map((k) => seen.get(k)!);
}

/** The server's `[trace] {json}` lines (src/vms/trace.ts) in this slice of its output. */
function traces(text: string): Trace[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('[trace] {'))
    .map((l) => JSON.parse(l.slice('[trace] '.length)) as Trace);
}

/** udhcpc's start (its first deconfig) from the hook's history next to the lease. */
function udhcpcStarted(ns: string): number | undefined {
  try {
    const line = readFileSync(`${leaseStatePath(ns, 'eth0')}.log`, 'utf8')
      .split('\n')
      .find((l) => l.includes(' deconfig '));
    return line ? Number(line.split(' ')[0]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Per VM the stages between consecutive stamps, which add up to its call → address time: `api` the call,
 * `queue` until its job's handler began, `alloc` the VM's transaction (allocation), `routers` until its router
 * applied the change, `driver` the VM's namespace/veth/port rules/udhcpc start, `guest` until udhcpc ran its
 * first hook, `dhcp` DISCOVER → ACK and the hook's apply. Each: median ms and share of the summed per-VM time.
 */
function stageSummary(
  vms: { call: number; returned: number; done: number; d?: Trace; udhcpc?: number }[],
): Record<string, { medianMs: number; share: number }> | undefined {
  const rows = vms.filter((v) => v.d && typeof v.d.job === 'number');
  if (rows.length === 0) return undefined;
  const names = ['api', 'queue', 'alloc', 'routers', 'driver', 'guest', 'dhcp'] as const;
  const per: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  let total = 0;
  for (const v of rows) {
    const d = v.d!;
    const stamps = [
      v.call,
      v.returned,
      Number(d.job),
      Number(d.committed),
      Number(d.converged),
      Number(d.driven),
      v.udhcpc ?? Number(d.driven),
      v.done,
    ];
    names.forEach((n, i) => per[n]!.push(Math.max(0, stamps[i + 1]! - stamps[i]!)));
    total += v.done - v.call;
  }
  const out: Record<string, { medianMs: number; share: number }> = {};
  for (const n of names) {
    const xs = per[n]!;
    if (driver !== 'netns' && (n === 'guest' || n === 'dhcp')) continue;
    out[n] = {
      medianMs: pct(xs, 0.5),
      share: Number((xs.reduce((a, b) => a + b, 0) / Math.max(1, total)).toFixed(3)),
    };
  }
  return out;
}

async function main(): Promise<void> {
  if (driver !== 'simulator' && process.getuid?.() !== 0)
    throw new Error(`bench:e2e needs root (the ${driver} driver)`);
  if (!process.argv.includes('--no-build'))
    spawnSync('npm', ['run', 'build'], { stdio: 'inherit', cwd: serverRoot });
  if (driver === 'hosts') {
    // Real VMs on host agents: its own set-up (bench/e2e-hosts.ts).
    const { benchHosts } = await import('./e2e-hosts.js');
    return benchHosts({ bursts, label, serverRoot });
  }
  // The harness spawns `<STACKNET_ROOT>/bin/stacknet.js`: set before it is loaded.
  process.env.STACKNET_ROOT = serverRoot;
  joinCpuGroup();
  const { startServer } = await import('../test/api/harness.js');
  const prefix = `sn-${randomBytes(3).toString('hex')}-`;
  const dataDir = mkdtempSync(join(tmpdir(), 'stacknet-bench-e2e-'));
  let db: TestDatabase | undefined;
  let dbUrl = `sqlite:${join(dataDir, 'stacknet.db')}`;
  if (dbKind !== 'sqlite') {
    db = await createEmptyTestDatabase(dbKind);
    dbUrl = db.url;
  }
  const server = await startServer(dbUrl, {
    STACKNET_DRIVER: driver,
    STACKNET_DATA_DIR: dataDir,
    STACKNET_NETNS_PREFIX: prefix,
    STACKNET_TRACE_VMS: '1',
    ...(process.env.STACKNET_JOB_SLOTS ? { STACKNET_JOB_SLOTS: process.env.STACKNET_JOB_SLOTS } : {}),
    // Node options for the server and the router agents it starts, e.g. `--import <a module starting a profiler>`.
    ...(process.env.BENCH_SERVER_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_SERVER_NODE_OPTIONS } : {}),
    STACKNET_CONTROL_CIDR: `169.254.${10 + (randomBytes(1)[0]! % 240)}.0/24`,
  }).catch(async (e: unknown) => {
    rmSync(dataDir, { recursive: true, force: true });
    await db?.drop();
    leaveCpuGroup();
    throw e;
  });
  const o: ClientOptions = { url: server.url, apiKey: server.apiKey, secretKey: server.secretKey };
  try {
    const zone = (
      await benchApi(o, 'createZone', {
        name: 'bench',
        networktype: 'Advanced',
        dns1: '192.0.2.53',
        internaldns1: '192.0.2.53',
      })
    ).zone;
    const pn = (
      await benchJob(o, 'createPhysicalNetwork', {
        zoneid: zone.id,
        name: 'pn',
        isolationmethods: 'VLAN',
        vlan: '100-999',
      })
    ).physicalnetwork;
    for (const t of ['Guest', 'Public'])
      await benchJob(o, 'addTrafficType', { physicalnetworkid: pn.id, traffictype: t });
    await benchJob(o, 'updatePhysicalNetwork', { id: pn.id, state: 'Enabled' });
    await benchApi(o, 'createVlanIpRange', {
      zoneid: zone.id,
      vlan: '50',
      gateway: '203.0.113.1',
      netmask: '255.255.255.0',
      startip: '203.0.113.10',
      endip: '203.0.113.200',
      forvirtualnetwork: 'true',
    });
    const off = (
      await benchApi(o, 'listNetworkOfferings', {
        name: 'DefaultIsolatedNetworkOfferingWithSourceNatService',
      })
    ).networkoffering[0];
    const so = (await benchApi(o, 'listServiceOfferings', { name: 'Small Instance' })).serviceoffering[0].id;
    const tpl = (await benchApi(o, 'listTemplates', { templatefilter: 'featured' })).template[0].id;
    for (const [k, n] of bursts.entries()) {
      const net = (
        await benchApi(o, 'createNetwork', {
          zoneid: zone.id,
          name: `b${n}`,
          displaytext: `b${n}`,
          networkofferingid: off.id,
          gateway: `10.${10 + k}.0.1`,
          netmask: '255.255.252.0', // /22: 1,021 guests, the most network.guest.cidr.limit allows
        })
      ).network;
      // Implement the network and start its router first: the figure is per VM, not the router's boot.
      await benchJob(o, 'deployVirtualMachine', {
        serviceofferingid: so,
        templateid: tpl,
        zoneid: zone.id,
        networkids: net.id,
        name: `w${k}`,
      });
      await sleep(1000);
      const nsBefore = new Set(driver === 'netns' ? vmNamespaces(prefix) : []);
      const loadBefore = loadavg();
      const outFrom = server.output().length;
      const cpuBefore = cpuNow(server.pid);
      const procsBefore = cpuByPid();
      const call: number[] = [];
      const returned: number[] = [];
      const started = Date.now();
      const jobs = await Promise.all(
        Array.from({ length: n }, async (_, i) => {
          call[i] = Date.now();
          const r = await benchApi(o, 'deployVirtualMachine', {
            serviceofferingid: so,
            templateid: tpl,
            zoneid: zone.id,
            networkids: net.id,
            name: `v${k}x${i}`,
          });
          returned[i] = Date.now();
          return r.jobid as string;
        }),
      );
      const lastReturned = Date.now();
      // Until every VM of the burst holds its address. netns: the guests' lease files, found by their namespaces
      // (the burst's new `<prefix>i-<account>-<id>-VM`), with no API call until they all hold one: a poll of the
      // server being measured (a listVirtualMachines of up to n VMs every 100 ms, as this bench did until
      // 2026-12-07) costs it CPU and event-loop turns the burst competes for. The VMs are listed once at the end
      // and each lease checked against its VM's address. simulator: the VM's state, one list call per poll.
      const done = new Map<number, number>();
      const vmOf = new Map<number, ListedVm>();
      const leaseOf = new Map<string, { ip: string; at: number }>();
      while ((driver === 'netns' ? leaseOf.size : done.size) < n) {
        if (Date.now() - started > 600_000)
          throw new Error(`only ${Math.max(done.size, leaseOf.size)} of ${n} VMs done after 600 s`);
        await sleep(driver === 'netns' ? 100 : 50);
        if (driver === 'netns') {
          for (const ns of vmNamespaces(prefix)) {
            if (nsBefore.has(ns) || leaseOf.has(ns)) continue;
            const l = await readLease(ns, 'eth0');
            if (l && l.event === 'bound') leaseOf.set(ns, { ip: l.ip, at: l.at });
          }
          continue;
        }
        for (const vm of await listVms(o, net.id)) {
          const m = /^v\d+x(\d+)$/.exec(vm.name);
          if (!m || done.has(Number(m[1]))) continue;
          vmOf.set(Number(m[1]), vm);
          if (vm.state === 'Running') done.set(Number(m[1]), Date.now());
        }
      }
      if (driver === 'netns') {
        for (const vm of await listVms(o, net.id)) {
          const m = /^v\d+x(\d+)$/.exec(vm.name);
          if (!m) continue;
          const i = Number(m[1]);
          vmOf.set(i, vm);
          const l = leaseOf.get(`${prefix}${vm.instancename}`);
          if (!l) throw new Error(`${vm.name} (${vm.instancename}) holds no lease`);
          if (l.ip !== vm.nic[0]!.ipaddress)
            throw new Error(`${vm.name} holds ${l.ip}, the database says ${vm.nic[0]!.ipaddress}`);
          done.set(i, l.at);
        }
        if (done.size !== n)
          throw new Error(`${leaseOf.size} new guests hold a lease, ${done.size} of them listed`);
      }
      const allHeld = Math.max(...done.values());
      const loadAfter = loadavg();
      const cpuAfter = cpuNow(server.pid);
      const procsAfter = cpuByPid();
      const cpuMs = (k: 'group' | 'server' | 'bench') =>
        cpuBefore[k] === undefined || cpuAfter[k] === undefined
          ? undefined
          : Math.round(cpuAfter[k] - cpuBefore[k]);
      const cpu = {
        totalMs: cpuMs('group'),
        serverMs: cpuMs('server'),
        benchMs: cpuMs('bench'),
        ...(cpuMs('group') !== undefined && cpuMs('server') !== undefined
          ? { restMs: cpuMs('group')! - cpuMs('server')! - cpuMs('bench')! }
          : {}),
        // Processes alive at the end, by command (a process that exited unwaited is only in totalMs).
        byCommand: cpuByComm(
          procsBefore,
          procsAfter,
          new Map([
            [server.pid, 'server'],
            [process.pid, 'bench'],
          ]),
        ),
      };
      // Every job succeeded with the address the guest holds, and no address twice.
      const results = await Promise.all(
        jobs.map((id) => waitForJob(o, id, { intervalMs: 200, timeoutMs: 300_000 })),
      );
      const seen = new Set<string>();
      results.forEach((j, i) => {
        // eslint-disable-next-line @typescript-eslint/no-explicit-any
        const vm = (j.jobresult as any)?.virtualmachine;
        if (j.jobstatus !== 1 || !vm) throw new Error(`deploy ${i}: ${JSON.stringify(j.jobresult)}`);
        if (vm.nic[0].ipaddress !== vmOf.get(i)!.nic[0]!.ipaddress)
          throw new Error(`deploy ${i}: address moved`);
        if (seen.has(vm.nic[0].ipaddress)) throw new Error(`${vm.nic[0].ipaddress} given twice`);
        seen.add(vm.nic[0].ipaddress);
      });
      await sleep(200);
      const tr = traces(server.output().slice(outFrom));
      const deploys = new Map(tr.filter((t) => t.ev === 'deploy').map((t) => [String(t.vm), t]));
      const perVm = Array.from({ length: n }, (_, i) => {
        const vm = vmOf.get(i)!;
        return {
          call: call[i]!,
          returned: returned[i]!,
          done: done.get(i)!,
          d: deploys.get(vm.name),
          udhcpc: driver === 'netns' ? udhcpcStarted(`${prefix}${vm.instancename}`) : undefined,
        };
      });
      const lat = perVm.map((v) => v.done - v.call);
      // The last guest to hold its address: its stamps after the burst's first call (what 'allHeldMs' is made of).
      const lastVm = perVm.reduce((a, b) => (b.done > a.done ? b : a));
      const rel = (x: unknown) => (typeof x === 'number' ? x - started : undefined);
      const last = {
        call: rel(lastVm.call),
        returned: rel(lastVm.returned),
        job: rel(lastVm.d?.job),
        committed: rel(lastVm.d?.committed),
        converged: rel(lastVm.d?.converged),
        driven: rel(lastVm.d?.driven),
        udhcpc: rel(lastVm.udhcpc),
        held: rel(lastVm.done),
      };
      if (process.env.BENCH_E2E_DUMP)
        writeFileSync(
          `${process.env.BENCH_E2E_DUMP}-${n}.json`,
          JSON.stringify({ started, perVm, traces: tr }),
        );
      const passes = tr.filter((t) => t.ev === 'pass' && !t.converged);
      const drv = tr.filter((t) => t.ev === 'vm-driver');
      const med = (xs: Trace[], a: string, b: string) =>
        pct(
          xs.map((t) => Number(t[b]) - Number(t[a])),
          0.5,
        );
      console.log(
        JSON.stringify({
          bench: 'e2e deploy→DHCP',
          ...(label ? { label } : {}),
          driver,
          db: dbKind,
          burst: n,
          medianMs: pct(lat, 0.5),
          p99Ms: pct(lat, 0.99),
          maxMs: Math.max(...lat),
          callsReturnedMs: lastReturned - started,
          allHeldMs: allHeld - started,
          load: [loadBefore, loadAfter],
          last,
          cpu,
          ...(deploys.size ? { stages: stageSummary(perVm) } : {}),
          ...(passes.length
            ? {
                passes: {
                  pushes: passes.length,
                  hostsPerPush: pct(
                    passes.map((t) => Number(t.upserts ?? t.hosts)),
                    0.5,
                  ),
                  passMedianMs: med(passes, 'start', 'end'),
                  buildMedianMs: med(passes, 'status', 'built'),
                  pushMedianMs: med(passes, 'built', 'pushed'),
                },
              }
            : {}),
          ...(drv.length
            ? {
                driverPhases: {
                  linksMedianMs: med(drv, 'start', 'linked'),
                  rulesMedianMs: med(drv, 'linked', 'plugged'),
                  spawnMedianMs: med(drv, 'plugged', 'spawned'),
                  // Each batch's port rules (its one nft transaction, with the wait for the batches' queue before
                  // it), in the order the batches were plugged: how they grow with the ruleset.
                  rulesPerBatchMs: batchRules(drv),
                },
              }
            : {}),
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
    if (driver === 'netns')
      execFileSync(process.execPath, ['bin/stacknet.js', 'netns', 'cleanup', '--data-dir', dataDir], {
        stdio: 'ignore',
      });
    rmSync(dataDir, { recursive: true, force: true });
    await db?.drop();
    leaveCpuGroup();
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
