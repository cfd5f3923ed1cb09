/**
 * Tables of the networking API (migration 0003-networking), and the columns it adds to the IPAM tables of
 * 0001. Those extra columns are not merged into store/schema.ts's Database (src/addresses builds whole rows of
 * its tables and must not need to know them); networking code sees them through NetDatabase / netDb().
 */
import type { ColumnType, Generated } from 'kysely';

type Defaulted<T> = ColumnType<T, T | undefined, T>;

/** Columns 0003 adds to ip_allocations (public IP API). */
export interface IpAllocationsNetworkingColumns {
  /** The public IP's API id (listPublicIpAddresses id); set for public and portable allocations. */
  uuid: string | null;
  /** enableStaticNat: the address is one-to-one NATed to vm_id / vm_ip. */
  static_nat: Defaulted<number>;
  vm_ip: string | null;
  for_display: Defaulted<number>;
}

/** Columns 0003 adds to networks. */
export interface NetworksNetworkingColumns {
  /** 'Account' (isolated, VPC tiers) or 'Domain' (shared). */
  acl_type: string | null;
  restart_required: Defaulted<number>;
  dns1: string | null;
  dns2: string | null;
  /** The VLAN was given by the admin (createNetwork vlan=): shutdown keeps it. */
  specify_vlan: Defaulted<number>;
  /** A VPC tier's network ACL list (migration 0017, src/network-acls); NULL = none assigned yet. */
  network_acl_id: Defaulted<number | null>;
}

/** Columns 0003 adds to physical_networks. */
export interface PhysicalNetworksNetworkingColumns {
  network_speed: string | null;
  domain_id: number | null;
}

export interface TrafficTypesTable {
  id: Generated<number>;
  uuid: string;
  physical_network_id: number;
  traffic_type: string;
  kvm_label: string | null;
  xen_label: string | null;
  vmware_label: string | null;
  hyperv_label: string | null;
  ovm3_label: string | null;
  vlan: string | null;
  created: number;
}

export interface NetworkOfferingsTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  display_text: string;
  guest_ip_type: string;
  traffic_type: Defaulted<string>;
  /** `Dhcp:VirtualRouter,Dns:VirtualRouter,...` (offerings/defaults.ts encodeServices). */
  services: Defaulted<string>;
  for_vpc: Defaulted<number>;
  specify_vlan: Defaulted<number>;
  specify_ip_ranges: Defaulted<number>;
  is_persistent: Defaulted<number>;
  conserve_mode: Defaulted<number>;
  egress_default_policy: Defaulted<number>;
  availability: Defaulted<string>;
  state: Defaulted<string>;
  is_default: Defaulted<number>;
  network_rate: number | null;
  tags: string | null;
  /** 'IPv4' or 'DualStack' (0010; createNetworkOffering internetprotocol=). */
  internet_protocol: Defaulted<string>;
  created: number;
  removed: number | null;
}

export interface VpcOfferingsTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  display_text: string;
  services: Defaulted<string>;
  state: Defaulted<string>;
  is_default: Defaulted<number>;
  created: number;
}

export interface ServiceOfferingsTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  display_text: string;
  cpu_number: number;
  cpu_speed: number;
  memory: number;
  created: number;
}

export interface TemplatesTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  display_text: string;
  os_type_name: string;
  format: string;
  hypervisor: string;
  template_type: string;
  password_enabled: Defaulted<number>;
  is_public: Defaulted<number>;
  is_featured: Defaulted<number>;
  created: number;
  /** Where a host fetches it (0021): `file://` or `http(s)://`; NULL: `stacknet.template.default.url`. */
  url: ColumnType<string | null, string | null | undefined, string | null>;
  checksum: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface VpcsTable {
  id: Generated<number>;
  uuid: string;
  zone_id: number;
  account_id: number;
  domain_id: number;
  name: string;
  display_text: string | null;
  cidr: string;
  vpc_offering_id: number;
  network_domain: string | null;
  /** Enabled | Inactive, as CloudStack's Vpc.State. */
  state: string;
  restart_required: Defaulted<number>;
  dns1: string | null;
  dns2: string | null;
  created: number;
  removed: number | null;
}

export interface PortableIpRangesTable {
  id: Generated<number>;
  uuid: string;
  region_id: number;
  gateway: string;
  netmask: string;
  start_key: string;
  end_key: string;
  vlan_tag: string | null;
  created: number;
}

export interface NetworkServiceProvidersTable {
  id: Generated<number>;
  uuid: string;
  physical_network_id: number;
  provider_name: string;
  /** Enabled | Disabled, as CloudStack's PhysicalNetworkServiceProvider.State. */
  state: string;
  destination_physical_network_id: number | null;
  /** Comma-separated service names. */
  services: string;
  created: number;
}

/** A span of a physical network's VLANs dedicated to one account (0010; CloudStack's account_guest_vlan_map). */
export interface DedicatedGuestVlanRangesTable {
  id: Generated<number>;
  uuid: string;
  physical_network_id: number;
  account_id: number;
  vnet_start: number;
  vnet_end: number;
  created: number;
}

/** A zone's guest IPv6 prefix (0010; CloudStack's dc_ip6_guest_prefix). */
export interface GuestIpv6PrefixesTable {
  id: Generated<number>;
  uuid: string;
  zone_id: number;
  /** Canonical CIDR text, e.g. `fd17:ac56:1234::/56`. */
  prefix: string;
  created: number;
}

/** A /64 of a prefix held by a network (0010; CloudStack's ip6_guest_prefix_subnet_network_map). */
export interface GuestIpv6SubnetsTable {
  id: Generated<number>;
  prefix_id: number;
  /** The subnet's network address as a 32-hex-digit key (ipam/address valueKey): sortable, unique per prefix. */
  subnet_key: string;
  subnet: string;
  network_id: number | null;
  zone_id: number;
  created: number;
}

export interface NetworkingTables {
  dedicated_guest_vlan_ranges: DedicatedGuestVlanRangesTable;
  guest_ipv6_prefixes: GuestIpv6PrefixesTable;
  guest_ipv6_subnets: GuestIpv6SubnetsTable;
  traffic_types: TrafficTypesTable;
  network_offerings: NetworkOfferingsTable;
  vpc_offerings: VpcOfferingsTable;
  service_offerings: ServiceOfferingsTable;
  templates: TemplatesTable;
  vpcs: VpcsTable;
  portable_ip_ranges: PortableIpRangesTable;
  network_service_providers: NetworkServiceProvidersTable;
}

import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../store/schema.js';
import type { IpAllocationsTable, NetworksTable, PhysicalNetworksTable } from '../addresses/tables.js';

/** The database as networking code sees it: Database plus the columns 0003 added to the IPAM tables. */
export interface NetDatabase extends Omit<Database, 'ip_allocations' | 'networks' | 'physical_networks'> {
  ip_allocations: IpAllocationsTable & IpAllocationsNetworkingColumns;
  networks: NetworksTable & NetworksNetworkingColumns;
  physical_networks: PhysicalNetworksTable & PhysicalNetworksNetworkingColumns;
}

export type NetExecutor = Kysely<NetDatabase>;
export type NetTx = Transaction<NetDatabase>;

/** The same connection/transaction, typed with the networking columns (the migration guarantees them). */
export const netDb = <T extends Kysely<Database>>(
  db: T,
): T extends Transaction<Database> ? NetTx : NetExecutor => db as never;
