/**
 * Port forwarding, firewall and egress rules: create (with CloudStack's checks and conflicts), update, delete,
 * list and the responses. Every change writes its event and bumps the enforcing routers in the caller's
 * transaction; a rule's `state` is computed from those routers when it is read (repository.ruleProgress).
 */
import { randomUUID } from 'node:crypto';
import type { Updateable } from 'kysely';
import type { ResponseObject } from '../api/command.js';
import { applyListScope, resolveListScope } from '../accounts/scope.js';
import { keywordMatch } from '../api/list.js';
import { invalidParameter, permissionDenied } from '../errors/catalogue.js';
import type { Listed, NetCtx } from '../infrastructure/context.js';
import { notFound, pageWindow } from '../infrastructure/context.js';
import { checkAccess, ownerById, ownerFields, ownerNames } from '../infrastructure/owners.js';
import { addressFromKey, formatCidr, formatIp, parseCidr, parseIpOf } from '../ipam/index.js';
import { hasService, lockNetwork, networkById, networkByUuid, offeringById } from '../networks/repository.js';
import type { NetworkRow } from '../networks/repository.js';
import { publicIpByUuid } from '../public-ips/service.js';
import type { IpRow } from '../public-ips/service.js';
import type { Executor as PlainExecutor } from '../store/db.js';
import { tagsCondition, tagsFollowUuid, tagsFor } from '../tags/service.js';
import {
  bumpForRules,
  cidrsOf,
  describe,
  enforcingNetworkId,
  kindOf,
  removeRules,
  resourceTypeOf,
  ruleByUuid,
  ruleEvents,
  ruleProgress,
} from './repository.js';
import type { RuleKind, RuleRow } from './repository.js';
import {
  checkInsideGuest,
  checkPfRanges,
  checkProtocolFields,
  detectConflict,
  parseCidrList,
  portSpan,
  protocolOf,
} from './validate.js';
import type { ExistingRule, PortSpan } from './validate.js';
import type { FirewallRulesTable } from './tables.js';

const ANY = '0.0.0.0/0';

// ------------------------------------------------------------------------------------------------ reads

const whatOf: Record<RuleKind, string> = {
  portForward: 'port forwarding rule',
  firewall: 'firewall rule',
  egress: 'egress firewall rule',
  loadBalancer: 'load balancer rule',
};

/** The live rule of `kind` named `uuid`, or 431 naming the parameter. */
export async function ruleForCaller(
  ctx: NetCtx,
  uuid: string,
  kind: RuleKind,
  param = 'id',
): Promise<RuleRow> {
  const r = await ruleByUuid(ctx.tx, uuid);
  if (!r || r.removed !== null || kindOf(r) !== kind) throw notFound(param, uuid, whatOf[kind]);
  await checkAccess(
    ctx.tx,
    ctx.caller,
    await ownerById(ctx.tx, Number(r.account_id)),
    `${whatOf[kind]} ${uuid}`,
  );
  return r;
}

/** A rule's row by uuid whatever its state (a deletion's re-run finds it Revoked). */
export const anyRuleByUuid = (ctx: NetCtx, uuid: string) => ruleByUuid(ctx.tx, uuid);

export async function liveIpRules(ctx: NetCtx, ipId: number, exceptId?: number): Promise<ExistingRule[]> {
  const rows = await ctx.tx
    .selectFrom('firewall_rules')
    .selectAll()
    .where('ip_allocation_id', '=', ipId)
    .where('removed', 'is', null)
    .execute();
  return withCidrs(
    ctx,
    rows.filter((r) => r.id !== exceptId),
  );
}

async function withCidrs(ctx: NetCtx, rows: RuleRow[]): Promise<ExistingRule[]> {
  const cidrs = await cidrsOf(
    ctx.tx,
    rows.map((r) => Number(r.id)),
  );
  return rows.map((r) => ({
    uuid: r.uuid,
    purpose: r.purpose,
    protocol: r.protocol,
    start: r.start_port,
    end: r.end_port,
    cidrs: cidrKey(cidrs.get(Number(r.id))!.source),
    destCidrs: cidrKey(cidrs.get(Number(r.id))!.dest),
  }));
}

export const cidrKey = (l: readonly string[]): string => [...l].sort().join(',');

/**
 * The IP row held until the transaction ends: two rules racing for overlapping ports on one IP serialise here
 * (SQLite transactions already hold the write lock).
 */
