/**
 * Public load balancer rules on the virtual router: create (CloudStack's checks and conflicts), update, delete,
 * list, members (assign/remove, vmidipmap for secondary addresses); stickiness and health check policies are in
 * policies.ts, the responses in responses.ts. The rule is a firewall_rules row (src/rules): its event, the routers' bump and `state` are that
 * module's, in the caller's transaction.
 */
import { randomUUID } from 'node:crypto';
import { applyListScope, resolveListScope } from '../accounts/scope.js';
import { keywordMatch } from '../api/list.js';
import { CloudStackError, invalidParameter, permissionDenied } from '../errors/catalogue.js';
import type { Listed, NetCtx } from '../infrastructure/context.js';
import { notFound, pageWindow } from '../infrastructure/context.js';
import { zoneByUuid } from '../infrastructure/zones.js';
import { ownerById } from '../infrastructure/owners.js';
import { formatIp, parseIpOf } from '../ipam/index.js';
import { lockNetwork, networkById, networkByUuid } from '../networks/repository.js';
import type { NetworkRow } from '../networks/repository.js';
import { publicIpByUuid } from '../public-ips/service.js';
import type { IpRow } from '../public-ips/service.js';
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
import { tagsCondition, tagsFollowUuid } from '../tags/service.js';
import { dropLbChildren, lbByUuid, lbDb, lbRowsOf, membersOf } from './repository.js';
import type { LbRow, MemberRow } from './repository.js';
import { algorithmOf, lbProtocolOf } from './validate.js';

export const plain = (ctx: NetCtx): PlainExecutor => ctx.tx as unknown as PlainExecutor;

/** The live LB rule named `uuid` the caller may act on, or 431 naming the parameter. */
export async function lbForCaller(ctx: NetCtx, uuid: string, param = 'id'): Promise<LbRow> {
  const r = await ruleForCaller(ctx, uuid, 'loadBalancer', param);
  return (await lbRowsOf(ctx.tx, [r]))[0]!;
}

/** An LB event on the rule, or (policy events) on the policy named by `policy`. */
export async function event(
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
  if (fw.uuid !== undefined) await tagsFollowUuid(plain(ctx), 'LoadBalancer', r.id, fw.uuid);
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
