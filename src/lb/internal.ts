/**
 * Internal load balancing in a VPC tier (CloudStack's ApplicationLoadBalancer, scheme Internal): createLoadBalancer,
 * deleteLoadBalancer, updateLoadBalancer, listLoadBalancers and their responses. A rule is a firewall_rules row
 * (purpose LoadBalancing, no public IP, network = the tier) with its load_balancing_rules columns (scheme
 * Internal, source_ip, lb_vm_id), so members, events, bumps and `state` are the public rules' (src/rules,
 * service.ts). The source address is held by the internal LB appliance, a routers row of role internallb
 * (routers/service.ts createRouter): one per source address, made with the first rule on it and destroyed with
 * the last, which releases the address.
 */
import { randomUUID } from 'node:crypto';
import type { ResponseObject } from '../api/command.js';
import { applyListScope, resolveListScope } from '../accounts/scope.js';
import { keywordMatch } from '../api/list.js';
import { CloudStackError, invalidParameter } from '../errors/catalogue.js';
import type { Listed, NetCtx } from '../infrastructure/context.js';
import { notFound, pageWindow } from '../infrastructure/context.js';
import { checkAccess, ownerById } from '../infrastructure/owners.js';
import { cidrContains, formatIp, parseCidr, parseIpOf } from '../ipam/index.js';
import { lockNetwork, networkByUuid } from '../networks/repository.js';
import { deleteRule, insertRule, requireService } from '../rules/service.js';
import { bumpAndStamp } from '../rules/service.js';
import { APPLIANCE_ROLE } from '../routers/repository.js';
import type { RouterRow } from '../routers/repository.js';
import { createRouter, destroyRouterRow } from '../routers/service.js';
import type { Executor as PlainExecutor } from '../store/db.js';
import { tagsCondition, tagsFollowUuid, tagsFor } from '../tags/service.js';
import { dropLbChildren, lbByUuid, lbDb, lbRowsOf, membersOf } from './repository.js';
import type { LbRow } from './repository.js';
import { lbForCaller } from './service.js';
import { lbCommon } from './responses.js';
import { algorithmOf } from './validate.js';

const plain = (ctx: NetCtx): PlainExecutor => ctx.tx as unknown as PlainExecutor;

export interface CreateInternalLbParams {
  name: string;
  description?: string | undefined;
  scheme: string;
  sourceipaddressnetworkid: string;
  sourceipaddress?: string | undefined;
  networkid: string;
  sourceport: number;
  instanceport: number;
  algorithm: string;
  fordisplay?: boolean | undefined;
}

const validPort = (n: number) => Number.isInteger(n) && n >= 1 && n <= 65535;

/** The live internal LB appliance of `networkId` holding `ip`, if any. */
async function applianceHolding(ctx: NetCtx, networkId: number, ip: string): Promise<RouterRow | undefined> {
  return plain(ctx)
    .selectFrom('routers')
    .selectAll()
    .where('network_id', '=', networkId)
    .where('role', '=', APPLIANCE_ROLE)
    .where('guest_ip', '=', ip)
    .where('removed', 'is', null)
    .executeTakeFirst();
}

/**
 * createLoadBalancer (scheme Internal), CloudStack's ApplicationLoadBalancerManagerImpl checks: the scheme, a
 * guest tier of a VPC offering Lb, valid ports and algorithm, a requested source address inside the tier; an
 * address already serving internal rules is shared (its appliance takes the new rule), otherwise it is allocated
 * from the tier like a NIC's (a VM's address: refused by the allocator) with a new appliance holding it.
 */
