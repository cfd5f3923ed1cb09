/**
 * The number of public IPs of each zone, kept by the database itself (issue 16: listPublicIpAddresses
 * pagesize=500 on a zone of 500,000 public IPs in ≤ 50 ms p99). CloudStack answers `count` on every list, and a full
 * page of a zone's public IPs cannot tell its total: the COUNT(*) walked the zone's 500,000 entries of
 * ip_allocations_public_list_ix (0024), ~80 ms of CPU on SQLite, 0.5 s on PostgreSQL, for every page.
 *
 * `public_ip_zone_counts (zone_id, slot, n)`: the rows of ip_allocations with owner_kind = 'publicip' and that
 * zone_id are the sum of `n` over the zone's slots. Triggers on ip_allocations (insert, delete, an update that
 * changes owner_kind or zone_id) add and take away in the same transaction as the row, so the sum is COUNT(*) in
 * whatever snapshot reads it, on every path that writes the table (the allocator's fast paths, bulk deletes).
 *
 * Concurrency: an allocation's trigger updates one counter row, locked until its transaction commits. On one row
 * per zone every public IP allocation of a zone would wait for the one before it to commit; so each connection
 * writes its own slot (PostgreSQL `pg_backend_pid() % 16`, MariaDB `connection_id() % 16`; SQLite has one writer,
 * slot 0). A transaction runs on one connection, so it holds at most one counter row of a zone: two transactions
 * never wait on each other's counters in opposite orders. A zone's rows are made with the zone (a trigger on
 * zones; the backfill for the zones there are), so an allocation updates a row that exists: on InnoDB, first
 * inserts of counter rows by concurrent allocations could deadlock on the gap they share. Guest NICs (owner_kind 'nic') are skipped by the
 * trigger's condition and write nothing.
 *
 * The backfill counts what is there when the migration runs. On MariaDB (no transactional DDL) the triggers are
 * made first and the backfill replaces the counts whole, so a migration run again after a crash is right too; an
 * allocation committed by another server between the two would be counted twice: run it with the servers stopped
 * (as `stacknet migrate` does before an upgrade).
 */
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import { dialectOf, tableOptions } from './helpers.js';

const TABLE = 'public_ip_zone_counts';
const SLOTS = 16;
/** A row counted: a public IP with a zone. */
const counted = (r: 'new' | 'old') => `(${r}.owner_kind = 'publicip' and ${r}.zone_id is not null)`;
/** An update that can move a row in or out of a count (PostgreSQL's spelling; SQLite says `is not`). */
const CHANGED = `(old.owner_kind is distinct from new.owner_kind or old.zone_id is distinct from new.zone_id)`;

