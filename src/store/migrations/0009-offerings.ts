/**
 * Offerings as CloudStack's offering commands have them (issue 20; shapes in offerings/tables.ts): the compute
 * columns of service offerings (HA, CPU cap, storage type, customised sizes, system VM type, tags, Active/Inactive),
 * the update columns of network and VPC offerings, `offering_scopes` (the domains and zones an offering is
 * limited to), and the CPU/memory a VM was given (its offering's, or a custom offering's per-deploy values).
 * VMs deployed before keep their offering's sizes (backfilled, safe to run twice).
 */
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import { tableOptions, withId } from './helpers.js';

/** name, SQL type (the same on the three databases), default (NOT NULL when given). */
type ColumnDef = [name: string, type: string, dflt?: number | string];

const columns: Record<string, ColumnDef[]> = {
  service_offerings: [
    ['offer_ha', 'smallint', 0],
    ['limit_cpu_use', 'smallint', 0],
    ['is_volatile', 'smallint', 0],
    ['storage_type', 'varchar(16)', 'shared'],
    ['provisioning_type', 'varchar(16)', 'thin'],
    ['network_rate', 'integer'],
    ['is_system', 'smallint', 0],
    ['system_vm_type', 'varchar(32)'],
    ['customized', 'smallint', 0],
    ['min_cpu', 'integer'],
    ['max_cpu', 'integer'],
    ['min_memory', 'integer'],
    ['max_memory', 'integer'],
    ['storage_tags', 'varchar(255)'],
    ['host_tags', 'varchar(255)'],
    ['dynamic_scaling', 'smallint', 1],
    ['state', 'varchar(16)', 'Active'],
    ['sort_key', 'integer', 0],
    ['removed', 'bigint'],
  ],
  network_offerings: [
    ['max_connections', 'integer'],
    ['keepalive_enabled', 'smallint', 0],
    ['sort_key', 'integer', 0],
    ['internet_protocol', 'varchar(16)', 'IPv4'],
    ['service_offering_id', 'bigint'],
  ],
  vpc_offerings: [
    ['sort_key', 'integer', 0],
    ['internet_protocol', 'varchar(16)', 'IPv4'],
    ['service_offering_id', 'bigint'],
    ['removed', 'bigint'],
  ],
  vms: [
    ['cpu_number', 'integer'],
    ['cpu_speed', 'integer'],
    ['memory', 'integer'],
  ],
};

export async function up(db: Kysely<unknown>): Promise<void> {
  // One column per statement: SQLite's ALTER TABLE adds one column at a time.
  for (const [table, cols] of Object.entries(columns)) {
    for (const [name, type, dflt] of cols) {
      await db.schema
        .alterTable(table)
        .addColumn(name, sql.raw(type), (c) => (dflt === undefined ? c : c.notNull().defaultTo(dflt)))
        .execute();
    }
  }
  await tableOptions(
    db,
    withId(db, db.schema.createTable('offering_scopes'))
      .addColumn('offering_kind', 'varchar(16)', (c) => c.notNull())
      .addColumn('offering_id', 'bigint', (c) => c.notNull())
      .addColumn('scope_kind', 'varchar(8)', (c) => c.notNull())
      .addColumn('ref_id', 'bigint', (c) => c.notNull())
      .addUniqueConstraint('offering_scopes_uq', ['offering_kind', 'offering_id', 'scope_kind', 'ref_id']),
  ).execute();
  await sql
    .raw(
      `update vms set
         cpu_number = (select s.cpu_number from service_offerings s where s.id = vms.service_offering_id),
         cpu_speed = (select s.cpu_speed from service_offerings s where s.id = vms.service_offering_id),
         memory = (select s.memory from service_offerings s where s.id = vms.service_offering_id)
       where service_offering_id is not null and cpu_number is null`,
    )
    .execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('offering_scopes').execute();
  for (const [table, cols] of Object.entries(columns)) {
    for (const [name] of cols) await db.schema.alterTable(table).dropColumn(name).execute();
  }
}
