/**
 * Desired state → everything the VR runs from, and the plan for the cheapest way to make dnsmasq see a change.
 * Pure: paths, interfaces and ports are parameters; the hash is over the rendered text, never the generation, so a
 * generation bump with no content change costs nothing.
 */
import { createHash } from 'node:crypto';
import type { DesiredState } from '../desired-state.js';
import type { DnsmasqPaths, Lease } from './dnsmasq.js';
import {
  dhcpHostLine,
  leaseTimeText,
  nameLines,
  renderDhcpHosts,
  renderDnsmasqConf,
  renderNames,
  sortedHosts,
} from './dnsmasq.js';
import { renderKeepalived } from './keepalived.js';
import { renderNftables } from './nftables.js';

export interface RenderContext {
  paths: DnsmasqPaths;
  guestInterface: string;
  controlInterface?: string;
  controlPort: number;
  metadataPort: number;
  passwordPort: number;
}

export interface Rendered {
  dnsmasqConf: string;
  dhcpHosts: string;
  names: string;
  nftables: string;
  keepalivedConf: string | null;
  /** sha256 over all of the above plus metadata and passwords (what the VR serves). */
  hash: string;
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export function render(state: DesiredState, ctx: RenderContext): Rendered {
  const dnsmasqConf = renderDnsmasqConf(state, { paths: ctx.paths, guestInterface: ctx.guestInterface });
  const dhcpHosts = renderDhcpHosts(state);
  const names = renderNames(state);
  const nftables = renderNftables(state, ctx);
  const keepalivedConf = renderKeepalived(state, ctx.guestInterface);
  const h = createHash('sha256');
  for (const part of [dnsmasqConf, dhcpHosts, names, nftables, keepalivedConf ?? ''])
    h.update(part).update('\0');
  h.update(canonical(state.metadata)).update('\0').update(canonical(state.passwords)).update('\0');
  h.update(canonical(state.firewall));
  return { dnsmasqConf, dhcpHosts, names, nftables, keepalivedConf, hash: h.digest('hex') };
}

/** What dnsmasq has loaded now: the full files plus every addition dropped into the inotify directories since. */
export interface LoadedDnsmasq {
  conf: string;
  /** dhcp-host lines, base file and additions together (additions may repeat base lines). */
  hostLines: string[];
  /** names lines, base file and additions together. */
  nameLines: string[];
}

export type DnsmasqPlan =
  | { kind: 'none' }
  /** New hosts only: drop them into the hostsdirs; dnsmasq picks them up by inotify, no reload. */
  | { kind: 'add'; hostLines: string[]; nameLines: string[] }
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

/**
 * Decide the cheapest signal (dataplane-facts.md, "What --dhcp-hostsdir picks up"): an addition is safe without
 * SIGHUP only if its MAC and its address are unknown to the loaded configuration — a changed line keeps the old
 * one loaded, a deleted file keeps serving, and an address another entry had gets no offer at all.
 */
export function planDnsmasq(
  loaded: LoadedDnsmasq | null,
  state: DesiredState,
  next: Rendered,
  leases: Lease[] = [],
): DnsmasqPlan {
  if (!loaded || loaded.conf !== next.dnsmasqConf) return { kind: 'restart' };
  const lease = leaseTimeText(state);
  const loadedLines = new Set(loaded.hostLines);
  const loadedMacs = new Set(loaded.hostLines.map(macOf));
  const loadedIps = new Set(loaded.hostLines.map(ipOfHostLine));
  // An address still leased to another MAC (a release that did not arrive) would get no offer either.
  const leasedTo = new Map(leases.map((l) => [l.ip, l.mac]));
  const wanted = sortedHosts(state).map((h) => ({ h, line: dhcpHostLine(h, lease) }));
  const wantedLines = new Set(wanted.map((w) => w.line));
  for (const line of loadedLines) if (!wantedLines.has(line)) return { kind: 'reload' };
  const loadedNames = new Set(loaded.nameLines);
  const wantedNames = new Set(next.names.split('\n').filter(Boolean));
  for (const n of loadedNames) if (!wantedNames.has(n)) return { kind: 'reload' };
  const addHosts: string[] = [];
  const addNames = new Set<string>();
  for (const { h, line } of wanted) {
    if (loadedLines.has(line)) continue;
    const mac = h.mac.toLowerCase();
    if (loadedMacs.has(mac) || loadedIps.has(h.ipv4)) return { kind: 'reload' };
    const holder = leasedTo.get(h.ipv4);
    if (holder !== undefined && holder !== mac) return { kind: 'reload' };
    addHosts.push(line);
    for (const n of nameLines(h, state.network.domain)) if (!loadedNames.has(n)) addNames.add(n);
  }
  for (const n of wantedNames) if (!loadedNames.has(n) && !addNames.has(n)) return { kind: 'reload' };
  if (addHosts.length === 0 && addNames.size === 0) return { kind: 'none' };
  return { kind: 'add', hostLines: addHosts, nameLines: [...addNames] };
}

/** Leases dnsmasq holds for a MAC/address pair the state no longer has: release them so the address is free now. */
export function leasesToRelease(leases: Lease[], state: DesiredState): Lease[] {
  const byMac = new Map(state.hosts.map((h) => [h.mac.toLowerCase(), h.ipv4]));
  return leases.filter((l) => byMac.get(l.mac) !== l.ip);
}
