/**
 * Converges a host to its HostDesiredState, level-based: guest networks (bridges on VLAN sub-interfaces or
 * VXLAN devices), routers (namespaces running `stacknet router-agent`, eth0 on the guest bridge, eth1 on the
 * host-local control bridge, eth2, eth3... on the public bridges of the public traffic label), VMs through their
 * backend, and each VM port's anti-spoofing (the netns driver's `guard` chain and its sets keyed by the port,
 * drivers/netns-ports.ts: bridge family, in the agent's own namespace). Whatever the state names is made or repaired;
 * whatever this agent made that the state no longer names is removed. A failing item is quarantined in the
 * result's `errors` and never blocks the others. Everything made is listed in created.json (created.ts).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type {
  HostDesiredState,
  HostNetworkSpec,
  HostStatus,
  HostVmNicSpec,
  HostVmSpec,
} from '../hosts/protocol.js';
import { vmPortName } from '../hosts/protocol.js';
import {
  GUARD_TEXT,
  PORT_TABLE_TEXT,
  hasGuard,
  listedPorts,
  portInPlace,
  portRemoveText,
  portReplaceText,
} from '../drivers/netns-ports.js';
import { firstHost, formatIp, parseCidr } from '../ipam/index.js';
import { deleteLink, deleteNamespace, exec, killNamespacePids, listNamespaces, run } from '../netns/index.js';
import { Created } from './created.js';
import {
  ensureNetwork,
  linkTable,
  networkDevice,
  removeNetwork,
  removePublicBridge,
  type LinkInfo,
} from './host-links.js';
import { HostRouters, type Guard } from './host-routers.js';
import type { VmBackend } from './vm-backend.js';
import { BoundedItems, DEFAULT_DEADLINES, deadlinesFromEnv } from './item-deadlines.js';
import type { ItemDeadlines, Step } from './item-deadlines.js';

/** How many VMs one pass converges at once. */
const VM_SLOTS = 4;

export interface ConvergeOptions {
  dataDir: string;
  /** Prefix of every namespace (tests); empty in production. */
  prefix: string;
  /** The underlay address VXLAN tunnels end at. */
  hostAddress: string;
  /** The control network (the server's control.cidr): the control bridge holds its first host. */
  controlCidr: string;
  /** The public traffic label (`--public-label`) when a router's public NIC names none. */
  publicLabel?: string;
  backends: ReadonlyMap<'libvirt' | 'netns', VmBackend>;
  log: (m: string) => void;
  /** Per kind of item, its deadline (DEFAULT_DEADLINES, then `STACKNET_HOST_DEADLINES`, then these). */
  deadlines?: Partial<ItemDeadlines>;
}

export type ConvergeResult = Omit<HostStatus, 'appliedGeneration'>;

/** Told of what a pass did before the pass ends (the agent reports it to the server at once). */
export interface ConvergeHooks {
  /**
   * A VM is in its spec's state (its backend's `ensure` returned) or failed (`Error`, with why), told the moment
   * it is so, not after the rest of the pass (its ports' rules, the other VMs, the removals).
   */
  vm?: (vm: HostStatus['vms'][number]) => void;
  /**
   * The VMs a newer desired state names (the agent's newest): a VM started from it while this pass runs
   * (`ensureNewVms`), and its ports' rules, are not this pass's to remove.
   */
  keep?: () => readonly HostVmSpec[];
  /**
   * The networks that newer state names: a network made for it early (`ensureNewVms`, its first VM here) is not
   * this pass's to remove.
   */
  keepNetworks?: () => readonly HostNetworkSpec[];
}

type Errors = HostStatus['errors'];

/** A VM spec as a whole: the same key, the same VM in the same state on the same networks. */
const vmKey = (v: HostVmSpec): string => JSON.stringify(v);