export async function lockIp(ctx: NetCtx, uuid: string, param = 'ipaddressid'): Promise<IpRow> {
  const row = await publicIpByUuid(ctx.tx, uuid, param);
  const q = ctx.tx.selectFrom('ip_allocations').selectAll().where('id', '=', row.id);
  const sqlite = ctx.tx.getExecutor().adapter.constructor.name.toLowerCase().includes('sqlite');
  const locked = await (sqlite ? q : q.forUpdate()).executeTakeFirstOrThrow();
  if (locked.state !== 'Allocated')
    throw invalidParameter(param, uuid, `the address is ${locked.state}, not associated with a network`);
  if (locked.account_id !== null)
    await checkAccess(
      ctx.tx,
      ctx.caller,
      await ownerById(ctx.tx, locked.account_id),
      `IP address ${ipText(locked)}`,
    );
  return locked;
}

export const ipText = (r: Pick<IpRow, 'address'>): string => formatIp(addressFromKey(4, r.address));

// ------------------------------------------------------------------------------------------------ create

export interface NewRule {
  uuid?: string | undefined;
  purpose: 'Firewall' | 'PortForwarding' | 'LoadBalancing';
  traffic: 'Ingress' | 'Egress';
  ip: IpRow | null;
  networkId: number;
  accountId: number;
  domainId: number;
  protocol: string;
  ports: PortSpan | undefined;
  icmpType?: number | undefined;
  icmpCode?: number | undefined;
  sourceCidrs: string[];
  destCidrs?: string[];
  forDisplay?: boolean | undefined;
  pf?: { destIp: string; priv: PortSpan; vmId: number };
  relatedRuleId?: number;
}

export async function insertRule(ctx: NetCtx, r: NewRule): Promise<RuleRow> {
  const uuid = r.uuid ?? randomUUID();
  await ctx.tx
    .insertInto('firewall_rules')
    .values({
      uuid,
      purpose: r.purpose,
      traffic_type: r.traffic,
      ip_allocation_id: r.ip ? r.ip.id : null,
      network_id: r.networkId,
      account_id: r.accountId,
      domain_id: r.domainId,
      protocol: r.protocol,
      start_port: r.ports?.start ?? null,
      end_port: r.ports?.end ?? null,
      icmp_type: r.protocol === 'icmp' ? (r.icmpType ?? -1) : null,
      icmp_code: r.protocol === 'icmp' ? (r.icmpCode ?? -1) : null,
      state: 'Add',
      related_rule_id: r.relatedRuleId ?? null,
      for_display: r.forDisplay === false ? 0 : 1,
      dest_ip: r.pf?.destIp ?? null,
      private_start_port: r.pf?.priv.start ?? null,
      private_end_port: r.pf?.priv.end ?? null,
      vm_id: r.pf?.vmId ?? null,
      created: ctx.now,
    })
    .execute();
  const row = (await ruleByUuid(ctx.tx, uuid))!;
  const cidrs = [
    ...r.sourceCidrs.map((cidr) => ({ rule_id: row.id, cidr, kind: 'source' as const })),
    ...(r.destCidrs ?? []).map((cidr) => ({ rule_id: row.id, cidr, kind: 'dest' as const })),
  ];
  if (cidrs.length) await ctx.tx.insertInto('firewall_rule_cidrs').values(cidrs).execute();
  const kind = kindOf(row);
  await ctx.recorder.event(ctx.tx, {
    type: ruleEvents[kind].add,
    description: `${describe(row)} created`,
    resourceType: resourceTypeOf(kind),
    resourceId: uuid,
    owner: await ownerById(ctx.tx, r.accountId),
  });
  return row;
}

/** Records the generation the rules are in force at, after bumping the routers that enforce them. */
export async function bumpAndStamp(ctx: NetCtx, rules: readonly RuleRow[]): Promise<void> {
  const nets: (number | null)[] = [];
  for (const r of rules) nets.push(Number(r.network_id), await enforcingNetworkId(ctx.tx, r));
  const generation = await bumpForRules(ctx.tx, nets);
  await ctx.tx
    .updateTable('firewall_rules')
    .set({ generation })
    .where(
      'id',
      'in',
      rules.map((r) => r.id),
    )
    .execute();
}

export const sourceCidrs = (list: string[] | undefined, param: string): string[] => {
  const l = parseCidrList(list, param).map(formatCidr);
  return l.length ? [...new Set(l)] : [ANY];
};

