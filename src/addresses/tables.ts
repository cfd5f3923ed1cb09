/**
 * The IPAM tables as Kysely sees them (migration 0001-ipam creates them). Conventions from
 * store/migrations/helpers.ts: ids are numbers, times epoch ms (BIGINT), booleans SMALLINT 0/1, addresses
 * stored as `addressKey` (32 lowercase hex digits, fixed width, so string order is numeric order).
 *
 * account_id / domain_id are plain nullable numbers: accounts and domains belong to the API's migration, and
 * the IPAM tables must not depend on them.
 */
import type { ColumnType, Generated } from 'kysely';

/** A column the database fills on insert (defaults) but that reads as T. */
type Defaulted<T> = ColumnType<T, T | undefined, T>;

export type AllocationState = 'Allocating' | 'Allocated' | 'Releasing' | 'Reserved';
export type IsolationMethod = 'VLAN' | 'VXLAN';
export type VlanType = 'VirtualNetwork' | 'DirectAttached';
export type NetworkType = 'Isolated' | 'Shared' | 'L2';

export interface StacknetMetaTable {
  name: string;
  value: string;
}

export interface ZonesTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  description: string | null;
  dns1: string | null;
  dns2: string | null;
  internaldns1: string | null;
  internaldns2: string | null;
  ip6dns1: string | null;
  ip6dns2: string | null;
  guest_cidr: string | null;
  domain: string | null;
  /** Only 'Advanced' zones exist in stacknet; kept because listZones reports it. */
  network_type: Defaulted<string>;
  allocation_state: Defaulted<string>;
  created: number;
  removed: number | null;
}

export interface PodsTable {
  id: Generated<number>;
  uuid: string;
  zone_id: number;
  name: string;
  gateway: string;
  netmask: string;
  /** The pod's management (private) range, as CloudStack's startip/endip. */
  start_ip: string;
  end_ip: string | null;
  allocation_state: Defaulted<string>;
  created: number;
  removed: number | null;
}

export interface PhysicalNetworksTable {
  id: Generated<number>;
  uuid: string;
  zone_id: number;
  name: string;
  isolation: IsolationMethod;
  /** CloudStack creates physical networks Disabled; updatePhysicalNetwork state=Enabled turns them on. */
  state: Defaulted<string>;
  tags: string | null;
  created: number;
  removed: number | null;
}

export interface VnetRangesTable {
  id: Generated<number>;
  physical_network_id: number;
  vnet_start: number;
  vnet_end: number;
}

/** Sparse like ip_allocations: a row exists only while the VLAN/VNI is taken. */
export interface VnetAllocationsTable {
  id: Generated<number>;
  zone_id: number;
  physical_network_id: number;
  vnet: number;
  network_id: number | null;
  account_id: number | null;
  taken: number;
}

/** CloudStack's `vlan` table: one public (VirtualNetwork) or shared-network (DirectAttached) range. */
export interface PublicIpRangesTable {
  id: Generated<number>;
  uuid: string;
  zone_id: number;
  physical_network_id: number | null;
  /** 'vlan://100', 'vxlan://5000' or 'untagged', as CloudStack's vlan.vlan_id. */
  vlan_tag: string;
  gateway: string | null;
  netmask: string | null;
  /** Family of start_key/end_key. A dual-stack range adds the ip6_* columns to an IPv4 range. */
  family: number;
  start_key: string | null;
  end_key: string | null;
  ip6_gateway: string | null;
  ip6_cidr: string | null;
  ip6_start_key: string | null;
  ip6_end_key: string | null;
  vlan_type: VlanType;
  /** The shared network a DirectAttached range belongs to. */
  network_id: number | null;
  /** dedicatePublicIpRange: at most one of these is set. */
  account_id: number | null;
  domain_id: number | null;
  for_system_vms: Defaulted<number>;
  created: number;
  removed: number | null;
}

export interface NetworksTable {
  id: Generated<number>;
  uuid: string;
  zone_id: number;
  physical_network_id: number | null;
  account_id: number | null;
  domain_id: number | null;
  name: string;
  display_text: string | null;
  type: NetworkType;
  state: string;
  /** The range VMs get addresses from (CloudStack's `cidr`, narrowed by guestvmcidr). */
  cidr: string | null;
  gateway: string | null;
  netmask: string | null;
  /** Set when a reservation (guestvmcidr) narrowed `cidr`: the original full CIDR. */
  network_cidr: string | null;
  ip6_cidr: string | null;
  ip6_gateway: string | null;
  network_domain: string | null;
  vnet: number | null;
  vpc_id: number | null;
  offering_id: number | null;
  created: number;
  removed: number | null;
}

/**
 * THE address table: a row exists exactly while an address is not Free (absence of the row is Free), and
 * UNIQUE(scope, family, address) is what makes a second hand-out of one address impossible.
 */
export interface IpAllocationsTable {
  id: Generated<number>;
  /** `net:<networkId>` for guest addresses, `pub:<zoneId>` for public ones, ... */
  scope: string;
  family: number;
  /** addressKey(): 32 lowercase hex digits. */
  address: string;
  range_id: number | null;
  state: AllocationState;
  /** What holds the address: 'nic', 'publicip', 'router', ... and its id. */
  owner_kind: string | null;
  owner_id: number | null;
  zone_id: number | null;
  account_id: number | null;
  domain_id: number | null;
  network_id: number | null;
  vpc_id: number | null;
  vm_id: number | null;
  source_nat: Defaulted<number>;
  is_system: Defaulted<number>;
  created: number;
  updated: number;
}

/** Per-zone counter from which MAC addresses are derived (ipam/mac.ts), so two NICs never share a MAC. */
export interface MacSequencesTable {
  zone_id: number;
  next_value: number;
}

export interface IpamTables {
  stacknet_meta: StacknetMetaTable;
  zones: ZonesTable;
  pods: PodsTable;
  physical_networks: PhysicalNetworksTable;
  vnet_ranges: VnetRangesTable;
  vnet_allocations: VnetAllocationsTable;
  public_ip_ranges: PublicIpRangesTable;
  networks: NetworksTable;
  ip_allocations: IpAllocationsTable;
  mac_sequences: MacSequencesTable;
}
