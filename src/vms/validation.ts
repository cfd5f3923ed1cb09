/** Input rules of deployVirtualMachine / updateVirtualMachine, pure. */
import { invalidParameter } from '../errors/catalogue.js';

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
