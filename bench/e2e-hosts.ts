/**
 * `npm run bench:e2e -- --driver hosts` (issue 19): deploy → guest holds its address through the whole real path
 * with real VMs. A spawned `stacknet server --driver hosts`, three host namespaces each running
 * `stacknet host-agent --vm-backend libvirt` (its own libvirtd; QEMU emulation unless /dev/kvm works) over a VXLAN
 * underlay (test/e2e/hosts-rig.ts), the project's test template registered with registerTemplate. Per burst: a
 * fresh isolated network (no source NAT) whose router is already running (one warm-up VM, stopped once it
 * leased), then N deployVirtualMachine calls at once through the signed API.
 *
 * "Holds its address" is the moment the guest's serial console (the console log its host agent relays) shows its
 * STACKNET-LEASE line on the address listVirtualMachines gives it, polled every 50 ms. Beside it, the guest's own
 * boot time as its console shows it: its uptime when udhcpc bound (`guestBootMs`). `overheadMs` = deploy → lease
 * minus that: what the control plane, the host agent and libvirt add to the VM's own boot (issue 19's target:
 * within 2 s). `stagesMedianMs` splits deploy → the guest's clock (server trace, agents' logs);
 * `guestStagesMedianMs` splits the guest's own boot by its console (kernel to /init, /init to its DHCP client,
 * the DHCP exchange and the lease's configuration). One JSON line per burst, like the netns driver's (bench/e2e.ts).
 * `slowestMs`: the same stages for the VM with the most overhead. STACKNET_BENCH_LOGS=<dir> keeps the server's and
 * the agents' output per burst.
 *   npm run bench:e2e -- --driver hosts [--bursts 1,6] [--label TEXT] [--no-build]
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { waitForJob } from '../src/api/client.js';
import type { ClientOptions } from '../src/api/client.js';
import { parseGuestConsole } from '../src/hostagent/libvirt/guest-console.js';
import { tscEarlyKhz } from '../src/hostagent/libvirt/render.js';
import { buildTestTemplate, type TestTemplate } from '../src/hostagent/libvirt/test-template.js';
import { run } from '../src/netns/exec.js';
import type { LabHost } from '../test/hosts/host-lab.js';
import { HostsRig } from '../test/e2e/hosts-rig.js';
import { benchApi, benchJob, loadavg, sleep } from './common.js';

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(s.length * p))]! : 0;
};

/** The guest's console as its host agent keeps it (the file the agent's console relay serves). */
function consoleOf(h: LabHost, instance: string): string {
  try {
    return readFileSync(join(h.dataDir, 'vms', instance, 'console.log'), 'utf8');
  } catch {
    return '';
  }
}

/** The server's `[trace]` deploy events (STACKNET_TRACE_VMS, src/vms/commands.ts) by instance name. */
function deployTraces(serverOutput: string): Map<string, Record<string, number>> {
  const out = new Map<string, Record<string, number>>();
  for (const m of serverOutput.matchAll(/\[trace\] (\{.*\})/g)) {
    try {
      const t = JSON.parse(m[1]!) as Record<string, unknown>;
      if (t.ev === 'deploy' && typeof t.instance === 'string')
        out.set(t.instance, t as unknown as Record<string, number>);
    } catch {
      /* a line cut by the output's tail */
    }
  }
  return out;
}

/**
 * When the host agent's `virsh start` of the domain began and ended (its log: "<ISO> ... <dom> started in N ms", or
 * "<dom> defined (new) and started in N ms" when one virsh did both: then the span includes the define).
 */
function virshStart(agentOutput: string, domain: string): { begin: number; end: number } | undefined {
  const esc = domain.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const re = new RegExp(`^(\\S+) .*libvirt: ${esc} (?:defined \\(new\\) and )?started in (\\d+) ms`, 'gm');
  let last: { begin: number; end: number } | undefined;
  for (const m of agentOutput.matchAll(re)) {
    const end = Date.parse(m[1]!);
    if (Number.isFinite(end)) last = { begin: end - Number(m[2]), end };
  }
  return last;
}

/**
 * When the host agent first got a desired state that names the VM `instance` Running (its log: "<ISO> ... generation
 * N received: i-1-4-VM Running, ..."; agents before branch hosts5 do not log it).
 */
