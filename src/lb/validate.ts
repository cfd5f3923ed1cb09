/**
 * Pure checks of load balancer parameters with CloudStack's wording: the algorithm (NetUtils.isValidAlgorithm),
 * the protocol the virtual router balances, stickiness methods and their params as the VirtualRouter provider
 * declares them (VirtualRouterElement's HAProxy stickiness capability, LoadBalancingRulesManagerImpl
 * .genericValidator, validateHAProxyLBRule), and the health check policy's defaults and bounds. No I/O.
 */
import { invalidParameter } from '../errors/catalogue.js';
import type { LbAlgorithm } from './tables.js';

export const ALGORITHMS: readonly LbAlgorithm[] = ['roundrobin', 'leastconn', 'source'];

export function algorithmOf(raw: string, param = 'algorithm'): LbAlgorithm {
  const a = raw.trim().toLowerCase();
  if (!(ALGORITHMS as readonly string[]).includes(a))
    throw invalidParameter(param, raw, `Invalid algorithm: ${raw}; one of ${ALGORITHMS.join(', ')}`);
  return a as LbAlgorithm;
}

/**
 * CloudStack's lb protocols are tcp, udp and tcp-proxy; stacknet's router balances with haproxy in TCP mode
 * only, so udp and tcp-proxy are refused naming the parameter (absent = tcp).
 */
export function lbProtocolOf(raw: string | undefined): 'tcp' {
  if (raw === undefined || raw.trim() === '') return 'tcp';
  const p = raw.trim().toLowerCase();
  if (p === 'tcp') return 'tcp';
  if (p === 'udp' || p === 'tcp-proxy')
    throw invalidParameter(
      'protocol',
      raw,
      `LB protocol ${p} is not supported: the VirtualRouter provider supports tcp load balancing only`,
    );
  throw invalidParameter('protocol', raw, `Invalid LB protocol ${raw}; one of tcp, udp, tcp-proxy`);
}

export type StickinessMethod = 'LbCookie' | 'AppCookie' | 'SourceBased';

interface MethodParam {
  name: string;
  required: boolean;
  /** A flag takes no value (haproxy keywords such as nocache). */
  flag: boolean;
}

/** VirtualRouterElement: the HAProxy stickiness methods and their params (none required). */
export const STICKINESS_METHODS: Readonly<Record<StickinessMethod, readonly MethodParam[]>> = {
  LbCookie: [
    { name: 'cookie-name', required: false, flag: false },
    { name: 'mode', required: false, flag: false },
    { name: 'nocache', required: false, flag: true },
    { name: 'indirect', required: false, flag: true },
    { name: 'postonly', required: false, flag: true },
    { name: 'domain', required: false, flag: false },
  ],
  AppCookie: [
    { name: 'cookie-name', required: false, flag: false },
    { name: 'length', required: false, flag: false },
    { name: 'holdtime', required: false, flag: false },
    { name: 'request-learn', required: false, flag: true },
    { name: 'prefix', required: false, flag: true },
    { name: 'mode', required: false, flag: false },
  ],
  SourceBased: [
    { name: 'tablesize', required: false, flag: false },
    { name: 'expire', required: false, flag: false },
  ],
};

/** CloudStack's containsOnlyNumbers: digits, optionally ending in one of `endChars` (12, 3h, 200k). */
function numberWithUnit(v: string, endChars: string | null): boolean {
  if (endChars === null) return /^[0-9]+$/.test(v);
  return v.length >= 2 && endChars.includes(v[v.length - 1]!) && /^[0-9]+$/.test(v.slice(0, -1));
}

/**
 * createLBStickinessPolicy's `methodname` and `param` map (param[n].name / param[n].value), checked as CloudStack
 * does; answers the method with its canonical name and the params by name (names as given).
 */