export async function up(db: Kysely<unknown>): Promise<void> {
  const d = dialectOf(db);
  await tableOptions(
    db,
    db.schema
      .createTable(TABLE)
      .ifNotExists()
      .addColumn('zone_id', 'bigint', (c) => c.notNull())
      .addColumn('slot', 'smallint', (c) => c.notNull())
      .addColumn('n', 'bigint', (c) => c.notNull())
      .addPrimaryKeyConstraint(`${TABLE}_pk`, ['zone_id', 'slot']),
  ).execute();
  if (d === 'sqlite') {
    const add = (r: 'new' | 'old', by: string) =>
      `insert into ${TABLE} (zone_id, slot, n) select ${r}.zone_id, 0, ${by} where ${counted(r)}
         on conflict (zone_id, slot) do update set n = n + ${by};`;
    const triggers: [name: string, on: string, when: string, body: string][] = [
      ['ins', 'insert', counted('new'), add('new', '1')],
      ['del', 'delete', counted('old'), add('old', '-1')],
      [
        'upd',
        'update of owner_kind, zone_id',
        CHANGED.replace(/is distinct from/g, 'is not'),
        `${add('old', '-1')} ${add('new', '1')}`,
      ],
    ];
    for (const [name, on, when, body] of triggers)
      await sql
        .raw(
          `create trigger if not exists ${TABLE}_${name} after ${on} on ip_allocations when ${when}
           begin ${body} end`,
        )
        .execute(db);
  } else if (d === 'postgres') {
    await sql
      .raw(
        `create or replace function ${TABLE}_keep() returns trigger language plpgsql as $$
         declare s smallint := pg_backend_pid() % ${SLOTS};
         begin
           if tg_op in ('DELETE', 'UPDATE') and ${counted('old')} then
             insert into ${TABLE} (zone_id, slot, n) values (old.zone_id, s, -1)
               on conflict (zone_id, slot) do update set n = ${TABLE}.n - 1;
           end if;
           if tg_op in ('INSERT', 'UPDATE') and ${counted('new')} then
             insert into ${TABLE} (zone_id, slot, n) values (new.zone_id, s, 1)
               on conflict (zone_id, slot) do update set n = ${TABLE}.n + 1;
           end if;
           return null;
         end $$`,
      )
      .execute(db);
    await sql
      .raw(
        `create trigger ${TABLE}_ins after insert on ip_allocations for each row
         when (${counted('new')}) execute function ${TABLE}_keep()`,
      )
      .execute(db);
    await sql
      .raw(
        `create trigger ${TABLE}_del after delete on ip_allocations for each row
         when (${counted('old')}) execute function ${TABLE}_keep()`,
      )
      .execute(db);
    await sql
      .raw(
        `create trigger ${TABLE}_upd after update of owner_kind, zone_id on ip_allocations for each row
         when (${CHANGED}) execute function ${TABLE}_keep()`,
      )
      .execute(db);
  } else {
    const add = (r: 'new' | 'old', by: string) =>
      `if ${counted(r)} then
         insert into ${TABLE} (zone_id, slot, n) values (${r}.zone_id, connection_id() % ${SLOTS}, ${by})
           on duplicate key update n = n + ${by};
       end if;`;
    await sql
      .raw(
        `create trigger if not exists ${TABLE}_ins after insert on ip_allocations for each row
         begin ${add('new', '1')} end`,
      )
      .execute(db);
    await sql
      .raw(
        `create trigger if not exists ${TABLE}_del after delete on ip_allocations for each row
         begin ${add('old', '-1')} end`,
      )
      .execute(db);
    await sql
      .raw(
        `create trigger if not exists ${TABLE}_upd after update on ip_allocations for each row
         begin
           if not (old.owner_kind <=> new.owner_kind and old.zone_id <=> new.zone_id) then
             ${add('old', '-1')}
             ${add('new', '1')}
           end if;
         end`,
      )
      .execute(db);
  }
  // A new zone gets its counter rows at once, so that allocations only ever update rows that exist: on InnoDB
  // two first inserts of counter rows into the same gap can deadlock each other, updates of rows take row locks.
  const slots = d === 'sqlite' ? [0] : Array.from({ length: SLOTS }, (_, i) => i);
  const zoneRows = slots.map((i) => `(new.id, ${i}, 0)`).join(', ');
  if (d === 'postgres') {
    await sql
      .raw(
        `create or replace function ${TABLE}_zone() returns trigger language plpgsql as $$
         begin
           insert into ${TABLE} (zone_id, slot, n) values ${zoneRows} on conflict do nothing;
           return null;
         end $$`,
      )
      .execute(db);
    await sql
      .raw(`create trigger ${TABLE}_zone after insert on zones for each row execute function ${TABLE}_zone()`)
      .execute(db);
  } else
    await sql
      .raw(
        `create trigger if not exists ${TABLE}_zone after insert on zones for each row
         begin insert ${d === 'mysql' ? 'ignore' : 'or ignore'} into ${TABLE} (zone_id, slot, n) values ${zoneRows}; end`,
      )
      .execute(db);
  // The counts of what is there now, replacing any (a MariaDB migration run again from the top): every zone's
  // rows, its count in slot 0.
  await sql.raw(`delete from ${TABLE}`).execute(db);
  await sql
    .raw(
      `insert into ${TABLE} (zone_id, slot, n)
       select zone_id, 0, count(*) from ip_allocations where owner_kind = 'publicip' and zone_id is not null
       group by zone_id`,
    )
    .execute(db);
  for (const slot of slots)
    await sql
      .raw(
        `insert into ${TABLE} (zone_id, slot, n)
         select z.id, ${slot}, 0 from zones z
         where not exists (select 1 from ${TABLE} c where c.zone_id = z.id and c.slot = ${slot})`,
      )
      .execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  const d = dialectOf(db);
  for (const t of ['ins', 'del', 'upd', 'zone'])
    await sql
      .raw(
        `drop trigger if exists ${TABLE}_${t}${d === 'postgres' ? ` on ${t === 'zone' ? 'zones' : 'ip_allocations'}` : ''}`,
      )
      .execute(db);
  if (d === 'postgres')
    for (const f of ['keep', 'zone']) await sql.raw(`drop function if exists ${TABLE}_${f}()`).execute(db);
  await db.schema.dropTable(TABLE).ifExists().execute();
}