function stateReceived(agentOutput: string, instance: string): number | undefined {
  const esc = instance.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = new RegExp(`^(\\S+) .*generation \\d+ received: .*\\b${esc} Running`, 'm').exec(agentOutput);
  const at = m ? Date.parse(m[1]!) : NaN;
  return Number.isFinite(at) ? at : undefined;
}

/** A process's CPU time (user + system, ms) from /proc, NaN when it is gone. */
function cpuMs(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // USER_HZ: 100 on Linux
  } catch {
    return NaN;
  }
}

/** When process `pid` began (epoch ms, to the kernel's 10 ms tick), from /proc; NaN when it is gone. */
function startedAt(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    const up = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
    return Date.now() - (up - Number(f[19]) / 100) * 1000; // starttime, in USER_HZ (100) since boot
  } catch {
    return NaN;
  }
}

function pidFile(file: string): number | null {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    return pid > 1 ? pid : null;
  } catch {
    return null;
  }
}

/** Pids whose command line holds every one of `parts` (the host agents: `host-agent` and their data dir). */
function pidsWith(parts: string[]): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8');
      if (parts.every((p) => cmd.includes(p))) out.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return out;
}

/**
 * The test template as checkout `root` builds it (its own scripts/build-test-template.ts, so an A/B compares its
 * template too), or this checkout's.
 */
async function testTemplateOf(root: string | undefined): Promise<TestTemplate> {
  if (!root) return buildTestTemplate({ log: (m) => console.error(m) });
  const r = await run(['node', '--import', 'tsx', 'scripts/build-test-template.ts'], {
    cwd: root,
    timeoutMs: 600_000,
  });
  if (r.stderr.trim()) console.error(r.stderr.trim());
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as TestTemplate;
}

/** When a host agent's template cache got the bench's template (its log: "<ISO> ... libvirt: template <id> (<name>) cached from <url> in N ms"). */
function templateCached(agentOutput: string): { at: number; ms: number } | undefined {
  const m = /^(\S+) .*libvirt: template \d+ \(stacknet-test\) cached from .* in (\d+) ms/m.exec(agentOutput);
  const at = m ? Date.parse(m[1]!) : NaN;
  return m && Number.isFinite(at) ? { at, ms: Number(m[2]) } : undefined;
}

