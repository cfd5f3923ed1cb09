/**
 * Validation on receipt: JSON Schema (ajv) for shape, then the cross-field rules a schema cannot say
 * (addresses inside the CIDR, no duplicate MAC/IP/name). A refusal names the field so the server's log says
 * what to fix; nothing is applied.
 */
import { Ajv } from 'ajv';
import type { ErrorObject } from 'ajv';
import type { DesiredState, DesiredStateDelta } from './desired-state.js';
import { desiredStateDeltaSchema, desiredStateSchema } from './desired-state-schema.js';
import { cidrContains, ipv6CidrContains, parseIpv4Cidr, parseIpv6Cidr } from './render/ip.js';

export type Validation<T> = { ok: true; value: T } | { ok: false; field: string; message: string };

const ajv = new Ajv({ allErrors: false, strict: false });
const checkState = ajv.compile(desiredStateSchema);
const checkDelta = ajv.compile(desiredStateDeltaSchema);

function describe(err: ErrorObject | undefined): { field: string; message: string } {
  if (!err) return { field: '/', message: 'invalid document' };
  let field = err.instancePath || '/';
  let message = err.message ?? 'is invalid';
  if (err.propertyName !== undefined) {
    // A bad key in a map keyed by address (metadata, passwords).
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
  } else if (err.keyword === 'propertyNames') {
    field = `${err.instancePath}/${(err.params as { propertyName?: string }).propertyName}`;
    message = 'is not a valid key here';
  } else if (err.keyword === 'pattern') {
    message = `has an invalid format (${JSON.stringify(err.data)})`;
  }
  return { field, message };
}

function fail<T>(field: string, message: string): Validation<T> {
  return { ok: false, field, message };
}

/**
 * `schema: false` skips the JSON Schema pass, for a state built by applying a schema-checked delta to a state
 * that was already valid (the cross-field rules still run).
 */
export function validateDesiredState(
  doc: unknown,
  opts: { schema?: boolean } = {},
): Validation<DesiredState> {
  if (opts.schema !== false && !checkState(doc)) {
    const d = describe(checkState.errors?.[0]);
    return fail(d.field, d.message);
  }
  const state = doc as unknown as DesiredState;
  const cidr = parseIpv4Cidr(state.network.cidr);
  if (cidr.prefix > 30) return fail('/network/cidr', `${state.network.cidr} leaves no room for guests`);
  if (state.network.useExternalDns && state.network.dnsServers.length === 0)
    return fail('/network/dnsServers', 'must name the zone DNS servers when useExternalDns is true');
  if (!cidrContains(cidr, state.network.gateway))
    return fail('/network/gateway', `${state.network.gateway} is not inside ${state.network.cidr}`);
  if (!cidrContains(cidr, state.router.guestIp))
    return fail('/router/guestIp', `${state.router.guestIp} is not inside ${state.network.cidr}`);
  if (state.router.redundant && state.router.guestIp === state.network.gateway)
    return fail('/router/guestIp', 'a redundant router needs its own guest address; the gateway is the VIP');
  if (state.network.ipv6Gateway) {
    if (!state.network.ipv6Cidr) return fail('/network/ipv6Gateway', 'needs /network/ipv6Cidr');
    if (!ipv6CidrContains(parseIpv6Cidr(state.network.ipv6Cidr), state.network.ipv6Gateway))
      return fail(
        '/network/ipv6Gateway',
        `${state.network.ipv6Gateway} is not inside ${state.network.ipv6Cidr}`,
      );
  }
  const macs = new Set<string>();
  const ips = new Map<string, number>();
  const names = new Map<string, number>();
  for (const [i, h] of state.hosts.entries()) {
    const mac = h.mac.toLowerCase();
    if (macs.has(mac)) return fail(`/hosts/${i}/mac`, `${h.mac} appears twice`);
    macs.add(mac);
    if (!cidrContains(cidr, h.ipv4))
      return fail(`/hosts/${i}/ipv4`, `${h.ipv4} is not inside ${state.network.cidr}`);
    if (h.ipv4 === state.network.gateway || h.ipv4 === state.router.guestIp)
      return fail(`/hosts/${i}/ipv4`, `${h.ipv4} is the router's own address`);
    if (ips.has(h.ipv4))
      return fail(`/hosts/${i}/ipv4`, `${h.ipv4} is also used by /hosts/${ips.get(h.ipv4)}`);
    ips.set(h.ipv4, i);
    const name = h.hostname.toLowerCase();
    if (names.has(name))
      return fail(`/hosts/${i}/hostname`, `${h.hostname} is also used by /hosts/${names.get(name)}`);
    if (name === 'data-server') return fail(`/hosts/${i}/hostname`, 'data-server is the router itself');
    names.set(name, i);
  }
  for (const [ip, md] of Object.entries(state.metadata)) {
    if (md.userData !== undefined && !isBase64(md.userData))
      return fail(`/metadata/${ip}/userData`, 'is not valid base64');
  }
  return { ok: true, value: state };
}

export function validateDelta(doc: unknown): Validation<DesiredStateDelta> {
  if (!checkDelta(doc)) {
    const d = describe(checkDelta.errors?.[0]);
    return fail(d.field, d.message);
  }
  const delta = doc as unknown as DesiredStateDelta;
  if (delta.generation <= delta.baseGeneration)
    return fail('/generation', `must be greater than baseGeneration ${delta.baseGeneration}`);
  return { ok: true, value: delta };
}

function isBase64(s: string): boolean {
  // CloudStack pads user data to a multiple of 4 before decoding; accept both alphabets and missing padding.
  const t = s.replace(/\s/g, '');
  return /^[A-Za-z0-9+/_-]*={0,2}$/.test(t) && t.replace(/=+$/, '').length % 4 !== 1;
}
