/** keepalived.conf for a redundant pair (reference §4.11): VRRP on the guest interface, the gateway as VIP. Pure. */
import type { DesiredState } from '../../desired-state.js';
import { parseIpv4Cidr } from '../../render/ip.js';
import type { Renderer } from '../applier.js';

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
    '}',
  ];
  return lines.join('\n') + '\n';
}

/** null = not one of a redundant pair: no keepalived. */
export const keepalivedRenderer: Renderer<string | null> = {
  name: 'keepalived',
  consumes: ['router', 'network'],
  render: (state, ctx) => renderKeepalived(state, ctx.guestInterface),
  digest: (conf) => [conf ?? ''],
};
