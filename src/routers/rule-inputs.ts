/**
 * The rules a router enforces, gathered from the modules that own them: port forwards, firewall and egress rules
 * (src/rules), for a VPC tier its network ACL (src/network-acls), and load balancer rules (src/lb). Each module maps its rows to RuleSpecs;
 * this file only asks each of them for the network's.
 */
import type { RuleSpec } from '../agent/desired-state.js';
import type { Executor } from '../store/db.js';
import { aclSpecsForNetwork } from '../network-acls/desired.js';
import { ruleSpecsForNetwork } from '../rules/desired.js';
import { internalLbSpecsForAppliance, lbSpecsForNetwork } from '../lb/desired.js';

export async function loadRouterRules(ex: Executor, networkId: number): Promise<RuleSpec[]> {
  const rules: RuleSpec[] = [];
  rules.push(...(await ruleSpecsForNetwork(ex, networkId)));
  rules.push(...(await aclSpecsForNetwork(ex, networkId)));
  rules.push(...(await lbSpecsForNetwork(ex, networkId)));
  return rules;
}

/** An internal LB appliance's rules: the internal LB rules it serves (src/lb). */
export async function loadApplianceRules(ex: Executor, routerId: number): Promise<RuleSpec[]> {
  return internalLbSpecsForAppliance(ex, routerId);
}
