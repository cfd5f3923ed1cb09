/** The `scope` of ip_allocations rows, per the convention of src/addresses (UNIQUE(scope, family, address)). */
export const publicScope = (zoneId: number): string => `pub:${zoneId}`;
export const guestScope = (networkId: number): string => `net:${networkId}`;
/** Portable IPs are region-wide: one scope per region, whatever zone they are associated in. */
export const portableScope = (regionId: number): string => `portable:${regionId}`;
export const podScope = (podId: number): string => `pod:${podId}`;
