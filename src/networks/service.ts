/**
 * Guest networks: createNetwork/listNetworks/updateNetwork/deleteNetwork/restartNetwork, and guest address
 * allocation for NICs. VPCs are in vpcs.ts.
 */
import { removeRulesOf } from '../rules/repository.js';
import { removeLbChildrenOf } from '../lb/repository.js';
import { removeTagsOf, tagsCondition } from '../tags/service.js';
import { randomUUID } from 'node:crypto';
import { CloudStackError, invalidParameter, permissionDenied } from '../errors/catalogue.js';
import { allocateAddressTx } from '../addresses/address-service.js';
import type { Allocation } from '../addresses/address-service.js';
import type { Strategy } from '../ipam/choose.js';
import type { IpAddress } from '../ipam/address.js';
import { formatIp, parseIpOf } from '../ipam/address.js';
import type { Cidr } from '../ipam/cidr.js';
import {
  broadcastAddress,
  cidrFromGatewayAndNetmask,
  firstHost,
  formatCidr,
  lastHost,
  parseCidr,
  prefixToNetmask,
} from '../ipam/cidr.js';
import { RangeSet } from '../ipam/range.js';
import type { Executor as PlainExecutor } from '../store/db.js';
import type { Caller } from '../api/command.js';
import { applyListScope, resolveListScope } from '../accounts/scope.js';
import type { Listed, NetCtx } from '../infrastructure/context.js';
import { notFound, pageWindow } from '../infrastructure/context.js';
import type { Owner } from '../infrastructure/owners.js';
import { checkAccess, ownerById, resolveOwner } from '../infrastructure/owners.js';
import {
  noPhysicalNetwork,
  physicalNetworkByUuid,
  physicalNetworkFor,
} from '../infrastructure/physical-networks.js';
import { guestScope } from '../infrastructure/scopes.js';
import { releaseGuestIpv6Subnet } from './ipv6-subnets.js';
import { checkVlanNotDedicatedToOther } from '../infrastructure/dedicated-guest-vlans.js';
import { createVlanIpRange, rangeOf } from '../infrastructure/vlan-ip-ranges.js';
import { parseVlanTag } from '../infrastructure/vnet-ranges.js';
import { zoneById, zoneByUuid } from '../infrastructure/zones.js';
import type { ZoneRow } from '../infrastructure/zones.js';
import { releasePublicIp } from '../public-ips/service.js';
import { requireOfferingUsable } from '../offerings/scopes.js';
import {
  applyGuestVmCidr,
  checkNetworkDomain,
  checkTierPlacement,
  defaultNetworkDomain,
  isolatedAddressing,
} from './guest-cidr.js';
import { implementNetwork, networkHooks, shutdownNetwork } from './lifecycle.js';
import { aclListForTier } from '../network-acls/repository.js';
import type { NetworkRow, VpcRow } from './repository.js';
import { networkById, networkByUuid, offeringByUuid, vpcByUuid } from './repository.js';
import type { NetExecutor as Executor } from './tables.js';

export const plain = (ctx: NetCtx): PlainExecutor => ctx.tx as unknown as PlainExecutor;
const NET_COLS = { accountColumn: 'networks.account_id', domainColumn: 'networks.domain_id' };

async function suffixFor(ctx: NetCtx, zoneId: number): Promise<string> {
  return (await ctx.setting('guest.domain.suffix', { zoneId })) ?? 'cloud.internal';
}

export async function defaultDomainFor(ctx: NetCtx, owner: Owner, zoneId: number): Promise<string> {
  const acct = await ctx.tx
    .selectFrom('accounts')
    .select('network_domain')
    .where('id', '=', owner.accountId)
    .executeTakeFirst();
  if (acct?.network_domain) return acct.network_domain;
  const dom = await ctx.tx
    .selectFrom('domains')
    .select('network_domain')
    .where('id', '=', owner.domainId)
    .executeTakeFirst();
  if (dom?.network_domain) return dom.network_domain;
  return defaultNetworkDomain(owner.accountId, await suffixFor(ctx, zoneId));
}