export async function benchHosts(o: {
  bursts: number[];
  label: string;
  /** Another checkout's built tree to run the server and agents of (the baseline of an A/B); default this one. */
  serverRoot?: string;
}): Promise<void> {
  const root = o.serverRoot && resolve(o.serverRoot) !== process.cwd() ? resolve(o.serverRoot) : undefined;
  const built = testTemplateOf(root);
  built.catch(() => {});
  const rig = new HostsRig({
    vmBackend: 'libvirt',
    // Six guests booting at once under emulation on a shared machine: give the jobs time.
    settings: [['stacknet.host.vm.wait', '300']],
    ...(root ? { root } : {}),
    serverEnv: { STACKNET_TRACE_VMS: '1' },
  });
  try {
    await rig.start();
    const t = await built;
    await rig.hostsUp(120_000);
    const c: ClientOptions = {
      url: rig.server.url,
      apiKey: rig.server.apiKey,
      secretKey: rig.server.secretKey,
    };
    const tpl = (
      await benchApi(c, 'registerTemplate', {
        name: 'stacknet-test',
        displaytext: 'stacknet test template',
        url: t.url,
        format: 'TAR',
        hypervisor: 'KVM',
        checksum: `{SHA-256}${t.checksum}`,
        passwordenabled: 'true',
      })
    ).template[0].id as string;
    const hostOf = (uuid: string) => {
      const h = rig.byUuid.get(uuid);
      if (!h) throw new Error(`a VM on unknown host ${uuid}`);
      return h;
    };
    const deploy = (net: string, name: string) =>
      benchApi(c, 'deployVirtualMachine', {
        serviceofferingid: rig.id.so,
        templateid: tpl,
        zoneid: rig.id.zone,
        networkids: net,
        name,
      });
    for (const [k, n] of o.bursts.entries()) {
      const net = await rig.isolatedNetwork(`b${k}`, `10.${40 + k}.0.1`);
      // The network implemented and its router running first: the figure is per VM, not the router's boot.
      const w = (
        await benchJob(
          c,
          'deployVirtualMachine',
          {
            serviceofferingid: rig.id.so,
            templateid: tpl,
            zoneid: rig.id.zone,
            networkids: net,
            name: `w${k}`,
          },
          300_000,
        )
      ).virtualmachine;
      const wh = hostOf(w.hostid);
      const wdeadline = Date.now() + 120_000;
      while (!parseGuestConsole(consoleOf(wh, w.instancename)).lease) {
        if (Date.now() > wdeadline)
          throw new Error(
            `warm-up VM w${k} never leased; its console:\n${consoleOf(wh, w.instancename).slice(-3000)}\n${rig.logs()}`,
          );
        await sleep(200);
      }
      await benchJob(c, 'stopVirtualMachine', { id: w.id }, 300_000);
      await sleep(1000);
      const loadBefore = loadavg();
      // CPU of the control plane's processes over the burst (start → every guest held): the server, each host's
      // agent (its node process: the `nsenter` wrapper's children) and its libvirtd.
      const hosts = [...rig.byUuid.values()];
      const side = {
        server: [rig.server.pid],
        agents: hosts.flatMap((h) =>
          pidsWith(['host-agent', h.dataDir]).filter(
            (p) => !/^nsenter/.test(readFileSync(`/proc/${p}/cmdline`, 'utf8')),
          ),
        ),
        libvirtd: hosts
          .map((h) => pidFile(join(h.dataDir, 'libvirtd.pid')))
          .filter((p): p is number => p !== null),
      };
      const cpuOf = (pids: number[]) => pids.reduce((a, p) => a + (cpuMs(p) || 0), 0);
      const cpu0 = Object.fromEntries(Object.entries(side).map(([k, v]) => [k, cpuOf(v)]));
      const call: number[] = [];
      const returned: number[] = [];
      const started = Date.now();
      const jobs = await Promise.all(
        Array.from({ length: n }, async (_, i) => {
          call[i] = Date.now();
          const r = await deploy(net, `v${k}x${i}`);
          returned[i] = Date.now();
          return r.jobid as string;
        }),
      );
      const lastReturned = Date.now();
      const results = await Promise.all(
        jobs.map(async (id, i) => {
          const j = await waitForJob(c, id, { intervalMs: 100, timeoutMs: 300_000 });
          // eslint-disable-next-line @typescript-eslint/no-explicit-any
          const vm = (j.jobresult as any)?.virtualmachine;
          if (j.jobstatus !== 1 || !vm) throw new Error(`deploy ${i}: ${JSON.stringify(j.jobresult)}`);
          return { vm, jobDone: Date.now() };
        }),
      );
      // Until every guest's console shows its lease: the address the API gave it, checked.
      const done = new Map<
        number,
        {
          at: number;
          guestBootMs: number;
          initS?: number;
          dhcpS?: number;
          leaseS: number;
          /** QEMU's CPU time when the guest's clock began (the last sample before) and at the lease seen. */
          qemuAtClockMs?: number;
          qemuAtLeaseMs: number;
        }
      >();
      // Each guest's QEMU CPU time, sampled at every poll: what it had used when the guest's clock began.
      const qemuSamples = results.map(() => [] as [number, number][]);
      // When each VM's QEMU process began (libvirt's exec of it, before QEMU's own start and libvirt's QMP set-up).
      const qemuStarted: number[] = results.map(() => NaN);
      const qemuPid = (i: number) => {
        const { vm } = results[i]!;
        const h = hostOf(vm.hostid);
        return pidFile(join(h.dataDir, 'run', 'qemu', `${h.prefix}${vm.instancename}.pid`));
      };
      while (done.size < n) {
        if (Date.now() - started > 300_000)
          throw new Error(`only ${done.size} of ${n} guests leased after 300 s`);
        for (const [i, { vm }] of results.entries()) {
          if (done.has(i)) continue;
          const qp = qemuPid(i);
          const qc = qp ? cpuMs(qp) : NaN;
          if (Number.isFinite(qc)) qemuSamples[i]!.push([Date.now(), qc]);
          if (qp && !Number.isFinite(qemuStarted[i]!)) qemuStarted[i] = startedAt(qp);
          const g = parseGuestConsole(consoleOf(hostOf(vm.hostid), vm.instancename));
          if (!g.lease || g.leaseUptime === undefined) continue;
          if (g.lease.ip !== vm.nic[0].ipaddress)
            throw new Error(`${vm.name} leased ${g.lease.ip}, the API says ${vm.nic[0].ipaddress}`);
          const at = Date.now();
          const zero = at - g.leaseUptime * 1000;
          done.set(i, {
            at,
            qemuAtClockMs: qemuSamples[i]!.filter(([t]) => t <= zero).pop()?.[1],
            qemuAtLeaseMs: qc,
            guestBootMs: Math.round(g.leaseUptime * 1000),
            initS: g.initUptime,
            dhcpS: g.dhcpUptime,
            leaseS: g.leaseUptime,
          });
        }
        await sleep(50);
      }
      const loadAfter = loadavg();
      // Each guest's STACKNET-CLOCK line (after its READY, so outside the burst's times): its TSC beside its
      // uptime. Under TCG the guest's TSC counts the host's ticks from QEMU's first run of its vCPU (libvirt's
      // `cont`, the end of `virsh start`), so at the host's TSC rate: how long the guest ran before its uptime
      // began, and its boot to the lease counted from its vCPU's start rather than from its clock's.
      const khz = tscEarlyKhz(readFileSync('/proc/cpuinfo', 'utf8'));
      const clocks = results.map(() => undefined as { beforeClockMs: number; spreadMs: number } | undefined);
      const clockDeadline = Date.now() + 30_000;
      while (khz && clocks.some((x) => !x) && Date.now() < clockDeadline) {
        for (const [i, { vm }] of results.entries()) {
          const cl = parseGuestConsole(consoleOf(hostOf(vm.hostid), vm.instancename)).clock;
          if (!cl || clocks[i]) continue;
          const mid = ((cl.uptimeFrom + cl.uptimeTo) / 2) * 1000;
          clocks[i] = {
            beforeClockMs: Math.round(cl.tsc / khz - mid),
            spreadMs: Math.round((cl.uptimeTo - cl.uptimeFrom) * 1000),
          };
        }
        await sleep(200);
      }
      const cpuBurst = Object.fromEntries(
        Object.entries(side).map(([k, v]) => [k, Math.round((cpuOf(v) - cpu0[k]!) / n)]),
      );
      const seen = new Set<string>();
      for (const { vm } of results) {
        if (seen.has(vm.nic[0].ipaddress)) throw new Error(`${vm.nic[0].ipaddress} given twice`);
        seen.add(vm.nic[0].ipaddress);
      }
      const lat = results.map((_, i) => done.get(i)!.at - call[i]!);
      const boot = results.map((_, i) => done.get(i)!.guestBootMs);
      const over = lat.map((l, i) => l - boot[i]!);
      // Where each VM's deploy → guest clock went (medians): the API call until its job ran, the VM committed,
      // the network's router told of it, the host agent's `virsh start` began and ended, the guest's clock began
      // (its lease seen minus its uptime at the lease), the job saw the host report it Running.
      const traces = deployTraces(rig.server.output());
      const stage = (f: (i: number) => number | undefined) => {
        const xs = results
          .map((_, i) => f(i))
          .filter((x): x is number => x !== undefined && Number.isFinite(x));
        return xs.length ? pct(xs, 0.5) : null;
      };
      const tr = (i: number) => traces.get(results[i]!.vm.instancename);
      const vs = (i: number) => {
        const { vm } = results[i]!;
        const h = hostOf(vm.hostid);
        return virshStart(h.agent?.output() ?? '', `${h.prefix}${vm.instancename}`);
      };
      const got = (i: number) => {
        const { vm } = results[i]!;
        return stateReceived(hostOf(vm.hostid).agent?.output() ?? '', vm.instancename);
      };
      const guestZero = (i: number) => done.get(i)!.at - done.get(i)!.guestBootMs;
      // Per VM, its stages (ms; undefined where a log line is missing).
      const stagesOf: Record<string, (i: number) => number | undefined> = {
        queued: (i) => (tr(i) ? tr(i)!.job! - call[i]! : undefined),
        committed: (i) => (tr(i) ? tr(i)!.committed! - tr(i)!.job! : undefined),
        // The committed VM until its start began (the router converging, when the start waits for it).
        router: (i) => (tr(i) ? tr(i)!.converged! - tr(i)!.converging! : undefined),
        toVirshStart: (i) => (tr(i) && vs(i) ? vs(i)!.begin - tr(i)!.converged! : undefined),
        // The committed VM until `virsh start` began, whatever ran meanwhile (the hosts driver starts a libvirt
        // VM while its routers converge: then toAgent and toVirshStart above are negative or small).
        committedToVirsh: (i) => (tr(i) && vs(i) ? vs(i)!.begin - tr(i)!.converging! : undefined),
        // toVirshStart split: the router told → its host agent got a state naming it (placement, the host's
        // desired state, the long poll) and → `virsh start` began (the agent: networks, ports, its pass).
        toAgent: (i) => (tr(i) && got(i) ? got(i)! - tr(i)!.converged! : undefined),
        agentToVirsh: (i) => (got(i) && vs(i) ? vs(i)!.begin - got(i)! : undefined),
        virshStart: (i) => (vs(i) ? vs(i)!.end - vs(i)!.begin : undefined),
        toGuestClock: (i) => (vs(i) ? guestZero(i) - vs(i)!.end : undefined),
        // virshStart split at its QEMU process's start: libvirt before it (the define, the domain's preparation:
        // taps, cgroups, the command line), and QEMU's own start with libvirt's QMP set-up until `cont`.
        toQemuProcess: (i) => (vs(i) ? qemuStarted[i]! - vs(i)!.begin : undefined),
        qemuProcessToStarted: (i) => (vs(i) ? vs(i)!.end - qemuStarted[i]! : undefined),
        // By the guest's TSC (its CLOCK line): how long it ran before its uptime began, and where its TSC's zero
        // (its vCPU's first run) falls against `virsh start`'s end (≈ 0 when the TSC counts from libvirt's `cont`).
        guestBeforeClock: (i) => clocks[i]?.beforeClockMs,
        tscZeroToVirshEnd: (i) =>
          vs(i) && clocks[i] ? vs(i)!.end - (guestZero(i) - clocks[i]!.beforeClockMs) : undefined,
        reported: (i) => (tr(i) && vs(i) ? tr(i)!.driven! - vs(i)!.end : undefined),
      };
      const stages = Object.fromEntries(Object.entries(stagesOf).map(([k, f]) => [k, stage(f)]));
      // The VM with the most overhead: where it lost its time, stage by stage.
      // A VM whose console gave no boot time has no overhead (NaN): it is left out here, not picked.
      let worst = -1;
      over.forEach((x, i) => {
        if (Number.isFinite(x) && (worst < 0 || x > over[worst]!)) worst = i;
      });
      const slowest =
        worst < 0
          ? null
          : {
              vm: results[worst]!.vm.instancename,
              overheadMs: over[worst],
              ...Object.fromEntries(Object.entries(stagesOf).map(([k, f]) => [k, f(worst) ?? null])),
            };
      // Each VM's toVirshStart (ms, in call order): a host's later VMs waiting on its pass show here, not in the median.
      const toVirshStartEach = results.map((_, i) =>
        tr(i) && vs(i) ? vs(i)!.begin - tr(i)!.converged! : null,
      );
      const agentToVirshEach = results.map((_, i) => (got(i) && vs(i) ? vs(i)!.begin - got(i)! : null));
      // Where the guest's own boot went (its console's uptimes; medians, ms): its clock until /init (the kernel),
      // /init until its DHCP client ran (modules, eth0 up), the DHCP exchange until the lease was bound.
      const guestMs = (f: (d: { initS?: number; dhcpS?: number; leaseS: number }) => number | undefined) =>
        stage((i) => {
          const x = f(done.get(i)!);
          return x === undefined || !Number.isFinite(x) ? undefined : Math.round(x * 1000);
        });
      const guestStages = {
        kernel: guestMs((d) => d.initS),
        toDhcp: guestMs((d) =>
          d.dhcpS === undefined || d.initS === undefined ? undefined : d.dhcpS - d.initS,
        ),
        dhcp: guestMs((d) => (d.dhcpS === undefined ? undefined : d.leaseS - d.dhcpS)),
      };
      // Per host of the burst: when its cache got the template (ms from the burst's start: negative when before,
      // i.e. fetched ahead of use or by the warm-up VM) and how long the copy and checksum took.
      const templateCache: Record<string, { atMs: number; ms: number } | null> = {};
      for (const { vm } of results) {
        const h = hostOf(vm.hostid);
        const tc = templateCached(h.agent?.output() ?? '');
        templateCache[h.name] = tc ? { atMs: tc.at - started, ms: tc.ms } : null;
      }
      const perHost = new Map<string, number>();
      for (const { vm } of results)
        perHost.set(hostOf(vm.hostid).name, (perHost.get(hostOf(vm.hostid).name) ?? 0) + 1);
      console.log(
        JSON.stringify({
          bench: 'e2e deploy→DHCP',
          ...(o.label ? { label: o.label } : {}),
          driver: 'hosts',
          vmBackend: 'libvirt',
          db: 'sqlite',
          burst: n,
          medianMs: pct(lat, 0.5),
          p99Ms: pct(lat, 0.99),
          maxMs: Math.max(...lat),
          callsReturnedMs: lastReturned - started,
          jobsDoneMs: Math.max(...results.map((r) => r.jobDone)) - started,
          // Per VM: the call until its job finished (placed, defined and started on its host, reported Running).
          jobMedianMs: pct(
            results.map((r, i) => r.jobDone - call[i]!),
            0.5,
          ),
          allHeldMs: Math.max(...[...done.values()].map((d) => d.at)) - started,
          guestBootMs: { median: pct(boot, 0.5), max: Math.max(...boot) },
          overheadMs: { median: pct(over, 0.5), max: Math.max(...over) },
          // The same with the guest's boot counted from its vCPU's first run by its TSC (its uptime at the lease
          // plus the time it ran before its clock began): what is left is deploy → the guest's first instruction,
          // plus the lease's way to the console file and this poll. Issue 19's "within 2 s of the VM's own boot
          // time as measured by its console" is read on this one: the guest's uptime (overheadMs's boot) starts
          // part-way through its kernel's set-up, 0.15 s into its run alone and 1.1–1.7 s into it in a burst of
          // six under emulation, so overheadMs charges the guest's own early boot to the deploy path; both told.
          // Null without CLOCK lines (no host TSC rate, or no msr).
          overheadFromVcpuMs: (() => {
            const xs = over.flatMap((x, i) => (clocks[i] ? [x - clocks[i]!.beforeClockMs] : []));
            return xs.length === n ? { median: pct(xs, 0.5), max: Math.max(...xs) } : null;
          })(),
          clockReadSpreadMs: stage((i) => clocks[i]?.spreadMs),
          stagesMedianMs: stages,
          slowestMs: slowest,
          toVirshStartEachMs: toVirshStartEach,
          agentToVirshEachMs: agentToVirshEach,
          guestStagesMedianMs: guestStages,
          vmsPerHost: Object.fromEntries([...perHost].sort()),
          // CPU per VM (ms): its QEMU's until its guest's clock began (libvirt's start, the firmware, the kernel's
          // set-up; the last 50 ms poll before) and until its lease (medians), and the server's, the host
          // agents' and their libvirtds' over the burst (start → every guest held) divided by the burst's VMs.
          cpuPerVmMs: {
            qemuToClock: stage((i) => done.get(i)!.qemuAtClockMs),
            qemuToLease: stage((i) => done.get(i)!.qemuAtLeaseMs),
            ...cpuBurst,
          },
          templateCache,
          kernel: t.kernel ?? 'bzImage',
          load: [loadBefore, loadAfter],
        }),
      );
      // STACKNET_BENCH_LOGS=<dir>: the server's and the agents' output so far, per burst, for a closer look.
      const logDir = process.env.STACKNET_BENCH_LOGS;
      if (logDir) {
        mkdirSync(logDir, { recursive: true });
        writeFileSync(join(logDir, `burst${k}-server.log`), rig.server.output());
        for (const h of hosts)
          writeFileSync(join(logDir, `burst${k}-agent-${h.name}.log`), h.agent?.output() ?? '');
      }
      // The burst's guests go before the next burst: their qemu processes would load the next one.
      await Promise.all(
        results.map(({ vm }) =>
          benchJob(c, 'destroyVirtualMachine', { id: vm.id, expunge: 'true' }, 300_000),
        ),
      );
    }
  } finally {
    await rig.stop();
  }
}
