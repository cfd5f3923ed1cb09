/**
 * What an allocation is: the request a service makes (scope, pool, strategy, owner), the allocation it gets back,
 * and the allocation read back from its ip_allocations row. address-service.ts allocates and reads them;
 * allocation-search.ts finds and inserts a free address; both share these shapes.
 */
import { addressFromKey, formatIp } from '../ipam/index.js';
import type { Family, IpAddress, IpRange, RandomBigInt, RangeSet, Strategy } from '../ipam/index.js';
import type { AllocationRow, NewAllocationRow } from './address-repository.js';
import type { AllocationState } from './tables.js';

export interface AllocationOwner {
  /** 'nic', 'publicip', 'router', ... */
  kind: string;
  id?: number | null;
}

export interface AllocateRequest {
  /** `net:<networkId>` for guest addresses, `pub:<zoneId>` for public ones. */
  scope: string;
  /** Where addresses may come from (its family is the allocation's family). */
  pool: RangeSet;
  /** Default 'lowest'. */
  strategy?: Strategy;
  /** A specific address (deployVirtualMachine ipaddress=, associateIpAddress ipaddress=, ...). */
  requested?: IpAddress;
  /** The API parameter `requested` came from, named in errors (default 'ipaddress'). */
  requestedParam?: string;
  /** Never handed out; a requested address here is refused as excluded. */
  exclude?: RangeSet | readonly IpRange[] | readonly IpAddress[];
  /** Never handed out; a requested one is refused naming it as such. */
  gateway?: IpAddress;
  network?: IpAddress;
  broadcast?: IpAddress;
  /** Default 'Allocated'. */
  state?: 'Allocating' | 'Allocated' | 'Reserved';
  owner?: AllocationOwner;
  zoneId?: number | null;
  accountId?: number | null;
  domainId?: number | null;
  networkId?: number | null;
  vpcId?: number | null;
  vmId?: number | null;
  sourceNat?: boolean;
  isSystem?: boolean;
  /**
   * The row's API id, derived from the chosen address (public IPs: public-ips/ids.ts), and its display flag
   * (default shown): inserted with the row, so the caller need not set them by an UPDATE after it.
   */
  uuidOf?: (value: bigint) => string;
  forDisplay?: boolean;
  /**
   * Inside a caller's transaction: the caller's own statement for the INSERT of the first candidate, one that
   * writes more with the row in the same round trip (PostgreSQL: data-modifying CTEs on its RETURNING, e.g. the
   * address's event). As insertAllocationRow: the new row's id, or null when the address is taken (no error).
   */
  insertOwn?: (row: NewAllocationRow) => Promise<number | null>;
  /** The range row the address belongs to: fixed, or computed from the chosen value (several ranges). */
  rangeId?: number | null | ((value: bigint) => number | null);
  /**
   * A requested address Reserved by this account is taken over instead of refused as in use (CloudStack's
   * allocateIp with an explicit address first looks for the caller's Reserved row).
   */
  claimReservedBy?: number;
  /** Says what ran out in the 533 message, e.g. "zone zone1 has no free public IPv4 address". */
  exhaustedMessage?: string;
  /** CloudStack's uuidList of the exhaustion error (the zone, pod or network). */
  uuidList?: string[];
  /** Uniform random source (tests pass a seeded one). */
  randomBigInt?: RandomBigInt;
  now?: number;
}

export interface Allocation {
  id: number;
  scope: string;
  address: IpAddress;
  /** Canonical text (RFC 5952 for IPv6). */
  ip: string;
  /** The stored addressKey. */
  key: string;
  state: AllocationState;
  rangeId: number | null;
  ownerKind: string | null;
  ownerId: number | null;
  zoneId: number | null;
  accountId: number | null;
  domainId: number | null;
  networkId: number | null;
  vpcId: number | null;
  vmId: number | null;
  sourceNat: boolean;
  isSystem: boolean;
  created: number;
  updated: number;
  /** How many candidates this call lost to concurrent callers before it got this one (0 when read back). */
  lostRaces: number;
  /**
   * Set when the row was inserted by this call with AllocateRequest.uuidOf: the id and display flag it holds.
   * Unset for a row read back or taken over from a reservation (whose own columns were left as they were).
   */
  inserted?: { uuid: string; forDisplay: boolean };
}

/** The columns of ip_allocations this module owns (later migrations add more). */
export type AllocationCoreRow = Pick<
  AllocationRow,
  | 'id'
  | 'scope'
  | 'family'
  | 'address'
  | 'range_id'
  | 'state'
  | 'owner_kind'
  | 'owner_id'
  | 'zone_id'
  | 'account_id'
  | 'domain_id'
  | 'network_id'
  | 'vpc_id'
  | 'vm_id'
  | 'source_nat'
  | 'is_system'
  | 'created'
  | 'updated'
>;

export function allocationFromRow(r: AllocationCoreRow): Allocation {
  const address = addressFromKey(r.family as Family, r.address);
  return {
    id: Number(r.id),
    scope: r.scope,
    address,
    ip: formatIp(address),
    key: r.address,
    state: r.state,
    rangeId: num(r.range_id),
    ownerKind: r.owner_kind,
    ownerId: num(r.owner_id),
    zoneId: num(r.zone_id),
    accountId: num(r.account_id),
    domainId: num(r.domain_id),
    networkId: num(r.network_id),
    vpcId: num(r.vpc_id),
    vmId: num(r.vm_id),
    sourceNat: Number(r.source_nat) === 1,
    isSystem: Number(r.is_system) === 1,
    created: Number(r.created),
    updated: Number(r.updated),
    lostRaces: 0,
  };
}

export const num = (v: number | null): number | null => (v === null || v === undefined ? null : Number(v));