export async function createInternalLoadBalancer(ctx: NetCtx, p: CreateInternalLbParams): Promise<LbRow> {
  if (p.scheme.trim().toLowerCase() !== 'internal')
    throw invalidParameter('scheme', p.scheme, 'Invalid value for scheme. Supported value is internal');
  if (!p.name.trim()) throw invalidParameter('name', p.name, 'name must not be empty');
  if (!validPort(p.instanceport))
    throw invalidParameter(
      'instanceport',
      p.instanceport,
      `Invalid value for instance port: ${p.instanceport}`,
    );
  if (!validPort(p.sourceport))
    throw invalidParameter('sourceport', p.sourceport, `Invalid value for source port: ${p.sourceport}`);
  const algorithm = algorithmOf(p.algorithm);
  const tier = await networkByUuid(ctx.tx, p.networkid, 'networkid');
  await checkAccess(
    ctx.tx,
    ctx.caller,
    await ownerById(ctx.tx, Number(tier.account_id)),
    `network ${tier.uuid}`,
  );
  const sourceNet = await networkByUuid(ctx.tx, p.sourceipaddressnetworkid, 'sourceipaddressnetworkid');
  if (tier.vpc_id === null)
    throw invalidParameter(
      'networkid',
      p.networkid,
      `Internal load balancing is available in VPC tiers only; network '${tier.name}' is not in a VPC`,
    );
  // stacknet's appliance has one NIC: the source address is taken from the tier it balances to.
  if (Number(sourceNet.id) !== Number(tier.id))
    throw invalidParameter(
      'sourceipaddressnetworkid',
      p.sourceipaddressnetworkid,
      `the source IP network must be the tier the load balancer balances to (networkid ${tier.uuid})`,
    );
  if (!tier.cidr)
    throw invalidParameter(
      'sourceipaddressnetworkid',
      p.sourceipaddressnetworkid,
      "Can't create the application load balancer rule for the network having NULL cidr",
    );
  await requireService(ctx, tier, 'Lb', 'networkid', p.networkid);
  await lockNetwork(ctx.tx, tier.id);
  let appliance: RouterRow | undefined;
  if (p.sourceipaddress !== undefined) {
    const want = parseIpOf(4, p.sourceipaddress, 'sourceipaddress');
    if (!cidrContains(parseCidr(tier.network_cidr ?? tier.cidr, 'cidr', { strict: false }), want))
      throw invalidParameter(
        'sourceipaddress',
        p.sourceipaddress,
        "The requested IP is not in the network's CIDR subnet.",
      );
    appliance = await applianceHolding(ctx, Number(tier.id), formatIp(want));
    appliance ??= await createRouter(ctx, tier, APPLIANCE_ROLE, {
      requested: want,
      requestedParam: 'sourceipaddress',
    });
  } else {
    appliance = await createRouter(ctx, tier, APPLIANCE_ROLE);
  }
  const sourceIp = appliance.guest_ip!;
  // CloudStack's detectLbRulesConflicts: one rule per source address and port.
  const taken = await rulesOfAppliance(ctx, Number(appliance.id));
  const clash = taken.find((r) => Number(r.start_port) === p.sourceport);
  if (clash)
    throw new CloudStackError(
      'NetworkRuleConflict',
      `The range specified, ${p.sourceport}-${p.sourceport}, conflicts with rule ${clash.uuid} which has ${clash.start_port}-${clash.end_port}`,
    );
  const uuid = randomUUID();
  const rule = await insertRule(ctx, {
    uuid,
    purpose: 'LoadBalancing',
    traffic: 'Ingress',
    ip: null,
    networkId: Number(tier.id),
    accountId: Number(tier.account_id),
    domainId: Number(tier.domain_id),
    protocol: 'tcp',
    ports: { start: p.sourceport, end: p.sourceport },
    sourceCidrs: [],
    forDisplay: p.fordisplay,
  });
  await lbDb(ctx.tx)
    .insertInto('load_balancing_rules')
    .values({
      rule_id: Number(rule.id),
      name: p.name,
      description: p.description ?? null,
      algorithm,
      private_port: p.instanceport,
      lb_protocol: 'tcp',
      scheme: 'Internal',
      source_ip: sourceIp,
      lb_vm_id: Number(appliance.id),
    })
    .execute();
  await bumpAndStamp(ctx, [rule]);
  return (await lbByUuid(ctx.tx, uuid))!;
}

