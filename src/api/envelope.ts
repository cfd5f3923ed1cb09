/**
 * CloudStack response envelopes (ApiResponseSerializer): `{"<cmd>response": ...}` in JSON, or XML (the
 * default when `response` is absent). Pure: values in, text out.
 */
import type { CloudStackError } from '../errors/catalogue.js';
import type { CommandResult, ResponseObject, ResponseValue } from './command.js';

export type ResponseFormat = 'json' | 'xml';

/** CloudStack announces its version on XML roots; clients ignore it. */
export const CLOUDSTACK_VERSION = '4.18.0.0';

export function responseFormat(raw: string | undefined): ResponseFormat {
  return raw?.toLowerCase() === 'json' ? 'json' : 'xml';
}

export function responseName(command: string): string {
  return `${command.toLowerCase()}response`;
}

/** The body inside `<cmd>response` for a result: also what an async job stores as `jobresult`. */
export function resultBody(result: CommandResult): ResponseObject {
  switch (result.kind) {
    case 'object':
      return { [result.name]: result.value };
    case 'list':
      // An empty list is `{}`: no count, no array (ListResponse with no items).
      return result.items.length === 0 && result.count === 0
        ? {}
        : { count: result.count, [result.name]: result.items };
    case 'raw':
      return result.value;
  }
}

export function errorBody(err: CloudStackError, async = false): ResponseObject {
  const body: ResponseObject = {};
  if (!async) body.uuidList = err.uuidList;
  body.errorcode = err.httpCode;
  // 401s carry no cserrorcode in CloudStack (getSerializedApiError sets only code and text), nor do job results.
  if (!async && err.csErrorCode !== 0) body.cserrorcode = err.csErrorCode;
  body.errortext = err.message;
  return body;
}

export interface Serialized {
  contentType: string;
  body: string;
}

/**
 * A last member whose value is JSON text already (a job's stored result): spliced into a JSON answer as it is
 * rather than parsed, walked for nulls and written again on every queryAsyncJobResult; parsed only for XML.
 * Only for text that JSON.stringify wrote and that has no null in it (what stripNulls would leave as it is).
 */
export const jsonTextMember = Symbol('jsonTextMember');
type WithJsonText = ResponseObject & { [jsonTextMember]?: { key: string; text: string } };

/** `body` with `key` set to the JSON `text` (see jsonTextMember); `text` must have no null in it. */
export function withJsonText(body: ResponseObject, key: string, text: string): ResponseObject {
  (body as WithJsonText)[jsonTextMember] = { key, text };
  return body;
}

export function serialize(name: string, body: ResponseObject, format: ResponseFormat): Serialized {
  const spliced = (body as WithJsonText)[jsonTextMember];
  if (spliced) {
    if (format === 'json') {
      const head = JSON.stringify(stripNulls(body)).slice(0, -1);
      return {
        contentType: 'application/json; charset=UTF-8',
        body: `{${JSON.stringify(name)}:${head}${head === '{' ? '' : ','}${JSON.stringify(spliced.key)}:${spliced.text}}}`,
      };
    }
    body = { ...body, [spliced.key]: JSON.parse(spliced.text) as ResponseValue };
  }
  if (format === 'json') {
    // What JSON.stringify({ [name]: ... }) writes, without an object whose one member changes name every request.
    return {
      contentType: 'application/json; charset=UTF-8',
      body: `{${JSON.stringify(name)}:${JSON.stringify(stripNulls(body))}}`,
    };
  }
  return {
    contentType: 'text/xml; charset=UTF-8',
    body: `<?xml version="1.0" encoding="UTF-8"?><${name} cloud-stack-version="${CLOUDSTACK_VERSION}">${xmlChildren(body)}</${name}>`,
  };
}

/**
 * `o` without its null members, at any depth, as Gson drops them (JSON.stringify drops undefined members by
 * itself). Returns `o` itself when there is nothing to drop, and copies only the objects on the way to a null
 * member otherwise: a 500-row page is scanned, not copied (copying every object was 3.7 ms of such a page's
 * ~5.6 ms of serialising). An object whose prototype is not Object's, if any came here, is copied as its own
 * enumerable members, as before. Array elements that are themselves arrays are left as they are, as before.
 */
