/**
 * What must hold in the database after any burst and any fault, once the takeover and GC intervals have passed
 * (issue 12's standing checks). Each check returns the offending rows (empty = holds); `checkInvariants` runs
 * them all. Plain SQL that reads the same on SQLite, PostgreSQL and MariaDB.
 *
 *   const store = await openStore(dbUrl, { poolSize: 2 });
 *   const v = await checkInvariants(store);          // { duplicateAddresses: [], ... }
 *   assert.deepEqual(violations(v), {});              // only the checks that found something
 *   // or wait for the settling ones (jobs, Starting VMs, Allocating IPs) to converge:
 *   await eventuallyHolds(store, 90_000);
 */
import { sql } from 'kysely';
import type { Store } from '../../src/store/db.js';
import { hasService } from '../../src/networks/repository.js';

type Row = Record<string, unknown>;

const rows = async (store: Store, q: ReturnType<typeof sql<Row>>): Promise<Row[]> =>
  (await q.execute(store.db)).rows.map((r) =>
    // BigInt/numeric-string columns read differently per driver: numbers where they fit.
    Object.fromEntries(Object.entries(r).map(([k, v]) => [k, typeof v === 'bigint' ? Number(v) : v])),
  );

/** No (scope, family, address) held twice (the UNIQUE constraint makes this impossible; checked anyway). */
export const duplicateAddresses = (store: Store) =>
  rows(
    store,
    sql<Row>`select scope, family, address, count(*) as n from ip_allocations
      group by scope, family, address having count(*) > 1`,
  );

/** No network with more than one source-NAT public IP. */
export const networksWithSeveralSourceNats = (store: Store) =>
  rows(
    store,
    sql<Row>`select network_id, count(*) as n from ip_allocations
      where owner_kind = 'publicip' and source_nat = 1 and network_id is not null
      group by network_id having count(*) > 1`,
  );

/** No VPC with more than one source-NAT public IP. */
export const vpcsWithSeveralSourceNats = (store: Store) =>
  rows(
    store,
    sql<Row>`select vpc_id, count(*) as n from ip_allocations
      where owner_kind = 'publicip' and source_nat = 1 and vpc_id is not null and network_id is null
      group by vpc_id having count(*) > 1`,
  );

/** Every implemented isolated non-VPC network whose offering has SourceNat holds exactly one source-NAT IP. */
export async function implementedNetworksWithoutOneSourceNat(store: Store): Promise<Row[]> {
  const nets = await rows(
    store,
    sql<Row>`select n.id, n.uuid, o.services,
        (select count(*) from ip_allocations a
          where a.network_id = n.id and a.owner_kind = 'publicip' and a.source_nat = 1) as snat
      from networks n join network_offerings o on o.id = n.offering_id
      where n.state = 'Implemented' and n.type = 'Isolated' and n.vpc_id is null and n.removed is null
        and n.account_id is not null`,
  );
  return nets
    .filter((n) => hasService({ services: String(n.services) }, 'SourceNat') && Number(n.snat) !== 1)
    .map(({ id, uuid, snat }) => ({ id, uuid, snat }));
}

/**
 * VLANs held by nobody: a vnet allocation with no network, a removed or not implemented one, or one the network
 * does not carry as its vnet (a second VLAN taken by a lost race).
 */
export const vnetsHeldByNobody = (store: Store) =>
  rows(
    store,
    sql<Row>`select v.id, v.vnet, v.network_id, n.state, n.vnet as network_vnet from vnet_allocations v
      left join networks n on n.id = v.network_id
      where n.id is null or n.removed is not null or n.state <> 'Implemented' or n.vnet is null
        or n.vnet <> v.vnet`,
  );

/** No network with more than one vnet allocation. */
export const networksWithSeveralVnets = (store: Store) =>
  rows(
    store,
    sql<Row>`select network_id, count(*) as n from vnet_allocations where network_id is not null
      group by network_id having count(*) > 1`,
  );

/** Jobs still pending (queued or In Progress). */
export const jobsInProgress = (store: Store) =>
  rows(
    store,
    sql<Row>`select id, uuid, command, attempts, lease_owner, lease_until from async_jobs where status = 0`,
  );

/** VMs stuck Starting. */
export const vmsStarting = (store: Store) =>
  rows(store, sql<Row>`select id, uuid, name from vms where state = 'Starting' and removed is null`);

/** Public IPs stuck Allocating. */
export const publicIpsAllocating = (store: Store) =>
  rows(
    store,
    sql<Row>`select id, uuid, address, network_id from ip_allocations
      where owner_kind = 'publicip' and state = 'Allocating'`,
  );

/**
 * Allocated addresses without their assign event: public IPs need a NET.IPASSIGN (PORTABLE.IPASSIGN) event whose
 * resource id is the IP's uuid; a NIC's guest address one whose resource id is the NIC's uuid.
 */
export const addressesWithoutEvent = (store: Store) =>
  rows(
    store,
    sql<Row>`select a.id, a.owner_kind, a.uuid, a.address from ip_allocations a
      where a.owner_kind = 'publicip' and a.state = 'Allocated'
        and not exists (select 1 from events e where e.type in ('NET.IPASSIGN', 'PORTABLE.IPASSIGN')
          and e.resource_id = a.uuid)
      union all
      select a.id, a.owner_kind, c.uuid, a.address from ip_allocations a join nics c on c.id = a.owner_id
      where a.owner_kind = 'nic'
        and not exists (select 1 from events e where e.type = 'NET.IPASSIGN' and e.resource_id = c.uuid)`,
  );

export const CHECKS = {
  duplicateAddresses,
  networksWithSeveralSourceNats,
  vpcsWithSeveralSourceNats,
  implementedNetworksWithoutOneSourceNat,
  vnetsHeldByNobody,
  networksWithSeveralVnets,
  jobsInProgress,
  vmsStarting,
  publicIpsAllocating,
  addressesWithoutEvent,
} as const;

export type CheckName = keyof typeof CHECKS;
export type Invariants = Record<CheckName, Row[]>;

/** Runs every check (or those named). */
export async function checkInvariants(store: Store, only?: CheckName[]): Promise<Partial<Invariants>> {
  const out: Partial<Invariants> = {};
  for (const name of only ?? (Object.keys(CHECKS) as CheckName[])) out[name] = await CHECKS[name](store);
  return out;
}

/** Only the checks that found something. */
export function violations(v: Partial<Invariants>): Partial<Invariants> {
  return Object.fromEntries(Object.entries(v).filter(([, r]) => r && r.length > 0)) as Partial<Invariants>;
}

/**
 * Waits until every check holds (jobs taken over, GC run, ...) or the deadline passes; returns what still fails
 * (empty object = all hold).
 */
export async function eventuallyHolds(
  store: Store,
  timeoutMs: number,
  only?: CheckName[],
): Promise<Partial<Invariants>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = violations(await checkInvariants(store, only));
    if (Object.keys(v).length === 0 || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 500));
  }
}
