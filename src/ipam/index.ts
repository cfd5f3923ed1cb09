export type { Family, IpAddress } from './address.js';
export {
  addressFromKey,
  addressKey,
  compareIp,
  compareValues,
  familyBits,
  formatIp,
  formatValue,
  ipAddress,
  isIp,
  isIpv4,
  isIpv6,
  maxValue,
  parseIp,
  parseIpOf,
  sameIp,
  valueKey,
} from './address.js';
export type { Cidr, ParseCidrOptions } from './cidr.js';
export {
  broadcastAddress,
  checkGatewayInCidr,
  cidrContains,
  cidrContainsCidr,
  cidrEquals,
  cidrFromGatewayAndNetmask,
  cidrSize,
  cidrsOverlap,
  firstHost,
  formatCidr,
  hostCount,
  hostMask,
  lastHost,
  makeCidr,
  netmaskToPrefix,
  networkAddress,
  parseCidr,
  prefixMask,
  prefixToNetmask,
} from './cidr.js';
export type { IpRange } from './range.js';
export {
  checkRangeInsideCidr,
  cidrToRange,
  formatRange,
  parseRange,
  RangeSet,
  rangeContains,
  rangeInsideCidr,
  rangeOverlapsCidr,
  rangeSize,
  rangesOverlap,
} from './range.js';
export type {
  Direction,
  FetchTaken,
  FetchTakenAsync,
  FindFreeOptions,
  RandomBigInt,
  StartPoint,
  Strategy,
  ValidateRequestedOptions,
  WindowResult,
} from './choose.js';
export {
  findFree,
  findFreeAsync,
  firstFreeInWindow,
  randomBigIntFrom,
  startPoint,
  validateRequested,
} from './choose.js';
export { MemoryAllocator } from './memory-allocator.js';
export type { ParseMacOptions } from './mac.js';
export {
  duidLL,
  eui64InterfaceId,
  formatMac,
  MAC_SEQUENCE_BITS,
  MAC_ZONE_BITS,
  MAX_MAC_SEQUENCE,
  MAX_MAC_ZONE,
  macFromSequence,
  macZoneAndSequence,
  parseMac,
  slaacAddress,
} from './mac.js';
export { seededRng } from './seeded-rng.js';
