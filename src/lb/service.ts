/**
 * Public load balancer rules on the virtual router: create (CloudStack's checks and conflicts), update, delete,
 * list, members (assign/remove, vmidipmap for secondary addresses), stickiness and health check policies, and
 * the responses. The rule is a firewall_rules row (src/rules): its event, the routers' bump and `state` are that
 * module's, in the caller's transaction.
 */
import { randomUUID } from 'node:crypto';
import type { ResponseObject } from '../api/command.js';
import { applyListScope, resolveListScope } from '../accounts/scope.js';
import { keywordMatch } from '../api/list.js';
import { CloudStackError, invalidParameter, permissionDenied } from '../errors/catalogue.js';
import type { Listed, NetCtx } from '../infrastructure/context.js';
import { notFound, pageWindow } from '../infrastructure/context.js';
import { zoneByUuid } from '../infrastructure/zones.js';
import { ownerById, ownerFields, ownerNames } from '../infrastructure/owners.js';
import { formatIp, parseIpOf } from '../ipam/index.js';
import { lockNetwork, networkById, networkByUuid } from '../networks/repository.js';
import type { NetworkRow } from '../networks/repository.js';
import { publicIpByUuid } from '../public-ips/service.js';
import type { IpRow } from '../public-ips/service.js';
import { cidrsOf, enforcingNetworkId, ruleProgress } from '../rules/repository.js';
import { vmResponse } from '../vms/responses.js';
import type { VmRow } from '../vms/service.js';
import { memberState } from './members.js';
import type { ServiceState } from './members.js';
import {
  bumpAndStamp,
  cidrKey,
  deleteRule,
  insertRule,
  ipText,
  liveIpRules,
  lockIp,
  requireService,
  ruleForCaller,
  sourceCidrs,
} from '../rules/service.js';
import { detectConflict, portSpan } from '../rules/validate.js';
import type { Executor as PlainExecutor } from '../store/db.js';
import { tagsCondition, tagsFor } from '../tags/service.js';
import { dropLbChildren, lbByUuid, lbDb, lbRowsOf, membersOf, policiesOf } from './repository.js';
import type { LbRow, MemberRow, PolicyRow } from './repository.js';
import { algorithmOf, checkHealthCheck, checkStickiness, lbProtocolOf } from './validate.js';

const plain = (ctx: NetCtx): PlainExecutor => ctx.tx as unknown as PlainExecutor;

/** The live LB rule named `uuid` the caller may act on, or 431 naming the parameter. */
export async function lbForCaller(ctx: NetCtx, uuid: string, param = 'id'): Promise<LbRow> {
  const r = await ruleForCaller(ctx, uuid, 'loadBalancer', param);
  return (await lbRowsOf(ctx.tx, [r]))[0]!;
}

/** An LB event on the rule, or (policy events) on the policy named by `policy`. */
async function event(
  ctx: NetCtx,
  r: LbRow,
  type: Parameters<NetCtx['recorder']['event']>[1]['type'],
  what: string,
  policy?: { type: string; uuid: string },
) {
  await ctx.recorder.event(ctx.tx, {
    type,
    description: `${what} (load balancer rule ${r.uuid})`,
    resourceType: policy?.type ?? 'LoadBalancer',
    resourceId: policy?.uuid ?? r.uuid,
    owner: await ownerById(ctx.tx, Number(r.account_id)),
  });
}

// ------------------------------------------------------------------------------------------------ create

export interface CreateLbParams {
  publicipid?: string | undefined;
  networkid?: string | undefined;
  name: string;
  description?: string | undefined;
  algorithm: string;
  publicport: number;
  privateport: number;
  protocol?: string | undefined;
  openfirewall?: boolean | undefined;
  cidrlist?: string[] | undefined;
  fordisplay?: boolean | undefined;
}

