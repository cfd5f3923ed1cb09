/**
 * The routers of a host's converge pass (converge.ts): per router a namespace running `stacknet router-agent`,
 * eth0 on its guest network's bridge, eth1 on the host-local control bridge, eth2, eth3... on the public bridges
 * of the public traffic label, vpc0 on its VPC's transit bridge; and the removal of the routers, public bridges
 * and VPC bridges the state no longer names. Uses only the agent's options, its created.json and the control
 * bridge; the networks' bridges are the pass's.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { HostDesiredState, HostRouterSpec } from '../hosts/protocol.js';
import { publicBridgeName } from '../hosts/protocol.js';
import { leaseDirFor } from '../agent/lease-dir.js';
import { plugPublicVeths, unplugPublicVeths } from '../drivers/public-veths.js';
import { routerAgentPid, startRouterAgent } from '../drivers/router-process.js';
import { plugTransit, VPC_TRANSIT_IFNAME, type TransitPort } from '../drivers/netns-vpc.js';
import { parseCidr } from '../ipam/index.js';
import {
  addAddress,
  createNamespace,
  createVeth,
  deleteLink,
  deleteNamespace,
  killNamespacePids,
  killPid,
  listLinks,
  listNamespaces,
  run,
} from '../netns/index.js';
import type { Created } from './created.js';
import {
  ensurePublicBridge,
  linkTable,
  releasePublicDevice,
  removePublicBridge,
  type LinkInfo,
} from './host-links.js';
import type { ItemDeadlines, Step } from './item-deadlines.js';

export interface HostRoutersOptions {
  dataDir: string;
  /** Prefix of every namespace (tests); empty in production. */
  prefix: string;
  /** The public traffic label (`--public-label`) when a router's public NIC names none. */
  publicLabel?: string;
  log: (m: string) => void;
  deadlines: ItemDeadlines;
}

/**
 * Runs one item of a pass; its failure is quarantined in the pass's errors and its message returned (undefined
 * when it worked). `bound`: the item's key and deadline, past which it fails and the pass goes on.
 */
export type Guard = (
  what: string,
  f: (step: Step) => Promise<unknown>,
  bound?: { key: string; ms: number },
) => Promise<string | undefined>;

export class HostRouters {
  /** The desired state's control network (the pass's), for the routers' eth1. */
  private controlCidr = '';

  constructor(
    private readonly o: HostRoutersOptions,
    private readonly created: Created,
    /** The control bridge (made by the pass before its routers): each router's eth1 goes on it. */
    private readonly controlBridge: string,
  ) {}

  routerDir(name: string): string {
    return join(this.o.dataDir, 'routers', name);
  }

  /**
   * The pass's router step: each router the state names made or repaired (on `bridges`, the pass's guest
   * bridges), then the routers, VPC bridges and public bridges it no longer names removed. Returns, per router
   * that failed, why.
   */
  async converge(
    d: HostDesiredState,
    controlCidr: string,
    bridges: ReadonlyMap<number, string>,
    links: Map<string, LinkInfo>,
    guard: Guard,
  ): Promise<Map<string, string>> {
    this.controlCidr = controlCidr;
    const routerErrors = new Map<string, string>();
    const publicBridges = new Map<string, Promise<string>>();
    for (const r of d.routers) {
      const failed = await guard(
        `router ${r.name}`,
        (step) => this.ensureRouter(r, bridges, links, publicBridges, step),
        { key: `router:${r.name}`, ms: this.o.deadlines.router },
      );
      if (failed) routerErrors.set(r.name, failed);
    }
    const wanted = new Set(d.routers.map((r) => r.name));
    for (const name of Object.keys(this.created.read().routers))
      if (!wanted.has(name))
        await guard(`router ${name} (removing)`, (step) => this.removeRouter(name, step), {
          key: `router:${name}`,
          ms: this.o.deadlines.removal,
        });
    await this.removeVpcBridges(d, guard);
    // Public bridges no router wants any more (only routers' interfaces go on them).
    const keepPublic = new Set(
      d.routers.flatMap((r) => (r.publicNics ?? []).map((n) => publicBridgeName(n.vlan))),
    );
    for (const [bridge, rec] of Object.entries(this.created.read().publicBridges))
      if (!keepPublic.has(bridge))
        await guard(
          `public bridge ${bridge} (removing)`,
          async () => {
            await removePublicBridge({ bridge, ...rec });
            this.created.update((x) => delete x.publicBridges[bridge]);
          },
          { key: `public:${bridge}`, ms: this.o.deadlines.removal },
        );
    return routerErrors;
  }

  /** Each router of the state: whether its agent runs, and why it failed this pass (`errors`). */
  status(
    d: HostDesiredState,
    errors: ReadonlyMap<string, string>,
  ): Promise<{ name: string; running: boolean; message?: string }[]> {
    return Promise.all(
      d.routers.map(async (r) => {
        const running = (await routerAgentPid(this.routerDir(r.name))) !== null;
        const message = errors.get(r.name);
        return { name: r.name, running, ...(message ? { message } : {}) };
      }),
    );
  }

