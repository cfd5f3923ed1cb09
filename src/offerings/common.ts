/** Small pieces the offering kinds share. */
import { invalidParameter } from '../errors/catalogue.js';
import type { NetCtx } from '../infrastructure/context.js';
import { resolveDomainList, resolveZoneList, setScopes } from './scopes.js';
import { offeringDb } from './tables.js';

/** CloudStack's date form in responses: `2026-12-06T10:00:00+0000`. */
export const csDate = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, '+0000');

/**
 * The `serviceofferingid` of a network or VPC offering: the system offering its virtual routers are sized by,
 * so an active system offering for domain routers.
 */
export async function routerServiceOffering(ex: unknown, uuid: string): Promise<{ id: number }> {
  const so = await offeringDb(ex)
    .selectFrom('service_offerings')
    .select(['id', 'is_system', 'system_vm_type'])
    .where('uuid', '=', uuid)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!so) throw invalidParameter('serviceofferingid', uuid, 'no service offering has this id');
  if (so.is_system !== 1 || (so.system_vm_type ?? 'domainrouter') !== 'domainrouter')
    throw invalidParameter(
      'serviceofferingid',
      uuid,
      'must be a system offering for virtual routers (issystem=true, systemvmtype=domainrouter)',
    );
  return { id: Number(so.id) };
}

/** What differs between network and VPC offerings in their update and delete. */
const KINDS = {
  network: {
    table: 'network_offerings',
    what: 'network offering',
    usedBy: { table: 'networks', column: 'offering_id', what: 'network(s)' },
    updateCommand: 'updateNetworkOffering',
    editEvent: 'NETWORK.OFFERING.EDIT',
    deleteEvent: 'NETWORK.OFFERING.DELETE',
    resourceType: 'NetworkOffering',
  },
  vpc: {
    table: 'vpc_offerings',
    what: 'VPC offering',
    usedBy: { table: 'vpcs', column: 'vpc_offering_id', what: 'VPC(s)' },
    updateCommand: 'updateVPCOffering',
    editEvent: 'VPC.OFFERING.UPDATE',
    deleteEvent: 'VPC.OFFERING.DELETE',
    resourceType: 'VpcOffering',
  },
} as const;

type Kind = keyof typeof KINDS;
interface OfferingRef {
  id: number;
  uuid: string;
  name: string;
}

/**
 * The part of updateNetworkOffering and updateVPCOffering they share: name, display text, sort key, state
 * (Enabled/Disabled) and the domain/zone limits (`public` / `all` lift them), on top of the kind's own `set`.
 */
export async function applyOfferingUpdate(
  ctx: NetCtx,
  kind: Kind,
  o: OfferingRef,
  set: Record<string, unknown>,
  p: {
    name?: string | undefined;
    displaytext?: string | undefined;
    sortkey?: number | undefined;
    state?: string | undefined;
    domainid?: string | undefined;
    zoneid?: string | undefined;
  },
): Promise<void> {
  const k = KINDS[kind];
  if (p.name !== undefined) {
    if (!p.name.trim()) throw invalidParameter('name', p.name, 'an offering needs a name');
    set.name = p.name;
  }
  if (p.displaytext !== undefined) set.display_text = p.displaytext;
  if (p.sortkey !== undefined) set.sort_key = p.sortkey;
  if (p.state !== undefined) {
    const state = ['Enabled', 'Disabled'].find((s) => s.toLowerCase() === p.state!.toLowerCase());
    if (!state) throw invalidParameter('state', p.state, 'must be Enabled or Disabled');
    set.state = state;
  }
  const domainIds = await resolveDomainList(ctx.tx, p.domainid);
  const zoneIds = await resolveZoneList(ctx.tx, p.zoneid);
  if (Object.keys(set).length)
    await offeringDb(ctx.tx)
      .updateTable(k.table as 'network_offerings')
      .set(set)
      .where('id', '=', o.id)
      .execute();
  if (domainIds) await setScopes(ctx.tx, kind, o.id, 'domain', domainIds);
  if (zoneIds) await setScopes(ctx.tx, kind, o.id, 'zone', zoneIds);
  await ctx.recorder.event(ctx.tx, {
    type: k.editEvent,
    description: `${k.what} ${o.name} updated`,
    resourceType: k.resourceType,
    resourceId: o.uuid,
    owner: ctx.caller,
  });
}

/** deleteNetworkOffering / deleteVPCOffering: never a default offering, never one in use (disable it instead). */
export async function deleteUnusedOffering(
  ctx: NetCtx,
  kind: Kind,
  o: OfferingRef & { is_default: number },
): Promise<void> {
  const k = KINDS[kind];
  if (o.is_default === 1)
    throw invalidParameter('id', o.uuid, `${o.name} is a default ${k.what}; it cannot be deleted`);
  const used = await offeringDb(ctx.tx)
    .selectFrom(k.usedBy.table as 'networks')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where(k.usedBy.column as 'offering_id', '=', o.id)
    .where('removed', 'is', null)
    .executeTakeFirstOrThrow();
  if (Number(used.n) > 0)
    throw invalidParameter(
      'id',
      o.uuid,
      `${k.what} ${o.name} is used by ${Number(used.n)} ${k.usedBy.what}; disable it (${k.updateCommand} state=Disabled) instead`,
    );
  await offeringDb(ctx.tx)
    .updateTable(k.table as 'network_offerings')
    .set({ removed: ctx.now, state: 'Disabled' })
    .where('id', '=', o.id)
    .execute();
  await ctx.recorder.event(ctx.tx, {
    type: k.deleteEvent,
    description: `${k.what} ${o.name} deleted`,
    resourceType: k.resourceType,
    resourceId: o.uuid,
    owner: ctx.caller,
  });
}
