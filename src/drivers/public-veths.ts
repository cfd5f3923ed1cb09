/**
 * A router's public interfaces (CloudStack's eth2, eth3...) as veths: `eth<N>` inside the router's namespace, an
 * outer end on the bridge of the interface's public VLAN. Shared by the netns driver (outer ends and bridges in
 * its switch namespace, netns-public.ts) and the host agent (in the host's own namespace, on bridges over the
 * host's public traffic label, src/hostagent/converge.ts): each says where the outer ends live, how they are
 * named and which bridge each interface's VLAN is; this module makes the router's interfaces match, level-based.
 */
import { exec, run, sysctlIn } from '../netns/index.js';

export interface PublicVethPlan {
  /** The router's namespace. */
  ns: string;
  /** The namespace of the outer ends and bridges; undefined: this process's. */
  outerNs?: string;
  /** The interfaces the router must have, each with the bridge its outer end goes on. */
  nics: readonly { interface: string; bridge: string }[];
  /** The outer end of the router's `eth<N>` (unique where the outer ends live). */
  outerName: (ifname: string) => string;
}

/** `ip -b` in the outer ends' namespace; `bestEffort`: deletions of what may already be gone. */
async function outerBatch(outerNs: string | undefined, lines: string[], bestEffort = false): Promise<void> {
  if (!lines.length) return;
  const argv = ['ip', ...(outerNs ? ['-n', outerNs] : []), ...(bestEffort ? ['-force'] : []), '-b', '-'];
  await (bestEffort ? exec : run)(argv, { input: `${lines.join('\n')}\n` });
}

/**
 * Makes the router's public interfaces match `p.nics`: missing ones created (a stale outer end of the same name
 * deleted first), each outer end on its bridge and up (an interface may move to another VLAN's bridge when a
 * VLAN goes), surplus `eth<N>` (N ≥ 2; eth0 and eth1 are the guest and control NICs) removed; IPv4 forwarding on
 * in the router. The router agent puts the addresses on. A few processes, whatever the number of interfaces.
 */
export async function plugPublicVeths(p: PublicVethPlan): Promise<void> {
  const inner = (await exec(['ip', '-n', p.ns, '-o', 'link', 'show'])).stdout;
  const present = new Set([...inner.matchAll(/^\d+:\s+(eth\d+)@/gm)].map((m) => m[1]!));
  const wanted = new Set(p.nics.map((n) => n.interface));
  const drop: string[] = [];
  const outer: string[] = [];
  const inside: string[] = [];
  for (const nic of p.nics) {
    const name = p.outerName(nic.interface);
    if (!present.has(nic.interface)) {
      // A stale outer end (its router namespace deleted asynchronously) would fail the add.
      drop.push(`link del ${name}`);
      outer.push(`link add ${name} type veth peer name ${nic.interface} netns ${p.ns}`);
    }
    outer.push(`link set ${name} master ${nic.bridge} up`);
    inside.push(`link set ${nic.interface} up`);
  }
  for (const ifname of present)
    if (Number(ifname.slice(3)) >= 2 && !wanted.has(ifname)) drop.push(`link del ${p.outerName(ifname)}`);
  await outerBatch(p.outerNs, drop, true);
  await outerBatch(p.outerNs, outer);
  if (inside.length) await run(['ip', '-n', p.ns, '-b', '-'], { input: `${inside.join('\n')}\n` });
  // The router is its networks' gateway: it forwards between guest, public and (VPC) transit interfaces.
  await sysctlIn(p.ns, 'net.ipv4.ip_forward', '1');
}

/** Deletes outer ends (missing ones are fine): a router's public veths going with it. */
export async function unplugPublicVeths(outerNs: string | undefined, outerNames: string[]): Promise<void> {
  await outerBatch(
    outerNs,
    outerNames.map((l) => `link del ${l}`),
    true,
  );
}
