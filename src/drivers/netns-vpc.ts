/**
 * The `netns` driver's VPC transit (desired-state.ts VpcSpec): one bridge per VPC, `br-vpc<vpc id>`, in the switch
 * namespace, and an interface `vpc0` in each tier router on it (outer end `t<router id>`). The router's agent puts
 * the tier's gateway and the routes between the tiers on `vpc0` (agent/appliers/routes); the driver only plugs
 * it and turns forwarding on in the router's namespace (a tier router forwards between its tier, the other
 * tiers and, on the edge, outside).
 *
 * Nothing here lives outside namespaces the driver already records in created.json: the bridge and the outer
 * ends sit in the switch namespace, `vpc0` in the router's, so `stacknet netns cleanup` removes them with those.
 */
import { createBridge, createVeth, deleteLink, exec, listLinks, run } from '../netns/index.js';
import type { RouterRuntime } from './types.js';

export const VPC_TRANSIT_IFNAME = 'vpc0';

export function vpcBridgeName(vpcId: number): string {
  return `br-vpc${vpcId}`;
}

const outerName = (r: Pick<RouterRuntime, 'id'>) => `t${r.id}`;

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

/** ensureRouter's hook: a tier router (vpcId set) gets vpc0 on its VPC's bridge and forwarding on. Idempotent. */
export async function plugVpcTransit(switchNs: string, routerNs: string, r: RouterRuntime): Promise<void> {
  const vpcId = r.vpcId;
  if (vpcId === null) return;
  await serialized(vpcId, async () => {
    const bridge = vpcBridgeName(vpcId);
    if (!(await listLinks(switchNs)).includes(bridge)) await createBridge(bridge, { ns: switchNs });
    if (!(await listLinks(routerNs)).includes(VPC_TRANSIT_IFNAME)) {
      // A stale outer end (its router namespace went without it) would make the add fail.
      await deleteLink(outerName(r), { ns: switchNs });
      await createVeth({
        ns: routerNs,
        ifname: VPC_TRANSIT_IFNAME,
        outerName: outerName(r),
        outerNs: switchNs,
        bridge,
      });
    }
    await run(['ip', '-n', switchNs, 'link', 'set', outerName(r), 'master', bridge, 'up']);
    await run(['ip', 'netns', 'exec', routerNs, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  });
}

/** destroyRouter's hook: the router's transit port goes, and the VPC's bridge with its last port. */
export async function unplugVpcTransit(switchNs: string, r: RouterRuntime): Promise<void> {
  const vpcId = r.vpcId;
  if (vpcId === null) return;
  await serialized(vpcId, async () => {
    await deleteLink(outerName(r), { ns: switchNs });
    const bridge = vpcBridgeName(vpcId);
    const ports = await exec(['ip', '-n', switchNs, '-o', 'link', 'show', 'master', bridge]);
    if (ports.code === 0 && !ports.stdout.trim()) await deleteLink(bridge, { ns: switchNs });
  });
}