/** A network the caller may act on (users: their account's; shared networks: their domain's). */
export async function networkForCaller(
  ctx: NetCtx,
  uuid: string,
  param = 'id',
  forWrite = true,
  /** An owner the caller has just read in this transaction (a deploy's), not read again when it owns the network. */
  known?: Owner,
): Promise<NetworkRow> {
  const n = await networkByUuid(ctx.tx, uuid, param);
  if (n.account_id !== null) {
    const owner =
      known && Number(known.accountId) === Number(n.account_id)
        ? known
        : await ownerById(ctx.tx, n.account_id);
    await checkAccess(ctx.tx, ctx.caller, owner, `network '${n.name}'`);
  } else if (forWrite && ctx.caller.role !== 'Admin') {
    throw permissionDenied(`Only root admins may change shared network '${n.name}'`);
  }
  return n;
}

// ---------------------------------------------------------------------------------------- createNetwork

export interface CreateNetworkParams {
  name: string;
  displaytext?: string | undefined;
  networkofferingid: string;
  zoneid: string;
  gateway?: string | undefined;
  netmask?: string | undefined;
  startip?: string | undefined;
  endip?: string | undefined;
  networkdomain?: string | undefined;
  account?: string | undefined;
  domainid?: string | undefined;
  vpcid?: string | undefined;
  aclid?: string | undefined;
  vlan?: string | undefined;
  physicalnetworkid?: string | undefined;
  acltype?: string | undefined;
  dns1?: string | undefined;
  dns2?: string | undefined;
  ip6gateway?: string | undefined;
  ip6cidr?: string | undefined;
  displaynetwork?: boolean | undefined;
}

