/**
 * Rule rows: reads, the routers that enforce a rule (and the generation they must reach), and removal with its
 * event, which the rule commands and the cleanups of IPs, VMs and networks share.
 */
import type { Selectable } from 'kysely';
import type { EventType } from '../events/event-types.js';
import type { NetCtx } from '../infrastructure/context.js';
import { ownerById } from '../infrastructure/owners.js';
import type { NetExecutor as Executor } from '../networks/tables.js';
import type { Executor as PlainExecutor } from '../store/db.js';
import { bumpRouter } from '../routers/repository.js';
import { vpcEdgeNetworkId } from '../routers/public-inputs.js';
import { removeTagsOf } from '../tags/service.js';
import type { FirewallRulesTable } from './tables.js';

export type RuleRow = Selectable<FirewallRulesTable>;
export type RuleKind = 'portForward' | 'firewall' | 'egress' | 'loadBalancer';

export const kindOf = (r: Pick<RuleRow, 'purpose' | 'traffic_type'>): RuleKind =>
  r.purpose === 'PortForwarding'
    ? 'portForward'
    : r.purpose === 'LoadBalancing'
      ? 'loadBalancer'
      : r.traffic_type === 'Egress'
        ? 'egress'
        : 'firewall';

/** CloudStack's event types per kind (EventTypes.EVENT_NET_RULE_*, EVENT_FIREWALL_*, EVENT_FIREWALL_EGRESS_*). */
export const ruleEvents: Record<RuleKind, { add: EventType; remove: EventType; modify: EventType }> = {
  portForward: { add: 'NET.RULEADD', remove: 'NET.RULEDELETE', modify: 'NET.RULEMODIFY' },
  firewall: { add: 'NET.FIREWALLOPEN', remove: 'NET.FIREWALLCLOSE', modify: 'NET.FIREWALLUPDATE' },
  egress: {
    add: 'NET.FIREWALLEGRESSOPEN',
    remove: 'NET.FIREWALLEGRESSCLOSE',
    modify: 'NET.FIREWALLEGRESSUPDATE',
  },
  loadBalancer: { add: 'LB.CREATE', remove: 'LB.DELETE', modify: 'LB.UPDATE' },
};

/** CloudStack's resource types (tags, events). */
export const resourceTypeOf = (k: RuleKind) =>
  k === 'portForward' ? 'PortForwardingRule' : k === 'loadBalancer' ? 'LoadBalancer' : 'FirewallRule';

const plain = (ex: Executor): PlainExecutor => ex as unknown as PlainExecutor;

export async function ruleByUuid(ex: Executor, uuid: string): Promise<RuleRow | undefined> {
  return ex.selectFrom('firewall_rules').selectAll().where('uuid', '=', uuid).executeTakeFirst();
}

export async function cidrsOf(
  ex: Executor,
  ruleIds: readonly number[],
): Promise<Map<number, { source: string[]; dest: string[] }>> {
  const out = new Map<number, { source: string[]; dest: string[] }>(
    ruleIds.map((id) => [id, { source: [], dest: [] }]),
  );
  if (ruleIds.length === 0) return out;
  const rows = await ex
    .selectFrom('firewall_rule_cidrs')
    .selectAll()
    .where('rule_id', 'in', [...new Set(ruleIds)])
    .orderBy('id')
    .execute();
  for (const r of rows) out.get(Number(r.rule_id))?.[r.kind].push(r.cidr);
  return out;
}

/**
 * The network whose routers enforce a rule: egress and PF/firewall rules on an isolated network's IP are its
 * own; a VPC's public IPs are held by the router of its edge tier (routers/public-inputs.ts), whatever tier the
 * rule's VM is in.
 */
export async function enforcingNetworkId(
  ex: Executor,
  r: Pick<RuleRow, 'ip_allocation_id' | 'network_id'>,
): Promise<number | null> {
  if (r.ip_allocation_id === null) return Number(r.network_id);
  const ip = await ex
    .selectFrom('ip_allocations')
    .select(['vpc_id', 'network_id'])
    .where('id', '=', r.ip_allocation_id)
    .executeTakeFirst();
  if (ip?.vpc_id != null) return vpcEdgeNetworkId(plain(ex), Number(ip.vpc_id));
  return ip?.network_id != null ? Number(ip.network_id) : Number(r.network_id);
}

/**
 * Bumps every live router of `networkIds` to one common generation (above each one's current) in the caller's
 * transaction and returns it: the generation a rule changed now is in force at. One number for all of them, so a
 * redundant pair whose counters differ still has one target.
 */
export async function bumpForRules(tx: Executor, networkIds: readonly (number | null)[]): Promise<number> {
  const ids = [...new Set(networkIds.filter((n): n is number => n !== null))];
  if (ids.length === 0) return 0;
  const routers = await tx
    .selectFrom('routers')
    .select(['id', 'desired_generation'])
    .where('network_id', 'in', ids)
    .where('removed', 'is', null)
    .execute();
  const target = routers.reduce((m, r) => Math.max(m, Number(r.desired_generation) + 1), 1);
  for (const r of routers) await bumpRouter(plain(tx), Number(r.id), target);
  return target;
}

