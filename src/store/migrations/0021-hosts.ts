/**
 * Hosts (issue 19, src/hosts): the hypervisors and network nodes that run `stacknet host-agent`, and the
 * clusters they sit in (CloudStack's `host` and `cluster` tables, reduced to what stacknet acts on). A host's
 * `secret_sealed` is its channel secret sealed with the server key like a router's (NULL for a host addHost
 * pre-created that has not registered yet); `desired_generation` is bumped whenever what the host must run
 * changes (`desired_hash` is the hash of that content, so a recomputation that finds the same content bumps
 * nothing). Placement: `vms.host_id` (the host the VM is defined on), `vms.last_host_id` (CloudStack's: where it
 * ran last, preferred when it starts again), `routers.host_id`. Templates get the `url` and `checksum` a host
 * fetches them by.
 */
import type { Kysely } from 'kysely';
import { dialectOf, tableOptions, withId } from './helpers.js';

export async function up(db: Kysely<unknown>): Promise<void> {
  await tableOptions(
    db,
    withId(db, db.schema.createTable('clusters'))
      .addColumn('uuid', 'varchar(36)', (c) => c.notNull().unique())
      .addColumn('name', 'varchar(255)', (c) => c.notNull())
      .addColumn('zone_id', 'bigint', (c) => c.notNull())
      .addColumn('pod_id', 'bigint', (c) => c.notNull())
      .addColumn('hypervisor', 'varchar(32)', (c) => c.notNull())
      .addColumn('cluster_type', 'varchar(32)', (c) => c.notNull())
      .addColumn('allocation_state', 'varchar(32)', (c) => c.notNull())
      .addColumn('managed_state', 'varchar(32)', (c) => c.notNull())
      .addColumn('created', 'bigint', (c) => c.notNull())
      .addColumn('removed', 'bigint'),
  ).execute();
  await db.schema.createIndex('clusters_pod_ix').on('clusters').columns(['pod_id']).execute();
  await tableOptions(
    db,
    withId(db, db.schema.createTable('hosts'))
      .addColumn('uuid', 'varchar(36)', (c) => c.notNull().unique())
      .addColumn('name', 'varchar(255)', (c) => c.notNull().unique())
      .addColumn('zone_id', 'bigint', (c) => c.notNull())
      .addColumn('pod_id', 'bigint', (c) => c.notNull())
      .addColumn('cluster_id', 'bigint', (c) => c.notNull())
      .addColumn('address', 'varchar(64)', (c) => c.notNull())
      .addColumn('port', 'integer', (c) => c.notNull())
      .addColumn('secret_sealed', 'varchar(255)')
      .addColumn('capabilities', 'text')
      .addColumn('cpus', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('cpu_speed', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('memory_mib', 'bigint', (c) => c.notNull().defaultTo(0))
      .addColumn('version', 'varchar(64)')
      .addColumn('host_tags', 'varchar(255)')
      .addColumn('state', 'varchar(16)', (c) => c.notNull())
      .addColumn('resource_state', 'varchar(32)', (c) => c.notNull())
      .addColumn('last_pinged', 'bigint')
      .addColumn('desired_generation', 'bigint', (c) => c.notNull().defaultTo(0))
      .addColumn('desired_hash', 'varchar(64)')
      .addColumn('applied_generation', 'bigint')
      .addColumn('status', 'text')
      .addColumn('created', 'bigint', (c) => c.notNull())
      .addColumn('removed', 'bigint'),
  ).execute();
  await db.schema.createIndex('hosts_zone_ix').on('hosts').columns(['zone_id', 'state']).execute();
  await db.schema.alterTable('vms').addColumn('host_id', 'bigint').execute();
  await db.schema.alterTable('vms').addColumn('last_host_id', 'bigint').execute();
  await db.schema.createIndex('vms_host_ix').on('vms').columns(['host_id']).execute();
  await db.schema.alterTable('routers').addColumn('host_id', 'bigint').execute();
  await db.schema.createIndex('routers_host_ix').on('routers').columns(['host_id']).execute();
  await db.schema.alterTable('templates').addColumn('url', 'varchar(2048)').execute();
  await db.schema.alterTable('templates').addColumn('checksum', 'varchar(255)').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('templates').dropColumn('checksum').execute();
  await db.schema.alterTable('templates').dropColumn('url').execute();
  const dropIndex = (name: string, table: string) => {
    const d = db.schema.dropIndex(name);
    return (dialectOf(db) === 'mysql' ? d.on(table) : d).execute();
  };
  await dropIndex('routers_host_ix', 'routers');
  await db.schema.alterTable('routers').dropColumn('host_id').execute();
  await dropIndex('vms_host_ix', 'vms');
  await db.schema.alterTable('vms').dropColumn('last_host_id').execute();
  await db.schema.alterTable('vms').dropColumn('host_id').execute();
  await db.schema.dropTable('hosts').execute();
  await db.schema.dropTable('clusters').execute();
}