  /**
   * The bridge each of the router's public interfaces goes on, made (once per pass: `made`) on the NIC's
   * traffic label or the agent's `--public-label`.
   */
  private async publicBridgesOf(
    r: HostRouterSpec,
    links: Map<string, LinkInfo>,
    made: Map<string, Promise<string>>,
  ): Promise<{ interface: string; bridge: string }[]> {
    const out: { interface: string; bridge: string }[] = [];
    for (const n of r.publicNics ?? []) {
      const label = n.trafficLabel ?? this.o.publicLabel;
      if (!label)
        throw new Error(
          `${n.interface} (public VLAN ${n.vlan}): no public traffic label (the zone's Public kvmnetworklabel, or the agent's --public-label)`,
        );
      const key = `${label}|${n.vlan}`;
      let p = made.get(key);
      if (!p) {
        p = (async () => {
          // The label changed since the bridge was made: the old device leaves it first.
          const prev = this.created.read().publicBridges[publicBridgeName(n.vlan)];
          if (prev && prev.device !== (n.vlan === 'untagged' ? label : `${label}.${n.vlan}`)) {
            await releasePublicDevice(prev);
            this.o.log(`public bridge ${publicBridgeName(n.vlan)}: ${prev.device} released`);
          }
          const b = await ensurePublicBridge(label, n.vlan, links, (x) =>
            this.created.update(
              (c) => (c.publicBridges[x.bridge] = { device: x.device, vlanDevice: x.vlanDevice }),
            ),
          );
          if (b.changed.length) this.o.log(`public bridge ${b.bridge}: ${b.changed.join(', ')}`);
          return b.bridge;
        })();
        made.set(key, p);
      }
      out.push({ interface: n.interface, bridge: await p });
    }
    return out;
  }

  /** The router's public interfaces (eth2, eth3...) as veths `hp<id>e<N>` on their public bridges. */
  private async plugPublic(
    r: HostRouterSpec,
    ns: string,
    nics: { interface: string; bridge: string }[],
    links: Map<string, LinkInfo>,
    fresh: boolean,
  ): Promise<void> {
    const outer = (ifname: string) => publicPortName(r.id, ifname);
    const mine = new RegExp(`^hp${r.id}e\\d+$`);
    const want = new Set(nics.map((n) => outer(n.interface)));
    // Level check from the host's link table: each outer end there, on its bridge and up, and no other.
    const right =
      !fresh &&
      nics.every((n) => {
        const l = links.get(outer(n.interface));
        return l?.master === n.bridge && l.flags.includes('UP');
      }) &&
      ![...links.keys()].some((l) => mine.test(l) && !want.has(l));
    if (right) return;
    await plugPublicVeths({ ns, nics, outerName: outer });
    this.o.log(
      `router ${r.name}: public ${nics.map((n) => `${n.interface} on ${n.bridge}`).join(', ') || 'none'}`,
    );
  }

  private async ensureRouter(
    r: HostRouterSpec,
    bridges: ReadonlyMap<number, string>,
    links: Map<string, LinkInfo>,
    publicBridges: Map<string, Promise<string>>,
    step: Step = () => {},
  ): Promise<void> {
    const bridge = bridges.get(r.networkId);
    if (!bridge) throw new Error(`network ${r.networkId} has no bridge on this host`);
    const ns = `${this.o.prefix}${r.name}`;
    const guestPort = `hr${r.id}`;
    const ctlPort = `hc${r.id}`;
    this.created.update((x) => (x.routers[r.name] = { id: r.id, ns }));
    const onBridge = async () => {
      const l = links.get(guestPort);
      if (l?.master !== bridge || !l.flags.includes('UP'))
        await run(['ip', 'link', 'set', guestPort, 'master', bridge, 'up']);
    };
    step('public bridges');
    const pub = await this.publicBridgesOf(r, links, publicBridges);
    if (await routerAgentPid(this.routerDir(r.name))) {
      step('its guest and public ports (the agent runs)');
      // Running: its guest port goes back on the bridge if that was made again (drift), its public interfaces
      // are made to match (an IP from another VLAN; a deleted port or bridge); nothing else is touched.
      await onBridge();
      await this.plugPublic(r, ns, pub, links, false);
      await this.ensureTransit(r, ns, links, false);
      return;
    }
    step(`namespace ${ns}`);
    if (!(await listNamespaces()).includes(ns)) {
      this.created.add('namespaces', ns);
      await createNamespace(ns);
    }
    const inner = await listLinks(ns);
    step(`eth0 (${guestPort} on ${bridge})`);
    if (!inner.includes('eth0')) {
      await deleteLink(guestPort);
      await createVeth({ ns, ifname: 'eth0', outerName: guestPort, bridge, mac: r.guestMac });
    } else await onBridge();
    step(`eth1 (${ctlPort} on ${this.controlBridge})`);
    if (!inner.includes('eth1')) {
      this.created.add('links', ctlPort);
      await deleteLink(ctlPort);
      await createVeth({ ns, ifname: 'eth1', outerName: ctlPort, bridge: this.controlBridge });
      const c = parseCidr(this.controlCidr, 'control cidr', { strict: false });
      await addAddress(ns, 'eth1', `${r.controlIp}/${c.prefix}`);
    }
    // Before the agent starts: it finds its public interfaces at once (else PublicInterfaceMissing, retried).
    step('public interfaces');
    await this.plugPublic(r, ns, pub, links, true);
    // vpc0 too: the agent's routes applier puts the tier's gateway and routes on it at once.
    step('VPC transit');
    await this.ensureTransit(r, ns, links, true);
    step(`router agent start (${r.controlIp}:${r.controlPort} answering)`);
    await startRouterAgent({
      name: r.name,
      ns,
      dir: this.routerDir(r.name),
      controlIp: r.controlIp,
      controlPort: r.controlPort,
      secret: r.secret,
      ...(r.appliance ? { appliance: r.appliance } : {}),
    });
    this.o.log(`router ${r.name}: agent started in ${ns}`);
  }

