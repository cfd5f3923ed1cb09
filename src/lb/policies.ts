/** Stickiness and health check policies of a load balancer rule: create, find, delete, and the rule they are on. */
import { randomUUID } from 'node:crypto';
import { invalidParameter } from '../errors/catalogue.js';
import type { NetCtx } from '../infrastructure/context.js';
import { notFound } from '../infrastructure/context.js';
import { bumpAndStamp } from '../rules/service.js';
import { lbDb, policiesOf } from './repository.js';
import type { LbRow, PolicyRow } from './repository.js';
import { checkHealthCheck, checkStickiness } from './validate.js';

import { event, lbForCaller } from './service.js';

export interface StickinessParams {
  lbruleid: string;
  name: string;
  methodname: string;
  description?: string | undefined;
  param?: Record<string, string>[] | undefined;
  fordisplay?: boolean | undefined;
}

/**
 * createLBStickinessPolicy. A rule has one stickiness policy in force: CloudStack's applyLBStickinessPolicy
 * revokes the older one when the new one is applied, so the new one replaces it here.
 */
export async function createStickinessPolicy(ctx: NetCtx, p: StickinessParams): Promise<PolicyRow> {
  const r = await lbForCaller(ctx, p.lbruleid, 'lbruleid');
  const s = checkStickiness(r.uuid, p.methodname, p.param ?? []);
  if (!p.name.trim()) throw invalidParameter('name', p.name, 'name must not be empty');
  const db = lbDb(ctx.tx);
  await db
    .deleteFrom('load_balancer_policies')
    .where('rule_id', '=', Number(r.id))
    .where('kind', '=', 'Stickiness')
    .execute();
  return addPolicy(
    ctx,
    r,
    {
      kind: 'Stickiness',
      name: p.name,
      description: p.description ?? null,
      method: s.method,
      params: JSON.stringify(s.params),
      ping_path: null,
      interval_time: null,
      response_timeout: null,
      healthy_threshold: null,
      unhealthy_threshold: null,
      for_display: p.fordisplay === false ? 0 : 1,
    },
    'LB.STICKINESSPOLICY.CREATE',
    (uuid) => `Stickiness policy ${uuid} (${s.method}) created`,
  );
}

export interface HealthCheckParams {
  lbruleid: string;
  pingpath?: string | undefined;
  description?: string | undefined;
  responsetimeout?: number | undefined;
  intervaltime?: number | undefined;
  healthythreshold?: number | undefined;
  unhealthythreshold?: number | undefined;
  fordisplay?: boolean | undefined;
}

export async function createHealthCheckPolicy(ctx: NetCtx, p: HealthCheckParams): Promise<PolicyRow> {
  const r = await lbForCaller(ctx, p.lbruleid, 'lbruleid');
  const hc = checkHealthCheck(p);
  if ((await policiesOf(ctx.tx, [Number(r.id)], 'HealthCheck')).length > 0)
    throw invalidParameter(
      'lbruleid',
      p.lbruleid,
      `Failed to create HealthCheck policy: Already policy attached  for the LB Rule id :${r.uuid}`,
    );
  return addPolicy(
    ctx,
    r,
    {
      kind: 'HealthCheck',
      name: null,
      description: p.description ?? null,
      method: null,
      params: null,
      ping_path: hc.pingPath,
      interval_time: hc.intervalTime,
      response_timeout: hc.responseTimeout,
      healthy_threshold: hc.healthyThreshold,
      unhealthy_threshold: hc.unhealthyThreshold,
      for_display: p.fordisplay === false ? 0 : 1,
    },
    'LB.HEALTHCHECKPOLICY.CREATE',
    (uuid) => `Health check policy ${uuid} created`,
  );
}

/** A new policy on rule `r`: its row, its event (on the policy), the rule's routers bumped; the row as written. */
async function addPolicy(
  ctx: NetCtx,
  r: LbRow,
  values: Omit<PolicyRow, 'id' | 'uuid' | 'rule_id' | 'created'>,
  type: 'LB.STICKINESSPOLICY.CREATE' | 'LB.HEALTHCHECKPOLICY.CREATE',
  description: (uuid: string) => string,
): Promise<PolicyRow> {
  const db = lbDb(ctx.tx);
  const uuid = randomUUID();
  await db
    .insertInto('load_balancer_policies')
    .values({ ...values, uuid, rule_id: Number(r.id), created: ctx.now })
    .execute();
  await event(ctx, r, type, description(uuid), {
    type: values.kind === 'Stickiness' ? 'LBStickinessPolicy' : 'LBHealthCheckPolicy',
    uuid,
  });
  await bumpAndStamp(ctx, [r]);
  return await db
    .selectFrom('load_balancer_policies')
    .selectAll()
    .where('uuid', '=', uuid)
    .executeTakeFirstOrThrow();
}

export async function policyByUuid(ctx: NetCtx, uuid: string): Promise<PolicyRow | undefined> {
  return lbDb(ctx.tx)
    .selectFrom('load_balancer_policies')
    .selectAll()
    .where('uuid', '=', uuid)
    .executeTakeFirst();
}

export async function deletePolicy(ctx: NetCtx, kind: PolicyRow['kind'], id: string): Promise<void> {
  const what = kind === 'Stickiness' ? 'LB stickiness policy' : 'LB health check policy';
  const pol = await policyByUuid(ctx, id);
  if (!pol || pol.kind !== kind) throw notFound('id', id, what);
  const rule = await ctx.tx
    .selectFrom('firewall_rules')
    .select('uuid')
    .where('id', '=', pol.rule_id)
    .executeTakeFirstOrThrow();
  const r = await lbForCaller(ctx, rule.uuid, 'id');
  await lbDb(ctx.tx).deleteFrom('load_balancer_policies').where('id', '=', pol.id).execute();
  await event(
    ctx,
    r,
    kind === 'Stickiness' ? 'LB.STICKINESSPOLICY.DELETE' : 'LB.HEALTHCHECKPOLICY.DELETE',
    `${what} ${id} deleted`,
    { type: kind === 'Stickiness' ? 'LBStickinessPolicy' : 'LBHealthCheckPolicy', uuid: id },
  );
  await bumpAndStamp(ctx, [r]);
}

/** listLBStickinessPolicies / listLBHealthCheckPolicies: the rule named by lbruleid or owning policy `id`. */
export async function policiesRule(
  ctx: NetCtx,
  kind: PolicyRow['kind'],
  p: { lbruleid?: string | undefined; id?: string | undefined },
): Promise<LbRow | undefined> {
  if (p.lbruleid) return lbForCaller(ctx, p.lbruleid, 'lbruleid');
  if (!p.id)
    throw invalidParameter(
      'lbruleid',
      '',
      `load balancer rule ID and ${kind === 'Stickiness' ? 'stickiness' : 'health check'} policy ID can't be null`,
    );
  const pol = await policyByUuid(ctx, p.id);
  if (!pol || pol.kind !== kind) return undefined;
  const rule = await ctx.tx
    .selectFrom('firewall_rules')
    .select('uuid')
    .where('id', '=', pol.rule_id)
    .executeTakeFirstOrThrow();
  return lbForCaller(ctx, rule.uuid, 'id');
}
