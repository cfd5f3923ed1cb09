/**
 * The `netns` driver (root): routers and VMs as Linux network namespaces on this machine.
 * - One "switch" namespace `<prefix>switch` holds a bridge per guest network named after its VLAN/VNI
 *   (`br-v<vlan>` / `br-vx<vni>`) and the bridge-family nftables anti-spoofing table (reference §4.10): a VM port
 *   may send only untagged frames from its own MAC and assigned IPv4s (plus 0.0.0.0 for DHCP), and never as a
 *   DHCP server or an IPv6 router (`portRuleText`).
 * - A control bridge in the host namespace carries the control network (control.cidr; its first host is the
 *   server's own address), so the server reaches each router agent on its link-local control address.
 * - A namespace per router named after it (`<prefix>r-<id>-VM`) runs `stacknet router-agent` (detached: stopping
 *   the server leaves it serving), with eth0 on the guest bridge, eth1 on the control bridge and eth2, eth3... on
 *   the public VLANs' bridges (netns-public.ts: public bridges and the zone's upstream namespace).
 * - A namespace per VM named after its instance (`<prefix>i-<account>-<id>-VM`), a veth per NIC on the bridge,
 *   and a real DHCP client (busybox udhcpc, our own hook) started at VM start and stopped at VM stop.
 * Everything created is listed in `<dataDir>/created.json`; `stacknet netns cleanup` removes exactly that.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { getInspection, getStatus, pushDelta, pushFull } from '../agent/control-client.js';
import type { InspectQuery, Inspection } from '../agent/inspect.js';
import {
  addAddress,
  createBridge,
  createNamespace,
  createVeth,
  deleteLink,
  deleteNamespace,
  exec,
  hookScripts,
  lightGuestUdhcpc,
  killNamespacePids,
  killPid,
  leaseStatePath,
  listLinks,
  listNamespaces,
  pidAlive,
  resolvConfPath,
  run,
  runIn,
  stateDir,
} from '../netns/index.js';
import { firstHost, formatIp, parseCidr } from '../ipam/index.js';
import { plugVpcTransit, unplugVpcTransit } from './netns-vpc.js';
import { routerAgentPid, startRouterAgent } from './router-process.js';
import { NetnsPublicSide } from './netns-public.js';
import { NetnsShell } from './netns-shell.js';
import { NetnsStarts } from './netns-starts.js';
import type { GuestSpec } from './netns-starts.js';
import {
  GUARD_TEXT,
  PORT_TABLE_TEXT,
  elementsText,
  portElements,
  portReplaceText,
  portInspection,
} from './netns-ports.js';
import type {
  Driver,
  GuestNetworkRuntime,
  PortInspection,
  RouterRuntime,
  RouterTransport,
  VmNicRuntime,
  VmRuntime,
} from './types.js';

export interface NetnsDriverOptions {
  dataDir: string;
  /** Prefix of every namespace name (tests: `sn-<random>-`; production: empty). */
  prefix: string;
  controlCidr: string;
  log?: (m: string) => void;
  /** Told of each VM start's phases (epoch ms) when set (STACKNET_TRACE_VMS: src/vms/trace.ts, bench:e2e). */
  trace?: (event: Record<string, unknown>) => void;
}

interface Created {
  namespaces: string[];
  hostLinks: string[];
}

export class NetnsDriver implements Driver {
  readonly name = 'netns' as const;
  readonly controlCidr: string;
  private readonly tag: string;
  private readonly switchNs: string;
  private readonly ctlBridge: string;
  private readonly createdFile: string;
  private ready: Promise<void> | null = null;
  private nftLock: Promise<void> = Promise.resolve();
  private readonly bridges = new Map<string, Promise<void>>();
  private readonly publicSide: NetnsPublicSide;
  /** Runs the VM start batches' and the port rules' commands: no fork of the server (netns-shell.ts). */
  private readonly sh: NetnsShell;
  /** Fresh VMs, started in batches (netns-starts.ts). */
  private readonly starts: NetnsStarts;

