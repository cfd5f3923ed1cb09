/**
 * A public address keeps one id whether it is Free (no row) or taken (a row), as CloudStack's
 * user_ip_address rows do: the id is derived from the address and its scope, and an allocation row stores it.
 * So `listPublicIpAddresses allocatedonly=false` can show Free addresses with ids that `reserveIpAddress id=`
 * accepts, without a row per free address.
 */
import type { Family } from '../ipam/address.js';

const KIND = { pub: 'f1ee', portable: 'f2ee' } as const;
export type PublicScopeKind = keyof typeof KIND;

const hex = (n: bigint | number, width: number): string => n.toString(16).padStart(width, '0');

/** `f1ee<zone>-0000-4000-8004-<address>` (IPv4 only: public IPv6 addresses are per-range, not pooled here). */
export function publicIpUuid(kind: PublicScopeKind, scopeId: number, family: Family, value: bigint): string {
  if (family !== 4) throw new RangeError('public IP ids are derived for IPv4 addresses only');
  return `${KIND[kind]}${hex(scopeId, 4)}-0000-4000-8004-${hex(value, 12)}`;
}

export interface DecodedPublicIpUuid {
  kind: PublicScopeKind;
  scopeId: number;
  family: Family;
  value: bigint;
}

/** The inverse of publicIpUuid for IPv4 ids; undefined for anything else. */
export function decodePublicIpUuid(uuid: string): DecodedPublicIpUuid | undefined {
  const m = /^(f1ee|f2ee)([0-9a-f]{4})-0000-4000-8004-([0-9a-f]{12})$/.exec(uuid.toLowerCase());
  if (!m) return undefined;
  return {
    kind: m[1] === 'f1ee' ? 'pub' : 'portable',
    scopeId: parseInt(m[2]!, 16),
    family: 4,
    value: BigInt(`0x${m[3]!}`),
  };
}
