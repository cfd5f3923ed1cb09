/**
 * Parameter parsing and validation from a command's definition: the raw request parameters (first value of
 * each name, as CloudStack's servlet keeps) become typed values, or a 431 naming the parameter and value.
 */
import { sql } from 'kysely';
import { invalidParameter, missingParameter } from '../errors/catalogue.js';
import type { Executor } from '../store/db.js';
import type { ParamSpec, ParamSpecs, Params } from './command.js';
import { pageFrom } from './list.js';
import type { PageParams } from './list.js';

export type RawParams = ReadonlyMap<string, string>;

const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;
const INT_RE = /^[-+]?\d+$/;
/** An internal id as CloudStack takes one: a natural number (bigint ids; 15 digits stay exact in a double). */
const INTERNAL_ID_RE = /^[1-9]\d{0,14}$/;

const ranges = {
  short: [-32768, 32767],
  integer: [-2147483648, 2147483647],
  long: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
} as const;

export function isUuid(s: string): boolean {
  return UUID_RE.test(s);
}

function parseInteger(name: string, raw: string, kind: keyof typeof ranges): number {
  const t = raw.trim();
  if (!INT_RE.test(t))
    throw invalidParameter(name, raw, `expected ${kind === 'long' ? 'a long' : 'an integer'}`);
  const n = Number(t);
  const [lo, hi] = ranges[kind];
  if (n < lo || n > hi) throw invalidParameter(name, raw, `out of range for ${kind} (${lo}..${hi})`);
  return n;
}

/** CloudStack's accepted date forms: `yyyy-MM-dd`, `yyyy-MM-dd HH:mm:ss`, or ISO 8601 with a zone. */
export function parseCsDate(raw: string): Date | undefined {
  const t = raw.trim();
  let m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(t);
  if (m) return validDate(new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!)));
  m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})$/.exec(t);
  if (m) return validDate(new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!)));
  return parseIsoWithZone(t);
}

/** `2026-01-02T10:00:00+0000`, `...+00:00` or `...Z` (signatureversion=3 `expires`). */
export function parseIsoWithZone(raw: string): Date | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(Z|[+-]\d{2}:?\d{2})$/.exec(
    raw.trim(),
  );
  if (!m) return undefined;
  let offsetMin = 0;
  const z = m[7]!;
  if (z !== 'Z') {
    const sign = z.startsWith('-') ? -1 : 1;
    const digits = z.slice(1).replace(':', '');
    offsetMin = sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2)));
  }
  const utc = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!) - offsetMin * 60_000;
  return validDate(new Date(utc));
}

function validDate(d: Date): Date | undefined {
  return Number.isNaN(d.getTime()) ? undefined : d;
}

function parseScalar(name: string, raw: string, spec: ParamSpec): unknown {
  switch (spec.type) {
    case 'string':
    case 'object':
      return raw;
    case 'uuid':
      // An internal id that resolveInternalIds found no row for stays as sent, so the handler answers it as it
      // answers a UUID that matches nothing.
      if (spec.internalIdTable && INTERNAL_ID_RE.test(raw.trim())) return raw.trim();
      if (!isUuid(raw.trim())) throw invalidParameter(name, raw, 'expected a UUID');
      return raw.trim().toLowerCase();
    case 'integer':
    case 'long':
    case 'short':
      return parseInteger(name, raw, spec.type);
    case 'boolean': {
      const t = raw.trim().toLowerCase();
      if (t === 'true') return true;
      if (t === 'false') return false;
      throw invalidParameter(name, raw, 'expected true or false');
    }
    case 'date': {
      const d = parseCsDate(raw);
      if (!d) throw invalidParameter(name, raw, 'expected a date as yyyy-MM-dd or yyyy-MM-dd HH:mm:ss');
      return d;
    }
    case 'list': {
      const items = raw
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '');
      const itemSpec: ParamSpec = { type: spec.items ?? 'string', internalIdTable: spec.internalIdTable };
      return items.map((s) => parseScalar(name, s, itemSpec));
    }
    case 'map':
      throw new Error('maps are collected by parseParams');
  }
}

/**
 * `details[0].key=a&details[0].value=b&details[1].key=c` → `[{key:'a', value:'b'}, {key:'c'}]`, in index
 * order. CloudStack also accepts `details[0].key` style only, so a plain `details=x` is a 431.
 */
