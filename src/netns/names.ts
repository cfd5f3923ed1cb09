import { randomBytes } from 'node:crypto';

/**
 * Every namespace, bridge and veth this toolkit creates starts with this, so a cleanup command can find ours
 * (and only ours), and a random suffix per test run keeps parallel test files from colliding.
 */
export const NAME_PREFIX = 'sn-';

/** Linux interface names are at most 15 bytes (IFNAMSIZ - 1). */
export const MAX_IFNAME = 15;

const SUFFIX_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

/** `sn-` + `length` random lowercase letters/digits, e.g. `sn-k3x9qa`. */
export function newRunPrefix(length = 6): string {
  const bytes = randomBytes(length);
  let s = '';
  for (const b of bytes) s += SUFFIX_ALPHABET[b % SUFFIX_ALPHABET.length];
  return NAME_PREFIX + s;
}

/** Throws unless `name` is a valid interface name (1..15 chars, no '/', whitespace or ':'). */
export function assertIfname(name: string): string {
  if (name.length === 0 || name.length > MAX_IFNAME || !/^[A-Za-z0-9_.-]+$/.test(name)) {
    throw new Error(`invalid interface name '${name}': 1..${MAX_IFNAME} characters of [A-Za-z0-9_.-]`);
  }
  return name;
}

/** Throws unless `name` is a safe namespace name (it becomes a path under /run/netns and /etc/netns). */
export function assertNamespaceName(name: string): string {
  if (name.length === 0 || name.length > 64 || !/^[A-Za-z0-9_.-]+$/.test(name) || name.startsWith('.')) {
    throw new Error(`invalid namespace name '${name}': 1..64 characters of [A-Za-z0-9_.-]`);
  }
  return name;
}

/** A random locally administered unicast MAC (02:xx:...). */
export function randomMac(): string {
  const b = randomBytes(5);
  return ['02', ...[...b].map((x) => x.toString(16).padStart(2, '0'))].join(':');
}

/** Throws unless `mac` is six colon-separated hex octets; returns it lowercased. */
export function normalizeMac(mac: string): string {
  if (!/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(mac)) throw new Error(`invalid MAC address '${mac}'`);
  return mac.toLowerCase();
}
