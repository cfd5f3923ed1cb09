/**
 * The answers of the load balancer commands: rules (each page from a fixed number of queries), policies, and a
 * rule's instances with their health as the routers last reported it.
 */
import type { ResponseObject } from '../api/command.js';
import { keywordMatch } from '../api/list.js';
import type { NetCtx } from '../infrastructure/context.js';
import { pageWindow } from '../infrastructure/context.js';
import { ownerFields, ownerNames } from '../infrastructure/owners.js';
import { cidrsOf, enforcingNetworkId, ruleProgress } from '../rules/repository.js';
import { vmResponse } from '../vms/responses.js';
import type { VmRow } from '../vms/service.js';
import { memberState } from './members.js';
import type { ServiceState } from './members.js';
import { ipText } from '../rules/service.js';
import { tagsFor } from '../tags/service.js';
import { membersOf, policiesOf } from './repository.js';
import type { LbRow, PolicyRow } from './repository.js';

import { lbForCaller, plain } from './service.js';

/** What every LB response needs: the rule's `state` (Add / Active), its network and zone, its owner. */
export async function lbCommon(ctx: NetCtx, rules: readonly LbRow[]) {
  const progress = await ruleProgress(ctx.tx, rules);
  const owners = await ownerNames(
    plain(ctx),
    rules.map((r) => Number(r.account_id)),
  );
  const nets = rules.length
    ? await ctx.tx
        .selectFrom('networks')
        .leftJoin('zones', 'zones.id', 'networks.zone_id')
        .select(['networks.id', 'networks.uuid', 'zones.uuid as zoneUuid', 'zones.name as zoneName'])
        .where(
          'networks.id',
          'in',
          rules.map((r) => Number(r.network_id)),
        )
        .execute()
    : [];
  return (r: LbRow) => {
    const net = nets.find((n) => Number(n.id) === Number(r.network_id));
    return {
      state: progress.get(Number(r.id))?.applied ? 'Active' : 'Add',
      net,
      owner: ownerFields(owners.get(Number(r.account_id))),
    };
  };
}

export async function lbResponses(ctx: NetCtx, rules: readonly LbRow[]): Promise<ResponseObject[]> {
  if (rules.length === 0) return [];
  const ids = rules.map((r) => Number(r.id));
  const cidrs = await cidrsOf(ctx.tx, ids);
  const of = await lbCommon(ctx, rules);
  const ips = await ctx.tx
    .selectFrom('ip_allocations')
    .select(['id', 'uuid', 'address'])
    .where(
      'id',
      'in',
      rules.map((r) => Number(r.ip_allocation_id)),
    )
    .execute();
  const tags = await tagsFor(plain(ctx), 'LoadBalancer', ids);
  return rules.map((r) => {
    const c = of(r);
    const ip = ips.find((x) => Number(x.id) === Number(r.ip_allocation_id));
    // CloudStack's LoadBalancerResponse carries the ports as strings.
    return {
      id: r.uuid,
      name: r.name,
      description: r.description ?? undefined,
      publicipid: ip?.uuid,
      publicip: ip ? ipText(ip) : undefined,
      publicport: String(r.start_port),
      privateport: String(r.private_port),
      algorithm: r.algorithm,
      protocol: r.lb_protocol,
      cidrlist: cidrs.get(Number(r.id))!.source.join(','),
      networkid: c.net?.uuid,
      zoneid: c.net?.zoneUuid ?? undefined,
      zonename: c.net?.zoneName ?? undefined,
      state: c.state,
      fordisplay: Number(r.for_display) === 1,
      tags: tags.get(Number(r.id)) ?? [],
      ...c.owner,
    };
  });
}

/** stickinesspolicies / healthcheckpolicies: the rule's fields around its list of policies (CloudStack's shape). */
export async function policyResponse(
  ctx: NetCtx,
  r: LbRow,
  kind: PolicyRow['kind'],
  only?: PolicyRow,
): Promise<ResponseObject> {
  const c = (await lbCommon(ctx, [r]))(r);
  const rows = only ? [only] : await policiesOf(ctx.tx, [Number(r.id)], kind);
  const base: ResponseObject = {
    lbruleid: r.uuid,
    zoneid: c.net?.zoneUuid ?? undefined,
    account: c.owner.account,
    domainid: c.owner.domainid,
    domain: c.owner.domain,
  };
  if (kind === 'Stickiness')
    return {
      ...base,
      name: r.name,
      description: r.description ?? undefined,
      state: c.state,
      stickinesspolicy: rows.map((s) => ({
        id: s.uuid,
        name: s.name ?? undefined,
        methodname: s.method ?? undefined,
        description: s.description ?? undefined,
        params: JSON.parse(s.params ?? '{}') as ResponseObject,
        state: c.state,
        fordisplay: Number(s.for_display) === 1,
      })),
    };
  return {
    ...base,
    healthcheckpolicy: rows.map((h) => ({
      id: h.uuid,
      pingpath: h.ping_path ?? undefined,
      description: h.description ?? undefined,
      state: c.state,
      responsetime: h.response_timeout ?? undefined,
      healthcheckinterval: h.interval_time ?? undefined,
      healthcheckthresshold: h.healthy_threshold ?? undefined,
      unhealthcheckthresshold: h.unhealthy_threshold ?? undefined,
      fordisplay: Number(h.for_display) === 1,
    })),
  };
}