/** The network of a public IP must offer `service` (CloudStack: "<service> service is not supported in network"). */
export async function requireService(
  ctx: NetCtx,
  net: NetworkRow,
  service: string,
  param: string,
  value: string,
) {
  const offering = net.offering_id !== null ? await offeringById(ctx.tx, Number(net.offering_id)) : undefined;
  if (!offering || !hasService(offering, service))
    throw invalidParameter(param, value, `${service} service is not supported in network '${net.name}'`);
}

export interface CreatePfParams {
  ipaddressid: string;
  protocol: string;
  publicport: number;
  publicendport?: number | undefined;
  privateport: number;
  privateendport?: number | undefined;
  virtualmachineid: string;
  vmguestip?: string | undefined;
  networkid?: string | undefined;
  openfirewall?: boolean | undefined;
  cidrlist?: string[] | undefined;
  fordisplay?: boolean | undefined;
}

/** The VM a port forward targets and its address in the rule's network (CloudStack's checks, with its wording). */
async function pfTarget(
  ctx: NetCtx,
  ip: IpRow,
  p: { virtualmachineid: string; vmguestip?: string | undefined; networkid?: string | undefined },
): Promise<{ vmId: number; destIp: string; network: NetworkRow }> {
  const vm = await ctx.tx
    .selectFrom('vms')
    .select(['id', 'name', 'account_id'])
    .where('uuid', '=', p.virtualmachineid)
    .where('removed', 'is', null)
    .where('state', 'not in', ['Destroyed', 'Expunging'])
    .executeTakeFirst();
  if (!vm) throw notFound('virtualmachineid', p.virtualmachineid, 'virtual machine');
  if (Number(vm.account_id) !== ip.account_id)
    throw permissionDenied(
      `The virtual machine ${vm.name} and the IP address ${ipText(ip)} belong to different accounts`,
    );
  const nics = await ctx.tx
    .selectFrom('nics')
    .innerJoin('networks', 'networks.id', 'nics.network_id')
    .select(['nics.id', 'nics.network_id', 'nics.ipv4', 'networks.vpc_id'])
    .where('nics.vm_id', '=', vm.id)
    .execute();
  const requested = p.networkid ? await networkByUuid(ctx.tx, p.networkid, 'networkid') : undefined;
  const nic = nics.find((n) =>
    requested
      ? Number(n.network_id) === requested.id
      : ip.vpc_id !== null
        ? n.vpc_id !== null && Number(n.vpc_id) === Number(ip.vpc_id)
        : Number(n.network_id) === ip.network_id,
  );
  if (!nic)
    throw invalidParameter(
      requested ? 'networkid' : 'virtualmachineid',
      p.networkid ?? p.virtualmachineid,
      `Unable to create port forwarding rule: VM ${vm.name} has no NIC in the network of IP address ${ipText(ip)}`,
    );
  const network = await networkById(ctx.tx, Number(nic.network_id));
  const inIpNetwork =
    ip.vpc_id !== null ? Number(network.vpc_id) === Number(ip.vpc_id) : network.id === ip.network_id;
  if (!inIpNetwork)
    throw invalidParameter(
      'networkid',
      p.networkid ?? '',
      `Unable to create port forwarding rule: network '${network.name}' is not the network of IP address ${ipText(ip)}`,
    );
  let destIp = nic.ipv4 ?? '';
  if (p.vmguestip !== undefined) {
    const want = formatIp(parseIpOf(4, p.vmguestip, 'vmguestip'));
    const secondary = await ctx.tx
      .selectFrom('nic_secondary_ips')
      .select('ipv4')
      .where('nic_id', '=', nic.id)
      .where('ipv4', '=', want)
      .executeTakeFirst();
    if (want !== nic.ipv4 && !secondary)
      throw invalidParameter(
        'vmguestip',
        p.vmguestip,
        `Vm ip ${want} is not the primary or a secondary ip of VM ${vm.name}'s nic in network '${network.name}'`,
      );
    destIp = want;
  }
  if (!destIp)
    throw invalidParameter('virtualmachineid', p.virtualmachineid, `VM ${vm.name} has no IPv4 address`);
  return { vmId: Number(vm.id), destIp, network };
}