export class HostConverger {
  readonly created: Created;
  /** The control bridge: `h<4 hex of the prefix>ctl`, so two agents with other prefixes on one machine differ. */
  readonly controlBridge: string;
  /** The desired state's control network, else the option. */
  private controlCidr: string;
  /**
   * Per VM its last backend call, per network its last making (`serial`): a pass and `ensureNewVms` never work on
   * one VM or one network at once.
   */
  private readonly queues = new Map<string, Promise<unknown>>();
  /** The VMs (`vmKey`) an early batch (`ensureNewVms`) is starting now. */
  private readonly earlyTaken = new Set<string>();
  /**
   * Whether this agent wrote `GUARD_TEXT` yet: once per agent process (a newer build's rules replace an older
   * one's, as the netns driver does at each start), and whenever the chain is missing.
   */
  private guardWritten = false;
  /** Templates fetched (or being fetched) ahead of use, per backend (`prefetchTemplates`). */
  private readonly prefetched = new Set<string>();
  readonly deadlines: ItemDeadlines;
  private readonly items: BoundedItems;
  /** The routers' half of a pass (host-routers.ts). */
  private readonly routers: HostRouters;
  /**
   * The pass under way's networks step: settled once the networks of `state` (the state that pass converges) are
   * made. An early start (`ensureNewVms`) of a VM whose network that pass makes waits for it instead of waiting
   * for the whole pass (a burst's second VM on a host the network was new to).
   */
  private networkStep: { state: HostDesiredState; done: Promise<void> } | null = null;

  constructor(private readonly o: ConvergeOptions) {
    mkdirSync(o.dataDir, { recursive: true });
    this.created = new Created(o.dataDir);
    this.controlBridge = `h${createHash('sha256')
      .update(o.prefix || 'stacknet')
      .digest('hex')
      .slice(0, 4)}ctl`;
    this.controlCidr = o.controlCidr;
    this.deadlines = { ...DEFAULT_DEADLINES, ...deadlinesFromEnv(), ...o.deadlines };
    this.items = new BoundedItems(o.log);
    this.routers = new HostRouters(
      {
        dataDir: o.dataDir,
        prefix: o.prefix,
        publicLabel: o.publicLabel,
        log: o.log,
        deadlines: this.deadlines,
      },
      this.created,
      this.controlBridge,
    );
  }

  /** What the items under way are doing (the agent logs it while a pass runs long), '' when none runs. */
  doing(): string {
    return this.items.doing();
  }

  private bounded<T>(key: string, what: string, ms: number, f: (step: Step) => Promise<T>): Promise<T> {
    return this.items.run(key, what, ms, f);
  }

  /** The control bridge with the control network's first host. */
  private async base(links: Map<string, LinkInfo>): Promise<void> {
    const c = parseCidr(this.controlCidr, 'control cidr', { strict: false });
    if (!links.has(this.controlBridge)) {
      this.created.add('links', this.controlBridge);
      await run(['ip', '-b', '-'], {
        input:
          `link add name ${this.controlBridge} type bridge stp_state 0 forward_delay 0\n` +
          `link set ${this.controlBridge} up\n` +
          `addr add ${formatIp(firstHost(c))}/${c.prefix} dev ${this.controlBridge}\n`,
      });
    } else if (!links.get(this.controlBridge)!.flags.includes('UP'))
      await run(['ip', 'link', 'set', this.controlBridge, 'up']);
  }

  private async nft(text: string): Promise<void> {
    const file = join(this.o.dataDir, `nft-${process.pid}-${Math.random().toString(36).slice(2)}.nft`);
    writeFileSync(file, text);
    try {
      await run(['nft', '-f', file]);
    } finally {
      rmSync(file, { force: true });
    }
  }

  /** True when the newest state (`hooks.keep`) names VM `v` otherwise, or no more: `v`'s spec is not to be acted on. */
  private superseded(v: HostVmSpec, hooks: ConvergeHooks): boolean {
    if (!hooks.keep) return false;
    const newest = hooks.keep().find((x) => x.instanceName === v.instanceName);
    return !newest || vmKey(newest) !== vmKey(v);
  }

