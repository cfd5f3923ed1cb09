/**
 * DHCP shards for big networks (issue 15). Every change of a dnsmasq's hosts costs it a re-match of every lease
 * against every host (O(leases × hosts): 2.4 s at 10,000 running VMs, 22 s at 50,000 — dataplane-facts.md), so
 * past `singleShardMaxHosts` hosts the DHCP side runs as K dnsmasq instances on the same interface, each with
 * the hosts whose MAC hashes to it, each on its own server port; one nft rule (steering.ts) sends every DHCP
 * packet for port 67 to its client's shard, so each packet wakes one shard (`dhcp-ignore=tag:!known` still
 * keeps a shard silent to a MAC it does not hold). DHCPv6 (port 547, multicast) reaches every shard and only
 * the holder answers (`shardStates`). A change then costs one shard's (hosts/K)² re-match. Pure.
 */
import type { DesiredState } from '../../desired-state.js';

/** Up to this many hosts one dnsmasq serves (the small default: nothing changes for small networks). */
export const singleShardMaxHosts = 2048;
/** Past it, about this many hosts per shard (K a power of two, so K changes rarely as a network grows). */
export const hostsPerShard = 1024;

/**
 * K for a router with `hosts` hosts; `fixed` (the agent's `--dhcp-shards`, RenderContext.dhcpShards) pins it
 * whatever the number of hosts: a router that grows without its shards restarting, or a small lab with shards.
 */
export function shardCount(hosts: number, fixed?: number): number {
  if (fixed !== undefined) return fixed;
  if (hosts <= singleShardMaxHosts) return 1;
  return 2 ** Math.ceil(Math.log2(hosts / hostsPerShard));
}

/**
 * The shard serving a MAC: the Linux kernel's jhash of its six bytes (seed 0) scaled to k, exactly what the
 * router's nft rule computes from a DHCP packet's chaddr to steer it to that shard's port (steering.ts). Stable
 * while K stays.
 */
export function shardOf(mac: string, k: number): number {
  if (k === 1) return 0;
  const bytes = mac.split(':').map((x) => parseInt(x, 16));
  // reciprocal_scale(): the kernel's "mod" for nft hashes.
  return Math.floor((jhash(bytes, 0) * k) / 2 ** 32);
}

const rol32 = (x: number, k: number) => ((x << k) | (x >>> (32 - k))) >>> 0;

/** include/linux/jhash.h `jhash()` for up to 12 bytes (a MAC: 6), on unsigned 32-bit words. */
export function jhash(k: number[], seed: number): number {
  if (k.length > 12 || k.length === 0) throw new Error('jhash: 1 to 12 bytes');
  let a = (0xdeadbeef + k.length + seed) >>> 0;
  let b = a;
  let c = a;
  const at = (i: number, shift: number) => (i < k.length ? (k[i]! << shift) >>> 0 : 0);
  c = (c + at(8, 0) + at(9, 8) + at(10, 16) + at(11, 24)) >>> 0;
  b = (b + at(4, 0) + at(5, 8) + at(6, 16) + at(7, 24)) >>> 0;
  a = (a + at(0, 0) + at(1, 8) + at(2, 16) + at(3, 24)) >>> 0;
  // __jhash_final
  c = ((c ^ b) - rol32(b, 14)) >>> 0;
  a = ((a ^ c) - rol32(c, 11)) >>> 0;
  b = ((b ^ a) - rol32(a, 25)) >>> 0;
  c = ((c ^ b) - rol32(b, 16)) >>> 0;
  a = ((a ^ c) - rol32(c, 4)) >>> 0;
  b = ((b ^ a) - rol32(a, 14)) >>> 0;
  c = ((c ^ b) - rol32(b, 24)) >>> 0;
  return c;
}

/**
 * Shard i's DHCP server port: shards do not share port 67 (where the kernel would wake all K for a broadcast and
 * hand a unicast to one of them at random); the router's nft rule sends each packet to its MAC's shard.
 */
export const shardPortBase = 10067;
export const shardServerPort = (i: number) => shardPortBase + i;

/**
 * Shard i's view of the state: its hosts only, IPv6 addresses included: every shard answers DHCPv6 for its own
 * hosts. Router advertisements are shard 0's alone (`sendsRouterAdvertisements`; K senders would be wrong).
 * No steering is needed for DHCPv6: a client sends every DHCPv6 message to ff02::1:2 (dnsmasq offers no Server
 * Unicast option), which the kernel hands to every shard's socket on [::]:547 — dnsmasq sets SO_REUSEPORT on
 * it, but a reuseport group load-balances unicast only — and each shard answers the MACs it holds and ignores
 * the others (`dhcp-ignore=tag:!known`). A DHCPv6 packet so wakes all K shards (measured: docs/benchmarks.md,
 * "Big networks: DHCPv6 on every shard"); DHCPv6 traffic is a few packets per guest per lease time.
 */
export function shardState(state: DesiredState, i: number, k: number): DesiredState {
  return shardStates(state, k)[i]!;
}

/** Every shard's view at once: one pass over the hosts (K passes cost seconds of an apply at 50,000 hosts). */
export function shardStates(state: DesiredState, k: number): DesiredState[] {
  if (k === 1) return [state];
  const parts: DesiredState['hosts'][] = Array.from({ length: k }, () => []);
  for (const h of state.hosts) parts[shardOf(h.mac, k)]!.push(h);
  return parts.map((hosts) => ({ ...state, hosts }));
}

/** Whether shard i of K sends the router advertisements: one sender per guest link, shard 0 (or the only one). */
export const sendsRouterAdvertisements = (i: number) => i === 0;

/**
 * One configuration that `dnsmasq --test` accepts exactly when it accepts each of `confs` (shard configurations,
 * lowest shard first): the first one whole, plus the others' `dhcp-host=` lines (their non-default NICs), the
 * only lines in which shards differ but their own paths, server ports and, with IPv6, shard 0's RA lines (the
 * others' DHCPv6 range is shard 0's without `slaac`: valid when shard 0's is). It is the configuration one dnsmasq would run for the
 * same hosts, so a rebuild spawns one test, not K (each spawn forks the agent's whole heap: tens of ms at
 * 50,000 hosts).
 */
export function combinedCheckConf(confs: string[]): string {
  const [first = '', ...rest] = confs;
  const hostLines = rest.flatMap((c) => c.split('\n').filter((l) => l.startsWith('dhcp-host=')));
  return hostLines.length ? first + hostLines.join('\n') + '\n' : first;
}

/** Shard i's directory under the data (or lease) directory. */
export const shardDirName = (i: number) => `dhcp-${i}`;