export async function createPortForwardingRule(ctx: NetCtx, p: CreatePfParams): Promise<RuleRow> {
  const ip = await lockIp(ctx, p.ipaddressid);
  if (ip.static_nat === 1)
    throw invalidParameter(
      'ipaddressid',
      p.ipaddressid,
      `There is 1 to 1 Nat rule specified for the ip address id=${p.ipaddressid}; no port forwarding on a static NAT IP`,
    );
  const protocol = protocolOf(p.protocol, ['tcp', 'udp']);
  const pub = portSpan(p.publicport, p.publicendport, ['publicport', 'publicendport'])!;
  const priv = portSpan(p.privateport, p.privateendport, ['privateport', 'privateendport'])!;
  checkPfRanges(pub, priv);
  const target = await pfTarget(ctx, ip, p);
  await requireService(ctx, target.network, 'PortForwarding', 'ipaddressid', p.ipaddressid);
  const cidrs = sourceCidrs(p.cidrlist, 'cidrlist');
  const existing = await liveIpRules(ctx, ip.id);
  detectConflict({ purpose: 'PortForwarding', protocol, ports: pub }, existing);
  // CloudStack: openfirewall defaults to true, except for a VPC's IP (VPC tiers use network ACLs).
  const openFirewall = p.openfirewall ?? ip.vpc_id === null;
  if (openFirewall)
    detectConflict({ purpose: 'Firewall', protocol, ports: pub, cidrs: cidrKey(cidrs) }, existing);
  await lockNetwork(ctx.tx, target.network.id);
  const base = {
    ip,
    accountId: ip.account_id!,
    domainId: ip.domain_id!,
    protocol,
    ports: pub,
    sourceCidrs: cidrs,
    forDisplay: p.fordisplay,
  };
  // openfirewall: CloudStack creates the firewall rule for the same IP, protocol and public ports first and
  // records it as the PF's related rule; it goes with the PF.
  const fw = openFirewall
    ? await insertRule(ctx, {
        ...base,
        purpose: 'Firewall',
        traffic: 'Ingress',
        networkId: ip.network_id ?? target.network.id,
      })
    : undefined;
  const pf = await insertRule(ctx, {
    ...base,
    purpose: 'PortForwarding',
    traffic: 'Ingress',
    networkId: target.network.id,
    pf: { destIp: target.destIp, priv, vmId: target.vmId },
    ...(fw ? { relatedRuleId: Number(fw.id) } : {}),
  });
  await bumpAndStamp(ctx, fw ? [pf, fw] : [pf]);
  return (await ruleByUuid(ctx.tx, pf.uuid))!;
}

export interface CreateFwParams {
  ipaddressid: string;
  protocol: string;
  startport?: number | undefined;
  endport?: number | undefined;
  icmptype?: number | undefined;
  icmpcode?: number | undefined;
  cidrlist?: string[] | undefined;
  fordisplay?: boolean | undefined;
}

export async function createFirewallRule(ctx: NetCtx, p: CreateFwParams): Promise<RuleRow> {
  const ip = await lockIp(ctx, p.ipaddressid);
  if (ip.network_id === null)
    throw invalidParameter(
      'ipaddressid',
      p.ipaddressid,
      `Unable to create firewall rule; ip id=${p.ipaddressid} is not associated with any network`,
    );
  const network = await networkById(ctx.tx, Number(ip.network_id));
  await requireService(ctx, network, 'Firewall', 'ipaddressid', p.ipaddressid);
  const protocol = protocolOf(p.protocol, ['tcp', 'udp', 'icmp', 'all']);
  const ports = portSpan(p.startport, p.endport, ['startport', 'endport']);
  checkProtocolFields(protocol, ports, { type: p.icmptype, code: p.icmpcode });
  const cidrs = sourceCidrs(p.cidrlist, 'cidrlist');
  detectConflict(
    { purpose: 'Firewall', protocol, ports, cidrs: cidrKey(cidrs) },
    await liveIpRules(ctx, ip.id),
  );
  await lockNetwork(ctx.tx, network.id);
  const row = await insertRule(ctx, {
    purpose: 'Firewall',
    traffic: 'Ingress',
    ip,
    networkId: network.id,
    accountId: ip.account_id!,
    domainId: ip.domain_id!,
    protocol,
    ports,
    icmpType: p.icmptype,
    icmpCode: p.icmpcode,
    sourceCidrs: cidrs,
    forDisplay: p.fordisplay,
  });
  await bumpAndStamp(ctx, [row]);
  return (await ruleByUuid(ctx.tx, row.uuid))!;
}

