/** `ip addr` for the router's own addresses. */
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
