/** Input rules of deployVirtualMachine / updateVirtualMachine / addNicToVirtualMachine, pure. */
import { invalidParameter } from '../errors/catalogue.js';
import { formatMac, macZoneAndSequence, parseMac } from '../ipam/index.js';

/**
 * CloudStack's host name rule (UserVmManagerImpl.validateHostname / NetUtils.verifyDomainNameLabel): 1–63
 * characters, letters, digits and hyphens, starting with a letter, not ending with a hyphen.
 */
export function checkDnsLabel(param: string, v: string): string {
  if (!/^[a-zA-Z]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/.test(v)) {
    throw invalidParameter(
      param,
      v,
      'must be a DNS label: 1 to 63 letters, digits or hyphens, starting with a letter and not ending with a hyphen',
    );
  }
  return v;
}

/** CloudStack's vm.userdata.max.length default (32 KB of base64 since 4.x; GET requests carry 4 KB). */
export const USERDATA_MAX_LENGTH = 32768;

export function checkUserData(v: string): string {
  const s = v.replace(/\s+/g, '');
  if (s.length > USERDATA_MAX_LENGTH) {
    throw invalidParameter(
      'userdata',
      `${s.slice(0, 16)}…`,
      `is ${s.length} base64 characters; the limit is ${USERDATA_MAX_LENGTH} (vm.userdata.max.length)`,
    );
  }
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 === 1) {
    throw invalidParameter('userdata', `${s.slice(0, 16)}…`, 'is not valid base64');
  }
  return s;
}

/**
 * A NIC's MAC as a caller gives it (deployVirtualMachine `macaddress` / `iptonetworklist[n].mac`,
 * addNicToVirtualMachine `macaddress`). CloudStack accepts the forms of NetUtils.isValidMac (six hex pairs
 * separated by `:` or `-`), refuses a non-unicast one (isUnicastMac: the group bit, so multicast and broadcast),
 * and stores NetUtils.standardizeMacAddress's form (lower case, colons) — which is what makes the zone's
 * UNIQUE(zone_id, mac) see one spelling. Also refused: the all-zero MAC, and MACs of the layout this server
 * generates for the zone's NICs and routers (ipam/mac.ts), or a later generated one would collide with it.
 * A MAC the router cannot serve would otherwise reach its agent, which sets the entry aside (quarantine).
 */
export function checkMacAddress(
  param: string,
  value: string | undefined,
  zoneId: number,
): string | undefined {
  if (value === undefined) return undefined;
  const mac = parseMac(value, param);
  if (mac === 0n) throw invalidParameter(param, value, 'the all-zero MAC cannot be assigned to a NIC');
  if (macZoneAndSequence(mac)?.zoneId === zoneId) {
    throw invalidParameter(
      param,
      value,
      "is in the range the server generates for this zone's NICs and routers; choose another MAC or leave it out",
    );
  }
  return formatMac(mac);
}
