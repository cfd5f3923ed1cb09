/**
 * The short paths of a delta (src/agent/README.md, "How changes reach dnsmasq"): a new VM, or an address reused,
 * reaches dnsmasq before the O(N) work of applying the delta to the whole document, validating, rendering and
 * hashing it, which follows as usual and finds dnsmasq already loaded. Only the rules of validateDesiredState
 * that involve the new hosts are checked here, against an index of the state in force (O(delta)).
 */
import type { DesiredState, DesiredStateDelta, HostSpec } from '../../desired-state.js';
import { cidrContains, parseIpv4Cidr } from '../../render/ip.js';
import type { Step } from '../applier.js';
import type { DnsmasqApplier } from './dnsmasq-applier.js';
import { noteAdded } from './plan.js';
import type { DnsmasqFiles } from './render.js';
import { dhcpHostLine, leaseTimeText } from './render.js';

/** MACs, addresses and names of a state, for checking additions against it without walking every host. */
export class HostIndex {
  state: DesiredState | null = null;
  macs = new Set<string>();
  byMac = new Map<string, HostSpec>();
  ips = new Set<string>();
  names = new Set<string>();

  of(state: DesiredState): void {
    if (this.state === state) return;
    this.state = state;
    this.macs = new Set();
    this.byMac = new Map();
    this.ips = new Set();
    this.names = new Set();
    for (const h of state.hosts) {
      this.macs.add(h.mac.toLowerCase());
      this.byMac.set(h.mac.toLowerCase(), h);
      this.ips.add(h.ipv4);
      this.names.add(h.hostname.toLowerCase());
    }
  }
}

/**
 * A new VM: a delta that only adds default-NIC hosts (with their metadata and passwords) to the state in force.
 * Its hosts file goes into dnsmasq's --dhcp-hostsdir at once; dnsmasq's pick-up then overlaps with the full
 * apply instead of waiting for it. Anything else takes the normal path.
 */
export function addAhead(d: DnsmasqApplier, a: Step<DnsmasqFiles>, delta: DesiredStateDelta): boolean {
  const base = a.state;
  const loaded = d.files.loaded!;
  if (delta.router || delta.network || delta.firewall || (delta.hosts?.remove?.length ?? 0) > 0) return false;
  const ups = delta.hosts?.upsert ?? [];
  if (ups.length === 0) return false;
  const idx = d.hostIndex(base);
  const cidr = parseIpv4Cidr(base.network.cidr);
  const leased = d.leasedIps();
  const macs = new Set<string>();
  const ips = new Set<string>();
  const names = new Set<string>();
  for (const h of ups) {
    const mac = h.mac.toLowerCase();
    const name = h.hostname.toLowerCase();
    if (!h.defaultNic || macs.has(mac) || idx.macs.has(mac) || loaded.macs.has(mac)) return false;
    if (ips.has(h.ipv4) || idx.ips.has(h.ipv4) || loaded.ips.has(h.ipv4) || !cidrContains(cidr, h.ipv4))
      return false;
    if (h.ipv4 === base.network.gateway || h.ipv4 === base.router.guestIp) return false;
    const holder = leased.get(h.ipv4);
    if (holder !== undefined && holder !== mac) return false;
    if (names.has(name) || idx.names.has(name) || name === 'data-server') return false;
    macs.add(mac);
    ips.add(h.ipv4);
    names.add(name);
  }
  const lease = leaseTimeText(base);
  const lines = ups.map((h) => dhcpHostLine(h, lease));
  d.files.addHosts(`g${delta.generation}`, lines);
  noteAdded(loaded, lines);
  d.counters.hostsdirAdds++;
  return true;
}

/**
 * An address reuse (a VM expunged, its address given to a new one): a delta that removes default-NIC hosts and
 * adds new ones. Such a change needs a SIGHUP (a deleted or changed hostsdir entry stays loaded; a new entry for
 * an address another entry holds is refused), which costs dnsmasq a full load; here the full files are derived
 * from the rendered state in force (lines of the removed hosts out, the new ones in — no validation, render or
 * sort of the whole document first), the stale leases are released and the SIGHUP goes out; the O(N) apply
 * follows and finds dnsmasq loaded with exactly its state.
 */
export function replaceAhead(d: DnsmasqApplier, a: Step<DnsmasqFiles>, delta: DesiredStateDelta): boolean {
  const base = a.state;
  const loaded = d.files.loaded!;
  if (delta.router || delta.network || delta.firewall || loaded.taggedMacs.size > 0) return false;
  const removes = new Set((delta.hosts?.remove ?? []).map((m) => m.toLowerCase()));
  if (removes.size === 0) return false;
  const idx = d.hostIndex(base);
  const removed: HostSpec[] = [];
  for (const mac of removes) {
    const h = idx.byMac.get(mac);
    if (!h || !h.defaultNic) return false;
    removed.push(h);
  }
  const freedIps = new Set(removed.map((h) => h.ipv4));
  const freedNames = new Set(removed.map((h) => h.hostname.toLowerCase()));
  const cidr = parseIpv4Cidr(base.network.cidr);
  const leased = d.leasedIps();
  const macs = new Set<string>();
  const ips = new Set<string>();
  const names = new Set<string>();
  const ups = delta.hosts?.upsert ?? [];
  for (const h of ups) {
    const mac = h.mac.toLowerCase();
    const name = h.hostname.toLowerCase();
    if (!h.defaultNic || macs.has(mac) || idx.macs.has(mac)) return false;
    if (ips.has(h.ipv4) || (idx.ips.has(h.ipv4) && !freedIps.has(h.ipv4)) || !cidrContains(cidr, h.ipv4))
      return false;
    if (h.ipv4 === base.network.gateway || h.ipv4 === base.router.guestIp) return false;
    const holder = leased.get(h.ipv4);
    if (holder !== undefined && holder !== mac && !removes.has(holder)) return false;
    if (names.has(name) || (idx.names.has(name) && !freedNames.has(name)) || name === 'data-server')
      return false;
    macs.add(mac);
    ips.add(h.ipv4);
    names.add(name);
  }
  const lease = leaseTimeText(base);
  const hostLines = a.out.dhcpHosts
    .split('\n')
    .filter((l) => l && !removes.has(l.slice(0, l.indexOf(',')).toLowerCase()));
  for (const h of ups) hostLines.push(dhcpHostLine(h, lease));
  d.files.writeFull({ ...a.out, dhcpHosts: hostLines.join('\n') + '\n' });
  const released = d.releaseStale(
    base,
    d.readLeases().filter((l) => removes.has(l.mac)),
  );
  d.reload();
  released.catch(() => undefined);
  return true;
}
