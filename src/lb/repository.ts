/**
 * Load balancer rows: a rule is a firewall_rules row (purpose LoadBalancing, src/rules) joined with its
 * load_balancing_rules columns; members and policies hang off its id. Cleanups for the other modules' hooks.
 */
import type { Selectable } from 'kysely';
import type { NetCtx } from '../infrastructure/context.js';
import { ownerById } from '../infrastructure/owners.js';
import type { NetExecutor as Executor } from '../networks/tables.js';
import { liveRulesWhere, ruleByUuid } from '../rules/repository.js';
import { bumpAndStamp } from '../rules/service.js';
import type { RuleRow } from '../rules/repository.js';
import type { LoadBalancerPoliciesTable, LoadBalancerVmMapTable, LoadBalancingRulesTable } from './tables.js';
import type { LbTables } from './tables.js';
import type { Kysely } from 'kysely';

export type LbRow = RuleRow & Omit<Selectable<LoadBalancingRulesTable>, 'rule_id'>;
export type MemberRow = Selectable<LoadBalancerVmMapTable>;
export type PolicyRow = Selectable<LoadBalancerPoliciesTable>;

/** The same connection or transaction, with the LB tables (the migration guarantees them). */
export const lbDb = (ex: unknown): Kysely<LbTables> => ex as Kysely<LbTables>;

export async function lbRowsOf(ex: Executor, rules: readonly RuleRow[]): Promise<LbRow[]> {
  if (rules.length === 0) return [];
  const cols = await lbDb(ex)
    .selectFrom('load_balancing_rules')
    .selectAll()
    .where(
      'rule_id',
      'in',
      rules.map((r) => Number(r.id)),
    )
    .execute();
  return rules.flatMap((r) => {
    const c = cols.find((x) => Number(x.rule_id) === Number(r.id));
    if (!c) return [];
    const { rule_id: _id, ...rest } = c;
    return [{ ...r, ...rest }];
  });
}

export async function lbByUuid(ex: Executor, uuid: string): Promise<LbRow | undefined> {
  const r = await ruleByUuid(ex, uuid);
  if (!r || r.purpose !== 'LoadBalancing') return undefined;
  return (await lbRowsOf(ex, [r]))[0];
}

export async function membersOf(ex: Executor, ruleIds: readonly number[]): Promise<MemberRow[]> {
  if (ruleIds.length === 0) return [];
  return lbDb(ex)
    .selectFrom('load_balancer_vm_map')
    .selectAll()
    .where('rule_id', 'in', [...new Set(ruleIds)])
    .orderBy('id')
    .execute();
}

export async function policiesOf(
  ex: Executor,
  ruleIds: readonly number[],
  kind: PolicyRow['kind'],
): Promise<PolicyRow[]> {
  if (ruleIds.length === 0) return [];
  return lbDb(ex)
    .selectFrom('load_balancer_policies')
    .selectAll()
    .where('rule_id', 'in', [...new Set(ruleIds)])
    .where('kind', '=', kind)
    .orderBy('id')
    .execute();
}

/** Drops the members and policies of rules being removed (the rule rows themselves are src/rules'). */
export async function dropLbChildren(ctx: NetCtx, ruleIds: readonly number[]): Promise<void> {
  if (ruleIds.length === 0) return;
  const db = lbDb(ctx.tx);
  await db.deleteFrom('load_balancer_vm_map').where('rule_id', 'in', ruleIds).execute();
  await db.deleteFrom('load_balancer_policies').where('rule_id', 'in', ruleIds).execute();
}

/**
 * Cleanup beside src/rules' removeRulesOf (disassociated IP, deleted network): the LB rules of the IP / network
 * lose their members and policies here; removeRulesOf then revokes the rules (LB.DELETE) and their firewall
 * rules. Call it first, in the same transaction.
 */
export async function removeLbChildrenOf(
  ctx: NetCtx,
  col: 'ip_allocation_id' | 'network_id',
  id: number,
): Promise<void> {
  const rules = (await liveRulesWhere(ctx.tx, col, id)).filter((r) => r.purpose === 'LoadBalancing');
  await dropLbChildren(
    ctx,
    rules.map((r) => Number(r.id)),
  );
}

/**
 * An expunged VM leaves every LB rule it was a member of (CloudStack's removeVmFromLoadBalancers), with an
 * LB.REMOVE.FROM.RULE event per rule and the rules' routers bumped, in the caller's transaction.
 */
export async function removeVmFromLoadBalancers(ctx: NetCtx, vmId: number): Promise<void> {
  const db = lbDb(ctx.tx);
  const maps = await db.selectFrom('load_balancer_vm_map').selectAll().where('vm_id', '=', vmId).execute();
  if (maps.length === 0) return;
  await db.deleteFrom('load_balancer_vm_map').where('vm_id', '=', vmId).execute();
  const ruleIds = [...new Set(maps.map((m) => Number(m.rule_id)))];
  const rules = await ctx.tx
    .selectFrom('firewall_rules')
    .selectAll()
    .where('id', 'in', ruleIds)
    .where('removed', 'is', null)
    .execute();
  for (const r of rules) {
    await ctx.recorder.event(ctx.tx, {
      type: 'LB.REMOVE.FROM.RULE',
      description: `VM removed from load balancer rule ${r.uuid} (expunged)`,
      resourceType: 'LoadBalancer',
      resourceId: r.uuid,
      owner: await ownerById(ctx.tx, Number(r.account_id)),
    });
  }
  if (rules.length) await bumpAndStamp(ctx, rules);
}
