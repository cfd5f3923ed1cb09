/**
 * Desired state → the DHCP dnsmasq's text, following CloudStack's VR (reference §4.4–4.5) with the per-instance
 * paths and binding that several dnsmasq instances on one machine need (dataplane-facts.md). DHCP only
 * (`port=0`): names are answered by the DNS dnsmasq (appliers/dns/), which never waits for this one's lease
 * re-matches. `renderNames` is that one's names file. Pure.
 */
import { join } from 'node:path';
import type { DesiredState, HostSpec } from '../../desired-state.js';
import { defaultLeaseTime } from '../../desired-state.js';
import { hostCapacity, netmaskOf, networkAddressOf, parseIpv4Cidr } from '../../render/ip.js';
import type { RenderContext, Renderer } from '../applier.js';
import {
  sendsRouterAdvertisements,
  shardCount,
  shardDirName,
  shardServerPort,
  shardStates,
} from './shards.js';

/** Where the instance's files live; the agent passes its data directory's layout. */
export interface DnsmasqPaths {
  conf: string;
  pidFile: string;
  leaseFile: string;
  logFile: string;
  /** Full host list, re-read on SIGHUP (no inotify on it). */
  dhcpHostsFile: string;
  /** Additions since the last SIGHUP, one file per batch, picked up by inotify without a reload. */
  dhcpHostsDir: string;
}

/** The layout of dnsmasq's files in the agent's data directory (the lease file on tmpfs, see lease-dir.ts). */
export function dnsmasqPaths(ctx: Pick<RenderContext, 'dataDir' | 'leaseDir'>): DnsmasqPaths {
  const d = ctx.dataDir;
  return {
    conf: join(d, 'dnsmasq.conf'),
    pidFile: join(d, 'dnsmasq.pid'),
    leaseFile: join(ctx.leaseDir, 'dnsmasq.leases'),
    logFile: join(d, 'dnsmasq.log'),
    dhcpHostsFile: join(d, 'dhcphosts.txt'),
    dhcpHostsDir: join(d, 'dhcphosts.d'),
  };
}

/**
 * What the DHCP dnsmasq runs from: its configuration file and the full hosts file. A big network's DHCP runs as
 * several dnsmasq shards (shards.ts): then `shards` holds each one's files (in `dhcp-<i>/`) and the top-level
 * pair is empty.
 */
export interface DnsmasqFiles {
  dnsmasqConf: string;
  dhcpHosts: string;
  shards?: DnsmasqFiles[];
}

/** The render context of shard i: its files in `dhcp-<i>/` of the data and lease directories. */
export function shardContext<C extends Pick<RenderContext, 'dataDir' | 'leaseDir'>>(ctx: C, i: number): C {
  return {
    ...ctx,
    dataDir: join(ctx.dataDir, shardDirName(i)),
    leaseDir: join(ctx.leaseDir, shardDirName(i)),
  };
}

function renderOne(
  state: DesiredState,
  ctx: RenderContext,
  shard?: { serverPort: number; routerAdvertisements: boolean },
): DnsmasqFiles {
  return {
    dnsmasqConf: renderDnsmasqConf(state, {
      paths: dnsmasqPaths(ctx),
      guestInterface: ctx.guestInterface,
      ...shard,
    }),
    dhcpHosts: renderDhcpHosts(state),
  };
}

export const dnsmasqRenderer: Renderer<DnsmasqFiles> = {
  name: 'dnsmasq',
  consumes: ['router', 'network', 'hosts'],
  render: (state, ctx) => {
    const k = shardCount(state.hosts.length, ctx.dhcpShards);
    if (k === 1) return renderOne(state, ctx);
    const shards = shardStates(state, k).map((s, i) =>
      renderOne(s, shardContext(ctx, i), {
        serverPort: shardServerPort(i),
        routerAdvertisements: sendsRouterAdvertisements(i),
      }),
    );
    return { dnsmasqConf: '', dhcpHosts: '', shards };
  },
  digest: (out) =>
    out.shards ? out.shards.flatMap((s) => [s.dnsmasqConf, s.dhcpHosts]) : [out.dnsmasqConf, out.dhcpHosts],
};

export interface DnsmasqRenderOptions {
  paths: DnsmasqPaths;
  guestInterface: string;
  /** A DHCP shard's own server port (shards.ts); the client port stays 68. Default 67. */
  serverPort?: number;
  /** Send router advertisements when the network has IPv6 (default true; of K shards only shard 0 does). */
  routerAdvertisements?: boolean;
}