/** The live internal rules an appliance serves. */
async function rulesOfAppliance(ctx: NetCtx, routerId: number): Promise<LbRow[]> {
  const ids = await lbDb(ctx.tx)
    .selectFrom('load_balancing_rules')
    .select('rule_id')
    .where('lb_vm_id', '=', routerId)
    .execute();
  if (ids.length === 0) return [];
  const rows = await ctx.tx
    .selectFrom('firewall_rules')
    .selectAll()
    .where(
      'id',
      'in',
      ids.map((i) => Number(i.rule_id)),
    )
    .where('removed', 'is', null)
    .execute();
  return lbRowsOf(ctx.tx, rows);
}

/** The live internal LB rule `uuid` the caller may act on (a public rule is not one: 431 naming `id`). */
export async function internalLbForCaller(ctx: NetCtx, uuid: string, param = 'id'): Promise<LbRow> {
  const r = await lbForCaller(ctx, uuid, param);
  if (r.scheme !== 'Internal') throw notFound(param, uuid, 'internal load balancer');
  return r;
}

/** deleteLoadBalancer: the rule goes (members, LB.DELETE); its appliance too once it serves nothing else. */
export async function deleteInternalLoadBalancer(ctx: NetCtx, id: string): Promise<void> {
  const r = await internalLbForCaller(ctx, id);
  await dropLbChildren(ctx, [Number(r.id)]);
  await deleteRule(ctx, 'loadBalancer', id);
  await releaseApplianceIfIdle(ctx, r.lb_vm_id);
}

/** The appliance serving no live rule any more is destroyed; its address goes back to the tier. */
export async function releaseApplianceIfIdle(ctx: NetCtx, routerId: number | null): Promise<void> {
  if (routerId === null) return;
  if ((await rulesOfAppliance(ctx, Number(routerId))).length > 0) return;
  const router = await plain(ctx)
    .selectFrom('routers')
    .selectAll()
    .where('id', '=', Number(routerId))
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (router) await destroyRouterRow(ctx, router);
}

export interface UpdateInternalLbParams {
  id: string;
  customid?: string | undefined;
  fordisplay?: boolean | undefined;
}

/** updateLoadBalancer: `customid` (the rule's id) and `fordisplay`, as CloudStack's. */
export async function updateInternalLoadBalancer(ctx: NetCtx, p: UpdateInternalLbParams): Promise<LbRow> {
  const r = await internalLbForCaller(ctx, p.id);
  const set: { uuid?: string; for_display?: number } = {};
  if (p.customid !== undefined && p.customid !== r.uuid) {
    if (await lbByUuid(ctx.tx, p.customid))
      throw invalidParameter('customid', p.customid, 'another rule already has this id');
    set.uuid = p.customid;
  }
  if (p.fordisplay !== undefined) set.for_display = p.fordisplay ? 1 : 0;
  if (Object.keys(set).length)
    await ctx.tx.updateTable('firewall_rules').set(set).where('id', '=', r.id).execute();
  if (set.uuid !== undefined) await tagsFollowUuid(plain(ctx), 'LoadBalancer', r.id, set.uuid);
  await ctx.recorder.event(ctx.tx, {
    type: 'LB.UPDATE',
    description: `Load balancer ${r.uuid} updated`,
    resourceType: 'LoadBalancer',
    resourceId: r.uuid,
    owner: await ownerById(ctx.tx, Number(r.account_id)),
  });
  // The appliance's haproxy sections are named after the rule's id.
  const row = (await lbByUuid(ctx.tx, set.uuid ?? r.uuid))!;
  if (set.uuid) await bumpAndStamp(ctx, [row]);
  return row;
}

export interface ListInternalLbParams {
  id?: string | undefined;
  name?: string | undefined;
  sourceipaddress?: string | undefined;
  sourceipaddressnetworkid?: string | undefined;
  networkid?: string | undefined;
  scheme?: string | undefined;
  fordisplay?: boolean | undefined;
  keyword?: string | undefined;
  account?: string | undefined;
  domainid?: string | undefined;
  isrecursive?: boolean | undefined;
  listall?: boolean | undefined;
  tags?: Record<string, string>[] | undefined;
  page?: number | undefined;
  pagesize?: number | undefined;
}

