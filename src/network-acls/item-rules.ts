/**
 * The pure checks of a network ACL item, in CloudStack's order and words (NetworkACLServiceImpl
 * validateNetworkACLItem: ports, then CIDRs, then protocol and ICMP), and the parsing of action and traffic type.
 * Imports nothing from the database.
 */
import { CloudStackError } from '../errors/catalogue.js';
import { parseCidr } from '../ipam/cidr.js';

export interface ItemFields {
  protocol: string;
  startPort: number | null;
  endPort: number | null;
  icmpType: number | null;
  icmpCode: number | null;
  cidrs: string[];
}

const invalid = (message: string) => new CloudStackError('InvalidParameterValue', message);
const SUPPORTED = 'tcp,udp,icmp,all';

/** CloudStack's NetworkACLItem.Action: 'Allow' unless the word is 'deny' (any case); absent = Allow. */
export function parseAction(action: string | undefined): 'Allow' | 'Deny' {
  if (action === undefined) return 'Allow';
  if (!/^(allow|deny)$/i.test(action))
    throw invalid(`Invalid action [${action}]. Permitted actions are Allow and Deny`);
  return action.toLowerCase() === 'deny' ? 'Deny' : 'Allow';
}

/** CreateNetworkACLCmd.getTrafficType: ingress (the default) or egress, any case. */
export function parseTrafficType(t: string | undefined): 'Ingress' | 'Egress' {
  if (t === undefined || t === '') return 'Ingress';
  if (/^ingress$/i.test(t)) return 'Ingress';
  if (/^egress$/i.test(t)) return 'Egress';
  throw invalid(`Invalid traffic type ${t}`);
}

export function checkNumber(n: number): void {
  if (n < 1) throw invalid(`Invalid number [${n}]. Number cannot be < 1`);
}

/** An absent or empty cidrlist means anywhere, as CloudStack's getSourceCidrList. */
export function cidrsOrAny(cidrs: string[] | undefined): string[] {
  const list = (cidrs ?? []).map((c) => c.trim()).filter((c) => c !== '');
  return list.length ? list : ['0.0.0.0/0'];
}

/** The ICMP type and code CloudStack stores for an ICMP item left without them: -1, any. */
export function icmpDefaults(f: ItemFields): ItemFields {
  if (f.protocol !== 'icmp') return f;
  return { ...f, icmpType: f.icmpType ?? -1, icmpCode: f.icmpCode ?? -1 };
}

const validPort = (p: number | null): p is number =>
  p !== null && Number.isInteger(p) && p >= 0 && p <= 65535;

export function validateItem(f: ItemFields): void {
  // validateSourceStartAndEndPorts
  if (f.startPort !== null || f.endPort !== null) {
    if (!validPort(f.startPort)) throw invalid(`Start public port is an invalid value: ${f.startPort}`);
    if (!validPort(f.endPort)) throw invalid(`End public port is an invalid value: ${f.endPort}`);
    if (f.startPort > f.endPort)
      throw invalid(
        `Start port can't be bigger than end port [startport=${f.startPort},endport=${f.endPort}]`,
      );
    if (f.protocol === 'all') throw invalid("start port and end port must be null if protocol = 'all'");
  }
  // validateSourceCidrList: IPv4 or IPv6 CIDRs (CloudStack answers this one as a PARAM_ERROR, also 431)
  for (const c of f.cidrs) {
    try {
      parseCidr(c, 'cidrlist');
    } catch {
      throw invalid(`Source cidrs formatting error ${c}`);
    }
  }
  // validateProtocol
  if (/^[0-9]+$/.test(f.protocol)) {
    const n = Number(f.protocol);
    if (n > 255) throw invalid(`Invalid protocol number: ${n}`);
  } else if (!SUPPORTED.split(',').includes(f.protocol)) {
    throw invalid(`Invalid protocol [${f.protocol}]. Expected one of: [${SUPPORTED}]`);
  }
  const icmp = f.protocol === 'icmp';
  if (!icmp && (f.icmpCode !== null || f.icmpType !== null))
    throw invalid('Can specify icmpCode and icmpType for ICMP protocol only');
  if (icmp && (f.startPort !== null || f.endPort !== null))
    throw invalid("Can't specify start/end port when protocol is ICMP");
  // validateIcmpTypeAndCode
  if (f.icmpType === null) return;
  if (f.icmpType !== -1 && (f.icmpType < 0 || f.icmpType > 255))
    throw invalid(`Invalid icmp type [${f.icmpType}]. It should belong to [0-255] range`);
  if (f.icmpCode !== null && f.icmpCode !== -1 && (f.icmpCode < 0 || f.icmpCode > 16))
    throw invalid(
      `Invalid icmp code [${f.icmpCode}]. It should belong to [0-16] range and can be defined when icmpType belongs to [0-40] range`,
    );
}