export async function createNetwork(ctx: NetCtx, p: CreateNetworkParams): Promise<NetworkRow> {
  const zone = await zoneByUuid(ctx.tx, p.zoneid);
  if (zone.allocation_state === 'Disabled' && ctx.caller.role !== 'Admin') {
    throw permissionDenied(`Cannot perform this operation, zone '${zone.name}' is currently disabled`);
  }
  const offering = await offeringByUuid(ctx.tx, p.networkofferingid);
  if (offering.state !== 'Enabled')
    throw invalidParameter(
      'networkofferingid',
      p.networkofferingid,
      `network offering '${offering.name}' is ${offering.state}`,
    );
  const name = p.name.trim();
  if (!name) throw invalidParameter('name', p.name, 'a network needs a name');
  const type = offering.guest_ip_type as 'Isolated' | 'Shared' | 'L2';
  if ((p.vlan !== undefined || p.physicalnetworkid !== undefined) && ctx.caller.role !== 'Admin') {
    throw permissionDenied('Only root admins may choose the VLAN or physical network of a network');
  }
  const dns1 = p.dns1 ? formatIp(parseIpOf(4, p.dns1, 'dns1')) : null;
  const dns2 = p.dns2 ? formatIp(parseIpOf(4, p.dns2, 'dns2')) : null;
  const pn = p.physicalnetworkid
    ? await physicalNetworkByUuid(ctx.tx, p.physicalnetworkid)
    : await physicalNetworkFor(ctx.tx, zone.id, 'Guest');
  if (!pn) throw noPhysicalNetwork(zone.name);

  let owner: Owner | undefined;
  let domainId: number;
  let vpc: VpcRow | undefined;
  let addressing: { cidr: Cidr; gateway: string; netmask: string } | undefined;
  let vnet: number | null = null;
  let aclType: 'Account' | 'Domain';
  if (type === 'Shared') {
    if (ctx.caller.role !== 'Admin') throw permissionDenied('Only root admins create shared networks');
    aclType = p.acltype === 'Account' ? 'Account' : 'Domain';
    if (aclType === 'Account') {
      owner = await resolveOwner(ctx.tx, ctx.caller, p);
      domainId = owner.domainId;
    } else if (p.domainid) {
      const d = await ctx.tx
        .selectFrom('domains')
        .select('id')
        .where('uuid', '=', p.domainid)
        .executeTakeFirst();
      if (!d) throw notFound('domainid', p.domainid, 'domain');
      domainId = d.id;
    } else domainId = ctx.caller.domainId;
    if (offering.specify_vlan === 1 && (p.vlan === undefined || p.vlan === '')) {
      throw new CloudStackError(
        'InvalidParameterValue',
        `Unable to execute API command createNetwork due to missing parameter vlan (offering '${offering.name}' requires it)`,
      );
    }
    if (!p.gateway || !p.netmask) {
      throw new CloudStackError('InvalidParameterValue', 'a shared network needs gateway and netmask');
    }
    const cidr = cidrFromGatewayAndNetmask(p.gateway, p.netmask);
    addressing = {
      cidr,
      gateway: formatIp(parseIpOf(4, p.gateway, 'gateway')),
      netmask: prefixToNetmask(cidr.prefix),
    };
    if (p.vlan) {
      const tag = parseVlanTag(p.vlan);
      vnet = tag === 'untagged' ? null : tag;
    }
  } else {
    if (p.acltype === 'Domain')
      throw invalidParameter('acltype', p.acltype, `${type} networks are owned by an account`);
    aclType = 'Account';
    owner = await resolveOwner(ctx.tx, ctx.caller, p);
    domainId = owner.domainId;
    if (p.vpcid) {
      if (offering.for_vpc !== 1) {
        throw invalidParameter(
          'networkofferingid',
          p.networkofferingid,
          `offering '${offering.name}' is not for VPC tiers; use one with forvpc=true`,
        );
      }
      vpc = await vpcByUuid(ctx.tx, p.vpcid);
      if (vpc.account_id !== owner.accountId)
        throw permissionDenied(`VPC '${vpc.name}' belongs to another account`);
      if (vpc.zone_id !== zone.id)
        throw invalidParameter('zoneid', p.zoneid, `VPC '${vpc.name}' is in another zone`);
      if (!p.gateway || !p.netmask)
        throw new CloudStackError('InvalidParameterValue', 'a VPC tier needs gateway and netmask');
    } else if (p.aclid !== undefined) {
      throw invalidParameter('aclid', p.aclid, 'a network ACL is for VPC tiers only: give vpcid');
    } else if (offering.for_vpc === 1) {
      throw invalidParameter(
        'networkofferingid',
        p.networkofferingid,
        `offering '${offering.name}' is for VPC tiers: give vpcid`,
      );
    }
    if (type === 'Isolated') {
      const limit = Number((await ctx.setting('network.guest.cidr.limit')) ?? 22);
      addressing = isolatedAddressing({
        gateway: p.gateway,
        netmask: p.netmask,
        zoneGuestCidr: zone.guest_cidr,
        guestCidrLimit: vpc ? 16 : limit,
      });
      if (vpc) {
        const siblings = await ctx.tx
          .selectFrom('networks')
          .select(['name', 'cidr', 'network_cidr'])
          .where('vpc_id', '=', vpc.id)
          .where('removed', 'is', null)
          .execute();
        checkTierPlacement(
          addressing.cidr,
          { name: vpc.name, cidr: parseCidr(vpc.cidr) },
          siblings.map((s) => ({ name: s.name, cidr: parseCidr((s.network_cidr ?? s.cidr)!) })),
        );
      }
    }
    if (p.vlan !== undefined && p.vlan !== '') {
      if (offering.specify_vlan !== 1) {
        throw invalidParameter(
          'vlan',
          p.vlan,
          `offering '${offering.name}' does not let the VLAN be specified (specifyvlan=false)`,
        );
      }
      const tag = parseVlanTag(p.vlan);
      vnet = tag === 'untagged' ? null : tag;
    }
  }
  if (vnet !== null) {
    await checkVlanUnused(ctx.tx, zone, vnet);
    await checkVlanNotDedicatedToOther(ctx.tx, pn.id, vnet, owner?.accountId ?? null);
  }
  await requireOfferingUsable(
    ctx.tx,
    'network',
    offering,
    { domainId },
    zone,
    'networkofferingid',
    p.networkofferingid,
  );
  const networkDomain = p.networkdomain
    ? checkNetworkDomain(p.networkdomain)
    : type === 'L2'
      ? null
      : (vpc?.network_domain ??
        (owner
          ? await defaultDomainFor(ctx, owner, zone.id)
          : defaultNetworkDomain(ctx.caller.accountId, await suffixFor(ctx, zone.id))));
  // CloudStack 4.18 leaves a tier created without aclid with no list (network_acl_id NULL) until
  // replaceNetworkACLList or a first createNetworkACL with networkid gives it one (src/network-acls/README.md).
  const acl = vpc && p.aclid ? await aclListForTier(ctx.tx, p.aclid, { vpcId: vpc.id }) : undefined;
  if (p.aclid !== undefined && !vpc)
    throw invalidParameter('aclid', p.aclid, 'a network ACL is for VPC tiers only');
  const uuid = randomUUID();
  await ctx.tx
    .insertInto('networks')
    .values({
      uuid,
      zone_id: zone.id,
      physical_network_id: pn.id,
      account_id: owner?.accountId ?? null,
      domain_id: domainId,
      name,
      display_text: p.displaytext ?? name,
      type,
      state: type === 'Shared' ? 'Setup' : 'Allocated',
      cidr: addressing ? formatCidr(addressing.cidr) : null,
      gateway: addressing?.gateway ?? null,
      netmask: addressing?.netmask ?? null,
      network_cidr: null,
      ip6_cidr: p.ip6cidr ? formatCidr(parseCidr(p.ip6cidr, 'ip6cidr', { family: 6 })) : null,
      ip6_gateway: p.ip6gateway ? formatIp(parseIpOf(6, p.ip6gateway, 'ip6gateway')) : null,
      network_domain: networkDomain,
      vnet,
      vpc_id: vpc?.id ?? null,
      offering_id: offering.id,
      created: ctx.now,
      removed: null,
      acl_type: aclType,
      restart_required: 0,
      dns1,
      dns2,
      specify_vlan: vnet !== null ? 1 : 0,
      network_acl_id: acl?.id ?? null,
    })
    .execute();
  const network = await networkByUuid(ctx.tx, uuid);
  if (type === 'Shared' && p.startip) {
    await createVlanIpRange(ctx, {
      networkid: uuid,
      forvirtualnetwork: false,
      startip: p.startip,
      endip: p.endip,
      gateway: p.gateway,
      netmask: p.netmask,
    });
  }
  const eventOwner = owner ?? ctx.caller;
  await ctx.recorder.event(ctx.tx, {
    type: 'NETWORK.CREATE',
    description: `Network ${name} (${addressing ? formatCidr(addressing.cidr) : type}) created`,
    resourceType: 'Network',
    resourceId: uuid,
    resourceName: name,
    owner: eventOwner,
  });
  return network;
}

