import { invalidParameter } from '../errors/catalogue.js';

export type Family = 4 | 6;

/** An address parsed once at the edge; `value` is the unsigned integer of the address. */
export interface IpAddress {
  family: Family;
  value: bigint;
}

export const familyBits = (family: Family): number => (family === 4 ? 32 : 128);

export const maxValue = (family: Family): bigint => (1n << BigInt(familyBits(family))) - 1n;

export const ipAddress = (family: Family, value: bigint): IpAddress => {
  if (value < 0n || value > maxValue(family)) {
    throw new RangeError(`value ${value} is outside the IPv${family} address space`);
  }
  return { family, value };
};

const IPV4_OCTET = /^(0|[1-9][0-9]{0,2})$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

/** Returns the value, or a reason why `text` is not a strict dotted quad. */
function parseIpv4Value(text: string): bigint | string {
  const parts = text.split('.');
  // inet_aton accepts "10.1", "10.0.0.010" (octal) and "0x0a.0.0.1"; CloudStack's NetUtils.isValidIp4 does not,
  // and a value that means different things to different tools must not enter the database.
  if (parts.length !== 4) return 'an IPv4 address has four dot-separated decimal octets';
  let value = 0n;
  for (const part of parts) {
    if (!IPV4_OCTET.test(part)) {
      return /^0[0-9]+$/.test(part)
        ? `octet '${part}' has a leading zero (octal notation is not accepted)`
        : `octet '${part}' is not a decimal number from 0 to 255`;
    }
    const n = Number(part);
    if (n > 255) return `octet '${part}' is greater than 255`;
    value = (value << 8n) | BigInt(n);
  }
  return value;
}

function parseIpv6Value(text: string): bigint | string {
  if (text.includes('%')) return 'zone identifiers (%...) are not accepted in stored addresses';
  if (text.includes('/')) return 'a prefix length is not allowed here';
  const halves = text.split('::');
  if (halves.length > 2) return "'::' may appear only once";
  const groupsOf = (s: string): string[] | string => {
    if (s === '') return [];
    const raw = s.split(':');
    const out: string[] = [];
    for (let i = 0; i < raw.length; i++) {
      const g = raw[i] ?? '';
      if (g === '') return 'empty group (a single ":" where "::" or a hex group was expected)';
      out.push(g);
    }
    return out;
  };
  const head = groupsOf(halves[0] ?? '');
  if (typeof head === 'string') return head;
  const tail = halves.length === 2 ? groupsOf(halves[1] ?? '') : [];
  if (typeof tail === 'string') return tail;
  const all = [...head, ...tail];
  const words: number[] = [];
  for (let i = 0; i < all.length; i++) {
    const g = all[i] ?? '';
    if (g.includes('.')) {
      if (i !== all.length - 1 || (halves.length === 2 && tail.length === 0)) {
        return 'an embedded IPv4 address may only be the last part';
      }
      const v4 = parseIpv4Value(g);
      if (typeof v4 === 'string') return `embedded IPv4 '${g}': ${v4}`;
      words.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
      continue;
    }
    if (!HEX_GROUP.test(g)) return `group '${g}' is not 1 to 4 hexadecimal digits`;
    words.push(parseInt(g, 16));
  }
  const headWords = words.length - (tail.length === 0 ? 0 : countWords(tail));
  if (halves.length === 2) {
    // '::' stands for at least one zero group (RFC 4291 2.2).
    if (words.length > 7) return "too many groups for '::' to stand for any zero group";
    const zeros = new Array<number>(8 - words.length).fill(0);
    words.splice(headWords, 0, ...zeros);
  } else if (words.length !== 8) {
    return `an IPv6 address has 8 groups (or '::'), this has ${words.length}`;
  }
  let value = 0n;
  for (const w of words) value = (value << 16n) | BigInt(w);
  return value;
}

const countWords = (groups: string[]): number => groups.reduce((n, g) => n + (g.includes('.') ? 2 : 1), 0);

