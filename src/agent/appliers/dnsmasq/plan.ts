/**
 * The cheapest signal for a dnsmasq change (dataplane-facts.md, "What --dhcp-hostsdir picks up"), from what
 * dnsmasq has loaded and the next render. Pure.
 */
import type { DesiredState } from '../../desired-state.js';
import type { DnsmasqFiles, Lease } from './render.js';
import { dhcpHostLine, leaseTimeText, sortedHosts } from './render.js';

/**
 * What dnsmasq has loaded now: the full hosts file plus every addition dropped into the inotify directory since
 * (additions may repeat base lines). Kept as sets and updated in place by `noteAdded`, so planning an addition
 * does not re-index thousands of lines.
 */
export interface LoadedDnsmasq {
  conf: string;
  hostLines: Set<string>;
  macs: Set<string>;
  ips: Set<string>;
  /** MACs whose line carries a `set:` tag (non-default NICs). */
  taggedMacs: Set<string>;
}

export type DnsmasqPlan =
  | { kind: 'none' }
  /** New hosts only: drop them into the hostsdir; dnsmasq picks them up by inotify, no reload. */
  | { kind: 'add'; hostLines: string[] }
  /** Removed/changed hosts or a reused address: rewrite the full files, release stale leases, SIGHUP. */
  | { kind: 'reload' }
  /** The configuration file itself changed; dnsmasq only reads it at start. */
  | { kind: 'restart' };

function macOf(line: string): string {
  return line.slice(0, line.indexOf(',')).toLowerCase();
}

function ipOfHostLine(line: string): string | undefined {
  return line.split(',').find((p) => /^\d+\.\d+\.\d+\.\d+$/.test(p));
}

export function loadedFrom(conf: string, hostLines: Iterable<string>): LoadedDnsmasq {
  const l: LoadedDnsmasq = {
    conf,
    hostLines: new Set(),
    macs: new Set(),
    ips: new Set(),
    taggedMacs: new Set(),
  };
  noteAdded(l, hostLines);
  return l;
}

/** Record lines dnsmasq has now loaded (mutates `l`). */
export function noteAdded(l: LoadedDnsmasq, hostLines: Iterable<string>): void {
  for (const line of hostLines) {
    if (!line.trim() || line.startsWith('#')) continue;
    l.hostLines.add(line);
    const mac = macOf(line);
    l.macs.add(mac);
    const ip = ipOfHostLine(line);
    if (ip) l.ips.add(ip);
    if (line.includes(',set:')) l.taggedMacs.add(mac);
  }
}

/**
 * Decide the cheapest signal (dataplane-facts.md, "What --dhcp-hostsdir picks up"): an addition is safe without
 * SIGHUP only if its MAC and its address are unknown to the loaded configuration — a changed line keeps the old
 * one loaded, a deleted file keeps serving, and an address another entry had gets no offer at all.
 */
export function planDnsmasq(
  loaded: LoadedDnsmasq | null,
  state: DesiredState,
  next: DnsmasqFiles,
  leases: Lease[] = [],
): DnsmasqPlan {
  if (!loaded || loaded.conf !== next.dnsmasqConf) return { kind: 'restart' };
  const lease = leaseTimeText(state);
  const hosts = sortedHosts(state);
  // Anything loaded but no longer wanted (removed or changed) needs SIGHUP; sizes tell without a full diff
  // whenever the loaded set is exactly the wanted set plus additions.
  const wantedLines = new Set<string>();
  const addHosts: string[] = [];
  const leasedTo = new Map(leases.map((l) => [l.ip, l.mac]));
  for (const h of hosts) {
    if (!h.defaultNic) continue; // in dnsmasq.conf: covered by the conf comparison above
    const line = dhcpHostLine(h, lease);
    wantedLines.add(line);
    // Already loaded, or written ahead of the full apply (the agent's addAhead).
    if (loaded.hostLines.has(line)) continue;
    const mac = h.mac.toLowerCase();
    if (loaded.macs.has(mac) || loaded.ips.has(h.ipv4)) return { kind: 'reload' };
    // An address still leased to another MAC (a release that did not arrive) would get no offer either.
    const holder = leasedTo.get(h.ipv4);
    if (holder !== undefined && holder !== mac) return { kind: 'reload' };
    addHosts.push(line);
  }
  if (loaded.hostLines.size > wantedLines.size - addHosts.length) {
    for (const line of loaded.hostLines) if (!wantedLines.has(line)) return { kind: 'reload' };
  }
  if (addHosts.length === 0) return { kind: 'none' };
  return { kind: 'add', hostLines: addHosts };
}

/** Leases dnsmasq holds for a MAC/address pair the state no longer has: release them so the address is free now. */
export function leasesToRelease(leases: Lease[], state: DesiredState): Lease[] {
  const byMac = new Map(state.hosts.map((h) => [h.mac.toLowerCase(), h.ipv4]));
  return leases.filter((l) => byMac.get(l.mac) !== l.ip);
}