  /** A guest network's device, bridge and peers (level-based); true when anything was changed. */
  private makeNetwork(n: HostNetworkSpec, links: Map<string, LinkInfo>): Promise<boolean> {
    return this.serial(`network:${n.bridge}`, async (waited) => {
      this.created.update((x) => (x.networks[n.bridge] = networkDevice(n)));
      const what = await ensureNetwork(n, this.o.hostAddress, waited ? await linkTable() : links);
      if (what.length) this.o.log(`network ${n.id}: ${what.join(', ')}`);
      // Made by the call it waited for: the caller's links do not show it.
      return what.length > 0 || waited;
    });
  }

  /**
   * `started`: VMs (`vmKey`) ensured just before this pass from this very spec (`ensureNewVms`, their ports' rules
   * with them): the pass does not ask their backend again (its `list()` still reports them).
   */
  async converge(
    d: HostDesiredState,
    hooks: ConvergeHooks = {},
    started: ReadonlySet<string> = new Set(),
  ): Promise<ConvergeResult> {
    this.controlCidr = d.controlCidr ?? this.o.controlCidr;
    this.prefetchTemplates(d);
    let networksMade = () => {};
    this.networkStep = { state: d, done: new Promise<void>((ok) => (networksMade = ok)) };
    try {
      return await this.pass(d, hooks, started, networksMade);
    } finally {
      networksMade();
    }
  }