/** listLoadBalancers: the internal rules (CloudStack lists only those with a source address and network). */
export async function listInternalLoadBalancers(
  ctx: NetCtx,
  p: ListInternalLbParams,
): Promise<Listed<LbRow>> {
  const { limit, offset } = pageWindow(p);
  const scope = await resolveListScope(plain(ctx), ctx.caller, p);
  let q = applyListScope(
    ctx.tx
      .selectFrom('firewall_rules')
      .innerJoin('load_balancing_rules', 'load_balancing_rules.rule_id', 'firewall_rules.id')
      .where('firewall_rules.removed', 'is', null)
      .where('firewall_rules.purpose', '=', 'LoadBalancing')
      .where('load_balancing_rules.scheme', '=', 'Internal'),
    ctx.caller,
    scope,
    { accountColumn: 'firewall_rules.account_id', domainColumn: 'firewall_rules.domain_id' },
  );
  if (p.scheme !== undefined && p.scheme.trim().toLowerCase() !== 'internal')
    throw invalidParameter('scheme', p.scheme, 'Invalid value for scheme. Supported value is internal');
  if (p.id) q = q.where('firewall_rules.uuid', '=', p.id);
  if (p.name) q = q.where('load_balancing_rules.name', '=', p.name);
  if (p.sourceipaddress)
    q = q.where(
      'load_balancing_rules.source_ip',
      '=',
      formatIp(parseIpOf(4, p.sourceipaddress, 'sourceipaddress')),
    );
  for (const [param, value] of [
    ['sourceipaddressnetworkid', p.sourceipaddressnetworkid],
    ['networkid', p.networkid],
  ] as const)
    if (value) q = q.where('firewall_rules.network_id', '=', (await networkByUuid(ctx.tx, value, param)).id);
  if (p.fordisplay !== undefined) q = q.where('firewall_rules.for_display', '=', p.fordisplay ? 1 : 0);
  if (p.keyword) q = q.where(keywordMatch(['load_balancing_rules.name', 'firewall_rules.uuid'], p.keyword));
  const tagged = tagsCondition('LoadBalancer', 'firewall_rules.id', p.tags);
  if (tagged) q = q.where(tagged);
  const count = Number((await q.select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
  let rq = q.selectAll('firewall_rules').orderBy('firewall_rules.id').offset(offset);
  if (limit !== undefined) rq = rq.limit(limit);
  return { count, items: await lbRowsOf(ctx.tx, await rq.execute()) };
}

/**
 * CloudStack's ApplicationLoadBalancerResponse: the rule's source address and networks, `loadbalancerrule` =
 * [{sourceport, instanceport, state}], `loadbalancerinstance` = the members {id, name, state, ipaddress}.
 */
export async function internalLbResponses(ctx: NetCtx, rules: readonly LbRow[]): Promise<ResponseObject[]> {
  if (rules.length === 0) return [];
  const ids = rules.map((r) => Number(r.id));
  const of = await lbCommon(ctx, rules);
  const members = await membersOf(ctx.tx, ids);
  const vmIds = [...new Set(members.map((m) => Number(m.vm_id)))];
  const vms = vmIds.length
    ? await ctx.tx
        .selectFrom('vms')
        .select(['id', 'uuid', 'name', 'state'])
        .where('id', 'in', vmIds)
        .execute()
    : [];
  const tags = await tagsFor(plain(ctx), 'LoadBalancer', ids);
  return rules.map((r) => {
    const c = of(r);
    return {
      id: r.uuid,
      name: r.name,
      description: r.description ?? undefined,
      sourceipaddress: r.source_ip ?? undefined,
      sourceipaddressnetworkid: c.net?.uuid,
      networkid: c.net?.uuid,
      algorithm: r.algorithm,
      fordisplay: Number(r.for_display) === 1,
      loadbalancerrule: [
        { sourceport: Number(r.start_port), instanceport: Number(r.private_port), state: c.state },
      ],
      loadbalancerinstance: members
        .filter((m) => Number(m.rule_id) === Number(r.id))
        .map((m) => {
          const vm = vms.find((v) => Number(v.id) === Number(m.vm_id));
          return { id: vm?.uuid, name: vm?.name, state: vm?.state, ipaddress: m.vm_ip };
        }),
      tags: tags.get(Number(r.id)) ?? [],
      ...c.owner,
    };
  });
}