  /**
   * A VPC tier router's `vpc0` on its VPC's bridge `brvpc<vpc id>` in the host's namespace (the netns driver's
   * `plugTransit`, shared): every tier router of a VPC is placed on one host (src/drivers/hosts.ts), so the
   * transit is a bridge on that host, like CloudStack's one VPC router with a NIC per tier. A running router is
   * checked against the link table (its outer end `ht<id>` on the bridge and up) and replugged only when not.
   */
  private async ensureTransit(
    r: HostRouterSpec,
    ns: string,
    links: Map<string, LinkInfo>,
    fresh: boolean,
  ): Promise<void> {
    if (r.vpcId === null || r.appliance) return;
    const port = hostTransitPort(r.vpcId, r.id);
    const l = links.get(port.outer);
    if (!fresh && l?.master === port.bridge && l.flags.includes('UP') && links.has(port.bridge)) return;
    // Recorded before it is made (cleanup removes it); the outer ends go with the routers' namespaces.
    this.created.add('links', port.bridge);
    await plugTransit(port, ns);
    this.o.log(`router ${r.name}: ${VPC_TRANSIT_IFNAME} on ${port.bridge}`);
  }

  /** VPC bridges no router of this state names any more (their last tier router left this host). */
  private async removeVpcBridges(
    d: HostDesiredState,
    guard: (what: string, f: () => Promise<unknown>) => Promise<string | undefined>,
  ): Promise<void> {
    const keep = new Set(
      d.routers.flatMap((r) =>
        r.vpcId === null || r.appliance ? [] : [hostTransitPort(r.vpcId, r.id).bridge],
      ),
    );
    for (const bridge of this.created.read().links)
      if (HOST_VPC_BRIDGE.test(bridge) && !keep.has(bridge))
        await guard(`VPC bridge ${bridge} (removing)`, async () => {
          await deleteLink(bridge);
          this.created.remove('links', bridge);
        });
  }

  async removeRouter(name: string, step: Step = () => {}): Promise<void> {
    const rec = this.created.read().routers[name];
    if (!rec) return;
    step('stopping its agent');
    const pid = await routerAgentPid(this.routerDir(name));
    // SIGTERM: the agent stops keepalived and dnsmasq before it exits.
    if (pid) await killPid(pid, 5000);
    step(`its namespace's processes and links`);
    if ((await listNamespaces()).includes(rec.ns)) await killNamespacePids(rec.ns);
    await deleteLink(`hr${rec.id}`);
    await deleteLink(`hc${rec.id}`);
    await deleteLink(transitOuterName(rec.id));
    const mine = new RegExp(`^hp${rec.id}e\\d+$`);
    await unplugPublicVeths(
      undefined,
      [...(await linkTable()).keys()].filter((l) => mine.test(l)),
    );
    this.created.remove('links', `hc${rec.id}`);
    step(`deleting namespace ${rec.ns}`);
    await deleteNamespace(rec.ns);
    this.created.remove('namespaces', rec.ns);
    // dnsmasq's lease file sits on tmpfs beside the data dir (lease-dir.ts): the agent's too.
    rmSync(leaseDirFor(join(this.routerDir(name), 'data')), { recursive: true, force: true });
    rmSync(this.routerDir(name), { recursive: true, force: true });
    this.created.update((x) => delete x.routers[name]);
    this.o.log(`router ${name}: removed`);
  }
}

const HOST_VPC_BRIDGE = /^brvpc\d+$/;

/** A tier router's transit port on its host: the VPC's bridge `brvpc<vpc id>`, the outer end `ht<router id>`. */
export function hostTransitPort(vpcId: number, routerId: number): TransitPort {
  return { vpcId, bridge: `brvpc${vpcId}`, outer: transitOuterName(routerId) };
}

const transitOuterName = (routerId: number) => `ht${routerId}`;

/** The host end of a router's public interface `eth<N>`: `hp<router id>e<N>`. */
export function publicPortName(routerId: number, ifname: string): string {
  return `hp${routerId}e${ifname.replace(/^eth/, '')}`;
}