  private async pass(
    d: HostDesiredState,
    hooks: ConvergeHooks,
    started: ReadonlySet<string>,
    networksMade: () => void,
  ): Promise<ConvergeResult> {
    const errors: Errors = [];
    /** Runs one item; its failure is quarantined in `errors` and its message returned (undefined when it worked). */
    const guard: Guard = async (what, f, bound) => {
      try {
        await (bound ? this.bounded(bound.key, what, bound.ms, f) : f(() => {}));
        return undefined;
      } catch (e) {
        const message = (e as Error).message;
        errors.push({ what, message });
        this.o.log(`${what}: ${message}`);
        return message;
      }
    };
    let links = await linkTable();
    await guard(`control bridge ${this.controlBridge}`, () => this.base(links));
    let changed = false;

    const bridges = new Map<number, string>();
    for (const n of d.networks)
      await guard(
        networkWhat(n),
        async () => {
          const before = changed;
          changed = true; // until it is known nothing was
          changed = (await this.makeNetwork(n, links)) || before;
          bridges.set(n.id, n.bridge);
        },
        { key: `network:${n.bridge}`, ms: this.deadlines.network },
      );
    if (changed) links = await linkTable();
    networksMade();

    const routerErrors = await this.routers.converge(d, this.controlCidr, bridges, links, guard);

    const vmErrors = new Map<string, string>();
    const ports = new Map<string, HostVmNicSpec>();
    for (const vm of d.vms) for (const nic of vm.nics) ports.set(vmPortName(nic.id), nic);
    // The ports' rules before the VMs: the elements are keyed by the port's name, so they are in force the moment
    // the backend makes the port, and a booting guest never sends a frame its rules do not see.
    await this.ensurePorts(
      ports,
      errors,
      () => new Set((hooks.keep?.() ?? []).flatMap((v) => v.nics.map((n) => vmPortName(n.id)))),
    );
    // What each backend has, listed once before the VMs (libvirt: one `virsh list --all`, whose states its
    // `ensure` then takes instead of a `virsh domstate` per VM), for the removals below. A VM started after it
    // (early, from a newer state) is not in it, so it cannot be taken for one to remove.
    const listed = new Map<string, { backend: VmBackend; state: 'Running' | 'Stopped' }>();
    for (const backend of this.o.backends.values())
      await guard(`${backend.name} backend`, async () => {
        for (const v of await backend.list()) listed.set(v.instanceName, { backend, state: v.state });
      });
    // VMs converge VM_SLOTS at a time: a burst placed on this host starts its domains side by side, not one
    // `virsh start` after another (each backend serialises the work on one VM itself).
    const queue = d.vms.filter((v) => !started.has(vmKey(v)));
    // A VM a newer state names otherwise, or no more, when its turn comes (asked then: its earlier backend call
    // may be the newer state's, started early) is the newer state's: this pass must not undo it, e.g. start
    // again a VM a newer state stopped (seen in a bench's teardown: stopped early, started by the resync pass
    // under way, removed by the next). It is left out of this pass's result; the newer state's report stands.
    const superseded = new Set<string>();
    const stale = (v: HostVmSpec) => this.superseded(v, hooks);
    const slot = async () => {
      for (let vm = queue.shift(); vm; vm = queue.shift()) {
        const backend = this.o.backends.get(vm.backend);
        const v = vm;
        const failed = await guard(
          `vm ${v.instanceName}`,
          async () => {
            if (!backend) throw new Error(`this host runs no ${v.backend} VM backend`);
            await this.onVm(v.instanceName, async () => {
              if (!stale(v)) return backend.ensure(v, bridges);
              superseded.add(v.instanceName);
              // Gone from the newest state: removed now, as the next pass would (left out of this pass's
              // result, it must not linger reported as gone); named otherwise: the newer state's to act on.
              if (!hooks.keep!().some((x) => x.instanceName === v.instanceName)) {
                await backend.destroy(v.instanceName);
                this.o.log(`vm ${v.instanceName}: removed (the newest state no longer names it)`);
              }
            });
          },
          { key: `vm:${v.instanceName}`, ms: this.deadlines.vm },
        );
        if (superseded.has(v.instanceName)) continue;
        if (failed) vmErrors.set(v.instanceName, failed);
        hooks.vm?.({
          instanceName: v.instanceName,
          state: failed ? 'Error' : v.state,
          ...(failed ? { message: failed } : {}),
        });
      }
    };
    await Promise.all(Array.from({ length: Math.min(VM_SLOTS, queue.length) }, slot));
    const specs = new Set(d.vms.map((v) => v.instanceName));
    // Asked again now: a newer state may have come (and started its VMs) since the ports.
    const newerVms = new Set((hooks.keep?.() ?? []).map((v) => v.instanceName));
    for (const [name, v] of listed)
      if (!specs.has(name) && !newerVms.has(name))
        await guard(
          `vm ${name} (removing)`,
          async () => {
            await this.onVm(name, () => v.backend.destroy(name));
            listed.delete(name);
          },
          { key: `vm:${name}`, ms: this.deadlines.vm },
        );

    // Networks last: nothing of this agent's is on a bridge whose network is gone by now.
    // Nor one a newer state names (made early for its first VM here, `ensureNewVms`).
    const keep = new Set([...d.networks, ...(hooks.keepNetworks?.() ?? [])].map((n) => n.bridge));
    for (const [bridge, dev] of Object.entries(this.created.read().networks))
      if (!keep.has(bridge))
        await guard(
          `network bridge ${bridge} (removing)`,
          async () => {
            await removeNetwork(bridge, dev);
            this.created.update((x) => delete x.networks[bridge]);
          },
          { key: `network:${bridge}`, ms: this.deadlines.removal },
        );

    return {
      errors,
      routers: await this.routers.status(d, routerErrors),
      // Each VM of the state was ensured into its state by this pass or just before it (`started`), or failed.
      vms: d.vms
        .filter((vm) => !superseded.has(vm.instanceName))
        .map((vm) => {
          const message = vmErrors.get(vm.instanceName);
          const state = message ? 'Error' : vm.state;
          return { instanceName: vm.instanceName, state, ...(message ? { message } : {}) };
        }),
    };
  }

  /**
   * Fetches the templates the state names (HostDesiredState.templates) into each backend's cache, in the
   * background: never awaited by a pass, each at most once while it works (a failure is logged and retried by
   * the next pass). A VM ensured meanwhile joins the fetch under way (libvirt's TemplateCache).
   */
  private prefetchTemplates(d: HostDesiredState): void {
    for (const t of d.templates ?? [])
      for (const backend of this.o.backends.values()) {
        if (!backend.prefetch) continue;
        const key = `${backend.name} ${JSON.stringify(t)}`;
        if (this.prefetched.has(key)) continue;
        this.prefetched.add(key);
        backend.prefetch(t).catch((e: Error) => {
          this.prefetched.delete(key);
          this.o.log(`template ${t.id} (${t.name}): prefetch failed: ${e.message}`);
        });
      }
  }