export interface CreateEgressParams {
  networkid: string;
  protocol: string;
  startport?: number | undefined;
  endport?: number | undefined;
  icmptype?: number | undefined;
  icmpcode?: number | undefined;
  cidrlist?: string[] | undefined;
  destcidrlist?: string[] | undefined;
  fordisplay?: boolean | undefined;
}

export async function createEgressFirewallRule(ctx: NetCtx, p: CreateEgressParams): Promise<RuleRow> {
  const found = await networkByUuid(ctx.tx, p.networkid, 'networkid');
  if (found.account_id !== null)
    await checkAccess(ctx.tx, ctx.caller, await ownerById(ctx.tx, found.account_id), `network ${found.name}`);
  const network = await lockNetwork(ctx.tx, found.id);
  // CloudStack: egress rules exist only on isolated networks with the Firewall service (not VPC tiers).
  if (network.type !== 'Isolated' || network.vpc_id !== null)
    throw invalidParameter(
      'networkid',
      p.networkid,
      'Egress firewall rules are supported only on isolated networks',
    );
  await requireService(ctx, network, 'Firewall', 'networkid', p.networkid);
  const protocol = protocolOf(p.protocol, ['tcp', 'udp', 'icmp', 'all']);
  const ports = portSpan(p.startport, p.endport, ['startport', 'endport']);
  checkProtocolFields(protocol, ports, { type: p.icmptype, code: p.icmpcode });
  const guestText = network.network_cidr ?? network.cidr;
  const src = parseCidrList(p.cidrlist, 'cidrlist');
  if (guestText) checkInsideGuest(src, parseCidr(guestText, 'cidr', { strict: false }), 'cidrlist');
  const dest = [...new Set(parseCidrList(p.destcidrlist, 'destcidrlist').map(formatCidr))];
  // CloudStack (CreateEgressFirewallRuleCmd.getSourceCidrList): no cidrlist stores and answers the guest CIDR.
  const sources = src.length ? [...new Set(src.map(formatCidr))] : network.cidr ? [network.cidr] : [];
  const existing = await ctx.tx
    .selectFrom('firewall_rules')
    .selectAll()
    .where('network_id', '=', network.id)
    .where('traffic_type', '=', 'Egress')
    .where('removed', 'is', null)
    .execute();
  detectConflict(
    { purpose: 'Firewall', protocol, ports, cidrs: cidrKey(sources), destCidrs: cidrKey(dest) },
    await withCidrs(ctx, existing),
  );
  const row = await insertRule(ctx, {
    purpose: 'Firewall',
    traffic: 'Egress',
    ip: null,
    networkId: network.id,
    accountId: Number(network.account_id),
    domainId: Number(network.domain_id),
    protocol,
    ports,
    icmpType: p.icmptype,
    icmpCode: p.icmpcode,
    sourceCidrs: sources,
    destCidrs: dest,
    forDisplay: p.fordisplay,
  });
  await bumpAndStamp(ctx, [row]);
  return (await ruleByUuid(ctx.tx, row.uuid))!;
}

// ------------------------------------------------------------------------------------------------ update/delete

export interface UpdateParams {
  id: string;
  customid?: string | undefined;
  fordisplay?: boolean | undefined;
  privateport?: number | undefined;
  privateendport?: number | undefined;
  virtualmachineid?: string | undefined;
  vmguestip?: string | undefined;
}

