// Placeholder until the store work lands: the IPAM tables (zones, physical networks, vnets, ranges,
// networks, ip_allocations) are declared here.
export interface IpamTables {
  stacknet_meta: { name: string; value: string };
}