/**
 * The IP a rule balances from: `publicipid`, or without it the source NAT address of `networkid` (CloudStack's
 * CreateLoadBalancerRuleCmd.getSourceIpAddressId); and the guest network its members are in: the IP's network,
 * or for a VPC's IP the tier named by `networkid`.
 */
async function ipAndNetwork(ctx: NetCtx, p: CreateLbParams): Promise<{ ip: IpRow; network: NetworkRow }> {
  const requested = p.networkid ? await networkByUuid(ctx.tx, p.networkid, 'networkid') : undefined;
  let ipUuid = p.publicipid;
  if (ipUuid === undefined) {
    if (!requested)
      throw invalidParameter('publicipid', '', 'Either publicipid or networkid must be specified');
    const snat = await ctx.tx
      .selectFrom('ip_allocations')
      .select('uuid')
      .where('network_id', '=', requested.id)
      .where('source_nat', '=', 1)
      .where('owner_kind', '=', 'publicip')
      .where('state', '=', 'Allocated')
      .executeTakeFirst();
    if (!snat?.uuid)
      throw invalidParameter(
        'networkid',
        p.networkid,
        "Unable to create load balance rule; can't find/allocate source IP",
      );
    ipUuid = snat.uuid;
  }
  const ip = await lockIp(ctx, ipUuid, 'publicipid');
  if (ip.vpc_id !== null) {
    if (!requested)
      throw invalidParameter(
        'networkid',
        '',
        "networkid (the VPC tier to balance to) is required for a VPC's IP",
      );
    if (Number(requested.vpc_id) !== Number(ip.vpc_id))
      throw invalidParameter(
        'networkid',
        p.networkid,
        `Ip address ${ipText(ip)} is not assigned to the network ${requested.name}`,
      );
    return { ip, network: requested };
  }
  if (ip.network_id === null)
    throw invalidParameter(
      'publicipid',
      ipUuid,
      'Unable to create load balancer rule ; specified sourceip id is not associated with any network',
    );
  const network = await networkById(ctx.tx, Number(ip.network_id));
  if (requested && requested.id !== network.id)
    throw invalidParameter(
      'networkid',
      p.networkid,
      `Ip address ${ipText(ip)} is not assigned to the network ${requested.name}`,
    );
  return { ip, network };
}

export async function createLoadBalancerRule(ctx: NetCtx, p: CreateLbParams): Promise<LbRow> {
  const lbProtocol = lbProtocolOf(p.protocol);
  const algorithm = algorithmOf(p.algorithm);
  if (!p.name.trim()) throw invalidParameter('name', p.name, 'name must not be empty');
  const pub = portSpan(p.publicport, undefined, ['publicport', 'publicport'])!;
  if (!Number.isInteger(p.privateport) || p.privateport < 1 || p.privateport > 65535)
    throw invalidParameter('privateport', p.privateport, `privatePort is an invalid value: ${p.privateport}`);
  const { ip, network } = await ipAndNetwork(ctx, p);
  // CloudStack (createPublicLoadBalancerRule): a static NAT IP is a NetworkRuleConflictException.
  if (ip.static_nat === 1)
    throw new CloudStackError('NetworkRuleConflict', `Can't do load balance on ip address: ${ipText(ip)}`);
  await requireService(
    ctx,
    network,
    'Lb',
    p.networkid && ip.vpc_id !== null ? 'networkid' : 'publicipid',
    p.publicipid ?? p.networkid ?? '',
  );
  const cidrs = sourceCidrs(p.cidrlist, 'cidrlist');
  const existing = await liveIpRules(ctx, ip.id);
  detectConflict({ purpose: 'LoadBalancing', protocol: 'tcp', ports: pub }, existing);
  const openFirewall = p.openfirewall ?? ip.vpc_id === null;
  if (openFirewall)
    detectConflict({ purpose: 'Firewall', protocol: 'tcp', ports: pub, cidrs: cidrKey(cidrs) }, existing);
  await lockNetwork(ctx.tx, network.id);
  const base = {
    ip,
    accountId: ip.account_id!,
    domainId: ip.domain_id!,
    protocol: 'tcp',
    ports: pub,
    sourceCidrs: cidrs,
    forDisplay: p.fordisplay,
  };
  // openfirewall: the firewall rule for the same IP, port and cidrlist, the LB's related rule (goes with it).
  const fw = openFirewall
    ? await insertRule(ctx, {
        ...base,
        purpose: 'Firewall',
        traffic: 'Ingress',
        networkId: ip.network_id ?? network.id,
      })
    : undefined;
  const uuid = randomUUID();
  // The LB columns go in before the rule's LB.CREATE event is written by insertRule: one transaction either way.
  const rule = await insertRule(ctx, {
    ...base,
    uuid,
    purpose: 'LoadBalancing',
    traffic: 'Ingress',
    networkId: network.id,
    ...(fw ? { relatedRuleId: Number(fw.id) } : {}),
  });
  await lbDb(ctx.tx)
    .insertInto('load_balancing_rules')
    .values({
      rule_id: Number(rule.id),
      name: p.name,
      description: p.description ?? null,
      algorithm,
      private_port: p.privateport,
      lb_protocol: lbProtocol,
    })
    .execute();
  await bumpAndStamp(ctx, fw ? [rule, fw] : [rule]);
  return (await lbByUuid(ctx.tx, uuid))!;
}