/** update*Rule: fordisplay and customid for every kind; a port forward's private side and VM too. */
export async function updateRule(ctx: NetCtx, kind: RuleKind, p: UpdateParams): Promise<RuleRow> {
  const r = await ruleForCaller(ctx, p.id, kind);
  const set: Updateable<FirewallRulesTable> = {};
  if (p.customid !== undefined && p.customid !== r.uuid) {
    if (await ruleByUuid(ctx.tx, p.customid))
      throw invalidParameter('customid', p.customid, 'another rule already has this id');
    set.uuid = p.customid;
  }
  if (p.fordisplay !== undefined) set.for_display = p.fordisplay ? 1 : 0;
  let routed = false;
  if (kind === 'portForward') {
    const pfFields = [p.privateport, p.privateendport, p.virtualmachineid, p.vmguestip];
    if (pfFields.some((v) => v !== undefined)) {
      const ip = await ctx.tx
        .selectFrom('ip_allocations')
        .selectAll()
        .where('id', '=', r.ip_allocation_id!)
        .executeTakeFirstOrThrow();
      const priv = portSpan(
        p.privateport ?? (p.privateendport !== undefined ? undefined : r.private_start_port!),
        p.privateendport ?? (p.privateport !== undefined ? undefined : r.private_end_port!),
        ['privateport', 'privateendport'],
      )!;
      checkPfRanges({ start: r.start_port!, end: r.end_port! }, priv);
      set.private_start_port = priv.start;
      set.private_end_port = priv.end;
      if (p.virtualmachineid !== undefined || p.vmguestip !== undefined) {
        const vmUuid =
          p.virtualmachineid ??
          (await ctx.tx.selectFrom('vms').select('uuid').where('id', '=', r.vm_id!).executeTakeFirstOrThrow())
            .uuid;
        const target = await pfTarget(ctx, ip, {
          virtualmachineid: vmUuid,
          vmguestip: p.vmguestip,
          networkid: (await networkById(ctx.tx, Number(r.network_id))).uuid,
        });
        set.vm_id = target.vmId;
        set.dest_ip = target.destIp;
      }
      routed = true;
    }
  }
  if (Object.keys(set).length)
    await ctx.tx.updateTable('firewall_rules').set(set).where('id', '=', r.id).execute();
  if (set.uuid !== undefined)
    await tagsFollowUuid(ctx.tx as unknown as PlainExecutor, resourceTypeOf(kind), r.id, String(set.uuid));
  const row = (await ruleByUuid(ctx.tx, set.uuid === undefined ? r.uuid : String(set.uuid)))!;
  await ctx.recorder.event(ctx.tx, {
    type: ruleEvents[kind].modify,
    description: `${describe(row)} updated`,
    resourceType: resourceTypeOf(kind),
    resourceId: p.id,
    owner: await ownerById(ctx.tx, Number(r.account_id)),
  });
  // A changed id or display flag is no change to the router; the guest side is.
  if (routed || set.uuid !== undefined) await bumpAndStamp(ctx, [row]);
  return (await ruleByUuid(ctx.tx, row.uuid))!;
}

export async function deleteRule(ctx: NetCtx, kind: RuleKind, id: string): Promise<void> {
  const r = await ruleForCaller(ctx, id, kind);
  if (kind === 'firewall') {
    // CloudStack refuses to delete a PF's openfirewall rule on its own? No: it deletes it and the PF loses its
    // opening. Keep the link consistent: the PF no longer has a related rule.
    await ctx.tx
      .updateTable('firewall_rules')
      .set({ related_rule_id: null })
      .where('related_rule_id', '=', r.id)
      .execute();
  }
  await removeRules(ctx, [r]);
}

// ------------------------------------------------------------------------------------------------ list

