/** Small pieces the offering kinds share. */
import { invalidParameter } from '../errors/catalogue.js';
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
