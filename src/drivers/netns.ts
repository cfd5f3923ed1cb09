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
import { mkdir, rm } from 'node:fs/promises';
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
import { NetnsShell, shq } from './netns-shell.js';
import {
  GUARD_TEXT,
  PORT_TABLE_TEXT,
  elementsText,
  portElements,
  portReplaceText,
  portState,
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

/**
 * A fresh VM waiting for its start (startFresh): `ready` settles when its guest may run (startVmAfter), `state`
 * says how it settled.
 */
interface StartRequest {
  vm: VmRuntime;
  state: 'waiting' | 'ready' | 'failed';
  ready?: Promise<void>;
  error?: Error;
  done: (e?: Error, marks?: StartMarks) => void;
}

/** Most fresh VMs started in one batch (startFresh). */
const START_BATCH = 128;
/**
 * Least time between the starts of two batches in a burst (startPump): about a router pass's time in a burst,
 * so the guests' wait for their router covers it.
 */
const START_GATHER_MS = 100;

/** When a VM start's phases ended (epoch ms), for the trace; `batch`: how many VMs started with it. */
interface StartMarks {
  linked: number;
  plugged: number;
  spawned: number;
  batch: number;
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
    const port = `n${nic.id}`;
    const listed = await this.listPorts().catch(() => '');
    const have = portState(listed, port);
    const block = (kind: string, name: string) =>
      new RegExp(`\\n\\t${kind} ${name} \\{([\\s\\S]*?)\\n\\t\\}`).exec(listed)?.[1] ?? null;
    const own = have.target === `p_${port}`;
    const chain = own ? block('chain', `p_${port}`) : block('chain', 'guard');
    const hooked = chain !== null && (own || have.target === 'guard');
    // The rules that make it anti-spoofing, found by their comment and checked for the values: written into the
    // port's own chain (an older build's), or looked up in the sets by the port's name.
    const lines = (chain ?? '').split('\n');
    const rule = (comment: string, ...values: string[]) =>
      lines.some(
        (l) =>
          l.includes(`comment "${comment}"`) &&
          l.includes('drop') &&
          values.every((v) => new RegExp(`(^|[\\s{,])${v.replace(/\./g, '\\.')}($|[\\s},])`).test(l)),
      );
    const element = (set: string, value: string) =>
      have.elements.some((e) => e.set === set && e.element === `"${port}" . ${value.toLowerCase()}`);
    const mac = own
      ? rule('source mac', nic.mac)
      : rule('source mac', '@port_mac') && element('port_mac', nic.mac);
    const ip = (a: string) =>
      own ? rule('source ip', a) : rule('source ip', '@port_ip4') && element('port_ip4', a);
    const want: [boolean, string][] = [
      [mac, `ether saddr != ${nic.mac} drop (source mac)`],
      [rule('dhcp server', 'dport'), 'udp dport { 68, 546 } drop (dhcp server)'],
      ...nic.ipv4s.map((a): [boolean, string] => [ip(a), `ip saddr != { ${a} } drop (source ip)`]),
    ];
    return {
      chain: own ? `bridge stacknet p_${port}` : `bridge stacknet guard (port ${port})`,
      hooked,
      missing: want.filter(([ok]) => !ok).map(([, w]) => w),
    };
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
      const marks = await this.startFresh(vm, ready);
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
  private guest(
    vm: VmRuntime,
    hooks: { udhcpc: string },
    prepare = true,
  ): {
    argv: string[];
    env: Record<string, string>;
    log: string;
    pidFile: string;
    /** What `prepare` does (false: the caller's batch script does it): directories made, a record removed. */
    dirs: string[];
    stale: string;
  } | null {
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

  private startPending: StartRequest[] = [];
  private startRunning = false;
  private readonly starting = new Map<string, Promise<StartMarks>>();

  /**
   * A VM whose namespace does not exist yet: queued and started with the others waiting, in batches. A server
   * process forks slowly (measured 35–120 ms of blocked event loop per child at 45–350 MB RSS on these
   * machines), so a burst of N starts costs no fork of the server: the driver shell (netns-shell.ts) runs one
   * `ip -b` for the namespaces, one in the switch namespace for the veths, one nft transaction for the port
   * rules (elements of the guard chain's sets: O(1) per port), and one script that starts each VM's DHCP client
   * (one fork and two execs per VM: lightGuestUdhcpc; the veths' batch makes the VM's end up in its namespace).
   * A batch that fails is done again VM by VM on the one-at-a-time path
   * (plugNics, startGuest), which says which VM failed and why.
   */
  private startFresh(vm: VmRuntime, ready?: Promise<unknown>): Promise<StartMarks> {
    const ns = this.vmNs(vm);
    let p = this.starting.get(ns);
    if (!p) {
      p = new Promise<StartMarks>((resolve, reject) => {
        const r: StartRequest = { vm, state: 'ready', done: (e, m) => (e ? reject(e) : resolve(m!)) };
        if (ready) {
          r.state = 'waiting';
          r.ready = ready.then(
            () => void (r.state = 'ready'),
            (e: unknown) => {
              r.state = 'failed';
              r.error = e instanceof Error ? e : new Error(String(e));
            },
          );
        }
        this.startPending.push(r);
        void this.startPump();
      }).finally(() => this.starting.delete(ns));
      this.starting.set(ns, p);
    }
    return p;
  }

  private async startPump(): Promise<void> {
    if (this.startRunning) return;
    this.startRunning = true;
    try {
      // A batch's guests start while the next batch is plugged (its namespaces, veths, rules): one script of
      // guest starts in flight at a time, after the one before it, each batch answered when its guests run.
      let spawning: Promise<void> = Promise.resolve();
      let lastBatch = 0;
      while (this.startPending.length) {
        // Within a burst, batches START_GATHER_MS apart at least: VMs whose guests wait for their router anyway
        // (startVmAfter) arrive one by one as their jobs commit, and a batch of each handful costs the same
        // processes as a batch of many. The first batch after a pause goes at once.
        const since = Date.now() - lastBatch;
        if (this.startPending.length < START_BATCH && since < START_GATHER_MS)
          await new Promise((r) => setTimeout(r, START_GATHER_MS - since));
        lastBatch = Date.now();
        const batch = this.startPending.splice(0, START_BATCH);
        const vms = batch.map((b) => b.vm);
        const plugged = await this.plugMany(vms).catch((e: Error) => {
          this.o.log?.(`plugging ${batch.length} VMs at once: ${e.message}; one by one instead`);
          return null;
        });
        spawning = spawning.then(async () => {
          // The guests whose routers are ready, as they become so (a router pass makes a whole batch ready at
          // once, nearly always): one start script per group.
          for (let left = batch; left.length;) {
            if (left.every((b) => b.state === 'waiting')) await Promise.race(left.map((b) => b.ready));
            const now = left.filter((b) => b.state !== 'waiting');
            left = left.filter((b) => b.state === 'waiting');
            for (const b of now) if (b.state === 'failed') b.done(b.error);
            await this.spawnGroup(
              now.filter((b) => b.state === 'ready'),
              plugged,
            );
          }
        });
        // Every path above settles its VMs; nothing may stop the chain for the batches after.
        spawning = spawning.catch((e: Error) => this.o.log?.(`starting VMs: ${e.message}`));
      }
    } finally {
      this.startRunning = false;
    }
  }

  /** The guests of a plugged batch (or of a part of it), or each VM on its own when that fails (see startFresh). */
  private async spawnGroup(
    group: StartRequest[],
    plugged: { linked: number; plugged: number } | null,
  ): Promise<void> {
    if (group.length === 0) return;
    const r = plugged
      ? await this.spawnMany(
          group.map((b) => b.vm),
          plugged,
        ).catch((e: Error) => {
          this.o.log?.(`starting ${group.length} VMs at once: ${e.message}; one by one instead`);
          return null;
        })
      : null;
    for (const b of group) {
      if (r && !r.failed.has(b.vm.instanceName)) {
        b.done(undefined, r.marks);
        continue;
      }
      await (async () => {
        const linked = await this.plugNics(b.vm);
        const plugged = Date.now();
        await this.startGuest(b.vm);
        return { linked, plugged, spawned: Date.now(), batch: 1 };
      })().then(
        (m) => b.done(undefined, m),
        (e: Error) => b.done(e),
      );
    }
  }

  /** One batch of fresh VMs, plugged: namespaces, veths and port rules (see startFresh). */
  private async plugMany(vms: VmRuntime[]): Promise<{ linked: number; plugged: number }> {
    const nss = vms.map((vm) => this.vmNs(vm));
    const long = { timeoutMs: 120_000 };
    await this.sh.run(['ip', '-b', '-'], { input: nss.map((ns) => `netns add ${ns}\n`).join(''), ...long });
    // Their resolv.conf is written by the guests' start script (spawnMany), not here: a few file system calls per
    // VM on the server's event loop add up in a burst.
    this.remember('namespaces', nss);
    const nics = vms.flatMap((vm, i) => vm.nics.map((nic) => ({ ns: nss[i]!, nic })));
    await Promise.all(nics.map((x) => this.ensureBridge(x.nic.network)));
    // One strict batch for the veths. A stale outer end (a namespace deleted asynchronously) makes it fail: then
    // every outer end of the batch goes (-force: most do not exist) and the batch runs again, once. No process
    // is spent on stale ends that are not there, which is nearly always.
    const add = () =>
      this.sh.run(['ip', '-n', this.switchNs, '-b', '-'], {
        input: nics
          .map(
            // The VM's end made in the VM's namespace and up at once (the guest's hook then needs no `ip` for
            // it: lightGuestUdhcpc). Measured on this kernel: only the end the request names can come up in it
            // (asking for the peer up fails, ENOTCONN: the veth's two ends are not joined yet).
            ({ ns, nic }) =>
              `link add eth${nic.deviceId} address ${nic.mac} netns ${ns} up type veth peer name n${nic.id}\n` +
              `link set n${nic.id} master ${NetnsDriver.bridgeName(nic.network)} up\n`,
          )
          .join(''),
        ...long,
      });
    await add().catch(async () => {
      await this.sh.exec(['ip', '-n', this.switchNs, '-force', '-b', '-'], {
        input: nics.map((x) => `link del n${x.nic.id}\n`).join(''),
        ...long,
      });
      await add();
    });
    const linked = Date.now();
    await Promise.all(nics.map((x) => this.portRules(x.nic, true)));
    return { linked, plugged: Date.now() };
  }

  /** The guests of a plugged batch (see startFresh). Returns the instance names whose guest did not start. */
  private async spawnMany(
    vms: VmRuntime[],
    { linked, plugged }: { linked: number; plugged: number },
  ): Promise<{ failed: Set<string>; marks: StartMarks }> {
    const nss = vms.map((vm) => this.vmNs(vm));
    const long = { timeoutMs: 120_000 };
    // Each guest, its pid recorded as it starts. The script's shell runs in a session of its own (setsid), which
    // its guests keep: detached from the server's and from the driver shell's (which a timeout kills).
    // Per VM one fork and two execs (nsenter, udhcpc); the VM's links are up already (plugMany), lo comes up with
    // the lease (lightGuestUdhcpc).
    const script: string[] = [];
    const hooks = await hookScripts();
    // The guests' directories made and their last lease records removed in libuv's threads, side by side, their
    // resolv.conf written by the script's shell: no synchronous file system call per VM on the server's event
    // loop, and no process for them either (a `mkdir` per batch costs more than it saves when batches are small).
    const guests = vms.map((vm) => this.guest(vm, hooks, false));
    await Promise.all(guests.flatMap((g) => g?.dirs ?? []).map((d) => mkdir(d, { recursive: true })));
    await Promise.all(guests.map((g) => g && rm(g.stale, { force: true })));
    for (const [i, vm] of vms.entries()) {
      const ns = nss[i]!;
      const g = guests[i];
      const env = g ? Object.entries(g.env).map(([k, v]) => `${k}=${shq(v)}`) : [];
      script.push(
        `if [ -e ${shq(`/run/netns/${ns}`)} ]; then`,
        `  echo ${shq('# written by stacknet; the DHCP hook fills it in')} >${shq(resolvConfPath(ns))}`,
        ...(g
          ? [
              `  ${env.join(' ')} ${g.argv.map(shq).join(' ')} >>${shq(g.log)} 2>&1 </dev/null &`,
              `  echo $! >${shq(g.pidFile)}`,
            ]
          : []),
        `  echo ${shq(`started ${vm.instanceName}`)}`,
        'fi',
      );
    }
    const out = (await this.sh.exec(['setsid', 'sh'], { input: `${script.join('\n')}\n`, ...long })).stdout;
    const marks = { linked, plugged, spawned: Date.now(), batch: vms.length };
    const started = new Set(
      out
        .split('\n')
        .filter((l) => l.startsWith('started '))
        .map((l) => l.slice('started '.length)),
    );
    return { failed: new Set(vms.map((vm) => vm.instanceName).filter((n) => !started.has(n))), marks };
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