// ------------------------------------------------------------------------------------------------ update/delete

export interface UpdateLbParams {
  id: string;
  name?: string | undefined;
  description?: string | undefined;
  algorithm?: string | undefined;
  protocol?: string | undefined;
  customid?: string | undefined;
  fordisplay?: boolean | undefined;
}

export async function updateLoadBalancerRule(ctx: NetCtx, p: UpdateLbParams): Promise<LbRow> {
  const r = await lbForCaller(ctx, p.id);
  const lb: { name?: string; description?: string; algorithm?: LbRow['algorithm']; lb_protocol?: string } =
    {};
  if (p.name !== undefined) {
    if (!p.name.trim()) throw invalidParameter('name', p.name, 'name must not be empty');
    lb.name = p.name;
  }
  if (p.description !== undefined) lb.description = p.description;
  if (p.algorithm !== undefined) lb.algorithm = algorithmOf(p.algorithm);
  if (p.protocol !== undefined) lb.lb_protocol = lbProtocolOf(p.protocol);
  if (Object.keys(lb).length)
    await lbDb(ctx.tx)
      .updateTable('load_balancing_rules')
      .set(lb)
      .where('rule_id', '=', Number(r.id))
      .execute();
  let uuid = r.uuid;
  const fw: { uuid?: string; for_display?: number } = {};
  if (p.customid !== undefined && p.customid !== r.uuid) {
    if (await lbByUuid(ctx.tx, p.customid))
      throw invalidParameter('customid', p.customid, 'another rule already has this id');
    fw.uuid = uuid = p.customid;
  }
  if (p.fordisplay !== undefined) fw.for_display = p.fordisplay ? 1 : 0;
  if (Object.keys(fw).length)
    await ctx.tx.updateTable('firewall_rules').set(fw).where('id', '=', r.id).execute();
  const row = (await lbByUuid(ctx.tx, uuid))!;
  // On the id the request named (a customid's re-run looks for it there).
  await event(ctx, r, 'LB.UPDATE', 'Load balancer rule updated');
  // The router sees the algorithm and the id (its haproxy section is named after it).
  if (lb.algorithm !== undefined || fw.uuid !== undefined) await bumpAndStamp(ctx, [row]);
  return (await lbByUuid(ctx.tx, uuid))!;
}

