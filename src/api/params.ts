/**
 * Parameter parsing and validation from a command's definition: the raw request parameters (first value of
 * each name, as CloudStack's servlet keeps) become typed values, or a 431 naming the parameter and value.
 */
import { invalidParameter, missingParameter } from '../errors/catalogue.js';
import type { ParamSpec, ParamSpecs, Params } from './command.js';
import { pageFrom } from './list.js';
import type { PageParams } from './list.js';

export type RawParams = ReadonlyMap<string, string>;

const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;
const INT_RE = /^[-+]?\d+$/;

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
      const itemSpec: ParamSpec = { type: spec.items ?? 'string' };
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
export function parseParams<P extends ParamSpecs>(specs: P, raw: RawParams): Params<P> {
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