  /** Runs `f` after every earlier backend call for VM `name` (ensure and destroy of one VM never interleave). */
  private onVm<T>(name: string, f: () => Promise<T>): Promise<T> {
    return this.serial(`vm:${name}`, f);
  }

  /**
   * Runs `f` after every earlier call for `key` (a VM's backend calls; a network's making, by a pass and by
   * `ensureNewVms`, which may run at once); `f` is told whether it waited for one (then the links it was given
   * may be out of date).
   */
  private serial<T>(key: string, f: (waited: boolean) => Promise<T>): Promise<T> {
    const prev = this.queues.get(key);
    const run = () => f(prev !== undefined);
    const next = (prev ?? Promise.resolve()).then(run, run);
    const settled = next.catch(() => {});
    this.queues.set(key, settled);
    void settled.then(() => {
      if (this.queues.get(key) === settled) this.queues.delete(key);
    });
    return next;
  }

  /**
   * Starts, while a pass of `current` runs (or just before the pass of `d`), the VMs `d` (a newer desired state)
   * names that `current` does not or names otherwise, with the networks they need that are not here yet (made
   * now, as a pass makes them): a VM placed on this host while a pass runs (a burst of deploys), or the host's
   * first VM of a network, starts now instead of after that pass and its routers, ports, listing and removals.
   * Only the VMs, their networks and their ports' rules: the next pass, of `d`, converges the rest and retries
   * and reports whatever fails here; so a failure is logged, and a success told to `hooks.vm`.
   */
  async ensureNewVms(
    d: HostDesiredState,
    current: HostDesiredState,
    hooks: ConvergeHooks = {},
  ): Promise<Set<string>> {
    const ensured = new Set<string>();
    const before = new Set(current.vms.map(vmKey));
    // Not one another early batch is starting: batches run side by side (a host's second VM of a burst must not
    // wait for the first one's `virsh start`), each VM taken by one of them.
    const fresh = d.vms.filter(
      (v) => !before.has(vmKey(v)) && this.o.backends.has(v.backend) && !this.earlyTaken.has(vmKey(v)),
    );
    if (!fresh.length) return ensured;
    for (const v of fresh) this.earlyTaken.add(vmKey(v));
    try {
      return await this.startEarly(d, current, fresh, hooks);
    } finally {
      for (const v of fresh) this.earlyTaken.delete(vmKey(v));
    }
  }