export async function deleteLoadBalancerRule(ctx: NetCtx, id: string): Promise<void> {
  const r = await lbForCaller(ctx, id);
  // Its appliance must go with its last rule (internal.ts), which is deleteLoadBalancer's work.
  if (r.scheme === 'Internal')
    throw invalidParameter('id', id, `${id} is an internal load balancer: delete it with deleteLoadBalancer`);
  await dropLbChildren(ctx, [Number(r.id)]);
  await deleteRule(ctx, 'loadBalancer', id);
}

// ------------------------------------------------------------------------------------------------ members

export interface MembersParams {
  id: string;
  virtualmachineids?: string[] | undefined;
  vmidipmap?: Record<string, string>[] | undefined;
}

/**
 * The (VM, guest IP) pairs a request names, as CloudStack's assignToLoadBalancer builds them: each of
 * `virtualmachineids` with its NIC's primary address in the rule's network, each vmidipmap entry (vmid, vmip)
 * with that address (the primary or a secondary address of the same NIC).
 */
async function requestedMembers(
  ctx: NetCtx,
  r: LbRow,
  p: MembersParams,
  verb: 'assign' | 'remove',
): Promise<{ vmId: number; vmUuid: string; ip: string }[]> {
  const ids = p.virtualmachineids ?? [];
  const map = (p.vmidipmap ?? []).map((e) => ({ vmid: e.vmid ?? '', vmip: e.vmip ?? e.ip }));
  if (ids.length === 0 && map.length === 0)
    throw invalidParameter('virtualmachineids', '', "Both instanceids and vmidipmap  can't be null");
  const out: { vmId: number; vmUuid: string; ip: string }[] = [];
  const wanted: { uuid: string; ip: string | undefined; param: string }[] = [
    ...ids.map((uuid) => ({ uuid, ip: undefined, param: 'virtualmachineids' })),
    ...map.map((e) => ({ uuid: e.vmid, ip: e.vmip, param: 'vmidipmap' })),
  ];
  for (const w of wanted) {
    const vm = await ctx.tx
      .selectFrom('vms')
      .select(['id', 'uuid', 'name', 'account_id', 'state'])
      .where('uuid', '=', w.uuid)
      .where('removed', 'is', null)
      .executeTakeFirst();
    if (!vm || (verb === 'assign' && (vm.state === 'Destroyed' || vm.state === 'Expunging')))
      throw invalidParameter(w.param, w.uuid, 'Invalid instance id specified');
    if (verb === 'assign' && Number(vm.account_id) !== Number(r.account_id))
      throw permissionDenied('Cannot add virtual machines that do not belong to the same owner.');
    const nic = await ctx.tx
      .selectFrom('nics')
      .select(['id', 'ipv4'])
      .where('vm_id', '=', vm.id)
      .where('network_id', '=', Number(r.network_id))
      .executeTakeFirst();
    if (!nic && verb === 'assign')
      throw invalidParameter(
        w.param,
        w.uuid,
        "VM with id specified cannot be added because it doesn't belong in the same network.",
      );
    let ip = nic?.ipv4 ?? '';
    if (w.ip !== undefined) {
      const want = formatIp(parseIpOf(4, w.ip, 'vmidipmap'));
      if (verb === 'assign' && want !== nic?.ipv4) {
        const sec = await ctx.tx
          .selectFrom('nic_secondary_ips')
          .select('ipv4')
          .where('nic_id', '=', nic!.id)
          .where('ipv4', '=', want)
          .executeTakeFirst();
        if (!sec)
          throw invalidParameter(
            'vmidipmap',
            w.ip,
            `VM ip ${want} specified does not belong to nic in network ${(await networkById(ctx.tx, Number(r.network_id))).uuid}`,
          );
      }
      ip = want;
    }
    if (verb === 'assign' && !ip)
      throw invalidParameter(w.param, w.uuid, `VM ${vm.name} has no IPv4 address in the rule's network`);
    out.push({ vmId: Number(vm.id), vmUuid: vm.uuid, ip });
  }
  return out;
}

