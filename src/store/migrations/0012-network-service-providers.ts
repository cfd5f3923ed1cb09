/**
 * Network service providers per physical network (CloudStack's physical_network_service_providers):
 * VirtualRouter, VpcVirtualRouter and InternalLbVm, each with its state and the services it offers. The rows of
 * physical networks that exist already are added here (safe to run twice: only where missing).
 */
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { sql } from 'kysely';
import { tableOptions, withId } from './helpers.js';
import { defaultProviders } from '../../infrastructure/provider-catalogue.js';

export async function up(db: Kysely<unknown>): Promise<void> {
  await tableOptions(
    db,
    withId(db, db.schema.createTable('network_service_providers'))
      .addColumn('uuid', 'varchar(36)', (c) => c.notNull().unique())
      .addColumn('physical_network_id', 'bigint', (c) => c.notNull().references('physical_networks.id'))
      .addColumn('provider_name', 'varchar(64)', (c) => c.notNull())
      .addColumn('state', 'varchar(16)', (c) => c.notNull())
      .addColumn('destination_physical_network_id', 'bigint')
      /** Comma-separated service names, CloudStack's (Dhcp,Dns,...). */
      .addColumn('services', 'varchar(512)', (c) => c.notNull())
      .addColumn('created', 'bigint', (c) => c.notNull())
      .addUniqueConstraint('nsp_pn_name_uq', ['physical_network_id', 'provider_name']),
  ).execute();

  const pns = await sql<{
    id: number | string;
  }>`select id from physical_networks where removed is null`.execute(db);
  const now = Date.now();
  for (const pn of pns.rows) {
    for (const p of defaultProviders) {
      await sql`insert into network_service_providers
          (uuid, physical_network_id, provider_name, state, destination_physical_network_id, services, created)
        select ${randomUUID()}, ${Number(pn.id)}, ${p.name}, ${p.initialState}, null, ${p.services.join(',')}, ${now}
        where not exists (select 1 from network_service_providers
          where physical_network_id = ${Number(pn.id)} and provider_name = ${p.name})`.execute(db);
    }
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('network_service_providers').execute();
}
