/**
 * What a VPC tier's router enforces from its network ACL, as the AclRuleSpecs of the desired state
 * (src/agent/desired-state.ts: items matched by ascending number, first match wins, no match = drop).
 *
 * CloudStack's VR (CsAddress.fw_vpcrouter, CsNetfilter's ACL handling) ends a tier's ACL_INBOUND chain in DROP
 * always, but drops unmatched egress only when the tier's list has at least one egress item: "only if one or
 * more egress rules exist we will drop everything else, otherwise we will allow all egress traffic". That
 * default holds too for a tier with no list at all (createNetwork without aclid). Since the contract drops what
 * no item matches, such a tier gets one more item here: egress, allow, all protocols, to anywhere, numbered
 * after every real item, with the id `default-egress:<network uuid>`.
 */
import type { AclRuleSpec, RuleProtocol } from '../agent/desired-state.js';
import { aclDb } from './tables.js';
import type { AclItemRow } from './tables.js';

/** After any item number CloudStack accepts (a Java int). */
const DEFAULT_EGRESS_NUMBER = 2147483647;

/**
 * The router filters IPv4 only (stacknet's VPC tiers route no IPv6 between tiers or outside): an item's IPv6
 * CIDRs are left out, and an item naming IPv6 CIDRs only is not sent at all (with its CIDRs dropped it would
 * match every IPv4 address).
 */
export function aclItemSpec(i: AclItemRow): AclRuleSpec | null {
  const all = i.cidrs.split(',').filter((c) => c !== '');
  const cidrs = all.filter((c) => !c.includes(':'));
  if (all.length && !cidrs.length) return null;
  const spec: AclRuleSpec = {
    kind: 'acl',
    id: i.uuid,
    number: i.number,
    action: i.action === 'Deny' ? 'deny' : 'allow',
    traffic: i.traffic_type === 'Egress' ? 'egress' : 'ingress',
    protocol: i.protocol as RuleProtocol,
    cidrs,
  };
  if (i.start_port !== null && i.end_port !== null) spec.ports = { start: i.start_port, end: i.end_port };
  if (i.icmp_type !== null) spec.icmpType = i.icmp_type;
  if (i.icmp_code !== null) spec.icmpCode = i.icmp_code;
  return spec;
}

/** The ACL items tier `networkId` enforces, in number order; [] for a network outside any VPC. */
export async function aclSpecsForNetwork(ex: unknown, networkId: number): Promise<AclRuleSpec[]> {
  const db = aclDb(ex);
  const n = await db
    .selectFrom('networks')
    .select(['uuid', 'vpc_id', 'network_acl_id'])
    .where('id', '=', networkId)
    .executeTakeFirst();
  if (!n || n.vpc_id === null) return [];
  const items =
    n.network_acl_id === null
      ? []
      : ((await db
          .selectFrom('network_acl_items')
          .selectAll()
          .where('acl_id', '=', n.network_acl_id)
          .orderBy('number')
          .execute()) as AclItemRow[]);
  const specs = items.map(aclItemSpec).filter((s): s is AclRuleSpec => s !== null);
  if (!specs.some((s) => s.traffic === 'egress')) {
    specs.push({
      kind: 'acl',
      id: `default-egress:${n.uuid}`,
      number: DEFAULT_EGRESS_NUMBER,
      action: 'allow',
      traffic: 'egress',
      protocol: 'all',
      cidrs: ['0.0.0.0/0'],
    });
  }
  return specs;
}
