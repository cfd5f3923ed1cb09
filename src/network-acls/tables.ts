/** VPC network ACLs (migration 0017-network-acls): CloudStack's network_acl and network_acl_item. */
import type { ColumnType, Generated, Kysely, Transaction } from 'kysely';
import type { NetDatabase } from '../networks/tables.js';

type Defaulted<T> = ColumnType<T, T | undefined, T>;

export interface NetworkAclListsTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  description: string | null;
  /** NULL for the global built-ins default_allow and default_deny (CloudStack's vpc_id 0). */
  vpc_id: number | null;
  for_display: Defaulted<number>;
  created: number;
  removed: number | null;
}

export interface NetworkAclItemsTable {
  id: Generated<number>;
  uuid: string;
  acl_id: number;
  number: number;
  /** CloudStack's spelling: 'Allow' | 'Deny'. */
  action: string;
  /** 'Ingress' | 'Egress'. */
  traffic_type: string;
  /** tcp, udp, icmp, all or a protocol number, lower case. */
  protocol: string;
  start_port: number | null;
  end_port: number | null;
  icmp_type: number | null;
  icmp_code: number | null;
  /** Comma-separated CIDRs. */
  cidrs: string;
  reason: string | null;
  for_display: Defaulted<number>;
  state: string;
  created: number;
}

export interface AclDatabase extends NetDatabase {
  network_acl_lists: NetworkAclListsTable;
  network_acl_items: NetworkAclItemsTable;
}

export type AclExecutor = Kysely<AclDatabase>;
export type AclTx = Transaction<AclDatabase>;

/** The same connection or transaction, typed with the ACL tables (the migration guarantees them). */
export const aclDb = (db: unknown): AclExecutor => db as AclExecutor;

export type AclListRow = NetworkAclListsTable & { id: number; for_display: number };
export type AclItemRow = NetworkAclItemsTable & { id: number; for_display: number };