function collectMap(name: string, raw: RawParams): Record<string, string>[] | undefined {
  const byIndex = new Map<number, Record<string, string>>();
  const prefix = `${name}[`;
  for (const [k, v] of raw) {
    if (!k.startsWith(prefix)) continue;
    const m = /^\[(\d+)\]\.(.+)$/.exec(k.slice(name.length));
    if (!m) throw invalidParameter(k, v, `expected ${name}[<index>].<key>=<value>`);
    const idx = Number(m[1]);
    const entry = byIndex.get(idx) ?? {};
    entry[m[2]!] = v;
    byIndex.set(idx, entry);
  }
  if (byIndex.size === 0) {
    if (raw.has(name)) throw invalidParameter(name, raw.get(name), `expected ${name}[0].<key>=<value>`);
    return undefined;
  }
  return [...byIndex.entries()].sort((a, b) => a[0] - b[0]).map(([, e]) => e);
}

/** Parses and validates every declared parameter; undeclared parameters are ignored, as CloudStack does. */
/**
 * Parameter names as CloudStack's clients spell them: its UI sends `listAll`, `pageSize`, `domainId`… for the
 * lower-case names of the reference. A name in another case is taken when the exact one is absent; the exact one
 * wins when both come.
 */
export function caseFolded(raw: RawParams): RawParams {
  let folded: Map<string, string> | undefined;
  for (const [k, v] of raw) {
    const lower = k.toLowerCase();
    if (lower === k || raw.has(lower)) continue;
    folded ??= new Map(raw);
    if (!folded.has(lower)) folded.set(lower, v);
  }
  return folded ?? raw;
}

export function parseParams<P extends ParamSpecs>(specs: P, given: RawParams): Params<P> {
  const raw = caseFolded(given);
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(specs)) {
    if (spec.type === 'map') {
      const m = collectMap(name, raw);
      if (m) {
        for (const entry of m) for (const v of Object.values(entry)) checkText(name, v, spec);
        out[name] = m;
      } else if (spec.required) throw missingParameter(name);
      continue;
    }
    const v = raw.get(name);
    if (v === undefined || v === '') {
      // CloudStack treats an empty value like an absent one for optional parameters.
      if (spec.required) throw missingParameter(name);
      continue;
    }
    checkText(name, v, spec);
    out[name] = parseScalar(name, v, spec);
  }
  // BaseListCmd checks page/pagesize before any handler runs, so a command that forgets to page still refuses
  // a bad pair. The limit from default.page.size needs the database: pageOf (list.ts) checks it.
  if (specs.page && specs.pagesize) pageFrom(out as PageParams, -1);
  return out as Params<P>;
}

function checkText(name: string, v: string, spec: ParamSpec): void {
  // invalidParameter shows the value with its control characters as `?` and cut short.
  if (CONTROL_RE.test(v)) throw invalidParameter(name, v, 'contains control characters');
  const max = spec.length ?? 255;
  if (v.length > max) throw invalidParameter(name, v, `longer than ${max} characters`);
}

// ---------------------------------------------------------------------------------------------------------
// Internal numeric ids. CloudStack (ParamProcessWorker.translateUuidToInternalId) takes a parameter's internal
// id in place of its UUID when the parameter has no `since`, i.e. it predates UUIDs (`zoneid=1`); newer ones take
// only a UUID. Which entity a parameter names comes from its name, else from the list command CloudStack's
// reference gives as `related`, else (for `id`/`ids`) from the command's own noun.

interface IdEntity {
  table: string;
  params?: readonly string[];
  list?: string;
  nouns?: readonly string[];
}