// ------------------------------------------------------------------------------------------------ instances

export interface InstancesParams {
  id: string;
  applied?: boolean | undefined;
  lbvmips?: boolean | undefined;
  keyword?: string | undefined;
  page?: number | undefined;
  pagesize?: number | undefined;
}

/**
 * listLoadBalancerRuleInstances: applied (default) = the rule's members, each VM once with its balanced
 * addresses; applied=false = the owner's VMs in the rule's network not assigned to it. A member's `servicestate`
 * is its health as the routers report it (members.ts memberState: UP / DOWN / Unknown).
 */
export async function listLbInstances(
  ctx: NetCtx,
  p: InstancesParams,
): Promise<{ count: number; items: { vm: VmRow; ips: string[]; servicestate?: ServiceState }[] }> {
  const r = await lbForCaller(ctx, p.id);
  const members = await membersOf(ctx.tx, [Number(r.id)]);
  const memberVmIds = [...new Set(members.map((m) => Number(m.vm_id)))];
  let q = ctx.tx.selectFrom('vms').selectAll('vms').where('vms.removed', 'is', null);
  if (p.applied === false) {
    q = q
      .where('vms.account_id', '=', Number(r.account_id))
      .where('vms.state', 'not in', ['Destroyed', 'Expunging'])
      .where(
        'vms.id',
        'in',
        ctx.tx.selectFrom('nics').select('nics.vm_id').where('nics.network_id', '=', Number(r.network_id)),
      );
    if (memberVmIds.length) q = q.where('vms.id', 'not in', memberVmIds);
  } else {
    if (memberVmIds.length === 0) return { count: 0, items: [] };
    q = q.where('vms.id', 'in', memberVmIds);
  }
  if (p.keyword) q = q.where(keywordMatch(['vms.name', 'vms.display_name'], p.keyword));
  const all = await q.orderBy('vms.id').execute();
  const { limit, offset } = pageWindow(p);
  const page = all.slice(offset, limit === undefined ? undefined : offset + limit);
  const healths = p.applied === false ? [] : await routerHealths(ctx, r);
  return {
    count: all.length,
    items: page.map((vm) => {
      const ips = members.filter((m) => Number(m.vm_id) === Number(vm.id)).map((m) => m.vm_ip);
      if (p.applied === false) return { vm, ips };
      // One state per VM, as CloudStack's map row: UP if any of its balanced addresses is UP.
      const states = ips.map((ip) => memberState(healths, r.uuid, ip));
      const servicestate: ServiceState = states.includes('UP')
        ? 'UP'
        : states.includes('DOWN')
          ? 'DOWN'
          : 'Unknown';
      return { vm, ips, servicestate };
    }),
  };
}

/** The stored status (routers.health) of the live routers enforcing the rule. */
async function routerHealths(ctx: NetCtx, r: LbRow): Promise<unknown[]> {
  const net = await enforcingNetworkId(ctx.tx, r);
  if (net === null) return [];
  const rows = await ctx.tx
    .selectFrom('routers')
    .select('health')
    .where('network_id', '=', net)
    .where('removed', 'is', null)
    .execute();
  return rows.flatMap((x) => {
    if (!x.health) return [];
    try {
      return [JSON.parse(String(x.health)) as unknown];
    } catch {
      return [];
    }
  });
}

export async function instanceResponses(
  ctx: NetCtx,
  items: { vm: VmRow; ips: string[]; servicestate?: ServiceState }[],
  lbvmips: boolean,
): Promise<ResponseObject[]> {
  const out: ResponseObject[] = [];
  for (const i of items) {
    const vm = await vmResponse(plain(ctx), i.vm, i.servicestate ? { servicestate: i.servicestate } : {});
    out.push(lbvmips ? { loadbalancerruleinstance: vm, lbvmipaddresses: i.ips } : vm);
  }
  return out;
}
