/** `ip route` / `ip addr` / sysctl for the VPC transit. Routes the agent adds carry its own protocol number. */
import { writeFileSync } from 'node:fs';
import { run } from '../../system.js';
import type { TransitRoute } from './render.js';

/**
 * rtnetlink protocol of every transit route the agent adds: what it lists and removes is exactly its own (an
 * operator's static route or the public side's default has another protocol), also after an agent restart.
 */
export const TRANSIT_ROUTE_PROTO = '196';

const sameTo = (a: string, b: string) => a.replace(/\/32$/, '') === b.replace(/\/32$/, '');

/** The transit routes present (ours only), from `ip -j route`. */
export async function transitRoutes(): Promise<TransitRoute[]> {
  const r = await run('ip', ['-4', '-j', 'route', 'show', 'proto', TRANSIT_ROUTE_PROTO]);
  if (r.code !== 0 || !r.stdout.trim()) return [];
  return (JSON.parse(r.stdout) as { dst: string; gateway?: string }[]).map((x) => ({
    to: x.dst,
    via: x.gateway ?? '',
  }));
}

/** Makes the routes ours on `dev` exactly `want`: replaces each wanted one, deletes ours that are not wanted. */
export async function syncTransitRoutes(dev: string, want: TransitRoute[]): Promise<string | null> {
  for (const r of want) {
    const res = await run('ip', [
      '-4',
      'route',
      'replace',
      r.to,
      'via',
      r.via,
      'dev',
      dev,
      'onlink',
      'proto',
      TRANSIT_ROUTE_PROTO,
    ]);
    if (res.code !== 0) return `ip route replace ${r.to} via ${r.via} dev ${dev}: ${res.stderr.trim()}`;
  }
  for (const have of await transitRoutes()) {
    if (want.some((w) => sameTo(w.to, have.to))) continue;
    await run('ip', ['-4', 'route', 'del', have.to, 'proto', TRANSIT_ROUTE_PROTO]);
  }
  return null;
}

/** The IPv4 addresses on `dev`, with prefix (`10.9.1.1/32`). */
export async function deviceAddresses(dev: string): Promise<string[]> {
  const r = await run('ip', ['-4', '-j', 'addr', 'show', 'dev', dev]);
  if (r.code !== 0 || !r.stdout.trim()) return [];
  const links = JSON.parse(r.stdout) as { addr_info?: { local: string; prefixlen: number }[] }[];
  return links.flatMap((l) => (l.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`));
}

/** `dev` holds exactly `want` (e.g. `10.9.1.1/32`), or nothing with null: the transit interface is the agent's. */
export async function syncDeviceAddress(dev: string, want: string | null): Promise<string | null> {
  const have = await deviceAddresses(dev);
  if (want && !have.includes(want)) {
    const r = await run('ip', ['addr', 'replace', want, 'dev', dev]);
    if (r.code !== 0) return `ip addr replace ${want} dev ${dev}: ${r.stderr.trim()}`;
  }
  for (const a of have) if (a !== want) await run('ip', ['addr', 'del', a, 'dev', dev]);
  return null;
}

export async function linkUp(dev: string): Promise<string | null> {
  const r = await run('ip', ['link', 'set', dev, 'up']);
  return r.code === 0 ? null : `ip link set ${dev} up: ${r.stderr.trim()}`;
}

/**
 * ARP on the transit (per interface, inside the router's namespace: /proc/sys/net is the reader's namespace).
 * Measured on a fresh namespace (kernel 6.18, devconf_inherit_init_net=0): arp_ignore 0, arp_announce 0,
 * rp_filter 0, so the router would already answer for its gateway. Set anyway, since a host may hand new
 * namespaces its own defaults (devconf_inherit_init_net): arp_ignore=1 answers only for addresses on the transit
 * (the gateway /32), never for the router's control or public addresses; arp_announce=2 asks from the gateway
 * /32, which the peer's routes (via vpc0) accept under any rp_filter. rp_filter needs nothing: every source
 * arriving on the transit (a peer tier, or outside through the edge) routes back over it.
 */
export function transitSysctls(dev: string): string | null {
  try {
    writeFileSync(`/proc/sys/net/ipv4/conf/${dev}/arp_ignore`, '1');
    writeFileSync(`/proc/sys/net/ipv4/conf/${dev}/arp_announce`, '2');
    return null;
  } catch (e) {
    return `sysctl on ${dev}: ${(e as Error).message}`;
  }
}