export interface RouterProgress {
  /** Every live enforcing router applied the rule's generation. */
  applied: boolean;
  /** The error a router reported while it has not applied it. */
  error: string | null;
}

/**
 * Whether each rule is in force: every live router of its enforcing network has applied the rule's generation,
 * or (a router made after the rule) has applied anything, since its first state already held the rule. No live
 * router: not in force.
 */
export async function ruleProgress(
  ex: Executor,
  rules: readonly RuleRow[],
): Promise<Map<number, RouterProgress>> {
  const out = new Map<number, RouterProgress>();
  const enforcer = new Map<number, number | null>();
  for (const r of rules) enforcer.set(Number(r.id), await enforcingNetworkId(ex, r));
  const nets = [...new Set([...enforcer.values()].filter((n): n is number => n !== null))];
  const routers = nets.length
    ? await ex
        .selectFrom('routers')
        .select(['network_id', 'applied_generation', 'last_error', 'created'])
        .where('network_id', 'in', nets)
        .where('removed', 'is', null)
        .execute()
    : [];
  for (const r of rules) {
    const mine = routers.filter((x) => Number(x.network_id) === enforcer.get(Number(r.id)));
    const done = (x: (typeof mine)[number]) =>
      x.applied_generation !== null &&
      (Number(x.applied_generation) >= Number(r.generation) || Number(x.created) > Number(r.created));
    const pending = mine.filter((x) => !done(x));
    out.set(Number(r.id), {
      applied: mine.length > 0 && pending.length === 0,
      error: pending.find((x) => x.last_error)?.last_error ?? null,
    });
  }
  return out;
}

/**
 * Marks rules removed (state Revoke) with their event, drops their CIDRs and tags, and bumps their routers: what
 * deleting a rule and every cleanup (IP released, VM expunged, network deleted) do. A port forward takes its
 * openfirewall rule with it.
 */
export async function removeRules(ctx: NetCtx, rules: readonly RuleRow[]): Promise<void> {
  const related = rules.map((r) => r.related_rule_id).filter((id): id is number => id !== null);
  const all = [...rules];
  if (related.length) {
    for (const r of await ctx.tx
      .selectFrom('firewall_rules')
      .selectAll()
      .where('id', 'in', related)
      .where('removed', 'is', null)
      .execute()) {
      if (!all.some((x) => x.id === r.id)) all.push(r);
    }
  }
  const live = all.filter((r) => r.removed === null);
  if (live.length === 0) return;
  const nets: (number | null)[] = [];
  for (const r of live) nets.push(Number(r.network_id), await enforcingNetworkId(ctx.tx, r));
  const ids = live.map((r) => Number(r.id));
  await ctx.tx
    .updateTable('firewall_rules')
    .set({ state: 'Revoke', removed: ctx.now })
    .where('id', 'in', ids)
    .execute();
  await ctx.tx.deleteFrom('firewall_rule_cidrs').where('rule_id', 'in', ids).execute();
  for (const r of live) {
    const kind = kindOf(r);
    await removeTagsOf(plain(ctx.tx), resourceTypeOf(kind), Number(r.id));
    await ctx.recorder.event(ctx.tx, {
      type: ruleEvents[kind].remove,
      description: `${describe(r)} deleted`,
      resourceType: resourceTypeOf(kind),
      resourceId: r.uuid,
      owner: await ownerById(ctx.tx, Number(r.account_id)),
    });
  }
  await bumpForRules(ctx.tx, nets);
}

export function describe(r: RuleRow): string {
  const ports = r.start_port !== null ? ` ${r.start_port}-${r.end_port}` : '';
  const what = {
    portForward: 'Port forwarding rule',
    firewall: 'Firewall rule',
    egress: 'Egress rule',
    loadBalancer: 'Load balancer rule',
  }[kindOf(r)];
  return `${what} ${r.uuid} (${r.protocol}${ports})`;
}

/** The live rules on a public IP / of a VM's port forwards / of a network (egress, and PFs to its VMs). */
export async function liveRulesWhere(
  ex: Executor,
  col: 'ip_allocation_id' | 'vm_id' | 'network_id',
  id: number,
): Promise<RuleRow[]> {
  return ex
    .selectFrom('firewall_rules')
    .selectAll()
    .where(col, '=', id)
    .where('removed', 'is', null)
    .orderBy('id')
    .execute();
}

/** Cleanup entry point for other modules (public IPs, VMs, networks): every rule of the IP / VM / network goes. */
export async function removeRulesOf(
  ctx: NetCtx,
  col: 'ip_allocation_id' | 'vm_id' | 'network_id',
  id: number,
): Promise<void> {
  await removeRules(ctx, await liveRulesWhere(ctx.tx, col, id));
}