export function checkStickiness(
  ruleUuid: string,
  methodname: string,
  params: readonly { name?: string | undefined; value?: string | undefined }[],
): { method: StickinessMethod; params: Record<string, string> } {
  const method = (Object.keys(STICKINESS_METHODS) as StickinessMethod[]).find(
    (m) => m.toLowerCase() === methodname.trim().toLowerCase(),
  );
  if (!method)
    throw invalidParameter(
      'methodname',
      methodname,
      `Failed to match Stickiness method name for LB rule:${ruleUuid}; one of ${Object.keys(STICKINESS_METHODS).join(', ')}`,
    );
  const known = STICKINESS_METHODS[method];
  const out: Record<string, string> = {};
  for (const p of params) {
    const name = (p.name ?? '').trim();
    const spec = known.find((k) => k.name.toLowerCase() === name.toLowerCase());
    if (!spec)
      throw invalidParameter(
        'param',
        name,
        `Failed : Stickiness policy does not support param name :${name}`,
      );
    if (!spec.flag && (p.value === undefined || p.value === ''))
      throw invalidParameter('param', name, `Failed : Value expected for the Param :${spec.name}`);
    out[spec.name] = p.value ?? '';
  }
  for (const k of known)
    if (k.required && out[k.name] === undefined)
      throw invalidParameter('param', k.name, `Failed : Missing Manadatory Param :${k.name}`);
  const bad = (cause: string, v: string) =>
    invalidParameter('param', v, `Failed LB in validation rule id: ${ruleUuid} Cause: ${cause}: ${v}`);
  if (method === 'SourceBased') {
    if (out.expire !== undefined && !numberWithUnit(out.expire, 'dhms'))
      throw bad('expire is not in timeformat', out.expire);
    if (out.tablesize !== undefined && !numberWithUnit(out.tablesize, 'kmg'))
      throw bad('tablesize is not in size format', out.tablesize);
  }
  if (method === 'AppCookie') {
    if (out.length !== undefined && !numberWithUnit(out.length, null))
      throw bad('length is not a number', out.length);
    if (
      out.holdtime !== undefined &&
      !numberWithUnit(out.holdtime, 'dhms') &&
      !numberWithUnit(out.holdtime, null)
    )
      throw bad('holdtime is not in timeformat', out.holdtime);
  }
  return { method, params: out };
}

export interface HealthCheck {
  pingPath: string;
  responseTimeout: number;
  intervalTime: number;
  healthyThreshold: number;
  unhealthyThreshold: number;
}

/**
 * createLBHealthCheckPolicy: absent or 0 takes CloudStack's default (LBHealthCheckPolicyVO: "/", 2 s, 5 s, 2, 1);
 * the API's documented ranges (responsetimeout 2–60 s, intervaltime 1–20940 s) and positive thresholds are
 * enforced; with both times given the interval must not be below the timeout (CloudStack's check and text).
 */
export function checkHealthCheck(p: {
  pingpath?: string | undefined;
  responsetimeout?: number | undefined;
  intervaltime?: number | undefined;
  healthythreshold?: number | undefined;
  unhealthythreshold?: number | undefined;
}): HealthCheck {
  const val = (name: string, v: number | undefined, dflt: number, min: number, max: number): number => {
    if (v === undefined || v === 0) return dflt;
    if (!Number.isInteger(v) || v < min || v > max)
      throw invalidParameter(name, v, `${name} must be between ${min} and ${max}`);
    return v;
  };
  if (p.responsetimeout !== undefined && p.intervaltime !== undefined && p.responsetimeout > p.intervaltime)
    throw invalidParameter(
      'responsetimeout',
      p.responsetimeout,
      'Failed to create HealthCheck policy : Monitor interval must be greater than response timeout',
    );
  const pingPath = p.pingpath?.trim() ? p.pingpath.trim() : '/';
  if (!pingPath.startsWith('/') || /\s/.test(pingPath))
    throw invalidParameter(
      'pingpath',
      p.pingpath,
      'pingpath must be an HTTP path starting with / and without spaces',
    );
  return {
    pingPath,
    responseTimeout: val('responsetimeout', p.responsetimeout, 2, 2, 60),
    intervalTime: val('intervaltime', p.intervaltime, 5, 1, 20940),
    healthyThreshold: val('healthythreshold', p.healthythreshold, 2, 1, 1000),
    unhealthyThreshold: val('unhealthythreshold', p.unhealthythreshold, 1, 1, 1000),
  };
}