  constructor(readonly o: NetnsDriverOptions) {
    this.controlCidr = o.controlCidr;
    this.tag = `s${createHash('sha256')
      .update(o.prefix || 'stacknet')
      .digest('hex')
      .slice(0, 4)}`;
    this.switchNs = `${o.prefix}switch`;
    this.ctlBridge = `${this.tag}ctl`;
    mkdirSync(o.dataDir, { recursive: true });
    this.createdFile = join(o.dataDir, 'created.json');
    this.sh = new NetnsShell(o.dataDir);
    this.publicSide = new NetnsPublicSide({
      prefix: o.prefix,
      switchNs: this.switchNs,
      ensureNs: (ns) => this.ensureNs(ns),
      ensureBridge: (name) => this.ensureSwitchBridge(name),
    });
    this.starts = new NetnsStarts({
      sh: this.sh,
      switchNs: this.switchNs,
      log: o.log,
      vmNs: (vm) => this.vmNs(vm),
      bridgeName: (n) => NetnsDriver.bridgeName(n),
      remember: (names) => this.remember('namespaces', names),
      ensureBridge: (n) => this.ensureBridge(n),
      portRules: (nic, fresh) => this.portRules(nic, fresh),
      plugNics: (vm) => this.plugNics(vm),
      startGuest: (vm) => this.startGuest(vm),
      guest: (vm, hooks, prepare) => this.guest(vm, hooks, prepare),
    });
  }

  /** The zone's upstream namespace (the outside world: public ranges' gateways; tests run servers there). */
  upstreamNamespace(zoneId: number): string {
    return this.publicSide.upstreamNamespace(zoneId);
  }

  private created(): Created {
    try {
      return JSON.parse(readFileSync(this.createdFile, 'utf8')) as Created;
    } catch {
      return { namespaces: [], hostLinks: [] };
    }
  }

  private remember(kind: keyof Created, names: string | string[], add = true): void {
    const c = this.created();
    const set = new Set(c[kind]);
    for (const name of typeof names === 'string' ? [names] : names) {
      if (add) set.add(name);
      else set.delete(name);
    }
    c[kind] = [...set];
    writeFileSync(this.createdFile, JSON.stringify(c, null, 2));
  }

  private async ensureNs(ns: string): Promise<void> {
    if (!(await listNamespaces()).includes(ns)) {
      await createNamespace(ns);
    }
    this.remember('namespaces', ns);
  }

  /** The switch namespace, its nftables table and the control bridge (once per process, idempotent). */
  private base(): Promise<void> {
    this.ready ??= (async () => {
      await this.ensureNs(this.switchNs);
      // Measured on this kernel: a bridge-family base chain created in a namespace that has no bridge yet never
      // sees traffic, even after bridges appear. A bridge that always exists comes first, then the table.
      if (!(await listLinks(this.switchNs)).includes('br-stacknet')) {
        await createBridge('br-stacknet', { ns: this.switchNs });
      }
      const hasTable = await runIn(this.switchNs, ['nft', 'list', 'table', 'bridge', 'stacknet']).then(
        () => true,
        () => false,
      );
      // The sets and the `guard` chain every start (idempotent): a table made by an older build gets them, and
      // its ports keep their own chains until they are plugged again (portRules replaces them).
      await this.nft(hasTable ? GUARD_TEXT : PORT_TABLE_TEXT + GUARD_TEXT);
      if (!(await listLinks()).includes(this.ctlBridge)) {
        await createBridge(this.ctlBridge);
        const c = parseCidr(this.controlCidr, 'control.cidr', { strict: false });
        await addAddress(undefined, this.ctlBridge, `${formatIp(firstHost(c))}/${c.prefix}`);
      }
      this.remember('hostLinks', this.ctlBridge);
    })();
    return this.ready;
  }

  private nftPending: { text: string; done: (e?: Error) => void }[] = [];
  private nftRunning = false;