/** A VLAN given by the admin must not be another network's nor a public range's (431 naming it). */
async function checkVlanUnused(tx: Executor, zone: ZoneRow, vnet: number): Promise<void> {
  const net = await tx
    .selectFrom('networks')
    .select(['name', 'uuid'])
    .where('zone_id', '=', zone.id)
    .where('vnet', '=', vnet)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (net)
    throw invalidParameter(
      'vlan',
      String(vnet),
      `VLAN ${vnet} is already used by network '${net.name}' (id ${net.uuid}) in zone ${zone.name}`,
    );
  const alloc = await tx
    .selectFrom('vnet_allocations')
    .leftJoin('networks', 'networks.id', 'vnet_allocations.network_id')
    .select('networks.name')
    .where('vnet_allocations.zone_id', '=', zone.id)
    .where('vnet_allocations.vnet', '=', vnet)
    .executeTakeFirst();
  if (alloc)
    throw invalidParameter(
      'vlan',
      String(vnet),
      `VLAN ${vnet} is already used by network '${alloc.name ?? '?'}' in zone ${zone.name}`,
    );
  const range = await tx
    .selectFrom('public_ip_ranges')
    .select('uuid')
    .where('zone_id', '=', zone.id)
    .where('removed', 'is', null)
    .where('vlan_tag', 'in', [`vlan://${vnet}`, `vxlan://${vnet}`])
    .where('network_id', 'is', null)
    .executeTakeFirst();
  if (range)
    throw invalidParameter(
      'vlan',
      String(vnet),
      `VLAN ${vnet} carries public IP range ${range.uuid} in zone ${zone.name}`,
    );
}