  private async startEarly(
    d: HostDesiredState,
    current: HostDesiredState,
    fresh: HostVmSpec[],
    hooks: ConvergeHooks,
  ): Promise<Set<string>> {
    const ensured = new Set<string>();
    // The links and the ports' table listed side by side (two processes, one wait: seconds count under load).
    const portsListed = fresh.some((v) => v.nics.length) ? this.listPorts() : Promise.resolve(null);
    portsListed.catch(() => {});
    let links = await linkTable();
    const needed = d.networks.filter((n) => fresh.some((v) => v.nics.some((x) => x.networkId === n.id)));
    // A network the pass under way makes (its state names it too) but has not made yet: wait for that step of
    // the pass rather than for the whole pass.
    const step = this.networkStep;
    const making = new Set(current.networks.map((n) => n.bridge));
    if (step?.state === current && needed.some((n) => !links.has(n.bridge) && making.has(n.bridge))) {
      await step.done;
      links = await linkTable();
    }
    // A network still not here (the host's first VM of it: the state that placed it is the first to name it) is
    // made now, as a pass makes it, rather than left to the next pass (seconds under load: its routers, ports,
    // listing and removals first). No pass makes it meanwhile: the pass under way, if any, does not name it (or
    // has made its networks), and does not remove a network the newest state names (`keepNetworks`).
    // Those it made are known here without listing the links again (one `ip` process less on the VMs' way).
    const made = new Set<string>();
    for (const n of needed.filter((x) => !links.has(x.bridge)))
      await this.bounded(
        `network:${n.bridge}`,
        `${networkWhat(n)} (made early)`,
        this.deadlines.network,
        () => this.makeNetwork(n, links),
      ).then(
        () => made.add(n.bridge),
        (e: Error) => this.o.log(`${networkWhat(n)} (made early): ${e.message}; the next pass retries`),
      );
    const bridges = new Map<number, string>();
    for (const n of d.networks) if (links.has(n.bridge) || made.has(n.bridge)) bridges.set(n.id, n.bridge);
    const queue = fresh.filter((v) => v.nics.every((n) => bridges.has(n.networkId)));
    const left = fresh.filter((v) => !queue.includes(v));
    if (left.length)
      this.o.log(
        `generation ${d.generation}: ${left.map((v) => v.instanceName).join(', ')} left to the next pass (a network not here)`,
      );
    // Their ports' rules first (as a pass does); no rules, no early start. The elements of every port of the
    // batch replaced from one listing in one transaction (a burst's VMs on one host: one `nft` each, not two);
    // when that fails, port by port from a fresh listing, so one bad port holds back only its VM. The pass after
    // checks them against its own listing.
    const ready = await this.earlyPorts(queue, await portsListed);
    const slot = async () => {
      for (let vm = ready.shift(); vm; vm = ready.shift()) {
        const v = vm;
        try {
          const done = await this.bounded(
            `vm:${v.instanceName}`,
            `vm ${v.instanceName} (started early)`,
            this.deadlines.vm,
            // At its turn (after any earlier call for it), only while the newest state names it so: batches
            // run side by side, and one of an older state must not undo a newer one's (start a VM it stopped).
            () =>
              this.onVm(v.instanceName, async () => {
                if (this.superseded(v, hooks)) return false;
                await this.o.backends.get(v.backend)!.ensure(v, bridges);
                return true;
              }),
          );
          if (!done) continue;
          hooks.vm?.({ instanceName: v.instanceName, state: v.state });
          ensured.add(vmKey(v));
        } catch (e) {
          this.o.log(`vm ${v.instanceName} (started early): ${(e as Error).message}; the next pass retries`);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(VM_SLOTS, ready.length) }, slot));
    return ensured;
  }

  /**
   * The VMs of an early batch whose ports' rules are in place (written now where they were not), from `listed`
   * (the table as listed when the batch began; null: no table).
   */
  private async earlyPorts(vms: HostVmSpec[], listed: string | null): Promise<HostVmSpec[]> {
    if (!vms.some((v) => v.nics.length)) return vms;
    const textOf = (l: string, v: HostVmSpec) =>
      v.nics
        .filter((n) => !portInPlace(l, n, vmPortName(n.id)))
        .map((n) => portReplaceText(l, n, false, vmPortName(n.id)))
        .join('');
    if (listed === null || !hasGuard(listed)) {
      this.o.log(
        `vm ${vms.map((v) => v.instanceName).join(', ')} (started early): the ports table or its guard chain is not there yet; the next pass retries`,
      );
      return [];
    }
    const all = vms.map((v) => textOf(listed, v)).join('');
    if (
      !all ||
      (await this.nft(all).then(
        () => true,
        () => false,
      ))
    )
      return vms;
    const ok: HostVmSpec[] = [];
    for (const v of vms) {
      const l = (await this.listPorts()) ?? '';
      const text = textOf(l, v);
      await (text ? this.nft(text) : Promise.resolve()).then(
        () => ok.push(v),
        (e: Error) =>
          this.o.log(
            `vm ${v.instanceName} (started early): its ports' rules: ${e.message}; the next pass retries`,
          ),
      );
    }
    return ok;
  }

  /** The agent's bridge table as `nft list table bridge stacknet` prints it, or null when there is none. */
  private async listPorts(): Promise<string | null> {
    const r = await exec(['nft', 'list', 'table', 'bridge', 'stacknet']);
    return r.code === 0 ? r.stdout : null;
  }

