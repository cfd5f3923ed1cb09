/**
 * What migration 0009-offerings adds: the columns CloudStack's offering commands need on the offering tables of
 * 0003, and `offering_scopes` (the domains and zones an offering is limited to, CloudStack's `domainid`/`zoneid`
 * offering details). Offering code sees them through OfferingDatabase / offeringDb(); the tables of 0003 stay
 * declared in networks/tables.ts.
 */
import type { ColumnType, Generated, Kysely, Transaction } from 'kysely';
import type { NetDatabase } from '../networks/tables.js';

type Defaulted<T> = ColumnType<T, T | undefined, T>;

export interface ServiceOfferingColumns {
  offer_ha: Defaulted<number>;
  limit_cpu_use: Defaulted<number>;
  is_volatile: Defaulted<number>;
  /** `shared` | `local`. */
  storage_type: Defaulted<string>;
  provisioning_type: Defaulted<string>;
  network_rate: Defaulted<number | null>;
  is_system: Defaulted<number>;
  system_vm_type: Defaulted<string | null>;
  /** cpunumber/memory (and maybe cpuspeed) come with each deploy (details); 0 in those columns means unset. */
  customized: Defaulted<number>;
  min_cpu: Defaulted<number | null>;
  max_cpu: Defaulted<number | null>;
  min_memory: Defaulted<number | null>;
  max_memory: Defaulted<number | null>;
  storage_tags: Defaulted<string | null>;
  host_tags: Defaulted<string | null>;
  dynamic_scaling: Defaulted<number>;
  /** CloudStack's ServiceOffering.State: Active | Inactive (deleteServiceOffering makes it Inactive). */
  state: Defaulted<string>;
  sort_key: Defaulted<number>;
  removed: Defaulted<number | null>;
}

export interface NetworkOfferingColumns {
  max_connections: Defaulted<number | null>;
  keepalive_enabled: Defaulted<number>;
  sort_key: Defaulted<number>;
  internet_protocol: Defaulted<string>;
  service_offering_id: Defaulted<number | null>;
}

export interface VpcOfferingColumns {
  sort_key: Defaulted<number>;
  internet_protocol: Defaulted<string>;
  service_offering_id: Defaulted<number | null>;
  removed: Defaulted<number | null>;
}

export type OfferingKind = 'service' | 'network' | 'vpc';

export interface OfferingScopesTable {
  id: Generated<number>;
  offering_kind: OfferingKind;
  offering_id: number;
  /** 'domain': usable in this domain and its subdomains; 'zone': usable in this zone. */
  scope_kind: 'domain' | 'zone';
  ref_id: number;
}

export interface OfferingDatabase extends Omit<
  NetDatabase,
  'service_offerings' | 'network_offerings' | 'vpc_offerings'
> {
  service_offerings: NetDatabase['service_offerings'] & ServiceOfferingColumns;
  network_offerings: NetDatabase['network_offerings'] & NetworkOfferingColumns;
  vpc_offerings: NetDatabase['vpc_offerings'] & VpcOfferingColumns;
  offering_scopes: OfferingScopesTable;
}

export type OfferingExecutor = Kysely<OfferingDatabase>;

/** The same connection or transaction, typed with 0009's columns (the migration guarantees them). */
export const offeringDb = (db: unknown): OfferingExecutor => db as OfferingExecutor;
export type OfferingTx = Transaction<OfferingDatabase>;