/**
 * Parses an IPv4 (strict dotted quad) or IPv6 (RFC 4291 text, any case, `::`, embedded IPv4) address.
 * Malformed input is an InvalidParameterValue naming `param`.
 */
export function parseIp(text: string, param = 'ipaddress'): IpAddress {
  if (typeof text !== 'string' || text.length === 0) {
    throw invalidParameter(param, text, 'an IP address is required');
  }
  if (text.length > 64 || /\s/.test(text)) {
    throw invalidParameter(param, text, 'not an IP address');
  }
  if (text.includes(':')) {
    const v = parseIpv6Value(text);
    if (typeof v === 'string') throw invalidParameter(param, text, `not a valid IPv6 address: ${v}`);
    return { family: 6, value: v };
  }
  const v = parseIpv4Value(text);
  if (typeof v === 'string') throw invalidParameter(param, text, `not a valid IPv4 address: ${v}`);
  return { family: 4, value: v };
}

/** Parses and requires the given family. */
export function parseIpOf(family: Family, text: string, param = 'ipaddress'): IpAddress {
  const a = parseIp(text, param);
  if (a.family !== family) throw invalidParameter(param, text, `an IPv${family} address is required here`);
  return a;
}

export const isIpv4 = (text: string): boolean => typeof parseIpv4Value(text) === 'bigint';

export const isIpv6 = (text: string): boolean =>
  typeof text === 'string' && text.includes(':') && typeof parseIpv6Value(text) === 'bigint';

export const isIp = (text: string): boolean => isIpv4(text) || isIpv6(text);

function formatIpv4Value(v: bigint): string {
  // The low 32 bits as a number, its octets by number arithmetic: a list page formats 500 of these, and four
  // BigInt shifts, masks and strings joined from an array were three times the time.
  const n = Number(v & 0xffffffffn);
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** IPv4 dotted quad; IPv6 in RFC 5952 canonical form (IPv4-mapped as ::ffff:a.b.c.d). */
export function formatIp(a: IpAddress): string {
  if (a.family === 4) return formatIpv4Value(a.value);
  const v = a.value;
  if (v >> 32n === 0xffffn) return `::ffff:${formatIpv4Value(v & 0xffffffffn)}`;
  const words: number[] = [];
  for (let i = 7; i >= 0; i--) words.push(Number((v >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952 4.2: compress the longest run of two or more zero groups, the first one on ties.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (ws: number[]) => ws.map((w) => w.toString(16)).join(':');
  if (bestStart < 0) return hex(words);
  return `${hex(words.slice(0, bestStart))}::${hex(words.slice(bestStart + bestLen))}`;
}

/** Formats a value of the given family (shorthand for formatIp({ family, value })). */
export const formatValue = (family: Family, value: bigint): string => formatIp({ family, value });

/**
 * Fixed-width (32 lowercase hex digits) key for both families, so that string order in SQL is numeric order.
 * The family is stored in its own column: IPv4 1.2.3.4 and IPv6 ::1.2.3.4 have the same key.
 */
export const addressKey = (a: IpAddress): string => valueKey(a.value);

export const valueKey = (value: bigint): string => {
  if (value < 0n || value > maxValue(6)) throw new RangeError(`value ${value} does not fit in 128 bits`);
  return value.toString(16).padStart(32, '0');
};

const KEY = /^[0-9a-f]{32}$/;

export function addressFromKey(family: Family, key: string): IpAddress {
  if (!KEY.test(key)) throw new RangeError(`'${key}' is not a 32-digit lowercase hex address key`);
  return ipAddress(family, BigInt(`0x${key}`));
}

export const compareValues = (a: bigint, b: bigint): number => (a < b ? -1 : a > b ? 1 : 0);

export const compareIp = (a: IpAddress, b: IpAddress): number =>
  a.family !== b.family ? a.family - b.family : compareValues(a.value, b.value);

export const sameIp = (a: IpAddress, b: IpAddress): boolean => a.family === b.family && a.value === b.value;
