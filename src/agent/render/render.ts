/**
 * The whole router's render in one record, for code outside the agent that writes or inspects a router's files
 * without running its services (the simulator driver). The agent itself sequences appliers (appliers/); this is
 * the same renders and the same content hash, under the names the simulator reads. Pure.
 */
import { dirname } from 'node:path';
import type { DesiredState } from '../desired-state.js';
import type { RouterAddresses } from '../appliers/addresses/render.js';
import type { DnsFiles } from '../appliers/dns/render.js';
import type { DnsmasqFiles, DnsmasqPaths } from '../appliers/dnsmasq/render.js';
import { renderRouter, routerRenderers } from '../appliers/renderers.js';
import type { TransitPlan } from '../appliers/routes/render.js';

export interface RenderContext {
  /** dnsmasq's files: the directory of `conf` is taken as the data directory, that of `leaseFile` as the lease directory. */
  paths: DnsmasqPaths;
  guestInterface: string;
  controlInterface?: string;
  controlPort: number;
  metadataPort: number;
  passwordPort: number;
}

export interface Rendered extends DnsmasqFiles {
  /** The DNS dnsmasq's names file (every host, `data-server`) and configuration (null: `useExternalDns`). */
  names: string;
  dnsConf: string | null;
  addresses: RouterAddresses;
  /** A VPC tier's transit address and routes; null outside a VPC. */
  transit: TransitPlan | null;
  nftables: string;
  /** The public side's NAT and forwarding filter ('' without a public side or VPC). */
  netfilter: string;
  keepalivedConf: string | null;
  /** haproxy.cfg (null without load balancer rules). */
  haproxyConf: string | null;
  /** sha256 over every service's render plus metadata and passwords (what the VR serves). */
  hash: string;
}

export function render(state: DesiredState, ctx: RenderContext): Rendered {
  const { paths, ...rest } = ctx;
  const c = { ...rest, dataDir: dirname(paths.conf), leaseDir: dirname(paths.leaseFile) };
  // Every service's files (an appliance's unused ones are empty), and the hash of the services it runs.
  const r = renderRouter(state, c, routerRenderers);
  const hash = state.router.appliance ? renderRouter(state, c).hash : r.hash;
  const by = (name: string) => r.outs[routerRenderers.findIndex((x) => x.name === name)];
  return {
    addresses: by('addresses') as RouterAddresses,
    transit: by('routes') as TransitPlan | null,
    ...(by('dnsmasq') as DnsmasqFiles),
    names: (by('dns') as DnsFiles).names,
    dnsConf: (by('dns') as DnsFiles).conf,
    nftables: by('nftables') as string,
    netfilter: by('netfilter') as string,
    haproxyConf: by('haproxy') as string | null,
    keepalivedConf: by('keepalived') as string | null,
    hash,
  };
}
