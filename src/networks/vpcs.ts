/**
 * VPCs: createVPC/listVPCs/updateVPC/deleteVPC/restartVPC. A VPC's tiers are guest networks (service.ts); its
 * source-NAT IP is taken when it starts and released with it.
 */
import { randomUUID } from 'node:crypto';
import { invalidParameter } from '../errors/catalogue.js';
import { formatIp, parseIpOf } from '../ipam/address.js';
import { formatCidr } from '../ipam/cidr.js';
import { applyListScope, resolveListScope } from '../accounts/scope.js';
import type { Listed, NetCtx } from '../infrastructure/context.js';
import { notFound, pageWindow } from '../infrastructure/context.js';
import type { Owner } from '../infrastructure/owners.js';
import { checkAccess, ownerById, resolveOwner } from '../infrastructure/owners.js';
import { zoneById, zoneByUuid } from '../infrastructure/zones.js';
import { assignPublicIp } from '../public-ips/assign.js';
import { decodeServices } from '../offerings/defaults.js';
import { requireOfferingUsable } from '../offerings/scopes.js';
import { removeTagsOf, tagsCondition } from '../tags/service.js';
import { removeVpcAclLists } from '../network-acls/repository.js';
import { checkNetworkDomain, parseVpcCidr } from './guest-cidr.js';
import { implementNetwork, shutdownNetwork } from './lifecycle.js';
import type { VpcRow } from './repository.js';
import { lockVpc, vpcById, vpcByUuid } from './repository.js';
import { defaultDomainFor, plain, releasePublicIpsOf } from './service.js';

const VPC_COLS = { accountColumn: 'vpcs.account_id', domainColumn: 'vpcs.domain_id' };

export interface CreateVpcParams {
  name: string;
  displaytext?: string | undefined;
  cidr: string;
  vpcofferingid: string;
  zoneid: string;
  networkdomain?: string | undefined;
  account?: string | undefined;
  domainid?: string | undefined;
  start?: boolean | undefined;
  dns1?: string | undefined;
  dns2?: string | undefined;
  fordisplay?: boolean | undefined;
}

export async function createVpc(ctx: NetCtx, p: CreateVpcParams & { uuid?: string }): Promise<VpcRow> {
  const zone = await zoneByUuid(ctx.tx, p.zoneid);
  const offering = await ctx.tx
    .selectFrom('vpc_offerings')
    .selectAll()
    .where('uuid', '=', p.vpcofferingid)
    .executeTakeFirst();
  if (!offering) throw notFound('vpcofferingid', p.vpcofferingid, 'VPC offering');
  if (offering.state !== 'Enabled')
    throw invalidParameter(
      'vpcofferingid',
      p.vpcofferingid,
      `VPC offering '${offering.name}' is ${offering.state}`,
    );
  const cidr = parseVpcCidr(p.cidr);
  const owner = await resolveOwner(ctx.tx, ctx.caller, p);
  await requireOfferingUsable(ctx.tx, 'vpc', offering, owner, zone, 'vpcofferingid', p.vpcofferingid);
  const uuid = p.uuid ?? randomUUID();
  await ctx.tx
    .insertInto('vpcs')
    .values({
      uuid,
      zone_id: zone.id,
      account_id: owner.accountId,
      domain_id: owner.domainId,
      name: p.name,
      display_text: p.displaytext ?? p.name,
      cidr: formatCidr(cidr),
      vpc_offering_id: offering.id,
      network_domain: p.networkdomain
        ? checkNetworkDomain(p.networkdomain)
        : await defaultDomainFor(ctx, owner, zone.id),
      state: 'Enabled',
      restart_required: 0,
      dns1: p.dns1 ? formatIp(parseIpOf(4, p.dns1, 'dns1')) : null,
      dns2: p.dns2 ? formatIp(parseIpOf(4, p.dns2, 'dns2')) : null,
      created: ctx.now,
      removed: null,
    })
    .execute();
  const vpc = await vpcByUuid(ctx.tx, uuid);
  // The VPC's source-NAT IP is taken when it starts (start defaults to true), as the VPC VR needs it.
  if (p.start !== false && 'SourceNat' in decodeServices(offering.services)) {
    await assignPublicIp(ctx, { zone, owner, vpcId: vpc.id, sourceNat: true, skipLimit: true });
  }
  await ctx.recorder.event(ctx.tx, {
    type: 'VPC.CREATE',
    description: `VPC ${p.name} (${formatCidr(cidr)}) created`,
    resourceType: 'Vpc',
    resourceId: uuid,
    resourceName: p.name,
    owner,
  });
  return vpc;
}

async function vpcForCaller(ctx: NetCtx, uuid: string, param = 'id'): Promise<{ vpc: VpcRow; owner: Owner }> {
  const vpc = await vpcByUuid(ctx.tx, uuid, param);
  const owner = await ownerById(ctx.tx, vpc.account_id);
  await checkAccess(ctx.tx, ctx.caller, owner, `VPC '${vpc.name}'`);
  return { vpc, owner };
}