/** Tag for non-default NICs: one shared tag instead of CloudStack's per-IP tags, so no per-host opts churn. */
export const nonDefaultTag = 'nondefault';
const rangeTag = 'guest';

export function leaseTimeText(state: DesiredState): string {
  const t = state.network.leaseTime ?? defaultLeaseTime;
  return t === 'infinite' ? 'infinite' : String(t);
}

/** `--dhcp-hostsfile` line: `<mac>,<ip>,<hostname>,<lease>` (CloudStack's default-NIC form), plus set:tag / IPv6. */
export function dhcpHostLine(h: HostSpec, leaseTime: string): string {
  const parts = [h.mac.toLowerCase()];
  if (!h.defaultNic) parts.push(`set:${nonDefaultTag}`);
  parts.push(h.ipv4);
  if (h.ipv6) parts.push(`[${h.ipv6}]`);
  parts.push(h.hostname, leaseTime);
  return parts.join(',');
}

/** addn-hosts lines for one host: plain and domain-qualified, so a `local=/<domain>/` query never leaves the VR. */
export function nameLines(h: HostSpec, domain: string): string[] {
  const names = `${h.hostname} ${h.hostname}.${domain}`;
  const lines = [`${h.ipv4}\t${names}`];
  if (h.ipv6) lines.push(`${h.ipv6}\t${names}`);
  return lines;
}

export function sortedHosts(state: DesiredState): HostSpec[] {
  return [...state.hosts].sort((a, b) => (a.mac.toLowerCase() < b.mac.toLowerCase() ? -1 : 1));
}

/** Default-NIC hosts: the hosts file (and hostsdir additions) that change without a restart. */
export function renderDhcpHosts(state: DesiredState): string {
  const lease = leaseTimeText(state);
  return sortedHosts(state)
    .filter((h) => h.defaultNic)
    .map((h) => dhcpHostLine(h, lease) + '\n')
    .join('');
}

export function renderNames(state: DesiredState): string {
  const d = state.network.domain;
  // CloudStack's /etc/hosts preseed maps the guest address to `data-server`; cloud-init finds metadata that way.
  const lines = [`${state.network.gateway}\tdata-server data-server.${d}`];
  for (const h of sortedHosts(state)) lines.push(...nameLines(h, d));
  return lines.join('\n') + '\n';
}

