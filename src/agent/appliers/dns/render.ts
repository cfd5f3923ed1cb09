/**
 * Desired state → the DNS-only dnsmasq: guest names, `local=/<domain>/`, forwarders. It runs apart from the DHCP
 * dnsmasq (appliers/dnsmasq/) because a dnsmasq that also serves DHCP re-matches every lease against every host
 * on each change, in the one thread that answers DNS (10,000 hosts: three queries in four lost while it did,
 * issue 15). This one holds no leases and no DHCP hosts, so its reload is the names file alone. Pure.
 */
import { join } from 'node:path';
import type { DesiredState } from '../../desired-state.js';
import type { RenderContext, Renderer } from '../applier.js';
import { renderNames } from '../dnsmasq/render.js';

export interface DnsPaths {
  conf: string;
  pidFile: string;
  logFile: string;
  /** Every name (addn-hosts): read at start and on SIGHUP, which sizes dnsmasq's name table for them. */
  namesFile: string;
  /** Names added since the last full write, one file per batch (--hostsdir, read by inotify without a reload). */
  namesDir: string;
}

export function dnsPaths(ctx: Pick<RenderContext, 'dataDir'>): DnsPaths {
  const d = ctx.dataDir;
  return {
    conf: join(d, 'dns.conf'),
    pidFile: join(d, 'dns.pid'),
    logFile: join(d, 'dns.log'),
    namesFile: join(d, 'names.txt'),
    namesDir: join(d, 'names.d'),
  };
}

export interface DnsFiles {
  /** null: the router answers no DNS (`useExternalDns`: guests are given the zone's servers). */
  conf: string | null;
  names: string;
}

export const dnsRenderer: Renderer<DnsFiles> = {
  name: 'dns',
  consumes: ['router', 'network', 'hosts'],
  render: (state, ctx) => ({
    conf: renderDnsConf(state, dnsPaths(ctx), ctx.guestInterface),
    names: state.network.useExternalDns ? '' : renderNames(state),
  }),
  digest: (out) => [out.conf ?? '', out.names],
};

export function renderDnsConf(state: DesiredState, paths: DnsPaths, guestInterface: string): string | null {
  const net = state.network;
  // CloudStack's useextdns: guests talk to the zone DNS directly and the VR answers no DNS at all.
  if (net.useExternalDns) return null;
  const lines = [
    `# stacknet router-agent: router ${state.router.name}, DNS only (DHCP is another process). Generated.`,
    // Every compiled-in path is global to the machine: pass our own (dataplane-facts.md).
    `pid-file=${paths.pidFile}`,
    `log-facility=${paths.logFile}`,
    'user=root',
    'no-hosts',
    'no-resolv',
    // Binds port 53 on the guest interface's addresses only; the DHCP dnsmasq beside it binds 67 (port=0).
    'bind-interfaces',
    `interface=${guestInterface}`,
    'except-interface=lo',
    'domain-needed',
    'bogus-priv',
    'expand-hosts',
    `domain=${net.domain}`,
    `local=/${net.domain}/`,
    ...net.dnsServers.map((s) => `server=${s}`),
    `addn-hosts=${paths.namesFile}`,
    `hostsdir=${paths.namesDir}`,
  ];
  return lines.join('\n') + '\n';
}