export async function assignToLoadBalancerRule(ctx: NetCtx, p: MembersParams): Promise<LbRow> {
  const r = await lbForCaller(ctx, p.id);
  const wanted = await requestedMembers(ctx, r, p, 'assign');
  const existing = await membersOf(ctx.tx, [Number(r.id)]);
  const seen = new Set(existing.map((m) => `${m.vm_id}/${m.vm_ip}`));
  const add: typeof wanted = [];
  for (const w of wanted) {
    const key = `${w.vmId}/${w.ip}`;
    if (existing.some((m) => `${m.vm_id}/${m.vm_ip}` === key))
      throw invalidParameter(
        'virtualmachineids',
        w.vmUuid,
        `VM ${w.vmUuid} with ${w.ip} is already mapped to load balancer.`,
      );
    // The same VM named twice in one request (in both lists) is assigned once, as CloudStack's set does.
    if (!seen.has(key)) add.push(w);
    seen.add(key);
  }
  if (add.length)
    await lbDb(ctx.tx)
      .insertInto('load_balancer_vm_map')
      .values(add.map((w) => ({ rule_id: Number(r.id), vm_id: w.vmId, vm_ip: w.ip, created: ctx.now })))
      .execute();
  await event(
    ctx,
    r,
    'LB.ASSIGN.TO.RULE',
    `VMs ${[...new Set(add.map((w) => w.vmUuid))].join(', ')} assigned`,
  );
  await bumpAndStamp(ctx, [r]);
  return (await lbByUuid(ctx.tx, r.uuid))!;
}

export async function removeFromLoadBalancerRule(ctx: NetCtx, p: MembersParams): Promise<LbRow> {
  const r = await lbForCaller(ctx, p.id);
  const wanted = await requestedMembers(ctx, r, p, 'remove');
  const existing = await membersOf(ctx.tx, [Number(r.id)]);
  const drop: MemberRow[] = [];
  for (const w of wanted) {
    // A VM named without an address leaves with all its addresses (CloudStack: listByLoadBalancerIdAndVmId).
    const explicit = (p.vmidipmap ?? []).some((e) => e.vmid === w.vmUuid && (e.vmip ?? e.ip) !== undefined);
    const hits = existing.filter((m) => Number(m.vm_id) === w.vmId && (!explicit || m.vm_ip === w.ip));
    if (hits.length === 0)
      throw invalidParameter(
        'virtualmachineids',
        w.vmUuid,
        `The instance id: ${w.vmUuid} is not configured  for LB rule id ${r.uuid}`,
      );
    drop.push(...hits);
  }
  const ids = [...new Set(drop.map((m) => Number(m.id)))];
  await lbDb(ctx.tx).deleteFrom('load_balancer_vm_map').where('id', 'in', ids).execute();
  await event(
    ctx,
    r,
    'LB.REMOVE.FROM.RULE',
    `VMs ${[...new Set(wanted.map((w) => w.vmUuid))].join(', ')} removed`,
  );
  await bumpAndStamp(ctx, [r]);
  return (await lbByUuid(ctx.tx, r.uuid))!;
}

