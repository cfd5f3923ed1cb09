/**
 * The public side of the `netns` driver: where a router's public interfaces (CloudStack's eth2, eth3...) plug in.
 * - A bridge per public VLAN in the switch namespace: `br-pu` (untagged), `br-p<vlan>`.
 * - Per zone an "upstream" namespace `<prefix>up-z<zoneId>`: the outside world. It has a leg on each public
 *   bridge (`pu` / `p<vlan>` inside, `u<zone>p<vlan>` on the bridge) holding each public range's gateway, and
 *   routes between them; tests put outside clients and servers there.
 * - Per router one veth per public NIC: `eth<N>` in the router, `r<id>e<N>` on the VLAN's bridge. The router's
 *   public addresses are the agent's to set (from its desired state), not the driver's.
 * Plugging runs on every reconcile pass (a public IP from a new VLAN needs a new interface while the agent keeps
 * running) and costs nothing while the router's public NICs are what they were when last plugged.
 */
import { exec, listLinks, run, sysctlIn } from '../netns/index.js';
import { plugPublicVeths, unplugPublicVeths } from './public-veths.js';
import type { PublicNicRuntime, RouterRuntime } from './types.js';

export interface NetnsPublicDeps {
  /** Namespace name prefix (tests: `sn-<random>-`). */
  prefix: string;
  switchNs: string;
  /** Creates a namespace unless it exists, and records it in created.json (so cleanup removes it). */
  ensureNs(ns: string): Promise<void>;
  /** Creates a bridge in the switch namespace unless it exists (memoised by the driver). */
  ensureBridge(name: string): Promise<void>;
}

export class NetnsPublicSide {
  /** Router id → the public NICs (and zone) last plugged for it. */
  private readonly plugged = new Map<number, string>();
  /** Upstream namespaces, legs and gateway addresses already made by this process, shared by all routers. */
  private readonly made = new Map<string, Promise<void>>();

  constructor(private readonly d: NetnsPublicDeps) {}

  upstreamNamespace(zoneId: number): string {
    return `${this.d.prefix}up-z${zoneId}`;
  }

  static bridgeName(vlan: string): string {
    return vlan === 'untagged' ? 'br-pu' : `br-p${vlan}`;
  }

  /** The outer end of a router's public interface on its bridge. */
  static outerName(routerId: number, ifname: string): string {
    return `r${routerId}e${ifname.replace(/^eth/, '')}`;
  }

  /**
   * Makes the router's public interfaces match `r.publicNics`: missing ones created, each on its VLAN's bridge
   * (an interface name may move to another VLAN when a VLAN goes), surplus ones removed; forwarding on.
   * `fresh`: the router namespace was (re)made, so what was plugged before counts for nothing.
   */
  async plug(r: RouterRuntime, ns: string, fresh = false): Promise<void> {
    const key = `${r.zoneId}:${JSON.stringify(r.publicNics)}`;
    if (!fresh && this.plugged.get(r.id) === key) return;
    this.plugged.delete(r.id);
    for (const nic of r.publicNics) await this.upstreamLeg(r.zoneId, nic);
    await plugPublicVeths({
      ns,
      outerNs: this.d.switchNs,
      nics: r.publicNics.map((n) => ({ interface: n.interface, bridge: NetnsPublicSide.bridgeName(n.vlan) })),
      outerName: (ifname) => NetnsPublicSide.outerName(r.id, ifname),
    });
    this.plugged.set(r.id, key);
  }

  /** Removes the router's public veths (destroyRouter). */
  async unplug(r: Pick<RouterRuntime, 'id'>): Promise<void> {
    this.plugged.delete(r.id);
    const mine = new RegExp(`^r${r.id}e\\d+$`);
    const links = (await listLinks(this.d.switchNs)).filter((l) => mine.test(l));
    await unplugPublicVeths(this.d.switchNs, links);
  }

  /** `ip -b` in the switch namespace; `bestEffort`: deletions of what may already be gone. */
  private async switchBatch(lines: string[], bestEffort = false): Promise<void> {
    if (!lines.length) return;
    const argv = ['ip', '-n', this.d.switchNs, ...(bestEffort ? ['-force'] : []), '-b', '-'];
    await (bestEffort ? exec : run)(argv, { input: `${lines.join('\n')}\n` });
  }

  /** The zone's upstream namespace with a leg on the VLAN's bridge holding the range's gateway. */
  private upstreamLeg(zoneId: number, nic: PublicNicRuntime): Promise<void> {
    const up = this.upstreamNamespace(zoneId);
    const inner = nic.vlan === 'untagged' ? 'pu' : `p${nic.vlan}`;
    const outer = `u${zoneId}${inner}`;
    const bridge = NetnsPublicSide.bridgeName(nic.vlan);
    const leg = this.once(`leg:${zoneId}:${nic.vlan}`, async () => {
      await this.once(`ns:${zoneId}`, async () => {
        await this.d.ensureNs(up);
        // The upstream routes between its public ranges, as the provider's router would.
        await sysctlIn(up, 'net.ipv4.ip_forward', '1');
      });
      await this.d.ensureBridge(bridge);
      if (!(await listLinks(up)).includes(inner)) {
        await this.switchBatch([`link del ${outer}`], true);
        await this.switchBatch([`link add ${outer} type veth peer name ${inner} netns ${up}`]);
      }
      await run(['ip', '-n', this.d.switchNs, 'link', 'set', outer, 'master', bridge, 'up']);
      await run(['ip', '-n', up, 'link', 'set', inner, 'up']);
    });
    return this.once(`gw:${zoneId}:${nic.vlan}:${nic.gateway}/${nic.prefix}`, async () => {
      await leg;
      await run(['ip', '-n', up, 'addr', 'replace', `${nic.gateway}/${nic.prefix}`, 'dev', inner]);
    });
  }

  private once(key: string, make: () => Promise<void>): Promise<void> {
    let p = this.made.get(key);
    if (!p) {
      p = make();
      this.made.set(key, p);
      p.catch(() => this.made.delete(key));
    }
    return p;
  }
}
