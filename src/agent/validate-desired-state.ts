/**
 * Validation on receipt, at two levels (DESIGN.md, "one applier per router service"):
 * - a problem with the document as a whole (its shape, generation, router, network, firewall, or a rule that ties
 *   them together) refuses it: nothing is applied and the refusal names the field;
 * - a problem with one *entry* (a host, a VM's metadata, a password) quarantines that entry: it is left out of
 *   what the router serves and reported in its status, and everything else is applied. One bad row in the
 *   database (a MAC that never went through the API's checks, say) must never freeze a router: the entries after
 *   it, and every later generation, still go through.
 *
 * Quarantined entries are held with what was sent, so that a delta arriving later re-checks them against the new
 * state (a host refused for an address another host held becomes valid once that host is gone) and so that a
 * delta removing or replacing one clears it.
 */
import { Ajv } from 'ajv';
import type { ErrorObject } from 'ajv';
import type {
  DesiredState,
  DesiredStateDelta,
  HostSpec,
  PortForwardRuleSpec,
  RuleSpec,
  StaticNatSpec,
  VmMetadata,
} from './desired-state.js';
import { desiredStateDeltaSchema, desiredStateSchema } from './desired-state-schema.js';
import { cidrContains, ipv6CidrContains, isIpv6, parseIpv4Cidr, parseIpv6Cidr } from './render/ip.js';

export type EntrySection = 'hosts' | 'metadata' | 'passwords' | 'rules' | 'staticNats';

export interface QuarantinedEntry {
  section: EntrySection;
  /**
   * The entry's key: a host's MAC as sent (lower case), a metadata or password entry's guest address, a rule's
   * id, a static NAT's public address.
   */
  key: string;
  /** The field of the entry that is wrong (`''`: the entry as a whole, or its key). */
  field: string;
  message: string;
}

/** A quarantined entry and what was sent (never reported: it may be a password or user data). */
export interface HeldEntry extends QuarantinedEntry {
  raw: unknown;
}

export type Validation<T> =
  { ok: true; value: T; quarantined: HeldEntry[] } | { ok: false; field: string; message: string };

// verbose: errors carry the offending value, so a message can show it.
const ajv = new Ajv({ allErrors: false, strict: false, verbose: true });
const { definitions } = desiredStateSchema;

// The published schemas describe a fully valid document; on receipt the entries of the keyed sections are checked
// one by one instead, so that a bad one is set aside rather than refusing everything.
const { $id: _stateId, ...stateRest } = desiredStateSchema;
const checkStateShape = ajv.compile({
  ...stateRest,
  properties: {
    ...stateRest.properties,
    hosts: { type: 'array' },
    metadata: { type: 'object' },
    passwords: { type: 'object' },
    rules: { type: 'array' },
    public: {
      ...definitions.public,
      properties: { ...definitions.public.properties, staticNats: { type: 'array' } },
    },
  },
});
const { $id: _deltaId, ...deltaRest } = desiredStateDeltaSchema;
const keyedChange = (upsert: 'array' | 'object') => ({
  type: 'object',
  additionalProperties: false,
  properties: { upsert: { type: upsert }, remove: { type: 'array', items: { type: 'string' } } },
});
const checkDeltaShape = ajv.compile({
  ...deltaRest,
  properties: {
    ...deltaRest.properties,
    hosts: keyedChange('array'),
    metadata: keyedChange('object'),
    passwords: keyedChange('object'),
    rules: keyedChange('array'),
    public: {
      oneOf: [
        {
          ...definitions.public,
          properties: { ...definitions.public.properties, staticNats: { type: 'array' } },
        },
        { type: 'null' },
      ],
    },
  },
});
const checkHost = ajv.compile({ ...definitions.host, definitions });
const checkVmMetadata = ajv.compile({ ...definitions.vmMetadata, definitions });
const checkPassword = ajv.compile(definitions.passwordMap.additionalProperties);
const checkStaticNat = ajv.compile({ ...definitions.staticNat, definitions });
// One schema per kind (the published `rule` is their oneOf, whose errors would not name the field).
const checkRule = {
  portForward: ajv.compile({ ...definitions.portForwardRule, definitions }),
  firewall: ajv.compile({ ...definitions.firewallRule, definitions }),
  egress: ajv.compile({ ...definitions.egressRule, definitions }),
  acl: ajv.compile({ ...definitions.aclRule, definitions }),
  loadBalancer: ajv.compile({ ...definitions.loadBalancerRule, definitions }),
};
const ipv4Key = new RegExp(definitions.passwordMap.propertyNames.pattern);

