/**
 * Pure checks of a rule's own parameters and of its conflicts with the rules already on its IP, with CloudStack's
 * wording where it has one (FirewallManagerImpl.validateFirewallRule / detectRulesConflict,
 * RulesManagerImpl.createPortForwardingRule). No I/O: the service reads the rows and calls these.
 */
import { CloudStackError, invalidParameter } from '../errors/catalogue.js';
import { cidrContainsCidr, formatCidr, parseCidr } from '../ipam/index.js';
import type { Cidr } from '../ipam/index.js';

export interface PortSpan {
  start: number;
  end: number;
}

/** `start`/`end` as given (end defaults to start); both 1–65535 and start ≤ end. Undefined when neither given. */
export function portSpan(
  start: number | undefined,
  end: number | undefined,
  names: [string, string],
): PortSpan | undefined {
  if (start === undefined && end === undefined) return undefined;
  if (start === undefined) throw invalidParameter(names[0], '', `${names[0]} is required with ${names[1]}`);
  const e = end ?? start;
  for (const [n, v] of [
    [names[0], start],
    [names[1], e],
  ] as const) {
    if (!Number.isInteger(v) || v < 1 || v > 65535)
      throw invalidParameter(n, v, `Invalid port range ${v}; a port is 1 to 65535`);
  }
  if (start > e)
    throw invalidParameter(names[1], e, `Start port can't be bigger than end port (${start} > ${e})`);
  return { start, end: e };
}

export const spanLength = (s: PortSpan): number => s.end - s.start + 1;

/** CloudStack: private and public ranges must be as long as each other, unless the private side is one port. */
export function checkPfRanges(pub: PortSpan, priv: PortSpan): void {
  if (spanLength(priv) !== 1 && spanLength(priv) !== spanLength(pub)) {
    throw invalidParameter(
      'privateendport',
      priv.end,
      `Private port and public port ranges have to be consistent: ${priv.start}-${priv.end} and ${pub.start}-${pub.end}`,
    );
  }
}

export type FwProtocol = 'tcp' | 'udp' | 'icmp' | 'all';

export function protocolOf(raw: string, allowed: readonly FwProtocol[]): FwProtocol {
  const p = raw.trim().toLowerCase();
  if (!(allowed as readonly string[]).includes(p))
    throw invalidParameter('protocol', raw, `Invalid protocol; one of ${allowed.join(', ')}`);
  return p as FwProtocol;
}

/** Ports only with tcp/udp, icmptype/icmpcode only with icmp (CloudStack validateFirewallRule). */
export function checkProtocolFields(
  protocol: FwProtocol,
  ports: PortSpan | undefined,
  icmp: { type?: number | undefined; code?: number | undefined },
): void {
  if ((icmp.type !== undefined || icmp.code !== undefined) && protocol !== 'icmp')
    throw invalidParameter(
      icmp.type !== undefined ? 'icmptype' : 'icmpcode',
      icmp.type ?? icmp.code,
      'Can specify icmpCode and icmpType for ICMP protocol only',
    );
  if (ports && (protocol === 'icmp' || protocol === 'all'))
    throw invalidParameter(
      'startport',
      ports.start,
      `Cannot specify start and end ports for protocol ${protocol}; ports are for tcp and udp only`,
    );
  for (const [n, v, max] of [
    ['icmptype', icmp.type, 255],
    ['icmpcode', icmp.code, 255],
  ] as const) {
    if (v !== undefined && v !== -1 && (v < 0 || v > max))
      throw invalidParameter(n, v, `must be -1 (any) or 0 to ${max}`);
  }
}

/** Each CIDR parsed (IPv4; host bits are normalised, as CloudStack's NetUtils.isValidIp4Cidr accepts them). */
export function parseCidrList(list: readonly string[] | undefined, param: string): Cidr[] {
  return (list ?? [])
    .map((c) => c.trim())
    .filter((c) => c !== '')
    .map((c) => parseCidr(c, param, { family: 4, strict: false }));
}