function stripNulls(o: ResponseObject): ResponseObject {
  const proto: unknown = Object.getPrototypeOf(o);
  if (proto !== Object.prototype && proto !== null) return copyWithoutNulls(o);
  // for-in over the own members rather than Object.keys: the same members in the same order, and no array of
  // names per object (150 KB per 500-row page, 6 % of what a page of listPublicIpAddresses allocated).
  for (const k in o) {
    if (!Object.hasOwn(o, k)) continue;
    const v = o[k];
    if (v === null) return copyWithoutNulls(o);
    if (typeof v === 'object' && (Array.isArray(v) ? stripNullsIn(v) : stripNulls(v)) !== v)
      return copyWithoutNulls(o);
  }
  return o;
}

function stripNullsIn(a: ResponseValue[]): ResponseValue[] {
  for (const x of a)
    if (isObject(x) && stripNulls(x) !== x) return a.map((y) => (isObject(y) ? stripNulls(y) : y));
  return a;
}

function copyWithoutNulls(o: ResponseObject): ResponseObject {
  const out: ResponseObject = {};
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined || v === null) continue;
    out[k] = Array.isArray(v) ? stripNullsIn(v) : isObject(v) ? stripNulls(v) : v;
  }
  return out;
}

function isObject(v: ResponseValue): v is ResponseObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const XML_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&apos;',
};
/**
 * Code points XML 1.0 forbids even as references (`Char` production): C0 controls but tab, LF and CR, lone
 * surrogates, U+FFFE and U+FFFF. With the `u` flag a surrogate pair is one astral code point, so the
 * surrogate range matches only a lone half (e.g. a value cut inside a pair).
 */
// eslint-disable-next-line no-control-regex
const NOT_XML_CHAR = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ud800-\udfff\ufffe\uffff]/gu;

function xmlEscape(s: string): string {
  return s.replace(NOT_XML_CHAR, '\ufffd').replace(/[&<>"']/g, (c) => XML_ESCAPES[c]!);
}

/**
 * Member names become element names; most are ours, but some are keys a caller chose (details, tags). A
 * name XML cannot carry has its offending characters replaced by `_` rather than breaking the document.
 */
const XML_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
function xmlName(name: string): string {
  if (XML_NAME.test(name)) return name;
  const n = name.replace(/[^A-Za-z0-9_.-]/g, '_');
  return /^[A-Za-z_]/.test(n) ? n : `_${n}`;
}

function xmlChildren(o: ResponseObject): string {
  let s = '';
  for (const [k, v] of Object.entries(o)) s += xmlElement(k, v);
  return s;
}

function xmlElement(name: string, v: ResponseValue): string {
  if (v === undefined || v === null) return '';
  // Arrays become repeated elements named after the member (`<account>..</account><account>..</account>`).
  if (Array.isArray(v)) return v.map((x) => xmlElement(name, x)).join('');
  const tag = xmlName(name);
  if (isObject(v)) return `<${tag}>${xmlChildren(v)}</${tag}>`;
  return `<${tag}>${xmlEscape(String(v))}</${tag}>`;
}

/** The second csDate formatted last and its text: the dates of one busy second are mostly the same second. */
let lastSecond = NaN;
let lastText = '';

/** CloudStack's date format in responses: `2026-11-23T15:54:21+0000`. */
export function csDate(ms: number | null | undefined): string | undefined {
  if (ms === null || ms === undefined) return undefined;
  // The text shows whole seconds only: a Date, its ISO string and a slice per date (0.2–0.8 % of the server's CPU
  // per associateIpAddress job, which formats three) only when the second changes.
  const second = Math.floor(ms / 1000);
  if (second !== lastSecond) {
    lastText = `${new Date(ms).toISOString().slice(0, 19)}+0000`;
    lastSecond = second;
  }
  return lastText;
}
