/**
 * DHCP shards for big networks (issue 15). Every change of a dnsmasq's hosts costs it a re-match of every lease
 * against every host (O(leases × hosts): 2.4 s at 10,000 running VMs, 22 s at 50,000 — dataplane-facts.md), so
 * past `singleShardMaxHosts` hosts the DHCP side runs as K dnsmasq instances on the same interface, each with
 * the hosts whose MAC hashes to it. All of them bind 0.0.0.0%<guest>:67 (dnsmasq sets SO_REUSEADDR and
 * SO_BINDTODEVICE) and see every broadcast DISCOVER/REQUEST; `dhcp-ignore=tag:!known` keeps all but the owner
 * silent. A change then costs one shard's (hosts/K)² re-match. Pure.
 */
import type { DesiredState } from '../../desired-state.js';

/** Up to this many hosts one dnsmasq serves (the small default: nothing changes for small networks). */
export const singleShardMaxHosts = 2048;
/** Past it, about this many hosts per shard (K a power of two, so K changes rarely as a network grows). */
export const hostsPerShard = 1024;

export function shardCount(hosts: number): number {
  if (hosts <= singleShardMaxHosts) return 1;
  return 2 ** Math.ceil(Math.log2(hosts / hostsPerShard));
}

/** FNV-1a of the lower-case MAC: stable, so a host stays in its shard while K stays. */
export function shardOf(mac: string, k: number): number {
  if (k === 1) return 0;
  let h = 0x811c9dc5;
  const s = mac.toLowerCase();
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % k;
}

/**
 * Shard i's view of the state: its hosts only. Router advertisements and DHCPv6 stay with shard 0 (K senders
 * of RAs would be wrong); other shards answer DHCPv4 only (their guests still take their SLAAC address).
 */
export function shardState(state: DesiredState, i: number, k: number): DesiredState {
  return shardStates(state, k)[i]!;
}

/** Every shard's view at once: one pass over the hosts (K passes cost seconds of an apply at 50,000 hosts). */
export function shardStates(state: DesiredState, k: number): DesiredState[] {
  if (k === 1) return [state];
  const parts: DesiredState['hosts'][] = Array.from({ length: k }, () => []);
  for (const h of state.hosts) parts[shardOf(h.mac, k)]!.push(h);
  const { ipv6Cidr: _v6, ipv6Gateway: _gw, ...v4only } = state.network;
  return parts.map((hosts, i) =>
    i === 0
      ? { ...state, hosts }
      : { ...state, network: v4only, hosts: hosts.map(({ ipv6: _ip6, ...h }) => h) },
  );
}

/**
 * One configuration that `dnsmasq --test` accepts exactly when it accepts each of `confs` (shard configurations,
 * lowest shard first): the first one whole, plus the others' `dhcp-host=` lines (their non-default NICs), the
 * only lines in which shards differ but their own paths. It is the configuration one dnsmasq would run for the
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