export async function listVpcs(
  ctx: NetCtx,
  p: {
    id?: string | undefined;
    zoneid?: string | undefined;
    name?: string | undefined;
    cidr?: string | undefined;
    state?: string | undefined;
    keyword?: string | undefined;
    vpcofferingid?: string | undefined;
    restartrequired?: boolean | undefined;
    account?: string | undefined;
    domainid?: string | undefined;
    isrecursive?: boolean | undefined;
    listall?: boolean | undefined;
    tags?: Record<string, string>[] | undefined;
    page?: number | undefined;
    pagesize?: number | undefined;
  },
): Promise<Listed<VpcRow>> {
  const scope = await resolveListScope(plain(ctx), ctx.caller, p);
  let q = applyListScope(
    ctx.tx.selectFrom('vpcs').where('vpcs.removed', 'is', null),
    ctx.caller,
    scope,
    VPC_COLS,
  );
  if (p.id) q = q.where('vpcs.uuid', '=', p.id);
  if (p.zoneid) q = q.where('vpcs.zone_id', '=', (await zoneByUuid(ctx.tx, p.zoneid)).id);
  if (p.name) q = q.where('vpcs.name', '=', p.name);
  if (p.cidr) q = q.where('vpcs.cidr', '=', p.cidr);
  if (p.state) q = q.where('vpcs.state', '=', p.state);
  if (p.keyword) q = q.where('vpcs.name', 'like', `%${p.keyword}%`);
  if (p.restartrequired !== undefined) q = q.where('vpcs.restart_required', '=', p.restartrequired ? 1 : 0);
  const tagged = tagsCondition('Vpc', 'vpcs.id', p.tags);
  if (tagged) q = q.where(tagged);
  if (p.vpcofferingid) {
    const o = await ctx.tx
      .selectFrom('vpc_offerings')
      .select('id')
      .where('uuid', '=', p.vpcofferingid)
      .executeTakeFirst();
    q = q.where('vpcs.vpc_offering_id', '=', o?.id ?? -1);
  }
  const { limit, offset } = pageWindow(p);
  const count = Number((await q.select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
  let rq = q.selectAll('vpcs').orderBy('vpcs.id').offset(offset);
  if (limit !== undefined) rq = rq.limit(limit);
  return { count, items: await rq.execute() };
}

export async function updateVpc(
  ctx: NetCtx,
  p: { id: string; name?: string | undefined; displaytext?: string | undefined },
): Promise<VpcRow> {
  const { vpc, owner } = await vpcForCaller(ctx, p.id);
  const set: Partial<VpcRow> = {};
  if (p.name !== undefined) set.name = p.name;
  if (p.displaytext !== undefined) set.display_text = p.displaytext;
  if (Object.keys(set).length) await ctx.tx.updateTable('vpcs').set(set).where('id', '=', vpc.id).execute();
  await ctx.recorder.event(ctx.tx, {
    type: 'VPC.UPDATE',
    description: `VPC ${vpc.name} updated`,
    resourceType: 'Vpc',
    resourceId: vpc.uuid,
    owner,
  });
  return vpcById(ctx.tx, vpc.id);
}

export async function deleteVpc(ctx: NetCtx, p: { id: string }): Promise<void> {
  const { vpc, owner } = await vpcForCaller(ctx, p.id);
  const tiers = await ctx.tx
    .selectFrom('networks')
    .select('name')
    .where('vpc_id', '=', vpc.id)
    .where('removed', 'is', null)
    .execute();
  if (tiers.length > 0) {
    throw invalidParameter(
      'id',
      p.id,
      `VPC '${vpc.name}' still has ${tiers.length} tier(s) (${tiers.map((t) => t.name).join(', ')}); delete them first`,
    );
  }
  await releasePublicIpsOf(ctx, 'vpc_id', vpc.id, { vpc_id: null, network_id: null });
  await removeVpcAclLists(ctx.tx, vpc.id, ctx.now);
  await ctx.tx
    .updateTable('vpcs')
    .set({ removed: ctx.now, state: 'Inactive' })
    .where('id', '=', vpc.id)
    .execute();
  await removeTagsOf(plain(ctx), 'Vpc', vpc.id);
  await ctx.recorder.event(ctx.tx, {
    type: 'VPC.DELETE',
    description: `VPC ${vpc.name} deleted`,
    resourceType: 'Vpc',
    resourceId: vpc.uuid,
    owner,
  });
}

export async function restartVpc(
  ctx: NetCtx,
  p: { id: string; cleanup?: boolean | undefined },
): Promise<void> {
  const { vpc, owner } = await vpcForCaller(ctx, p.id);
  // Two restarts at once must not both find no source NAT and both take one.
  await lockVpc(ctx.tx, vpc.id);
  const snat = await ctx.tx
    .selectFrom('ip_allocations')
    .select('id')
    .where('vpc_id', '=', vpc.id)
    .where('source_nat', '=', 1)
    .where('owner_kind', '=', 'publicip')
    .executeTakeFirst();
  if (!snat)
    await assignPublicIp(ctx, {
      zone: await zoneById(ctx.tx, vpc.zone_id),
      owner,
      vpcId: vpc.id,
      sourceNat: true,
      skipLimit: true,
    });
  const tiers = await ctx.tx
    .selectFrom('networks')
    .select('id')
    .where('vpc_id', '=', vpc.id)
    .where('removed', 'is', null)
    .where('state', '=', 'Implemented')
    .execute();
  for (const t of tiers) {
    if (p.cleanup) await shutdownNetwork(ctx, t.id);
    await implementNetwork(ctx, t.id);
  }
  await ctx.tx.updateTable('vpcs').set({ restart_required: 0 }).where('id', '=', vpc.id).execute();
  await ctx.recorder.event(ctx.tx, {
    type: 'VPC.RESTART',
    description: `VPC ${vpc.name} restarted`,
    resourceType: 'Vpc',
    resourceId: vpc.uuid,
    owner,
  });
}
