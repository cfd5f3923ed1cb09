/** Lookups of networks, VPCs and offerings shared by the networking services. */
import type { Selectable } from 'kysely';
import type { NetDatabase, NetExecutor as Executor } from './tables.js';
import { notFound } from '../infrastructure/context.js';
import { decodeServices } from '../offerings/defaults.js';
import type { ServiceMap } from '../offerings/defaults.js';
import { dialectOf } from '../store/migrations/helpers.js';
import type { Kysely } from 'kysely';

export type NetworkRow = Selectable<NetDatabase['networks']>;
export type VpcRow = Selectable<NetDatabase['vpcs']>;
export type NetworkOfferingRow = Selectable<NetDatabase['network_offerings']>;
export type VpcOfferingRow = Selectable<NetDatabase['vpc_offerings']>;

export async function networkByUuid(db: Executor, uuid: string, param = 'networkid'): Promise<NetworkRow> {
  const n = await db
    .selectFrom('networks')
    .selectAll()
    .where('uuid', '=', uuid)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!n) throw notFound(param, uuid, 'network');
  return n;
}

export async function networkById(db: Executor, id: number): Promise<NetworkRow> {
  return db.selectFrom('networks').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
}

/**
 * The network row, held until the transaction ends (SELECT ... FOR UPDATE; SQLite's BEGIN IMMEDIATE already
 * holds the whole database): whoever implements a network or gives it its source NAT checks and acts while
 * holding it, so a concurrent caller waits and then sees what the first one committed (READ COMMITTED on
 * PostgreSQL and, as the store sets it, on MariaDB: every statement after the lock reads the latest commits).
 */
export async function lockNetwork(tx: Executor, id: number): Promise<NetworkRow> {
  const q = tx.selectFrom('networks').selectAll().where('id', '=', id);
  const locking = dialectOf(tx as unknown as Kysely<unknown>) === 'sqlite' ? q : q.forUpdate();
  return locking.executeTakeFirstOrThrow();
}

/** The VPC row, held until the transaction ends (as lockNetwork): one source NAT per VPC. */
export async function lockVpc(tx: Executor, id: number): Promise<VpcRow> {
  const q = tx.selectFrom('vpcs').selectAll().where('id', '=', id);
  const locking = dialectOf(tx as unknown as Kysely<unknown>) === 'sqlite' ? q : q.forUpdate();
  return locking.executeTakeFirstOrThrow();
}

export async function vpcByUuid(db: Executor, uuid: string, param = 'vpcid'): Promise<VpcRow> {
  const v = await db
    .selectFrom('vpcs')
    .selectAll()
    .where('uuid', '=', uuid)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!v) throw notFound(param, uuid, 'VPC');
  return v;
}

export async function vpcById(db: Executor, id: number): Promise<VpcRow> {
  return db.selectFrom('vpcs').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
}

export async function offeringById(db: Executor, id: number): Promise<NetworkOfferingRow> {
  return db.selectFrom('network_offerings').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
}

export async function offeringByUuid(
  db: Executor,
  uuid: string,
  param = 'networkofferingid',
): Promise<NetworkOfferingRow> {
  const o = await db
    .selectFrom('network_offerings')
    .selectAll()
    .where('uuid', '=', uuid)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!o) throw notFound(param, uuid, 'network offering');
  return o;
}

export const offeringServices = (o: Pick<NetworkOfferingRow, 'services'>): ServiceMap =>
  decodeServices(o.services);

export const hasService = (o: Pick<NetworkOfferingRow, 'services'>, service: string): boolean =>
  service in offeringServices(o);