const shown = (v: unknown): string => {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 64 ? `${s.slice(0, 61)}...` : s;
};

function describe(err: ErrorObject | undefined): { field: string; message: string } {
  if (!err) return { field: '/', message: 'invalid document' };
  let field = err.instancePath || '/';
  let message = err.message ?? 'is invalid';
  if (err.propertyName !== undefined) {
    // A bad key in a map keyed by address (metadata, passwords) or of metaData.
    const what = err.instancePath.endsWith('/metaData')
      ? 'a metadata key ([A-Za-z0-9._-])'
      : 'an IPv4 address';
    return {
      field: `${err.instancePath}/${err.propertyName}`,
      message: `is not a valid key here (expected ${what})`,
    };
  }
  if (err.keyword === 'additionalProperties') {
    const extra = (err.params as { additionalProperty?: string }).additionalProperty;
    field = `${err.instancePath}/${extra}`;
    message = 'is not a known field';
  } else if (err.keyword === 'required') {
    field = `${err.instancePath}/${(err.params as { missingProperty?: string }).missingProperty}`;
    message = 'is required';
  } else if (err.keyword === 'pattern') {
    message = `has an invalid format (${shown(err.data)})`;
  }
  return { field, message };
}

/** The same, for an error inside one entry: the field relative to the entry (`mac`, `metaData/x`, `''`). */
function describeEntry(err: ErrorObject | undefined): { field: string; message: string } {
  const d = describe(err);
  return { field: d.field === '/' ? '' : d.field.replace(/^\//, ''), message: d.message };
}

function fail<T>(field: string, message: string): Validation<T> {
  return { ok: false, field, message };
}

/** What is wrong with a host entry on its own (shape, and a MAC that cannot be a NIC's), or null. */
function hostProblem(raw: unknown): { field: string; message: string } | null {
  if (!checkHost(raw)) return describeEntry(checkHost.errors?.[0]);
  const h = raw as HostSpec;
  const mac = BigInt(`0x${h.mac.replace(/:/g, '')}`);
  if (mac === 0n) return { field: 'mac', message: `${h.mac} is the all-zero address, not a NIC's` };
  // The group bit (least significant bit of the first octet): multicast, or broadcast when all ones.
  if ((mac >> 40n) & 1n)
    return { field: 'mac', message: `${h.mac} is a multicast or broadcast address, not a NIC's` };
  if (h.ipv6 !== undefined && !isIpv6(h.ipv6))
    return { field: 'ipv6', message: `has an invalid format (${shown(h.ipv6)})` };
  return null;
}

function metadataProblem(ip: string, raw: unknown): { field: string; message: string } | null {
  if (!ipv4Key.test(ip)) return { field: '', message: 'is not keyed by an IPv4 address' };
  if (!checkVmMetadata(raw)) return describeEntry(checkVmMetadata.errors?.[0]);
  const md = raw as VmMetadata;
  if (md.userData !== undefined && !isBase64(md.userData))
    return { field: 'userData', message: 'is not valid base64' };
  return null;
}

function passwordProblem(ip: string, raw: unknown): { field: string; message: string } | null {
  if (!ipv4Key.test(ip)) return { field: '', message: 'is not keyed by an IPv4 address' };
  if (!checkPassword(raw)) return { field: '', message: describeEntry(checkPassword.errors?.[0]).message };
  return null;
}

type Problem = { field: string; message: string } | null;

const rangeProblem = (field: string, r: { start: number; end: number } | undefined): Problem =>
  r && r.start > r.end ? { field, message: `starts after it ends (${r.start}-${r.end})` } : null;

/** What is wrong with a rule on its own (shape, port ranges, fields its protocol does not take), or null. */
function ruleProblem(raw: unknown): Problem {
  const kind = (raw as { kind?: unknown } | null)?.kind;
  const check = typeof kind === 'string' ? checkRule[kind as RuleSpec['kind']] : undefined;
  if (!check) return { field: 'kind', message: 'must be portForward, firewall, egress, acl or loadBalancer' };
  if (!check(raw)) return describeEntry(check.errors?.[0]);
  const r = raw as RuleSpec;
  if (r.kind === 'portForward') {
    const p = rangeProblem('publicPorts', r.publicPorts) ?? rangeProblem('privatePorts', r.privatePorts);
    if (p) return p;
    const len = (x: { start: number; end: number }) => x.end - x.start;
    if (len(r.privatePorts) !== 0 && len(r.privatePorts) !== len(r.publicPorts))
      return { field: 'privatePorts', message: 'must be one port or as long as publicPorts' };
    return null;
  }
  if (r.kind === 'loadBalancer') return null;
  if (r.kind !== 'acl' && /^[0-9]+$/.test(r.protocol))
    return { field: 'protocol', message: 'a protocol number is for ACL items only' };
  if (r.ports && r.protocol !== 'tcp' && r.protocol !== 'udp')
    return { field: 'ports', message: `${r.protocol} has no ports` };
  if ((r.icmpType !== undefined || r.icmpCode !== undefined) && r.protocol !== 'icmp')
    return { field: 'icmpType', message: `${r.protocol} is not icmp` };
  return rangeProblem('ports', r.ports);
}

const ruleKey = (raw: unknown): string => {
  const id = (raw as { id?: unknown } | null)?.id;
  return typeof id === 'string' ? id : '';
};

const staticNatKey = (raw: unknown): string => {
  const ip = (raw as { publicIp?: unknown } | null)?.publicIp;
  return typeof ip === 'string' ? ip : '';
};

const hostKey = (raw: unknown): string => {
  const mac = (raw as { mac?: unknown } | null)?.mac;
  return typeof mac === 'string' ? mac.toLowerCase() : '';
};

function held_(
  section: EntrySection,
  key: string,
  raw: unknown,
  p: { field: string; message: string },
): HeldEntry {
  return { section, key, field: p.field, message: p.message, raw };
}

/** Whole-document rules a schema cannot say; a refusal names the field. */
function documentProblem(state: DesiredState): { field: string; message: string } | null {
  const cidr = parseIpv4Cidr(state.network.cidr);
  if (cidr.prefix > 30)
    return { field: '/network/cidr', message: `${state.network.cidr} leaves no room for guests` };
  if (state.network.useExternalDns && state.network.dnsServers.length === 0)
    return {
      field: '/network/dnsServers',
      message: 'must name the zone DNS servers when useExternalDns is true',
    };
  if (!cidrContains(cidr, state.network.gateway))
    return {
      field: '/network/gateway',
      message: `${state.network.gateway} is not inside ${state.network.cidr}`,
    };
  if (!cidrContains(cidr, state.router.guestIp))
    return {
      field: '/router/guestIp',
      message: `${state.router.guestIp} is not inside ${state.network.cidr}`,
    };
  if (state.router.redundant && state.router.guestIp === state.network.gateway)
    return {
      field: '/router/guestIp',
      message: 'a redundant router needs its own guest address; the gateway is the VIP',
    };
  if (state.network.ipv6Cidr && !isIpv6(state.network.ipv6Cidr.split('/')[0]!))
    return {
      field: '/network/ipv6Cidr',
      message: `has an invalid format (${shown(state.network.ipv6Cidr)})`,
    };
  if (state.network.ipv6Gateway) {
    if (!state.network.ipv6Cidr) return { field: '/network/ipv6Gateway', message: 'needs /network/ipv6Cidr' };
    if (
      !isIpv6(state.network.ipv6Gateway) ||
      !ipv6CidrContains(parseIpv6Cidr(state.network.ipv6Cidr), state.network.ipv6Gateway)
    )
      return {
        field: '/network/ipv6Gateway',
        message: `${state.network.ipv6Gateway} is not inside ${state.network.ipv6Cidr}`,
      };
  }
  return publicProblem(state);
}

/** The public side as a whole: unique interfaces and addresses, the source-NAT address held on one of them. */
function publicProblem(state: DesiredState): Problem {
  const pub = state.public;
  if (!pub) return null;
  const ifaces = new Set<string>();
  const addrs = new Set<string>();
  for (const [i, nic] of pub.nics.entries()) {
    if (ifaces.has(nic.interface) || nic.interface === state.vpc?.transitInterface)
      return { field: `/public/nics/${i}/interface`, message: `${nic.interface} is used twice` };
    ifaces.add(nic.interface);
    for (const a of nic.addresses) {
      if (addrs.has(a)) return { field: `/public/nics/${i}/addresses`, message: `${a} is held twice` };
      addrs.add(a);
    }
  }
  if (pub.sourceNatIp !== null && !addrs.has(pub.sourceNatIp))
    return { field: '/public/sourceNatIp', message: `${pub.sourceNatIp} is not on a public interface` };
  return null;
}

/** The public addresses the router holds. */
const publicAddresses = (state: DesiredState): Set<string> =>
  new Set((state.public?.nics ?? []).flatMap((n) => n.addresses));

/** Where NAT may send traffic: the guest CIDR, or on a VPC's edge the whole VPC. */
const natTargets = (state: DesiredState): string => (state.vpc?.edge ? state.vpc.cidr : state.network.cidr);

/** The rules between a rule and the state: addresses it names, the kind the router takes, overlapping forwards. */
function ruleStateProblem(
  r: RuleSpec,
  state: DesiredState,
  held: Set<string>,
  forwards: Map<string, PortForwardRuleSpec[]>,
): Problem {
  if ((r.kind === 'portForward' || r.kind === 'firewall') && !held.has(r.publicIp))
    return { field: 'publicIp', message: `${r.publicIp} is not one of the router's public addresses` };
  if (r.kind === 'acl' && !state.vpc) return { field: 'kind', message: 'ACL items are for VPC tiers only' };
  if (r.kind !== 'portForward') return null;
  const targets = natTargets(state);
  if (!cidrContains(parseIpv4Cidr(targets), r.guestIp))
    return { field: 'guestIp', message: `${r.guestIp} is not inside ${targets}` };
  if (state.public?.staticNats.some((s) => s.publicIp === r.publicIp))
    return { field: 'publicIp', message: `${r.publicIp} is a static NAT address` };
  const other = forwards
    .get(`${r.publicIp}/${r.protocol}`)
    ?.find((f) => f.publicPorts.start <= r.publicPorts.end && r.publicPorts.start <= f.publicPorts.end);
  return other ? { field: 'publicPorts', message: `overlaps port forward ${other.id}` } : null;
}

function staticNatProblem(raw: unknown, state: DesiredState, held: Set<string>, taken: Set<string>): Problem {
  if (!checkStaticNat(raw)) return describeEntry(checkStaticNat.errors?.[0]);
  const s = raw as StaticNatSpec;
  if (!held.has(s.publicIp))
    return { field: 'publicIp', message: `${s.publicIp} is not one of the router's public addresses` };
  if (s.publicIp === state.public?.sourceNatIp)
    return { field: 'publicIp', message: `${s.publicIp} is the source-NAT address` };
  if (taken.has(s.publicIp)) return { field: 'publicIp', message: `${s.publicIp} is used twice` };
  const targets = natTargets(state);
  if (!cidrContains(parseIpv4Cidr(targets), s.guestIp))
    return { field: 'guestIp', message: `${s.guestIp} is not inside ${targets}` };
  return null;
}

/**
 * The rules and static NATs of `state` (plus held ones) that can be applied, and the ones that cannot. Every rule
 * is checked against the state (its public address may have gone with a public-side delta); `checked` skips only
 * the checks of a rule on its own.
 */
function sieveNat(
  state: DesiredState,
  retry: HeldEntry[],
  checked: boolean,
  quarantined: HeldEntry[],
): Pick<DesiredState, 'public' | 'rules'> {
  const held = publicAddresses(state);
  const out: Pick<DesiredState, 'public' | 'rules'> = {};
  if (state.public) {
    const candidates = state.public.staticNats.map((raw) => ({ raw: raw as unknown }));
    for (const h of retry) if (h.section === 'staticNats') candidates.push({ raw: h.raw });
    const taken = new Set<string>();
    const staticNats: StaticNatSpec[] = [];
    for (const { raw } of candidates) {
      const p = staticNatProblem(raw, state, held, taken);
      if (p) quarantined.push(held_('staticNats', staticNatKey(raw), raw, p));
      else {
        taken.add(staticNatKey(raw));
        staticNats.push(raw as StaticNatSpec);
      }
    }
    staticNats.sort((a, b) => (a.publicIp < b.publicIp ? -1 : a.publicIp > b.publicIp ? 1 : 0));
    out.public = { ...state.public, staticNats };
  }
  const own = new Set((state.rules ?? []).map((r) => r.id));
  const candidates: { raw: unknown; recheck: boolean }[] = (state.rules ?? []).map((raw) => ({
    raw,
    recheck: !checked,
  }));
  for (const h of retry)
    if (h.section === 'rules' && !own.has(h.key)) candidates.push({ raw: h.raw, recheck: true });
  const rules: RuleSpec[] = [];
  const forwards = new Map<string, PortForwardRuleSpec[]>();
  for (const { raw, recheck } of candidates) {
    const p = (recheck ? ruleProblem(raw) : null) ?? ruleStateProblem(raw as RuleSpec, state, held, forwards);
    if (p) {
      quarantined.push(held_('rules', ruleKey(raw), raw, p));
      continue;
    }
    const r = raw as RuleSpec;
    if (r.kind === 'portForward') {
      const k = `${r.publicIp}/${r.protocol}`;
      forwards.set(k, [...(forwards.get(k) ?? []), r]);
    }
    rules.push(r);
  }
  if (rules.length) out.rules = rules.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return out;
}

/**
 * The entries of `state` (plus held ones to re-check) that can be served, and the ones that cannot. With
 * `checked`, the entries of `state` itself already passed their own checks (a delta's entries were checked on
 * receipt, the rest were in force); only the rules between entries run for them.
 */
function sieve(
  state: DesiredState,
  retry: HeldEntry[],
  checked: boolean,
): { value: DesiredState; quarantined: HeldEntry[] } {
  const quarantined: HeldEntry[] = [];
  const cidr = parseIpv4Cidr(state.network.cidr);
  const v6 = state.network.ipv6Cidr ? parseIpv6Cidr(state.network.ipv6Cidr) : null;
  const candidates: { raw: unknown; recheck: boolean }[] = state.hosts.map((raw) => ({
    raw,
    recheck: !checked,
  }));
  for (const h of retry) if (h.section === 'hosts') candidates.push({ raw: h.raw, recheck: true });
  const hosts: HostSpec[] = [];
  const macs = new Set<string>();
  const ips = new Set<string>();
  const names = new Set<string>();
  for (const { raw, recheck } of candidates) {
    const key = hostKey(raw);
    const problem = recheck ? hostProblem(raw) : null;
    if (problem) {
      quarantined.push(held_('hosts', key, raw, problem));
      continue;
    }
    // The first entry holding a MAC, address or name keeps it (in force before the newcomer, in a full state
    // the one the server listed first); a later one claiming it is set aside.
    const h = raw as HostSpec;
    const name = h.hostname.toLowerCase();
    let p: { field: string; message: string } | null = null;
    if (macs.has(key)) p = { field: 'mac', message: `${h.mac} is also used by another host` };
    else if (!cidrContains(cidr, h.ipv4))
      p = { field: 'ipv4', message: `${h.ipv4} is not inside ${state.network.cidr}` };
    else if (h.ipv4 === state.network.gateway || h.ipv4 === state.router.guestIp)
      p = { field: 'ipv4', message: `${h.ipv4} is the router's own address` };
    else if (ips.has(h.ipv4)) p = { field: 'ipv4', message: `${h.ipv4} is also used by another host` };
    else if (name === 'data-server') p = { field: 'hostname', message: 'data-server is the router itself' };
    else if (names.has(name))
      p = { field: 'hostname', message: `${h.hostname} is also used by another host` };
    else if (h.ipv6 !== undefined && (!v6 || !ipv6CidrContains(v6, h.ipv6)))
      p = {
        field: 'ipv6',
        message: `${h.ipv6} is not inside ${state.network.ipv6Cidr ?? 'the network (no IPv6 prefix)'}`,
      };
    if (p) {
      quarantined.push(held_('hosts', key, raw, p));
      continue;
    }
    macs.add(key);
    ips.add(h.ipv4);
    names.add(name);
    hosts.push(h);
  }
  const keyed = <T>(
    section: 'metadata' | 'passwords',
    own: Record<string, T>,
    problemOf: (ip: string, raw: unknown) => { field: string; message: string } | null,
  ): Record<string, T> => {
    const again = retry.filter((r) => r.section === section && !Object.hasOwn(own, r.key));
    if (checked && again.length === 0) return own;
    const out: Record<string, T> = {};
    const entries: [string, unknown, boolean][] = Object.entries(own).map(([k, v]) => [k, v, !checked]);
    for (const r of again) entries.push([r.key, r.raw, true]);
    for (const [ip, raw, recheck] of entries) {
      const p = recheck ? problemOf(ip, raw) : null;
      if (p) quarantined.push(held_(section, ip, raw, p));
      else out[ip] = raw as T;
    }
    return out;
  };
  const metadata = keyed('metadata', state.metadata, metadataProblem);
  const passwords = keyed('passwords', state.passwords, passwordProblem);
  const nat = sieveNat(state, retry, checked, quarantined);
  if (quarantined.length === 0 && hosts.length === state.hosts.length && retry.length === 0)
    return { value: state, quarantined };
  const value: DesiredState = { ...state, hosts, metadata, passwords };
  delete value.public;
  delete value.rules;
  return { value: { ...value, ...nat }, quarantined };
}

/**
 * A full desired state. `schema: false` is for a state built by applying a checked delta to a state in force:
 * only the rules between entries run for its entries. `retry`: quarantined entries carried over from the state
 * in force (see heldAfterDelta), checked again against this one.
 */
export function validateDesiredState(
  doc: unknown,
  opts: { schema?: boolean; retry?: HeldEntry[] } = {},
): Validation<DesiredState> {
  if (opts.schema !== false && !checkStateShape(doc)) {
    const d = describe(checkStateShape.errors?.[0]);
    return fail(d.field, d.message);
  }
  const state = doc as DesiredState;
  const p = documentProblem(state);
  if (p) return fail(p.field, p.message);
  const { value, quarantined } = sieve(state, opts.retry ?? [], opts.schema === false);
  return { ok: true, value, quarantined };
}

/**
 * A delta: its shape and generations refuse it as a whole; each upserted entry is checked on its own, and the bad
 * ones are returned as quarantined, leaving a delta of good entries (removals are kept as sent: removing a key
 * nobody holds does nothing, and it is how the server clears a quarantined entry).
 */
export function validateDelta(doc: unknown): Validation<DesiredStateDelta> {
  if (!checkDeltaShape(doc)) {
    const d = describe(checkDeltaShape.errors?.[0]);
    return fail(d.field, d.message);
  }
  const delta = doc as DesiredStateDelta;
  if (delta.generation <= delta.baseGeneration)
    return fail('/generation', `must be greater than baseGeneration ${delta.baseGeneration}`);
  const quarantined: HeldEntry[] = [];
  const out: DesiredStateDelta = { ...delta };
  // The entries of a list that pass their own checks; the others are set aside.
  const good = <T>(
    section: EntrySection,
    list: T[],
    keyOf: (raw: unknown) => string,
    problemOf: (raw: unknown) => Problem,
  ): T[] =>
    list.filter((raw) => {
      const p = problemOf(raw);
      if (p) quarantined.push(held_(section, keyOf(raw), raw, p));
      return !p;
    });
  if (delta.hosts?.upsert)
    out.hosts = { ...delta.hosts, upsert: good('hosts', delta.hosts.upsert, hostKey, hostProblem) };
  const keyed = <T>(
    section: 'metadata' | 'passwords',
    change: { upsert?: Record<string, T>; remove?: string[] } | undefined,
    problemOf: (ip: string, raw: unknown) => { field: string; message: string } | null,
  ) => {
    if (!change?.upsert) return change;
    const upsert: Record<string, T> = {};
    for (const [ip, raw] of Object.entries(change.upsert)) {
      const p = problemOf(ip, raw);
      if (p) quarantined.push(held_(section, ip, raw, p));
      else upsert[ip] = raw;
    }
    return { ...change, upsert };
  };
  if (delta.rules?.upsert)
    out.rules = { ...delta.rules, upsert: good('rules', delta.rules.upsert, ruleKey, ruleProblem) };
  if (delta.public?.staticNats) {
    const staticNats = good('staticNats', delta.public.staticNats, staticNatKey, (raw) =>
      checkStaticNat(raw) ? null : describeEntry(checkStaticNat.errors?.[0]),
    );
    out.public = { ...delta.public, staticNats };
  }
  if (delta.metadata) out.metadata = keyed('metadata', delta.metadata, metadataProblem);
  if (delta.passwords) out.passwords = keyed('passwords', delta.passwords, passwordProblem);
  return { ok: true, value: out, quarantined };
}

/**
 * The held entries after a delta: those it removes or replaces (by MAC or address) are dropped, its own bad
 * entries join. The rest are re-checked against the new state by validateDesiredState's `retry`.
 */
export function heldAfterDelta(held: HeldEntry[], delta: DesiredStateDelta, fresh: HeldEntry[]): HeldEntry[] {
  if (held.length === 0) return fresh;
  const touched: Record<EntrySection, Set<string>> = {
    hosts: new Set(
      [...(delta.hosts?.remove ?? []), ...(delta.hosts?.upsert ?? []).map((h) => h.mac)].map((m) =>
        m.toLowerCase(),
      ),
    ),
    metadata: new Set([...(delta.metadata?.remove ?? []), ...Object.keys(delta.metadata?.upsert ?? {})]),
    passwords: new Set([...(delta.passwords?.remove ?? []), ...Object.keys(delta.passwords?.upsert ?? {})]),
    rules: new Set([...(delta.rules?.remove ?? []), ...(delta.rules?.upsert ?? []).map((r) => r.id)]),
    staticNats: new Set(),
  };
  for (const f of fresh) touched[f.section].add(f.key);
  // The public side comes wholesale: a delta carrying it replaces every held static NAT.
  const publicSent = delta.public !== undefined;
  return [
    ...held.filter((h) => !touched[h.section].has(h.key) && !(publicSent && h.section === 'staticNats')),
    ...fresh,
  ];
}

/** What a status reports of a quarantined entry (not the value sent). */
export function reported(entries: HeldEntry[]): QuarantinedEntry[] {
  return entries.map(({ section, key, field, message }) => ({ section, key, field, message }));
}

/** One line naming quarantined entries, for a condition message or a log. */
export function describeQuarantine(entries: QuarantinedEntry[], max = 3): string {
  const shownEntries = entries
    .slice(0, max)
    .map((e) => `${e.section} ${e.key || '(no key)'}${e.field ? ` ${e.field}` : ''}: ${e.message}`);
  if (entries.length > max) shownEntries.push(`and ${entries.length - max} more`);
  return shownEntries.join('; ');
}

function isBase64(s: string): boolean {
  // CloudStack pads user data to a multiple of 4 before decoding; accept both alphabets and missing padding.
  const t = s.replace(/\s/g, '');
  return /^[A-Za-z0-9+/_-]*={0,2}$/.test(t) && t.replace(/=+$/, '').length % 4 !== 1;
}