// ------------------------------------------------------------------------------------------------ policies

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
  const uuid = randomUUID();
  await db
    .insertInto('load_balancer_policies')
    .values({
      uuid,
      rule_id: Number(r.id),
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
      created: ctx.now,
    })
    .execute();
  await event(ctx, r, 'LB.STICKINESSPOLICY.CREATE', `Stickiness policy ${uuid} (${s.method}) created`, {
    type: 'LBStickinessPolicy',
    uuid,
  });
  await bumpAndStamp(ctx, [r]);
  return await db
    .selectFrom('load_balancer_policies')
    .selectAll()
    .where('uuid', '=', uuid)
    .executeTakeFirstOrThrow();
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
  const db = lbDb(ctx.tx);
  if ((await policiesOf(ctx.tx, [Number(r.id)], 'HealthCheck')).length > 0)
    throw invalidParameter(
      'lbruleid',
      p.lbruleid,
      `Failed to create HealthCheck policy: Already policy attached  for the LB Rule id :${r.uuid}`,
    );
  const uuid = randomUUID();
  await db
    .insertInto('load_balancer_policies')
    .values({
      uuid,
      rule_id: Number(r.id),
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
      created: ctx.now,
    })
    .execute();
  await event(ctx, r, 'LB.HEALTHCHECKPOLICY.CREATE', `Health check policy ${uuid} created`, {
    type: 'LBHealthCheckPolicy',
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

// ------------------------------------------------------------------------------------------------ list

export interface ListLbParams {
  id?: string | undefined;
  name?: string | undefined;
  publicipid?: string | undefined;
  networkid?: string | undefined;
  virtualmachineid?: string | undefined;
  zoneid?: string | undefined;
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

export async function listLoadBalancerRules(ctx: NetCtx, p: ListLbParams): Promise<Listed<LbRow>> {
  const { limit, offset } = pageWindow(p);
  const scope = await resolveListScope(plain(ctx), ctx.caller, p);
  let q = applyListScope(
    ctx.tx
      .selectFrom('firewall_rules')
      .innerJoin('load_balancing_rules', 'load_balancing_rules.rule_id', 'firewall_rules.id')
      .where('firewall_rules.removed', 'is', null)
      .where('firewall_rules.purpose', '=', 'LoadBalancing')
      // Internal rules are listLoadBalancers' (internal.ts).
      .where('load_balancing_rules.scheme', '=', 'Public'),
    ctx.caller,
    scope,
    { accountColumn: 'firewall_rules.account_id', domainColumn: 'firewall_rules.domain_id' },
  );
  if (p.id) q = q.where('firewall_rules.uuid', '=', p.id);
  if (p.name) q = q.where('load_balancing_rules.name', '=', p.name);
  if (p.publicipid)
    q = q.where(
      'firewall_rules.ip_allocation_id',
      '=',
      (await publicIpByUuid(ctx.tx, p.publicipid, 'publicipid')).id,
    );
  if (p.networkid)
    q = q.where('firewall_rules.network_id', '=', (await networkByUuid(ctx.tx, p.networkid, 'networkid')).id);
  if (p.zoneid) {
    const zone = await zoneByUuid(ctx.tx, p.zoneid);
    q = q.where(
      'firewall_rules.network_id',
      'in',
      ctx.tx.selectFrom('networks').select('id').where('zone_id', '=', zone.id),
    );
  }
  if (p.virtualmachineid) {
    const vm = await ctx.tx
      .selectFrom('vms')
      .select('id')
      .where('uuid', '=', p.virtualmachineid)
      .executeTakeFirst();
    if (!vm) throw notFound('virtualmachineid', p.virtualmachineid, 'virtual machine');
    q = q.where(
      'firewall_rules.id',
      'in',
      lbDb(ctx.tx)
        .selectFrom('load_balancer_vm_map')
        .select('rule_id')
        .where('vm_id', '=', Number(vm.id)) as never,
    );
  }
  if (p.fordisplay !== undefined) q = q.where('firewall_rules.for_display', '=', p.fordisplay ? 1 : 0);
  if (p.keyword) q = q.where(keywordMatch(['load_balancing_rules.name', 'firewall_rules.uuid'], p.keyword));
  const tagged = tagsCondition('LoadBalancer', 'firewall_rules.id', p.tags);
  if (tagged) q = q.where(tagged);
  const count = Number((await q.select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
  let rq = q.selectAll('firewall_rules').orderBy('firewall_rules.id').offset(offset);
  if (limit !== undefined) rq = rq.limit(limit);
  return { count, items: await lbRowsOf(ctx.tx, await rq.execute()) };
}

// ------------------------------------------------------------------------------------------------ responses

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
