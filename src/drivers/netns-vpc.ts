/**
 * The VPC transit (desired-state.ts VpcSpec): one bridge per VPC and an interface `vpc0` in each tier router on
 * it. The router's agent puts the tier's gateway and the routes between the tiers on `vpc0`
 * (agent/appliers/routes); the driver only plugs it and turns forwarding on in the router's namespace (a tier
 * router forwards between its tier, the other tiers and, on the edge, outside).
 *
 * Two places use it, with one piece of code (`plugTransit`): the `netns` driver, whose bridge `br-vpc<vpc id>`
 * and outer ends `t<router id>` sit in its switch namespace (`plugVpcTransit` / `unplugVpcTransit`), so nothing
 * lives outside namespaces it already records in created.json and `stacknet netns cleanup` removes them with
 * those; and the host agent (src/hostagent/converge.ts), whose bridge and outer ends sit in the host's own
 * namespace, on the one host all tier routers of a VPC share (src/drivers/hosts.ts places them so).
 */
import { createBridge, createVeth, deleteLink, exec, listLinks, run } from '../netns/index.js';
import type { RouterRuntime } from './types.js';

export const VPC_TRANSIT_IFNAME = 'vpc0';

export function vpcBridgeName(vpcId: number): string {
  return `br-vpc${vpcId}`;
}

const outerName = (r: Pick<RouterRuntime, 'id'>) => `t${r.id}`;

/** Where one tier router's transit port goes. */
export interface TransitPort {
  vpcId: number;
  /** The namespace of the VPC's bridge and the port's outer end; undefined: the caller's own. */
  bridgeNs?: string;
  bridge: string;
  /** The outer end of the router's `vpc0` (unique in `bridgeNs`). */
  outer: string;
}

const ipIn = (ns: string | undefined, args: string[]) => ['ip', ...(ns ? ['-n', ns] : []), ...args];

/**
 * Plugging and unplugging the tier routers of one VPC run one at a time in this process, so the last router's
 * unplug (which removes the bridge once it has no port) cannot delete it under a tier being plugged.
 */
const perVpc = new Map<number, Promise<unknown>>();

function serialized<T>(vpcId: number, f: () => Promise<T>): Promise<T> {
  const prev = perVpc.get(vpcId) ?? Promise.resolve();
  const next = prev.then(f, f);
  const tail = next.catch(() => undefined);
  perVpc.set(vpcId, tail);
  void tail.then(() => {
    if (perVpc.get(vpcId) === tail) perVpc.delete(vpcId);
  });
  return next;
}

/** The router in `routerNs` gets `vpc0` on the VPC's bridge (made when missing) and forwarding on. Idempotent. */
export async function plugTransit(p: TransitPort, routerNs: string): Promise<void> {
  await serialized(p.vpcId, async () => {
    if (!(await listLinks(p.bridgeNs)).includes(p.bridge))
      await createBridge(p.bridge, p.bridgeNs ? { ns: p.bridgeNs } : {});
    if (!(await listLinks(routerNs)).includes(VPC_TRANSIT_IFNAME)) {
      // A stale outer end (its router namespace went without it) would make the add fail.
      await deleteLink(p.outer, p.bridgeNs ? { ns: p.bridgeNs } : {});
      await createVeth({
        ns: routerNs,
        ifname: VPC_TRANSIT_IFNAME,
        outerName: p.outer,
        ...(p.bridgeNs ? { outerNs: p.bridgeNs } : {}),
        bridge: p.bridge,
      });
    }
    await run(ipIn(p.bridgeNs, ['link', 'set', p.outer, 'master', p.bridge, 'up']));
    await run(['ip', 'netns', 'exec', routerNs, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  });
}

/** The router's transit port goes, and the VPC's bridge with its last port. */
export async function unplugTransit(p: TransitPort): Promise<void> {
  await serialized(p.vpcId, async () => {
    await deleteLink(p.outer, p.bridgeNs ? { ns: p.bridgeNs } : {});
    const ports = await exec(ipIn(p.bridgeNs, ['-o', 'link', 'show', 'master', p.bridge]));
    if (ports.code === 0 && !ports.stdout.trim())
      await deleteLink(p.bridge, p.bridgeNs ? { ns: p.bridgeNs } : {});
  });
}

const switchPort = (switchNs: string, r: RouterRuntime, vpcId: number): TransitPort => ({
  vpcId,
  bridgeNs: switchNs,
  bridge: vpcBridgeName(vpcId),
  outer: outerName(r),
});

/** The netns driver's ensureRouter hook: a tier router (vpcId set) gets vpc0 on its VPC's bridge. Idempotent. */
export async function plugVpcTransit(switchNs: string, routerNs: string, r: RouterRuntime): Promise<void> {
  if (r.vpcId !== null) await plugTransit(switchPort(switchNs, r, r.vpcId), routerNs);
}

/** The netns driver's destroyRouter hook: the router's transit port goes, and the VPC's bridge with its last port. */
export async function unplugVpcTransit(switchNs: string, r: RouterRuntime): Promise<void> {
  if (r.vpcId !== null) await unplugTransit(switchPort(switchNs, r, r.vpcId));
}
