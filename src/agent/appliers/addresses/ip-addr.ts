/** `ip addr` for the router's own addresses. */
import { writeFileSync } from 'node:fs';
import { interfaceAddresses, interfaceAddresses6, run } from '../../system.js';

/** Make sure the router's own guest address is on the guest interface (CloudStack's CsAddress does the same). */
export async function ensureAddress(ifname: string, address: string, prefix: number): Promise<string | null> {
  if (interfaceAddresses(ifname).includes(address)) return null;
  const r = await run('ip', ['addr', 'add', `${address}/${prefix}`, 'dev', ifname]);
  if (r.code !== 0 && !/File exists/.test(r.stderr)) return r.stderr.trim();
  await run('ip', ['link', 'set', ifname, 'up']);
  return null;
}

export async function removeAddress(ifname: string, address: string, prefix: number): Promise<void> {
  if (interfaceAddresses(ifname).includes(address))
    await run('ip', ['addr', 'del', `${address}/${prefix}`, 'dev', ifname]);
}

/**
 * The router's IPv6 address on the guest interface. `nodad`: the VR is the only holder of its gateway address, and
 * duplicate address detection would keep it tentative (unusable for dnsmasq's advertisements) for a second.
 */
export async function ensureAddress6(
  ifname: string,
  address: string,
  prefix: number,
): Promise<string | null> {
  if (interfaceAddresses6(ifname).includes(address)) return null;
  const r = await run('ip', ['-6', 'addr', 'add', `${address}/${prefix}`, 'dev', ifname, 'nodad']);
  if (r.code !== 0 && !/File exists/.test(r.stderr)) return r.stderr.trim();
  return null;
}

export async function removeAddress6(ifname: string, address: string, prefix: number): Promise<void> {
  await run('ip', ['-6', 'addr', 'del', `${address}/${prefix}`, 'dev', ifname]);
}

/**
 * Bring an interface up (the driver plugs public interfaces and may leave them down), with promote_secondaries:
 * deleting the first address of a subnet otherwise deletes every other address of that subnet on the interface
 * (the other public IPs, an operator's).
 */
export async function linkUp(ifname: string): Promise<string | null> {
  try {
    writeFileSync(`/proc/sys/net/ipv4/conf/${ifname}/promote_secondaries`, '1');
  } catch (e) {
    return `cannot set promote_secondaries: ${(e as Error).message}`;
  }
  const r = await run('ip', ['link', 'set', 'dev', ifname, 'up']);
  return r.code === 0 ? null : r.stderr.trim();
}

/** Add `<ip>/<prefix>` unless the interface holds the address; true if this call added it. */
export async function addCidr(ifname: string, cidr: string): Promise<boolean | string> {
  if (interfaceAddresses(ifname).includes(cidr.split('/')[0]!)) return false;
  const r = await run('ip', ['addr', 'add', cidr, 'dev', ifname]);
  if (r.code === 0) return true;
  return /File exists/.test(r.stderr) ? false : r.stderr.trim();
}

export async function removeCidr(ifname: string, cidr: string): Promise<void> {
  if (interfaceAddresses(ifname).includes(cidr.split('/')[0]!))
    await run('ip', ['addr', 'del', cidr, 'dev', ifname]);
}

export async function replaceDefaultRoute(dev: string, via: string): Promise<string | null> {
  const r = await run('ip', ['route', 'replace', 'default', 'via', via, 'dev', dev]);
  return r.code === 0 ? null : r.stderr.trim();
}

export async function removeDefaultRoute(dev: string, via: string): Promise<void> {
  await run('ip', ['route', 'del', 'default', 'via', via, 'dev', dev]);
}

/**
 * One unsolicited ARP for an address just added, so the upstream router and neighbours replace a cached MAC
 * (the address may have lived on another router a moment ago). iputils' arping: `-U` sends a request with the
 * address as both sender and target, and exits after `-c 1` without waiting for a reply.
 */
export async function gratuitousArp(ifname: string, address: string): Promise<string | null> {
  const r = await run('arping', ['-U', '-c', '1', '-I', ifname, address]);
  return r.code === 0 ? null : (r.stderr || r.stdout).trim();
}
