/**
 * DHCP for K shards (shards.ts): every DHCP packet to the router goes to its client's shard, and to it alone.
 *
 * Were the shards all bound to 0.0.0.0%<guest>:67 (SO_REUSEADDR), a broadcast would wake all K and a unicast
 * (a renewal at T1, a client's DHCPRELEASE) would reach one socket of the K, whichever, so a client of another
 * shard got no answer to its renewal and recovered only at rebind. So each shard listens on its own server port
 * (`dhcp-alternate-port`) and one constant nft rule, before the socket lookup, rewrites the destination port
 * 67 of a packet arriving on the guest interface to its shard's: the kernel's jhash of the packet's chaddr (the
 * client's MAC, at byte 28 of the BOOTP header) scaled to K, plus the base port — `shardOf` computes the same.
 * A unicast stays a unicast (dnsmasq then NAKs a renewal for a lease it does not hold, as one dnsmasq does) and
 * a broadcast a broadcast. Answers leave with their source port put back to 67. The agent's own DHCPRELEASE,
 * sent to the broadcast address and looped back through the guest interface, is steered the same way.
 *
 * No per-host state: a host change costs the rule nothing, whatever the number of hosts; only K changing
 * reloads it. Measured: vr-big-network.test.ts, docs/benchmarks.md.
 */
import { run } from '../../system.js';
import { shardPortBase } from './shards.js';

/** Our own table (the firewall's is `inet stacknet_vr`; this one is loaded whatever the firewall setting). */
export const steeringTableName = 'stacknet_dhcp';

/**
 * The nft script that (re)loads the rule for `shards` shards on `guestInterface`, or (null) removes it. It
 * deletes and re-declares only our table, in one transaction. Pure.
 */
export function renderSteering(to: { guestInterface: string; shards: number } | null): string {
  const head = `table ip ${steeringTableName}\ndelete table ip ${steeringTableName}\n`;
  if (to === null) return head;
  const iface = JSON.stringify(to.guestInterface);
  const last = shardPortBase + to.shards - 1;
  const ports = Array.from({ length: to.shards }, (_, i) => `${i} : ${shardPortBase + i}`).join(', ');
  return (
    head +
    [
      `table ip ${steeringTableName} {`,
      '  chain input {',
      // After the firewall's input chain (it accepts `udp dport 67`; the shards' ports it does not know) and
      // before the socket lookup, which follows every input hook. nft fixes the UDP checksum. `@ih,224,48`:
      // chaddr's 6 bytes. The hash goes through a map, not `offset`: a hash's sum is written to the port in host
      // byte order (nft 1.0.6, measured: the packets went to byte-swapped ports). The UDP checksum is then zeroed
      // ("none", valid for IPv4): nft does not fix a received packet's CHECKSUM_COMPLETE sum after writing a
      // transport header field, so the kernel counted such packets (dhcpcd's renewals here) as checksum errors
      // and dropped them. Ethernet's FCS still guards the segment.
      '    type filter hook input priority filter + 10; policy accept;',
      `    iifname ${iface} udp dport 67 counter udp dport set jhash @ih,224,48 mod ${to.shards} seed 0x0 map { ${ports} } udp checksum set 0`,
      '  }',
      '  chain output {',
      '    type filter hook output priority raw; policy accept;',
      `    oifname ${iface} udp sport ${shardPortBase}-${last} udp sport set 67`,
      '  }',
      '}',
      '',
    ].join('\n')
  );
}

/** Loads the rule for `shards` shards (or with null removes it); returns nft's complaint or null. */
export async function applySteering(guestInterface: string, shards: number | null): Promise<string | null> {
  const text = renderSteering(shards === null ? null : { guestInterface, shards });
  const r = await run('nft', ['-f', '-'], text);
  if (r.code === 0) return null;
  return (r.stderr || r.stdout).trim() || `nft exited ${r.code}`;
}