export interface ListRulesParams {
  id?: string | undefined;
  ipaddressid?: string | undefined;
  networkid?: string | undefined;
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

export async function listRules(ctx: NetCtx, kind: RuleKind, p: ListRulesParams): Promise<Listed<RuleRow>> {
  const { limit, offset } = pageWindow(p);
  const scope = await resolveListScope(ctx.tx as unknown as PlainExecutor, ctx.caller, p);
  let q = applyListScope(
    ctx.tx
      .selectFrom('firewall_rules')
      .where('firewall_rules.removed', 'is', null)
      .where('firewall_rules.purpose', '=', kind === 'portForward' ? 'PortForwarding' : 'Firewall')
      .where('firewall_rules.traffic_type', '=', kind === 'egress' ? 'Egress' : 'Ingress'),
    ctx.caller,
    scope,
    { accountColumn: 'firewall_rules.account_id', domainColumn: 'firewall_rules.domain_id' },
  );
  if (p.id) q = q.where('firewall_rules.uuid', '=', p.id);
  if (p.ipaddressid) {
    const ip = await publicIpByUuid(ctx.tx, p.ipaddressid, 'ipaddressid');
    q = q.where('firewall_rules.ip_allocation_id', '=', ip.id);
  }
  if (p.networkid)
    q = q.where('firewall_rules.network_id', '=', (await networkByUuid(ctx.tx, p.networkid, 'networkid')).id);
  if (p.fordisplay !== undefined) q = q.where('firewall_rules.for_display', '=', p.fordisplay ? 1 : 0);
  if (p.keyword) q = q.where(keywordMatch(['firewall_rules.uuid', 'firewall_rules.protocol'], p.keyword));
  const tagged = tagsCondition(resourceTypeOf(kind), 'firewall_rules.id', p.tags);
  if (tagged) q = q.where(tagged);
  const count = Number((await q.select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
  let rq = q.selectAll('firewall_rules').orderBy('firewall_rules.id').offset(offset);
  if (limit !== undefined) rq = rq.limit(limit);
  return { count, items: await rq.execute() };
}

// ------------------------------------------------------------------------------------------------ responses

/** The rule's state as CloudStack shows it: Active once every enforcing router applied it, else Add. */
export async function ruleStates(ctx: NetCtx, rules: readonly RuleRow[]) {
  return ruleProgress(ctx.tx, rules);
}

export async function ruleResponses(ctx: NetCtx, rules: readonly RuleRow[]): Promise<ResponseObject[]> {
  if (rules.length === 0) return [];
  const ids = rules.map((r) => Number(r.id));
  const cidrs = await cidrsOf(ctx.tx, ids);
  const progress = await ruleProgress(ctx.tx, rules);
  const owners = await ownerNames(
    ctx.tx as unknown as PlainExecutor,
    rules.map((r) => Number(r.account_id)),
  );
  const ipIds = [...new Set(rules.map((r) => r.ip_allocation_id).filter((x): x is number => x !== null))];
  const ips = ipIds.length
    ? await ctx.tx
        .selectFrom('ip_allocations')
        .select(['id', 'uuid', 'address'])
        .where('id', 'in', ipIds)
        .execute()
    : [];
  const netIds = [...new Set(rules.map((r) => Number(r.network_id)))];
  const nets = await ctx.tx.selectFrom('networks').select(['id', 'uuid']).where('id', 'in', netIds).execute();
  const vmIds = [...new Set(rules.map((r) => r.vm_id).filter((x): x is number => x !== null))];
  const vms = vmIds.length
    ? await ctx.tx
        .selectFrom('vms')
        .select(['id', 'uuid', 'name', 'display_name'])
        .where('id', 'in', vmIds)
        .execute()
    : [];
  const tagTypes = new Map<string, number[]>();
  for (const r of rules) {
    const t = resourceTypeOf(kindOf(r));
    tagTypes.set(t, [...(tagTypes.get(t) ?? []), Number(r.id)]);
  }
  const tags = new Map<string, Map<number, ResponseObject[]>>();
  for (const [t, l] of tagTypes)
    tags.set(t, await tagsFor(ctx.tx as unknown as PlainExecutor, t as 'FirewallRule', l));
  return rules.map((r) => {
    const kind = kindOf(r);
    const ip = ips.find((x) => Number(x.id) === r.ip_allocation_id);
    const c = cidrs.get(Number(r.id))!;
    const common: ResponseObject = {
      id: r.uuid,
      protocol: r.protocol,
      ipaddressid: ip?.uuid ?? undefined,
      ipaddress: ip ? ipText(ip) : undefined,
      networkid: nets.find((n) => Number(n.id) === Number(r.network_id))?.uuid,
      state: progress.get(Number(r.id))?.applied ? 'Active' : 'Add',
      fordisplay: Number(r.for_display) === 1,
      tags: tags.get(resourceTypeOf(kind))?.get(Number(r.id)) ?? [],
      ...ownerFields(owners.get(Number(r.account_id))),
    };
    if (kind === 'portForward') {
      const vm = vms.find((v) => Number(v.id) === r.vm_id);
      // CloudStack's PortForwardingRuleResponse carries the ports as strings.
      return {
        ...common,
        privateport: String(r.private_start_port),
        privateendport: String(r.private_end_port),
        publicport: String(r.start_port),
        publicendport: String(r.end_port),
        virtualmachineid: vm?.uuid,
        virtualmachinename: vm?.name,
        virtualmachinedisplayname: vm?.display_name ?? vm?.name,
        vmguestip: r.dest_ip ?? undefined,
        cidrlist: c.source.join(','),
      };
    }
    return {
      ...common,
      startport: r.start_port ?? undefined,
      endport: r.end_port ?? undefined,
      icmptype: r.icmp_type ?? undefined,
      icmpcode: r.icmp_code ?? undefined,
      traffictype: r.traffic_type,
      cidrlist: c.source.join(','),
      destcidrlist: kind === 'egress' ? c.dest.join(',') : undefined,
    };
  });
}
