/**
 * keepalived.conf for a redundant pair (reference §4.11): VRRP on the guest interface, the gateway as VIP, and
 * the public side (its addresses, the default route) held by the primary only. Pure.
 */
import type { DesiredState } from '../../desired-state.js';
import { parseIpv4Cidr } from '../../render/ip.js';
import { publicCidrs } from '../addresses/render.js';
import type { Renderer } from '../applier.js';

/**
 * The public addresses move with the guest VIP, and keepalived sends their gratuitous ARPs on a takeover. They are
 * `virtual_ipaddress_excluded`: held and announced like the VIP but not listed in the adverts, which carry at most
 * 20 addresses and must match between the two routers (the public IPs change with associateIpAddress; the guest
 * VIP does not). The default route goes with them (`virtual_routes`): a backup has no public address to leave by.
 */
function publicLines(state: DesiredState): string[] {
  const nics = state.public?.nics ?? [];
  if (!nics.length) return [];
  const first = nics[0]!;
  return [
    '  virtual_ipaddress_excluded {',
    ...nics.flatMap((n) => publicCidrs(n).map((c) => `    ${c} dev ${n.interface}`)),
    '  }',
    '  virtual_routes {',
    `    0.0.0.0/0 via ${first.gateway} dev ${first.interface}`,
    '  }',
  ];
}

export function renderKeepalived(state: DesiredState, guestInterface: string): string | null {
  const r = state.router.redundant;
  if (!r) return null;
  const prefix = parseIpv4Cidr(state.network.cidr).prefix;
  // VRRPv2 only does whole-second adverts; sub-second intervals need v3 (which has no authentication).
  const v3 = !Number.isInteger(r.vrrpIntervalSeconds);
  const lines = [
    `# stacknet router-agent: router ${state.router.name}. Generated; the agent overwrites it.`,
    'global_defs {',
    `  router_id ${state.router.name}`,
    ...(v3 ? ['  vrrp_version 3'] : []),
    '}',
    `vrrp_instance stacknet_${r.virtualRouterId} {`,
    // Both start as BACKUP and the priority elects the primary, as CloudStack's templates do.
    '  state BACKUP',
    `  interface ${guestInterface}`,
    `  virtual_router_id ${r.virtualRouterId}`,
    `  priority ${r.priority}`,
    `  advert_int ${r.vrrpIntervalSeconds}`,
    // The router's own address sits on lo (see the addresses applier): adverts still carry it as source.
    `  mcast_src_ip ${state.router.guestIp}`,
    ...(v3 ? [] : ['  authentication {', '    auth_type PASS', `    auth_pass ${r.authPass}`, '  }']),
    '  virtual_ipaddress {',
    `    ${state.network.gateway}/${prefix} dev ${guestInterface}`,
    '  }',
    ...publicLines(state),
    '}',
  ];
  return lines.join('\n') + '\n';
}

/** null = not one of a redundant pair: no keepalived. */
export const keepalivedRenderer: Renderer<string | null> = {
  name: 'keepalived',
  consumes: ['router', 'network', 'public'],
  render: (state, ctx) => renderKeepalived(state, ctx.guestInterface),
  digest: (conf) => [conf ?? ''],
};