  /**
   * nftables changes are queued and applied in batches: a burst of N VM starts costs a few `nft -f` runs, not N
   * (each run is a process and a ruleset transaction). A batch that fails is retried piece by piece so one bad
   * change cannot block the others.
   */
  private nft(text: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.nftPending.push({ text, done: (e) => (e ? reject(e) : resolve()) });
      void this.nftPump();
    });
  }

  private async nftRun(text: string): Promise<void> {
    // nft reads the ruleset from stdin; `nsenter --net` is all it needs of the switch namespace.
    await this.sh.run(['nsenter', `--net=/run/netns/${this.switchNs}`, 'nft', '-f', '-'], {
      input: text,
      timeoutMs: 60_000,
    });
  }

  private async nftPump(): Promise<void> {
    if (this.nftRunning) return;
    this.nftRunning = true;
    try {
      while (this.nftPending.length) {
        const batch = this.nftPending.splice(0);
        try {
          await this.nftRun(batch.map((b) => b.text).join('\n'));
          for (const b of batch) b.done();
        } catch (e) {
          if (batch.length === 1) {
            batch[0]!.done(e as Error);
            continue;
          }
          for (const b of batch)
            await this.nftRun(b.text).then(
              () => b.done(),
              (x: Error) => b.done(x),
            );
        }
      }
    } finally {
      this.nftRunning = false;
    }
  }

  static bridgeName(n: Pick<GuestNetworkRuntime, 'vnet' | 'isolation' | 'id'>): string {
    if (n.vnet === null) return `br-n${n.id}`;
    return n.isolation === 'VXLAN' ? `br-vx${n.vnet}` : `br-v${n.vnet}`;
  }

  private ensureBridge(n: GuestNetworkRuntime): Promise<void> {
    return this.ensureSwitchBridge(NetnsDriver.bridgeName(n));
  }

  /** A bridge in the switch namespace, made once per process (guest networks and public VLANs). */
  private ensureSwitchBridge(name: string): Promise<void> {
    let p = this.bridges.get(name);
    if (!p) {
      p = (async () => {
        if (!(await listLinks(this.switchNs)).includes(name)) await createBridge(name, { ns: this.switchNs });
      })();
      this.bridges.set(name, p);
      p.catch(() => this.bridges.delete(name));
    }
    return p;
  }

  // ------------------------------------------------------------------------------------------ routers

  private routerNs(r: RouterRuntime): string {
    return `${this.o.prefix}${r.name}`;
  }

  private routerDir(r: RouterRuntime): string {
    return join(this.o.dataDir, 'routers', r.name);
  }

  private transport(r: RouterRuntime): RouterTransport {
    const addr = `${r.controlIp}:${r.controlPort}`;
    return {
      pushFull: (s, o) => pushFull(addr, r.secret, s, o),
      pushDelta: (d, o) => pushDelta(addr, r.secret, d, o),
      getStatus: () => getStatus(addr, r.secret, { leases: false }),
    };
  }

  private agentPid(r: RouterRuntime): Promise<number | null> {
    return routerAgentPid(this.routerDir(r));
  }

  async ensureRouter(r: RouterRuntime): Promise<RouterTransport> {
    await this.base();
    const ns = this.routerNs(r);
    if (await this.agentPid(r)) {
      // Running: only its public NICs may have changed (an IP from another VLAN); a no-op when they did not.
      await this.publicSide.plug(r, ns);
      return this.transport(r);
    }
    await this.ensureNs(ns);
    await this.ensureBridge(r.network);
    const inner = await exec(['ip', '-n', ns, '-o', 'link', 'show']).then((x) => x.stdout);
    if (!/\beth0@/.test(inner)) {
      await deleteLink(`r${r.id}`, { ns: this.switchNs });
      await createVeth({
        ns,
        ifname: 'eth0',
        outerName: `r${r.id}`,
        outerNs: this.switchNs,
        bridge: NetnsDriver.bridgeName(r.network),
        ...(r.guestMac ? { mac: r.guestMac } : {}),
      });
    }
    // A network implemented again (after GC) may have a new VLAN, so a new bridge: re-attach the guest port.
    await run([
      'ip',
      '-n',
      this.switchNs,
      'link',
      'set',
      `r${r.id}`,
      'master',
      NetnsDriver.bridgeName(r.network),
      'up',
    ]);
    if (!/\beth1@/.test(inner)) {
      const outer = `${this.tag}c${r.id}`;
      await deleteLink(outer);
      await createVeth({ ns, ifname: 'eth1', outerName: outer, bridge: this.ctlBridge });
      this.remember('hostLinks', outer);
      const c = parseCidr(this.controlCidr, 'control.cidr', { strict: false });
      await addAddress(ns, 'eth1', `${r.controlIp}/${c.prefix}`);
    }
    await plugVpcTransit(this.switchNs, ns, r);
    await this.publicSide.plug(r, ns, true);
    await startRouterAgent({
      name: r.name,
      ns,
      dir: this.routerDir(r),
      controlIp: r.controlIp,
      controlPort: r.controlPort,
      secret: r.secret,
      ...(r.appliance ? { appliance: r.appliance } : {}),
    });
    const t = this.transport(r);
    return t;
  }

  async inspectRouter(r: RouterRuntime, q: InspectQuery): Promise<Inspection> {
    return getInspection(`${r.controlIp}:${r.controlPort}`, r.secret, q);
  }

  async stopRouter(r: RouterRuntime): Promise<void> {
    const pid = await this.agentPid(r);
    // SIGTERM: the agent stops keepalived and dnsmasq before it exits.
    if (pid) await killPid(pid, 5000);
  }

  async rebootRouter(r: RouterRuntime): Promise<void> {
    await this.stopRouter(r);
    if (await listNamespaces().then((l) => l.includes(this.routerNs(r))))
      await killNamespacePids(this.routerNs(r));
    rmSync(join(this.routerDir(r), 'data'), { recursive: true, force: true });
  }

  async destroyRouter(r: RouterRuntime): Promise<void> {
    await this.rebootRouter(r);
    await deleteLink(`r${r.id}`, { ns: this.switchNs }).catch(() => undefined);
    await unplugVpcTransit(this.switchNs, r).catch(() => undefined);
    await this.publicSide.unplug(r).catch(() => undefined);
    await deleteLink(`${this.tag}c${r.id}`).catch(() => undefined);
    this.remember('hostLinks', `${this.tag}c${r.id}`, false);
    await deleteNamespace(this.routerNs(r)).catch(() => undefined);
    this.remember('namespaces', this.routerNs(r), false);
    rmSync(this.routerDir(r), { recursive: true, force: true });
  }

  // ------------------------------------------------------------------------------------------ VMs

  vmNs(vm: Pick<VmRuntime, 'instanceName'>): string {
    return `${this.o.prefix}${vm.instanceName}`;
  }

  private vmDir(vm: VmRuntime): string {
    return join(this.o.dataDir, 'vms', vm.instanceName);
  }

  /**
   * Namespace, veths (MAC set at creation) and port rules of a VM, in a handful of processes: `ip -b` batches
   * per namespace, one queued nft change. A burst of VM starts is bounded by these, not by the database.
   */
  private async plugNics(vm: VmRuntime): Promise<number> {
    const ns = this.vmNs(vm);
    const fresh = !existsSync(`/run/netns/${ns}`);
    if (fresh) {
      await run(['ip', 'netns', 'add', ns]);
      mkdirSync(dirname(resolvConfPath(ns)), { recursive: true });
      writeFileSync(resolvConfPath(ns), '# written by stacknet; the DHCP hook fills it in\n');
    }
    this.remember('namespaces', ns);
    const inner = fresh ? '' : (await exec(['ip', '-n', ns, '-o', 'link', 'show'])).stdout;
    const sw: string[] = [];
    const guest: string[] = ['link set lo up'];
    for (const nic of vm.nics) {
      await this.ensureBridge(nic.network);
      const ifname = `eth${nic.deviceId}`;
      if (!new RegExp(`\\b${ifname}@`).test(inner)) {
        // A stale outer end (namespace deleted asynchronously) would make the add fail: -force goes on.
        sw.push(`link del n${nic.id}`);
        sw.push(`link add n${nic.id} type veth peer name ${ifname} address ${nic.mac} netns ${ns}`);
        sw.push(`link set n${nic.id} master ${NetnsDriver.bridgeName(nic.network)} up`);
      } else {
        // The network may have been re-implemented on another VLAN (bridge) since this VM last ran.
        sw.push(`link set n${nic.id} master ${NetnsDriver.bridgeName(nic.network)} up`);
      }
      guest.push(`link set ${ifname} up`);
    }
    if (sw.length)
      await exec(['ip', '-n', this.switchNs, '-force', '-b', '-'], { input: `${sw.join('\n')}\n` });
    await run(['ip', '-n', ns, '-b', '-'], { input: `${guest.join('\n')}\n` });
    const linked = Date.now();
    await Promise.all(vm.nics.map((nic) => this.portRules(nic, fresh)));
    return linked;
  }

  /**
   * Anti-spoofing for one VM port (reference §4.10): its elements in the `guard` chain's sets (`GUARD_TEXT`,
   * `portElements`); the router's port has none (it serves DHCP and sends router advertisements). A fresh port
   * (its namespace just made: nothing of it can be there) only adds, without looking: O(1) in the ruleset. Any
   * other plug replaces whatever the port had (`replacePort`), in one transaction.
   */
  private async portRules(nic: VmNicRuntime, fresh = false): Promise<void> {
    if (fresh) {
      const added = await this.nft(elementsText('add', portElements(nic))).then(
        () => true,
        () => false,
      );
      // A leftover of an earlier port with this name (a crash between plug and unplug): look, and replace.
      if (added) return;
    }
    await this.replacePort(nic);
  }

  private listPorts(): Promise<string> {
    return this.sh
      .run(['nsenter', `--net=/run/netns/${this.switchNs}`, 'nft', 'list', 'table', 'bridge', 'stacknet'], {
        timeoutMs: 60_000,
      })
      .then((r) => r.stdout);
  }

  /**
   * Takes away everything port `n<nic id>` has in the table (its set elements, its `ports` element and the chain
   * of its own an older build made) and, unless `remove`, puts in what it should have: one transaction, so the
   * port is never without its rules in between.
   */
  private async replacePort(nic: VmNicRuntime, remove = false): Promise<void> {
    const text = portReplaceText(await this.listPorts(), nic, remove);
    if (text) await this.nft(text);
  }

  /** The port's anti-spoofing as the kernel has it, against what `portElements` puts there (the doctor's step). */
  async inspectPort(nic: VmNicRuntime): Promise<PortInspection> {
    return portInspection(await this.listPorts().catch(() => ''), nic);
  }

  private async unplugRules(nic: VmNicRuntime): Promise<void> {
    await this.replacePort(nic, true).catch(() => undefined);
  }

  private async dhcpPid(vm: VmRuntime): Promise<number | null> {
    try {
      const pid = Number(readFileSync(join(this.vmDir(vm), 'udhcpc.pid'), 'utf8'));
      return pid > 1 && (await pidAlive(pid)) ? pid : null;
    } catch {
      return null;
    }
  }

  startVm(vm: VmRuntime): Promise<void> {
    return this.startWhen(vm);
  }

  /** The namespace, veths and port rules at once; the guest (its DHCP client) once `ready` resolved. */
  startVmAfter(vm: VmRuntime, ready: Promise<unknown>): Promise<void> {
    return this.startWhen(vm, ready);
  }

  private async startWhen(vm: VmRuntime, ready?: Promise<unknown>): Promise<void> {
    const start = Date.now();
    await this.base();
    if (vm.nics.length > 0 && !existsSync(`/run/netns/${this.vmNs(vm)}`)) {
      const marks = await this.starts.start(vm, ready);
      this.o.trace?.({ ev: 'vm-driver', vm: vm.instanceName, start, ...marks });
      return;
    }
    const linked = await this.plugNics(vm);
    const plugged = Date.now();
    await ready;
    await this.startGuest(vm);
    this.o.trace?.({ ev: 'vm-driver', vm: vm.instanceName, start, linked, plugged, spawned: Date.now() });
  }

  /** The VM's DHCP client (its guest OS) unless it runs: started on its own, detached. */
  private async startGuest(vm: VmRuntime): Promise<void> {
    if (await this.dhcpPid(vm)) return;
    const g = this.guest(vm, await hookScripts());
    if (!g) return;
    const out = openSync(g.log, 'a');
    try {
      const child = spawn(g.argv[0]!, g.argv.slice(1), {
        detached: true,
        stdio: ['ignore', out, out],
        env: { ...process.env, ...g.env },
      });
      child.unref();
      writeFileSync(g.pidFile, String(child.pid));
    } finally {
      closeSync(out);
    }
  }

  /**
   * How the VM's DHCP client runs: busybox udhcpc on the default NIC in the VM's namespace under its host name,
   * our hook recording the lease. Clears the last lease record first.
   */
  private guest(vm: VmRuntime, hooks: { udhcpc: string }, prepare = true): GuestSpec | null {
    const ns = this.vmNs(vm);
    const def = vm.nics.find((n) => n.isDefault) ?? vm.nics[0];
    if (!def) return null;
    const ifname = `eth${def.deviceId}`;
    const dirs = [this.vmDir(vm), stateDir(ns), dirname(resolvConfPath(ns))];
    if (prepare) for (const d of dirs) mkdirSync(d, { recursive: true });
    // The NICs are up already (plugMany makes them up; plugNics brings them up); lo comes up with the lease, in
    // the `ip` the hook runs anyway (no process per VM), and the other NICs again there, harmlessly.
    const up = ['lo', ...vm.nics.filter((n) => n !== def).map((n) => `eth${n.deviceId}`)];
    const { argv, env } = lightGuestUdhcpc(ns, ifname, vm.hostname, up, hooks, prepare);
    return {
      argv,
      env,
      dirs,
      stale: leaseStatePath(ns, ifname),
      log: join(this.vmDir(vm), 'udhcpc.log'),
      pidFile: join(this.vmDir(vm), 'udhcpc.pid'),
    };
  }

  async stopVm(vm: VmRuntime): Promise<void> {
    const pid = await this.dhcpPid(vm);
    if (pid) await killPid(pid, 2000);
    const ns = this.vmNs(vm);
    if ((await listNamespaces()).includes(ns)) {
      await killNamespacePids(ns).catch(() => undefined);
      for (const nic of vm.nics)
        await run(['ip', '-n', ns, '-4', 'addr', 'flush', 'dev', `eth${nic.deviceId}`]).catch(
          () => undefined,
        );
    }
  }

  async destroyVm(vm: VmRuntime): Promise<void> {
    await this.stopVm(vm);
    for (const nic of vm.nics) {
      await this.unplugRules(nic);
      await deleteLink(`n${nic.id}`, { ns: this.switchNs }).catch(() => undefined);
    }
    const ns = this.vmNs(vm);
    await deleteNamespace(ns).catch(() => undefined);
    this.remember('namespaces', ns, false);
    rmSync(this.vmDir(vm), { recursive: true, force: true });
    rmSync(stateDir(ns), { recursive: true, force: true });
  }

  async updateVm(vm: VmRuntime): Promise<void> {
    await this.base();
    await this.plugNics(vm);
  }

  async close(): Promise<void> {
    this.sh.close();
  }

  /** Removes everything this driver's data dir says it created (and nothing else). */
  static async cleanup(dataDir: string, log: (m: string) => void = () => undefined): Promise<void> {
    let c: Created;
    try {
      c = JSON.parse(readFileSync(join(dataDir, 'created.json'), 'utf8')) as Created;
    } catch {
      log(`nothing recorded in ${dataDir}`);
      return;
    }
    for (const pidFile of ['routers', 'vms'].flatMap((d) => listPidFiles(join(dataDir, d)))) {
      const pid = Number(readFileSync(pidFile, 'utf8'));
      if (pid > 1 && (await pidAlive(pid))) await killPid(pid, 5000);
    }
    const present = await listNamespaces();
    for (const ns of c.namespaces) {
      if (!present.includes(ns)) continue;
      await killNamespacePids(ns).catch(() => undefined);
      await deleteNamespace(ns).catch(() => undefined);
      log(`removed namespace ${ns}`);
    }
    for (const l of c.hostLinks) {
      await deleteLink(l).catch(() => undefined);
      log(`removed link ${l}`);
    }
    rmSync(join(dataDir, 'created.json'), { force: true });
  }
}

function listPidFiles(dir: string): string[] {
  try {
    return readdirSync(dir).flatMap((d) =>
      ['agent.pid', 'udhcpc.pid'].map((f) => join(dir, d, f)).filter((f) => existsSync(f)),
    );
  } catch {
    return [];
  }
}