export function renderDnsmasqConf(state: DesiredState, opts: DnsmasqRenderOptions): string {
  const { paths, guestInterface, serverPort, routerAdvertisements = true } = opts;
  const net = state.network;
  const cidr = parseIpv4Cidr(net.cidr);
  const netmask = netmaskOf(cidr);
  const lease = leaseTimeText(state);
  const guestDns = net.useExternalDns ? net.dnsServers : [net.gateway];
  const lines: string[] = [
    `# stacknet router-agent: router ${state.router.name}. Generated; the agent overwrites it.`,
    // Every compiled-in path is global to the machine: pass our own (dataplane-facts.md).
    `pid-file=${paths.pidFile}`,
    `dhcp-leasefile=${paths.leaseFile}`,
    `log-facility=${paths.logFile}`,
    // Root so the data directory (mode 0700) stays readable after dnsmasq would otherwise drop to nobody.
    'user=root',
    'no-hosts',
    'no-resolv',
    // Without it dnsmasq binds 0.0.0.0:67 and a second instance on the machine cannot start.
    'bind-interfaces',
    `interface=${guestInterface}`,
    'except-interface=lo',
    // No DNS here: the DNS dnsmasq answers names (appliers/dns/), so this one's O(leases × hosts) re-match on
    // every hosts change never holds up a DNS query.
    'port=0',
    // A DHCP shard listens on its own port; the router's nft rule steers each client's packets there and puts
    // the answers' source port back to 67 (steering.ts).
    ...(serverPort !== undefined ? [`dhcp-alternate-port=${serverPort},68`] : []),
    // The domain of the hostnames it hands out (option 15 is set explicitly below).
    `domain=${net.domain}`,
  ];
  lines.push(
    `dhcp-hostsfile=${paths.dhcpHostsFile}`,
    `dhcp-hostsdir=${paths.dhcpHostsDir}`,
    `dhcp-range=set:${rangeTag},${networkAddressOf(cidr)},static,${netmask},${lease}`,
    // Only MACs the server listed get an answer (CloudStack's dhcp-ignore=tag:!known).
    'dhcp-ignore=tag:!known',
    // The default of 1000 NAKs the 1001st VM after offering it an address; size it from the subnet.
    `dhcp-lease-max=${hostCapacity(cidr)}`,
    `dhcp-option=tag:${rangeTag},option:netmask,${netmask}`,
    `dhcp-option=tag:${rangeTag},option:router,${net.gateway}`,
    `dhcp-option=tag:${rangeTag},option:dns-server,${guestDns.join(',')}`,
    `dhcp-option=tag:${rangeTag},option:domain-name,${net.domain}`,
    // A dhcp-range tag is second class, so these empty options win for non-default NICs: no default route,
    // resolver or domain from a secondary network (CloudStack's per-host `<tag>,3/6/15` lines).
    `dhcp-option=tag:${nonDefaultTag},option:router`,
    `dhcp-option=tag:${nonDefaultTag},option:dns-server`,
    `dhcp-option=tag:${nonDefaultTag},option:domain-name`,
  );
  if (net.ipv6Cidr) {
    const [prefix, len] = net.ipv6Cidr.split('/');
    // CloudStack's guests take their address by SLAAC (EUI-64 of the MAC, radvd on its VR, reference §2.6):
    // dnsmasq sends the router advertisements (`slaac` sets the prefix's autonomous flag; `static` keeps DHCPv6
    // answering the hosts listed with an address, the same EUI-64 one the server computed).
    // The other DHCP shards (shards.ts) answer DHCPv6 for their own hosts and send no RA: a bare static range,
    // as `slaac` (or any ra-* mode) alone turns dnsmasq's RAs on, `enable-ra` or not.
    if (routerAdvertisements)
      lines.push(
        'enable-ra',
        `ra-param=${guestInterface},10`,
        `dhcp-range=set:${rangeTag}6,${prefix},static,slaac,${len},${lease}`,
      );
    else lines.push(`dhcp-range=set:${rangeTag}6,${prefix},static,${len},${lease}`);
    if (!net.useExternalDns) lines.push(`dhcp-option=tag:${rangeTag}6,option6:dns-server,[::]`);
  }
  // Non-default NICs live in the configuration file, not the hosts file: dnsmasq 2.90 segfaults on SIGHUP while
  // a lease exists for a hosts-file entry carrying a `set:` tag (reproduced on these machines). Secondary NICs
  // are rare, so changing one costs a restart.
  for (const h of sortedHosts(state)) if (!h.defaultNic) lines.push(`dhcp-host=${dhcpHostLine(h, lease)}`);
  return lines.join('\n') + '\n';
}

export interface Lease {
  expires: number;
  mac: string;
  ip: string;
  hostname: string;
  clientId: string;
}

export function parseLeases(text: string): Lease[] {
  const out: Lease[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5 || f[0] === 'duid') continue;
    if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(f[1]!)) continue;
    out.push({
      expires: Number(f[0]),
      mac: f[1]!.toLowerCase(),
      ip: f[2]!,
      hostname: f[3]!,
      clientId: f[4]!,
    });
  }
  return out;
}

/**
 * The lease file to start dnsmasq with: existing leases that still match a host (same MAC and address), plus a
 * pre-seeded `0 <mac> <ip> <hostname> *` (0 = never expires) for every other host, so a VM renewing against a
 * fresh or failed-over VR gets an ACK, not a NAK (CloudStack PR #4529, issue #3272). Leases of removed hosts are
 * dropped so their addresses are free at once (issue #10436). `now` is seconds since the epoch.
 */
export function mergeLeases(state: DesiredState, existing: string, now: number): string {
  const hosts = new Map(state.hosts.map((h) => [h.mac.toLowerCase(), h]));
  const kept = new Map<string, Lease>();
  for (const l of parseLeases(existing)) {
    const h = hosts.get(l.mac);
    if (h && h.ipv4 === l.ip && (l.expires === 0 || l.expires > now)) kept.set(l.mac, l);
  }
  const t = state.network.leaseTime ?? defaultLeaseTime;
  const expiry = t === 'infinite' ? 0 : now + t;
  const lines: string[] = [];
  for (const h of sortedHosts(state)) {
    const l = kept.get(h.mac.toLowerCase());
    lines.push(
      l
        ? `${l.expires} ${l.mac} ${l.ip} ${l.hostname} ${l.clientId}`
        : `${expiry} ${h.mac.toLowerCase()} ${h.ipv4} ${h.hostname} *`,
    );
  }
  return lines.length ? lines.join('\n') + '\n' : '';
}
