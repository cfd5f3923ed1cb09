/**
 * The rows of a physical network's service providers that other concerns touch: the defaults a new physical
 * network gets, and the check that implementing a network makes (its offering's providers Enabled).
 */
import { randomUUID } from 'node:crypto';
import { CloudStackError } from '../errors/catalogue.js';
import type { NetTx } from '../networks/tables.js';
import { defaultProviders } from './provider-catalogue.js';

/** Called when a physical network is created: CloudStack's default providers, in their initial state. */
export async function addDefaultProviders(tx: NetTx, physicalNetworkId: number, now: number): Promise<void> {
  await tx
    .insertInto('network_service_providers')
    .values(
      defaultProviders.map((p) => ({
        uuid: randomUUID(),
        physical_network_id: physicalNetworkId,
        provider_name: p.name,
        state: p.initialState,
        destination_physical_network_id: null,
        services: p.services.join(','),
        created: now,
      })),
    )
    .execute();
}

/**
 * Refuses to implement a network on a physical network whose provider for one of the offering's services is
 * missing or not Enabled (CloudStack: "Service provider ... either doesn't exist or is not enabled").
 */
export async function requireProviderEnabled(
  tx: NetTx,
  physicalNetworkId: number,
  providerNames: readonly string[],
): Promise<void> {
  for (const name of new Set(providerNames)) {
    const row = await tx
      .selectFrom('network_service_providers')
      .select(['state'])
      .where('physical_network_id', '=', physicalNetworkId)
      .where('provider_name', '=', name)
      .executeTakeFirst();
    if (!row || row.state !== 'Enabled') {
      const pn = await tx
        .selectFrom('physical_networks')
        .select(['uuid', 'name'])
        .where('id', '=', physicalNetworkId)
        .executeTakeFirstOrThrow();
      throw new CloudStackError(
        'ResourceUnavailable',
        `Service provider ${name} ${row ? `is ${row.state}` : 'does not exist'} in physical network ${pn.name} (${pn.uuid}); enable it with updateNetworkServiceProvider state=Enabled`,
      );
    }
  }
}

/** The providers an offering's services column names (`Dhcp:VirtualRouter,Dns:VirtualRouter`). */
export function offeringProviders(services: string | null | undefined): string[] {
  return (services ?? '')
    .split(',')
    .map((e) => e.split(':')[1]?.trim())
    .filter((x): x is string => !!x);
}