/**
 * Egress `cidrlist` must lie inside the guest network (CloudStack: "cidr ... is not within the network cidr"),
 * except 0.0.0.0/0, which CloudStack's CreateEgressFirewallRuleCmd lets through as "any source".
 */
export function checkInsideGuest(cidrs: readonly Cidr[], guest: Cidr, param: string): void {
  for (const c of cidrs) {
    if (formatCidr(c) === '0.0.0.0/0') continue;
    if (!cidrContainsCidr(guest, c))
      throw invalidParameter(
        param,
        formatCidr(c),
        `cidr ${formatCidr(c)} is not within the network cidr ${formatCidr(guest)}`,
      );
  }
}

/** An existing rule on the same IP, as detectRulesConflict sees it. */
export interface ExistingRule {
  uuid: string;
  purpose: 'Firewall' | 'PortForwarding' | 'LoadBalancing';
  protocol: string;
  start: number | null;
  end: number | null;
  /** The source CIDRs, sorted and joined: firewall rules conflict only when these share one. */
  cidrs?: string;
  /** Egress only: the destination CIDRs, likewise. */
  destCidrs?: string;
}

/** Two source-CIDR keys share a CIDR (or are both empty): CloudStack's detectConflictingCidrs. */
function cidrsOverlap(a: string | undefined, b: string | undefined): boolean {
  const x = (a ?? '').split(',').filter(Boolean);
  const y = new Set((b ?? '').split(',').filter(Boolean));
  return x.length === 0 && y.size === 0 ? true : x.some((c) => y.has(c));
}

/**
 * CloudStack's detectRulesConflict for a new rule on an IP (or, for egress, on a network): only rules of the same
 * purpose and protocol compare; firewall rules only when their source CIDRs share one. Two rules with ports
 * conflict when the ranges overlap; two without ports (`all`, or tcp/udp on every port) conflict outright; a rule
 * with ports and one without do not (so `all` beside tcp 443 is accepted, as CloudStack does and Terraform's
 * egress rule sets expect).
 */
export function detectConflict(
  rule: {
    purpose: 'Firewall' | 'PortForwarding' | 'LoadBalancing';
    protocol: string;
    ports: PortSpan | undefined;
    cidrs?: string;
    destCidrs?: string;
  },
  existing: readonly ExistingRule[],
): void {
  for (const r of existing) {
    // CloudStack: port forwards and load balancer rules share an IP's public ports whatever their protocols,
    // except two port forwards of different protocols; firewall rules compare with firewall rules only.
    const forwarding = rule.purpose !== 'Firewall' && r.purpose !== 'Firewall';
    const pfPair = rule.purpose === 'PortForwarding' && r.purpose === 'PortForwarding';
    if (
      forwarding
        ? pfPair && r.protocol !== rule.protocol
        : r.purpose !== rule.purpose || r.protocol !== rule.protocol
    )
      continue;
    if (rule.purpose === 'Firewall' && !cidrsOverlap(r.cidrs, rule.cidrs)) continue;
    if (rule.destCidrs !== undefined && !cidrsOverlap(r.destCidrs, rule.destCidrs)) continue;
    // icmp rules have no ports: two icmp rules conflict only when identical, which the caller sees as a duplicate.
    if (rule.protocol === 'icmp') continue;
    const b = r.start !== null && r.end !== null ? { start: r.start, end: r.end } : undefined;
    const a = rule.ports;
    // CloudStack's NetworkRuleConflictException: 537, its text as is.
    if (!a && !b)
      throw new CloudStackError(
        'NetworkRuleConflict',
        `There is already a firewall rule specified with protocol = ${rule.protocol} and no ports (rule ${r.uuid})`,
      );
    if (a && b && a.start <= b.end && b.start <= a.end) {
      throw new CloudStackError(
        'NetworkRuleConflict',
        `The range specified, ${a.start}-${a.end}, conflicts with rule ${r.uuid} which has ${b.start}-${b.end}`,
      );
    }
  }
}
