/**
 * Unicast DHCP for DHCP shards (shards.ts). Every shard binds 0.0.0.0%<guest>:67 with SO_REUSEADDR: a broadcast
 * reaches them all, but the kernel hands a unicast datagram to one socket only (the last bound), so a client
 * renewing at T1 — a DHCPREQUEST unicast to the router — reached one shard in K: the others' clients got no
 * answer and only recovered at T2 (broadcast rebind). The same held for a client's DHCPRELEASE and DECLINE.
 *
 * One constant rule mends it: DHCP arriving on the guest interface for one of the router's own addresses has its
 * destination rewritten to the guest subnet's broadcast address before the routing decision, so the kernel
 * delivers it as a broadcast, to every shard. The shard holding the client's host answers it as the unicast it
 * was (dnsmasq takes a request as unicast unless addressed to 255.255.255.255: an ACK unicast to the client, and
 * a NAK for a lease it no longer has, as one dnsmasq does); the others ignore it (`dhcp-ignore=tag:!known`
 * comes first for a REQUEST). The same holds for a client's DHCPRELEASE, DECLINE and INFORM. No per-host state:
 * a host change costs the rule nothing, whatever the number of hosts. Measured: vr-big-network.test.ts.
 *
 * The subnet broadcast is a local broadcast route the kernel adds with the guest address (6.x kernels do
 * without `brd`); where it is missing, 255.255.255.255 serves instead, at the price of that NAK (dnsmasq ignores
 * a broadcast renewal it has no lease for, as it must when another server may hold it).
 */
import { formatIpv4, parseIpv4Cidr } from '../../render/ip.js';
import { run } from '../../system.js';

/** Our own table (the firewall's is `inet stacknet_vr`; this one is loaded whatever the firewall setting). */
export const unicastTableName = 'stacknet_dhcp';

/**
 * The nft script that (re)loads the rule for `guestInterface`, or (null) removes it. It deletes and
 * re-declares only our table, in one transaction. Pure.
 */
export function renderUnicastSteering(to: { guestInterface: string; broadcast: string } | null): string {
  const head = `table ip ${unicastTableName}\ndelete table ip ${unicastTableName}\n`;
  if (to === null) return head;
  return (
    head +
    [
      `table ip ${unicastTableName} {`,
      '  chain prerouting {',
      // Before conntrack and the routing decision (which then sees a limited broadcast: local delivery to
      // every socket bound to port 67 on the interface). nft fixes the IP and UDP checksums.
      '    type filter hook prerouting priority raw; policy accept;',
      `    iifname ${JSON.stringify(to.guestInterface)} udp dport 67 fib daddr type local counter ip daddr set ${to.broadcast}`,
      '  }',
      '}',
      '',
    ].join('\n')
  );
}

/** The broadcast address of `cidr` (an IPv4 CIDR). Pure. */
export function subnetBroadcast(cidr: string): string {
  const c = parseIpv4Cidr(cidr);
  return formatIpv4((c.network | ~c.mask) >>> 0);
}

/** Whether the kernel delivers `address` on `ifname` locally as a broadcast (a `broadcast` route, table local). */
async function isLocalBroadcast(ifname: string, address: string): Promise<boolean> {
  const r = await run('ip', [
    '-4',
    'route',
    'show',
    'table',
    'local',
    'type',
    'broadcast',
    address,
    'dev',
    ifname,
  ]);
  return r.code === 0 && r.stdout.trim() !== '';
}

/**
 * Loads the rule for the guest network `cidr` on `guestInterface` (or with null removes it); returns the
 * address it steers to, or nft's complaint.
 */
export async function applyUnicastSteering(
  guestInterface: string,
  cidr: string | null,
): Promise<{ error: string | null; broadcast?: string }> {
  let to: { guestInterface: string; broadcast: string } | null = null;
  if (cidr !== null) {
    const subnet = subnetBroadcast(cidr);
    const broadcast = (await isLocalBroadcast(guestInterface, subnet)) ? subnet : '255.255.255.255';
    to = { guestInterface, broadcast };
  }
  const r = await run('nft', ['-f', '-'], renderUnicastSteering(to));
  if (r.code === 0) return { error: null, broadcast: to?.broadcast };
  return { error: (r.stderr || r.stdout).trim() || `nft exited ${r.code}` };
}