  /**
   * Each VM port's anti-spoofing, level-based from the table as listed: a port whose elements in the `guard`
   * chain's sets (and its `ports` map element) are not exactly what its NIC says, or that still has an older
   * agent's chain of its own, is replaced in place (`portReplaceText`). One `nft -f` for all the changes; a batch
   * that fails is applied port by port so one bad port cannot block the others. Ports no spec names lose their
   * elements. The table and `guard` are made when missing (after the control bridge: measured by the netns driver,
   * a bridge-family base chain made before any bridge exists never sees traffic).
   */
  private async ensurePorts(
    want: Map<string, HostVmNicSpec>,
    errors: Errors,
    /** Ports a newer state names (asked after the listing, so elements written early meanwhile are kept). */
    keepPorts: () => ReadonlySet<string> = () => new Set(),
  ): Promise<void> {
    let listed = await this.listPorts();
    if (listed === null || !hasGuard(listed) || !this.guardWritten) {
      this.created.update((x) => (x.nftTable = true));
      const made = await this.nft(listed === null ? PORT_TABLE_TEXT + GUARD_TEXT : GUARD_TEXT).then(
        () => true,
        (e: Error) => (errors.push({ what: 'nftables table bridge stacknet', message: e.message }), false),
      );
      if (!made) return;
      this.guardWritten = true;
      listed = (await this.listPorts()) ?? '';
    }
    // The text is made from a listing; an early start (`ensureNewVms`) may change a port between that listing and
    // the `nft -f` (a delete of an element already gone fails the whole transaction): then once more from a fresh
    // listing, port by port, so one bad port cannot block the others.
    const apply = async (
      items: string[],
      text: (l: string, item: string) => string,
      what: (item: string) => string,
    ) => {
      const l0 = listed!;
      const all = items.map((i) => text(l0, i)).join('');
      if (
        !all ||
        (await this.nft(all).then(
          () => true,
          () => false,
        ))
      )
        return;
      const l1 = (await this.listPorts()) ?? '';
      for (const i of items) {
        const t = text(l1, i);
        if (t) await this.nft(t).catch((e: Error) => errors.push({ what: what(i), message: e.message }));
      }
    };
    await apply(
      [...want.keys()],
      (l, port) =>
        portInPlace(l, want.get(port)!, port) ? '' : portReplaceText(l, want.get(port)!, false, port),
      (port) => `port ${port} rules`,
    );
    const keep = keepPorts();
    await apply(
      listedPorts(listed).filter((port) => /^vn\d+$/.test(port) && !want.has(port) && !keep.has(port)),
      (l, port) => portRemoveText(l, port),
      (port) => `port ${port} rules (removing)`,
    );
  }

  /** Removes everything created.json lists and every VM the backends have; leaves host.json (the identity). */
  async cleanup(): Promise<void> {
    const c = this.created.read();
    for (const backend of this.o.backends.values()) {
      for (const v of await backend.list().catch(() => [])) await backend.destroy(v.instanceName);
      await backend.close();
    }
    for (const name of Object.keys(c.routers)) await this.routers.removeRouter(name);
    for (const ns of c.namespaces)
      if ((await listNamespaces()).includes(ns)) {
        await killNamespacePids(ns);
        await deleteNamespace(ns);
      }
    for (const [bridge, dev] of Object.entries(c.networks)) await removeNetwork(bridge, dev);
    for (const [bridge, rec] of Object.entries(c.publicBridges)) await removePublicBridge({ bridge, ...rec });
    for (const l of c.links) await deleteLink(l);
    if (c.nftTable) await exec(['nft', 'delete', 'table', 'bridge', 'stacknet']);
    // ports.json: what older agents kept of their per-port chains.
    for (const f of ['created.json', 'ports.json'])
      if (existsSync(join(this.o.dataDir, f))) rmSync(join(this.o.dataDir, f));
    rmSync(join(this.o.dataDir, 'routers'), { recursive: true, force: true });
  }
}

/** A guest network as a pass's items and errors name it. */
const networkWhat = (n: HostNetworkSpec) => `network ${n.id} (${n.isolation} ${n.vnet}, ${n.bridge})`;