const idEntities: readonly IdEntity[] = [
  { table: 'zones', params: ['zoneid'], list: 'listZones', nouns: ['Zone'] },
  { table: 'pods', params: ['podid'], list: 'listPods', nouns: ['Pod'] },
  {
    table: 'physical_networks',
    params: ['physicalnetworkid'],
    list: 'listPhysicalNetworks',
    nouns: ['PhysicalNetwork'],
  },
  { table: 'traffic_types', nouns: ['TrafficType'] },
  {
    table: 'public_ip_ranges',
    params: ['vlanid'],
    list: 'listVlanIpRanges',
    nouns: ['VlanIpRange', 'PublicIpRange'],
  },
  { table: 'portable_ip_ranges', list: 'listPortableIpRanges', nouns: ['PortableIpRange'] },
  {
    table: 'networks',
    params: ['networkid', 'networkids', 'associatednetworkid'],
    list: 'listNetworks',
    nouns: ['Network'],
  },
  { table: 'vpcs', params: ['vpcid'], list: 'listVPCs', nouns: ['VPC'] },
  { table: 'network_acl_lists', params: ['aclid'], list: 'listNetworkACLLists', nouns: ['NetworkACLList'] },
  { table: 'network_acl_items', list: 'listNetworkACLs', nouns: ['NetworkACL', 'NetworkACLItem'] },
  {
    table: 'ip_allocations',
    params: ['ipaddressid'],
    list: 'listPublicIpAddresses',
    nouns: ['IpAddress', 'PublicIpAddress'],
  },
  {
    table: 'network_offerings',
    params: ['networkofferingid'],
    list: 'listNetworkOfferings',
    nouns: ['NetworkOffering'],
  },
  { table: 'vpc_offerings', params: ['vpcofferingid'], list: 'listVPCOfferings', nouns: ['VPCOffering'] },
  {
    table: 'service_offerings',
    params: ['serviceofferingid'],
    list: 'listServiceOfferings',
    nouns: ['ServiceOffering'],
  },
  { table: 'templates', params: ['templateid'], list: 'listTemplates', nouns: ['Template'] },
  { table: 'domains', params: ['domainid', 'parentdomainid'], list: 'listDomains', nouns: ['Domain'] },
  { table: 'accounts', params: ['accountid'], list: 'listAccounts', nouns: ['Account'] },
  { table: 'users', params: ['userid'], list: 'listUsers', nouns: ['User', 'UserKey'] },
  {
    table: 'vms',
    params: ['virtualmachineid', 'virtualmachineids'],
    list: 'listVirtualMachines',
    nouns: ['VirtualMachine'],
  },
  { table: 'nics', params: ['nicid'], list: 'listNics', nouns: ['Nic'] },
  { table: 'nic_secondary_ips', nouns: ['IpFromNic'] },
  { table: 'routers', params: ['routerid'], list: 'listRouters', nouns: ['Router'] },
  { table: 'ssh_keypairs', list: 'listSSHKeyPairs', nouns: ['SSHKeyPair'] },
  { table: 'async_jobs', params: ['jobid'], list: 'queryAsyncJobResult', nouns: ['AsyncJobResult'] },
  { table: 'events', params: ['startid'], list: 'listEvents', nouns: ['Event'] },
];

/**
 * The table whose internal ids parameter `param` of `command` accepts, or undefined when it takes only a UUID:
 * `related` is the reference's comma-separated list of commands answering the entity.
 */
export function internalIdTable(command: string, param: string, related?: string): string | undefined {
  const byParam = idEntities.find((e) => e.params?.includes(param));
  if (byParam) return byParam.table;
  if (param === 'id' || param === 'ids') {
    // The command's own entity: `startRouter` → Router (its `related` also names listVirtualMachines).
    const noun = command.replace(/^[a-z]+/, '').replace(/s$/, '');
    const byNoun = idEntities.find((e) => e.nouns?.includes(noun));
    if (byNoun) return byNoun.table;
  }
  const lists = new Set((related ?? '').split(','));
  return idEntities.find((e) => e.list !== undefined && lists.has(e.list))?.table;
}

async function uuidOfInternalId(ex: Executor, table: string, id: string): Promise<string | undefined> {
  const rows = await sql<{
    uuid: string | null;
  }>`select uuid from ${sql.table(table)} where id = ${Number(id)}`.execute(ex);
  return rows.rows[0]?.uuid ?? undefined;
}

/**
 * The request's parameters with every internal id given to a parameter that accepts one replaced by the
 * entity's UUID, so that handlers, jobs and answers only ever see UUIDs. An id that matches no row is left as
 * sent (parseParams lets it through for such a parameter; the handler finds nothing, as for a wrong UUID).
 */
export async function resolveInternalIds(
  ex: Executor,
  specs: ParamSpecs,
  raw: ReadonlyMap<string, string>,
): Promise<Map<string, string>> {
  const out = new Map(raw);
  for (const [name, spec] of Object.entries(specs)) {
    const table = spec.internalIdTable;
    const v = raw.get(name);
    if (!table || v === undefined) continue;
    const resolve = async (item: string): Promise<string> =>
      INTERNAL_ID_RE.test(item.trim()) ? ((await uuidOfInternalId(ex, table, item.trim())) ?? item) : item;
    if (spec.type === 'uuid') out.set(name, await resolve(v));
    else if (spec.type === 'list' && spec.items === 'uuid') {
      const items: string[] = [];
      for (const item of v.split(',')) items.push(await resolve(item));
      out.set(name, items.join(','));
    }
  }
  return out;
}