// ------------------------------------------------------------------------------------------ listNetworks

export interface ListNetworksParams {
  id?: string | undefined;
  zoneid?: string | undefined;
  type?: string | undefined;
  vpcid?: string | undefined;
  forvpc?: boolean | undefined;
  name?: string | undefined;
  keyword?: string | undefined;
  traffictype?: string | undefined;
  acltype?: string | undefined;
  networkofferingid?: string | undefined;
  physicalnetworkid?: string | undefined;
  issystem?: boolean | undefined;
  canusefordeploy?: boolean | undefined;
  restartrequired?: boolean | undefined;
  vlan?: string | undefined;
  account?: string | undefined;
  domainid?: string | undefined;
  isrecursive?: boolean | undefined;
  listall?: boolean | undefined;
  tags?: Record<string, string>[] | undefined;
  page?: number | undefined;
  pagesize?: number | undefined;
}

export async function listNetworks(ctx: NetCtx, p: ListNetworksParams): Promise<Listed<NetworkRow>> {
  if (p.issystem === true || (p.traffictype && p.traffictype.toLowerCase() !== 'guest'))
    return { count: 0, items: [] };
  const scope = await resolveListScope(plain(ctx), ctx.caller, p);
  let q = ctx.tx.selectFrom('networks').where('networks.removed', 'is', null);
  // Account-owned networks by the list scope; shared (Domain) networks are visible to their domain subtree.
  const own = applyListScope(
    ctx.tx.selectFrom('networks').select('networks.id'),
    ctx.caller,
    scope,
    NET_COLS,
  );
  q = q.where((eb) =>
    eb.or([
      eb('networks.id', 'in', own),
      eb.and([
        eb('networks.acl_type', '=', 'Domain'),
        eb('networks.id', 'in', domainVisible(ctx, ctx.caller)),
      ]),
    ]),
  );
  if (p.id) q = q.where('networks.uuid', '=', p.id);
  if (p.zoneid) q = q.where('networks.zone_id', '=', (await zoneByUuid(ctx.tx, p.zoneid)).id);
  if (p.type)
    q = q.where(
      'networks.type',
      '=',
      (p.type.charAt(0).toUpperCase() + p.type.slice(1).toLowerCase()) as 'Isolated',
    );
  if (p.vpcid) q = q.where('networks.vpc_id', '=', (await vpcByUuid(ctx.tx, p.vpcid)).id);
  if (p.forvpc !== undefined)
    q = p.forvpc ? q.where('networks.vpc_id', 'is not', null) : q.where('networks.vpc_id', 'is', null);
  if (p.name) q = q.where('networks.name', '=', p.name);
  if (p.keyword) q = q.where('networks.name', 'like', `%${p.keyword}%`);
  if (p.acltype) q = q.where('networks.acl_type', '=', p.acltype);
  if (p.restartrequired !== undefined)
    q = q.where('networks.restart_required', '=', p.restartrequired ? 1 : 0);
  if (p.networkofferingid)
    q = q.where('networks.offering_id', '=', (await offeringByUuid(ctx.tx, p.networkofferingid)).id);
  if (p.physicalnetworkid)
    q = q.where(
      'networks.physical_network_id',
      '=',
      (await physicalNetworkByUuid(ctx.tx, p.physicalnetworkid)).id,
    );
  if (p.vlan) {
    const tag = parseVlanTag(p.vlan);
    q = tag === 'untagged' ? q.where('networks.vnet', 'is', null) : q.where('networks.vnet', '=', tag);
  }
  const tagged = tagsCondition('Network', 'networks.id', p.tags);
  if (tagged) q = q.where(tagged);
  const { limit, offset } = pageWindow(p);
  const count = Number((await q.select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
  let rq = q.selectAll('networks').orderBy('networks.id').offset(offset);
  if (limit !== undefined) rq = rq.limit(limit);
  return { count, items: await rq.execute() };
}

/** Shared networks a caller may see: its own domain and the domains above it (CloudStack's domain ACL). */
function domainVisible(ctx: NetCtx, caller: Caller) {
  if (caller.role === 'Admin') return ctx.tx.selectFrom('networks').select('networks.id');
  const ancestors: string[] = [];
  const parts = caller.domainPath.split('/').filter(Boolean);
  for (let i = 0; i <= parts.length; i++) ancestors.push(i === 0 ? '/' : `/${parts.slice(0, i).join('/')}/`);
  return ctx.tx
    .selectFrom('networks')
    .innerJoin('domains', 'domains.id', 'networks.domain_id')
    .select('networks.id')
    .where('domains.path', 'in', ancestors);
}

// ------------------------------------------------------------------------------ update/delete/restart

export interface UpdateNetworkParams {
  id: string;
  name?: string | undefined;
  displaytext?: string | undefined;
  networkdomain?: string | undefined;
  guestvmcidr?: string | undefined;
  dns1?: string | undefined;
  dns2?: string | undefined;
  displaynetwork?: boolean | undefined;
}

export async function updateNetwork(ctx: NetCtx, p: UpdateNetworkParams): Promise<NetworkRow> {
  const n = await networkForCaller(ctx, p.id);
  const set: Partial<NetworkRow> = {};
  if (p.name !== undefined) set.name = p.name;
  if (p.displaytext !== undefined) set.display_text = p.displaytext;
  if (p.networkdomain !== undefined) set.network_domain = checkNetworkDomain(p.networkdomain);
  if (p.dns1 !== undefined) set.dns1 = p.dns1 ? formatIp(parseIpOf(4, p.dns1, 'dns1')) : null;
  if (p.dns2 !== undefined) set.dns2 = p.dns2 ? formatIp(parseIpOf(4, p.dns2, 'dns2')) : null;
  if (p.guestvmcidr !== undefined) {
    if (n.type !== 'Isolated' || !n.cidr)
      throw invalidParameter(
        'guestvmcidr',
        p.guestvmcidr,
        'IP reservation applies to isolated networks only',
      );
    const used = await ctx.tx
      .selectFrom('ip_allocations')
      .select(['address', 'owner_kind', 'owner_id', 'family'])
      .where('scope', '=', guestScope(n.id))
      .where('family', '=', 4)
      .execute();
    const r = applyGuestVmCidr(
      { cidr: parseCidr(n.cidr), networkCidr: n.network_cidr ? parseCidr(n.network_cidr) : undefined },
      p.guestvmcidr,
      used.map((u) => ({
        address: formatIp({ family: 4, value: BigInt(`0x${u.address}`) }),
        owner: `${u.owner_kind ?? 'holder'} ${u.owner_id ?? ''}`.trim(),
      })),
    );
    set.cidr = formatCidr(r.cidr);
    set.network_cidr = r.networkCidr ? formatCidr(r.networkCidr) : null;
  }
  if (Object.keys(set).length) await ctx.tx.updateTable('networks').set(set).where('id', '=', n.id).execute();
  const owner = n.account_id !== null ? await ownerById(ctx.tx, n.account_id) : ctx.caller;
  await ctx.recorder.event(ctx.tx, {
    type: 'NETWORK.UPDATE',
    description: `Network ${n.name} updated`,
    resourceType: 'Network',
    resourceId: n.uuid,
    owner,
  });
  return networkById(ctx.tx, n.id);
}

export async function deleteNetwork(
  ctx: NetCtx,
  p: { id: string; forced?: boolean | undefined },
): Promise<void> {
  const n = await networkForCaller(ctx, p.id);
  // VMs hold their guest addresses as 'nic' allocations in the network's scope (CloudStack: "network has VMs").
  const vms = await ctx.tx
    .selectFrom('ip_allocations')
    .select((eb) => eb.fn.countAll().as('n'))
    .where('scope', '=', guestScope(n.id))
    .where('owner_kind', '=', 'nic')
    .executeTakeFirstOrThrow();
  if (Number(vms.n) > 0) {
    throw invalidParameter(
      'id',
      p.id,
      `network '${n.name}' still has ${Number(vms.n)} VM NIC(s); destroy or move the VMs first`,
    );
  }
  await networkHooks.beforeDestroy?.(ctx, n);
  // Its egress rules (and any rule still naming it) go, with their events; rules on its IPs go with the IPs.
  await removeLbChildrenOf(ctx, 'network_id', n.id);
  await removeRulesOf(ctx, 'network_id', n.id);
  await shutdownNetwork(ctx, n.id);
  // Public IPs associated with it (source NAT included) go back to the pool.
  await releasePublicIpsOf(ctx, 'network_id', n.id, {
    network_id: null,
    static_nat: 0,
    vm_id: null,
    vm_ip: null,
  });
  // Whatever else is left in the network's own scope (router addresses and the like) goes with it.
  await ctx.tx.deleteFrom('ip_allocations').where('scope', '=', guestScope(n.id)).execute();
  await ctx.tx.deleteFrom('vnet_allocations').where('network_id', '=', n.id).execute();
  await releaseGuestIpv6Subnet(ctx.tx, n.id);
  await ctx.tx
    .updateTable('public_ip_ranges')
    .set({ removed: ctx.now })
    .where('network_id', '=', n.id)
    .where('removed', 'is', null)
    .execute();
  await ctx.tx
    .updateTable('networks')
    .set({ removed: ctx.now, state: 'Destroy', vnet: null })
    .where('id', '=', n.id)
    .execute();
  await removeTagsOf(plain(ctx), 'Network', n.id);
  const owner = n.account_id !== null ? await ownerById(ctx.tx, n.account_id) : ctx.caller;
  await ctx.recorder.event(ctx.tx, {
    type: 'NETWORK.DELETE',
    description: `Network ${n.name} deleted`,
    resourceType: 'Network',
    resourceId: n.uuid,
    owner,
  });
}

export async function restartNetwork(
  ctx: NetCtx,
  p: { id: string; cleanup?: boolean | undefined },
): Promise<NetworkRow> {
  const n = await networkForCaller(ctx, p.id);
  if (p.cleanup && n.state === 'Implemented') await shutdownNetwork(ctx, n.id);
  const implemented = await implementNetwork(ctx, n.id);
  await ctx.tx.updateTable('networks').set({ restart_required: 0 }).where('id', '=', n.id).execute();
  await networkHooks.afterRestart?.(ctx, implemented, p.cleanup ?? false);
  const owner = n.account_id !== null ? await ownerById(ctx.tx, n.account_id) : ctx.caller;
  await ctx.recorder.event(ctx.tx, {
    type: 'NETWORK.RESTART',
    description: `Network ${n.name} restarted`,
    resourceType: 'Network',
    resourceId: n.uuid,
    owner,
  });
  return implemented;
}

// ------------------------------------------------------------------------------ guest addresses (NICs)

export interface GuestAddressRequest {
  requested?: IpAddress | undefined;
  strategy?: Strategy;
  owner?: { kind: string; id?: number | null };
  vmId?: number | null;
  accountId?: number | null;
  domainId?: number | null;
  requestedParam?: string;
  isSystem?: boolean;
}

/**
 * allocateGuestAddress(tx, network, {requested?, strategy}): one address of the network for a NIC (or the
 * router). Isolated/VPC tiers: the VM range (cidr, narrowed by guestvmcidr) minus network, broadcast and
 * gateway; shared networks: their DirectAttached ranges. The UNIQUE constraint settles races.
 */
export async function allocateGuestAddress(
  ctx: NetCtx,
  network: NetworkRow,
  req: GuestAddressRequest = {},
): Promise<Allocation> {
  let pool: RangeSet;
  let rangeId: ((v: bigint) => number | null) | null = null;
  const zone = await zoneById(ctx.tx, network.zone_id);
  if (network.type === 'Shared') {
    const ranges = await ctx.tx
      .selectFrom('public_ip_ranges')
      .selectAll()
      .where('network_id', '=', network.id)
      .where('removed', 'is', null)
      .execute();
    const list = ranges
      .map((r) => ({ id: r.id, range: rangeOf(r) }))
      .filter(
        (x): x is { id: number; range: NonNullable<ReturnType<typeof rangeOf>> } => x.range !== undefined,
      );
    pool = list.length ? RangeSet.of(list.map((l) => l.range)) : RangeSet.empty(4);
    rangeId = (v) => list.find((l) => v >= l.range.start && v <= l.range.end)?.id ?? null;
  } else {
    if (!network.cidr)
      throw invalidParameter(
        'networkid',
        network.uuid,
        `network '${network.name}' has no CIDR (L2): it has no guest addresses`,
      );
    const cidr = parseCidr(network.cidr);
    const whole = network.network_cidr ? parseCidr(network.network_cidr) : cidr;
    pool = RangeSet.of({ family: 4, start: firstHost(cidr).value, end: lastHost(cidr).value }).intersect({
      family: 4,
      start: firstHost(whole).value,
      end: lastHost(whole).value,
    });
  }
  const whole = network.network_cidr
    ? parseCidr(network.network_cidr)
    : network.cidr
      ? parseCidr(network.cidr)
      : undefined;
  return allocateAddressTx(plain(ctx), {
    scope: guestScope(network.id),
    pool,
    strategy: req.strategy ?? 'random',
    requested: req.requested,
    requestedParam: req.requestedParam ?? 'ipaddress',
    gateway: network.gateway ? parseIpOf(4, network.gateway) : undefined,
    network: whole ? { family: 4, value: whole.network } : undefined,
    broadcast: whole ? broadcastAddress(whole) : undefined,
    state: 'Allocated',
    owner: req.owner ?? { kind: 'nic' },
    zoneId: network.zone_id,
    accountId: req.accountId ?? network.account_id,
    domainId: req.domainId ?? network.domain_id,
    networkId: network.id,
    vpcId: network.vpc_id,
    vmId: req.vmId ?? null,
    isSystem: req.isSystem ?? false,
    rangeId,
    exhaustedMessage: `network ${network.name} has no free guest address`,
    uuidList: [network.uuid, zone.uuid],
    now: ctx.now,
  });
}

/**
 * The public IPs of a network or VPC being deleted: portable and reserved ones stay with their account and are
 * only detached; the others go back to the pool.
 */
export async function releasePublicIpsOf(
  ctx: NetCtx,
  holder: 'network_id' | 'vpc_id',
  id: number,
  detached: { network_id: null; vpc_id?: null; static_nat?: 0; vm_id?: null; vm_ip?: null },
): Promise<void> {
  const ips = await ctx.tx
    .selectFrom('ip_allocations')
    .selectAll()
    .where(holder, '=', id)
    .where('owner_kind', '=', 'publicip')
    .execute();
  for (const ip of ips) {
    if (ip.scope.startsWith('portable:') || ip.state === 'Reserved') {
      await ctx.tx.updateTable('ip_allocations').set(detached).where('id', '=', ip.id).execute();
    } else {
      await releasePublicIp(ctx, ip);
    }
  }
}
