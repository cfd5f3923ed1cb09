/**
 * The standing fuzz test: every command the server lists in listApis gets requests with missing, wrong-type,
 * huge, unicode/control-character, negative and malformed values, in JSON and XML, signed as the root admin
 * (so every command is reachable), as a plain user, and unauthenticated, against a real server process on a
 * real database. Every answer must be below 500 or a CloudStack error other than InternalError, well-formed
 * (valid UTF-8, XML 1.0 or JSON), CloudStack-shaped when an error, free of SQL text and stack traces; jobs the
 * fuzz queued must not end in InternalError either; and the server must still answer and exit cleanly.
 *
 * Reproducible: each request is generated from (seed, command, index) alone, so a failure prints the seed
 * and the request, and `STACKNET_FUZZ_SEED=<seed>` regenerates exactly the same requests.
 *   STACKNET_FUZZ_SEED         seed (default: random, printed)
 *   STACKNET_FUZZ_PER_COMMAND  requests per command on SQLite (default 100)
 *   STACKNET_FUZZ_PER_COMMAND_OTHER  requests per command on PostgreSQL and MariaDB (default 50)
 *   STACKNET_FUZZ_CONCURRENCY  requests in flight (default 8)
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestDatabase, testDbKinds } from '../../src/store/testing/test-databases.js';
import type { TestDatabase } from '../../src/store/testing/test-databases.js';
import { formatExpires, signParams } from '../../src/api/signature.js';
import { startServer } from './harness.js';
import type { ServerProcess } from './harness.js';
import { assertWellFormedXml } from './well-formed.js';

const SEED = Number(process.env.STACKNET_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const PER_COMMAND_SQLITE = Number(process.env.STACKNET_FUZZ_PER_COMMAND ?? 100);
const PER_COMMAND_OTHER = Number(process.env.STACKNET_FUZZ_PER_COMMAND_OTHER ?? 50);
const CONCURRENCY = Number(process.env.STACKNET_FUZZ_CONCURRENCY ?? 8);

// ---------------------------------------------------------------------------------------------------------
// A small seeded generator: mulberry32 over a hash of (seed, command, index).

type Rng = () => number;

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

function rngFor(seed: number, command: string, index: number): Rng {
  let a = hash(`${seed}/${command}/${index}`);
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = <T>(r: Rng, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const chance = (r: Rng, p: number) => r() < p;

/**
 * A value on the wire: `text` is what the server decodes, `wire` (optional) the exact percent-encoded bytes,
 * for values that are not valid UTF-8 and so cannot be written as a JS string.
 */
interface WireValue {
  text: string;
  wire?: string;
}

function rawBytes(wire: string): WireValue {
  // What the server's URLSearchParams makes of the bytes (invalid UTF-8 → U+FFFD), which is what it signs.
  return { text: new URLSearchParams(`v=${wire}`).get('v')!, wire };
}

const JUNK: readonly (string | (() => WireValue))[] = [
  ' ',
  'null',
  'undefined',
  'NaN',
  '-1',
  '0',
  '\u0000',
  'a\u0001b\u0002c\u001fd\u007f',
  '\u000b\u000c\u0008',
  'x\r\ny',
  '\t',
  '\uffff',
  '\ufffe',
  'a\uffffb\ufffec',
  '\ud83d\ude00'.repeat(30),
  '\u202eevil\u202c',
  'e\u0301\u0301\u0301',
  'zero\u200bwidth',
  '<a>&amp;</a>',
  ']]>',
  '"\'<>&',
  '&#0;&#xffff;',
  "' OR '1'='1",
  '"; DROP TABLE accounts; --',
  '\\',
  '%',
  '_%_',
  '${jndi:ldap://x}',
  '../../etc/passwd',
  '１２３',
  '٣',
  '1e309',
  '-0',
  '9'.repeat(400),
  () => rawBytes('%FF%FE'),
  () => rawBytes('%ED%A0%80'),
  () => rawBytes('%C0%AF'),
  () => rawBytes('%00'),
];

const NUMBERS = [
  '-1',
  '0',
  '1',
  '2',
  '-2147483648',
  '-2147483649',
  '2147483647',
  '2147483648',
  '4294967296',
  '9007199254740991',
  '9007199254740993',
  '9223372036854775807',
  '9223372036854775808',
  '-9223372036854775809',
  '1.5',
  '1e3',
  '0x1F',
  '+5',
  ' 7 ',
  '00042',
  '-',
  '1,2',
];

const STRINGS = [
  'fuzz',
  'fuzz-name-1',
  'a'.repeat(255),
  'a'.repeat(256),
  'é'.repeat(200),
  '\ud83d\ude00'.repeat(200),
  '10.0.0.1',
  '10.1.0.0/24',
  '10.0.0.0/33',
  '0.0.0.0/0',
  '256.1.1.1',
  '10.0.0.1-10.0.0.5',
  '::1',
  'fd00::/64',
  'fd00::/129',
  'aa:bb:cc:dd:ee:ff',
  'ff:ff:ff:ff:ff:ff',
  'not-a-mac',
  'fuzz@example.org',
  'http://example.org/',
  'vlan://100',
  'vlan://untagged',
  'vxlan://4096',
  '100',
  '4095',
  '4096',
  'Isolated',
  'Shared',
  'L2',
  'Guest',
  'Public',
  'Admin',
  'User',
  'Enabled',
  'Disabled',
  'Dhcp,Dns,SourceNat',
  'VirtualRouter',
  'default.page.size',
  'api.throttling.max',
  'network.gc.interval',
  'ROOT',
  '/',
  'admin',
  'fuzzuser',
];

const DATES = [
  '2026-01-01',
  '2026-13-45',
  '0000-00-00',
  '9999-12-31 23:59:59',
  '2026-01-01T00:00:00Z',
  '2026-01-01T00:00:00+0530',
  '275760-09-13',
  'yesterday',
  '1970-01-01',
];

interface ApiParam {
  name: string;
  type: string;
  required: boolean;
}
interface Api {
  name: string;
  isasync: boolean;
  params: ApiParam[];
}

interface Pools {
  uuids: string[];
}

function junk(r: Rng): WireValue {
  const j = pick(r, JUNK);
  return typeof j === 'string' ? { text: j } : j();
}

function randomUuid(r: Rng): string {
  const hex = Array.from({ length: 32 }, () => Math.floor(r() * 16).toString(16)).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20)}`;
}

function uuidLike(r: Rng, pools: Pools): string {
  const real = pools.uuids.length > 0 ? pick(r, pools.uuids) : '00000000-0000-4000-8000-000000000000';
  return pick(r, [
    real,
    real,
    real,
    real.toUpperCase(),
    `${real} `,
    `${real}x`,
    real.slice(1),
    '00000000-0000-0000-0000-000000000000',
    'ffffffff-ffff-ffff-ffff-ffffffffffff',
    randomUuid(r),
    '1',
    '0',
    '-1',
    'abc',
  ]);
}

function typedValue(r: Rng, type: string, pools: Pools): string {
  switch (type) {
    case 'uuid':
      return uuidLike(r, pools);
    case 'integer':
    case 'long':
    case 'short':
      return chance(r, 0.3) ? String(Math.floor(r() * 5000)) : pick(r, NUMBERS);
    case 'boolean':
      return pick(r, ['true', 'false', 'TRUE', 'False', 'yes', '1', '0', 'tru']);
    case 'date':
      return pick(r, DATES);
    case 'list': {
      const n = Math.floor(r() * 4);
      const items = Array.from({ length: n }, () =>
        pick(r, [uuidLike(r, pools), pick(r, STRINGS), pick(r, NUMBERS)]),
      );
      return chance(r, 0.2) ? `,,${items.join(',,')},` : items.join(',');
    }
    default:
      return pick(r, STRINGS);
  }
}

/** Values that reach deeper than a type check, for parameters whose name says what they hold. */
const BY_NAME: readonly [RegExp, readonly string[]][] = [
  [/^page(size)?$/, ['-1', '-1', '-1', '0', '1', '2', '3', '500', '501', '-2', '2147483647', '-2147483648']],
  [
    /cidr/,
    ['10.1.0.0/24', '10.1.0.1/24', '10.0.0.0/33', '0.0.0.0/0', 'fd00::/64', 'fd00::/129', '10.1.0.0', '/24'],
  ],
  [/netmask/, ['255.255.255.0', '255.0.255.0', '0.0.0.0', '255.255.255.255', '24']],
  [
    /mac/,
    [
      '02:00:00:00:00:01',
      'ff:ff:ff:ff:ff:ff',
      '01:00:5e:00:00:01',
      'zz:zz:zz:zz:zz:zz',
      '02:00:00:00:00:01\n',
    ],
  ],
  [
    /vlan/,
    ['100', '4094', '4095', '0', '-1', 'vlan://100', 'vlan://untagged', 'vxlan://16777216', '100-200'],
  ],
  [
    /ip|gateway|dns/,
    [
      '10.0.0.1',
      '10.1.0.10',
      '10.0.0.0',
      '10.0.0.255',
      '256.1.1.1',
      '::1',
      'fd00::1',
      'fd00::g',
      '1.2.3',
      '0.0.0.0',
    ],
  ],
];

function value(r: Rng, type: string, pools: Pools, name = '', plausible = false): WireValue {
  // A plausible request has only values of the declared type, so it gets past validation into the handler.
  const x = plausible ? r() * 0.55 : r();
  const byName = BY_NAME.find(([re]) => re.test(name.toLowerCase()));
  if (byName && x < 0.4) return { text: pick(r, byName[1]) };
  if (x < 0.55) return { text: typedValue(r, type, pools) };
  if (x < 0.75)
    return { text: typedValue(r, pick(r, ['uuid', 'integer', 'boolean', 'date', 'list', 'string']), pools) };
  if (x < 0.97) return junk(r);
  // Huge: past every length limit, and (plain letters) past CloudStack's 1 MB userdata; sent in a form body.
  const c = pick(r, ['A', 'é', '\u0001', '\ud83d\ude00', '<&>']);
  return { text: c.repeat(pick(r, c === 'A' ? [5_000, 70_000, 1_100_000] : [5_000, 70_000])) };
}

type Auth = 'admin' | 'user' | 'anonymous' | 'badsig';

interface FuzzRequest {
  command: string;
  index: number;
  auth: Auth;
  method: 'GET' | 'POST';
  format: 'json' | 'xml';
  params: [string, WireValue][];
}

function mapEntries(r: Rng, name: string, pools: Pools): [string, WireValue][] {
  const shape = r();
  if (shape < 0.5) {
    const n = 1 + Math.floor(r() * 3);
    const out: [string, WireValue][] = [];
    for (let i = 0; i < n; i++) {
      const idx = pick(r, [String(i), String(i), '-1', '99999999999999999999', 'x', '']);
      out.push([
        `${name}[${idx}].${pick(r, ['key', 'value', 'name', 'cidrlist', 'protocol'])}`,
        value(r, 'string', pools),
      ]);
      if (chance(r, 0.7)) out.push([`${name}[${idx}].value`, value(r, 'string', pools)]);
    }
    return out;
  }
  if (shape < 0.7) return [[name, value(r, 'string', pools)]];
  if (shape < 0.85) return [[`${name}[0]`, value(r, 'string', pools)]];
  return [[`${name}[0].`, value(r, 'string', pools)]];
}

/**
 * UUID parameters also take internal ids, as in CloudStack, and the small ones name the admin's and the fuzz
 * user's own user, account and domain (protected by UUID below): a natural number under 100 in an id parameter
 * becomes one that matches no row, so the run keeps its credentials and still sends numeric ids.
 */
function unprotectedIds(type: string, v: WireValue): WireValue {
  if ((type !== 'uuid' && type !== 'list') || v.wire !== undefined) return v;
  const text = v.text
    .split(',')
    .map((t) => (/^\s*0*[1-9]\d?\s*$/.test(t) ? '999999999' : t))
    .join(',');
  return { text };
}

function generate(api: Api, index: number, pools: Pools): FuzzRequest {
  const r = rngFor(SEED, api.name, index);
  const params: [string, WireValue][] = [];
  const plausible = chance(r, 0.35);
  for (const p of api.params) {
    if (chance(r, p.required ? (plausible ? 0.02 : 0.12) : 0.45)) continue;
    if (p.type === 'map') params.push(...mapEntries(r, p.name, pools));
    else
      params.push([
        chance(r, 0.03) ? p.name.toUpperCase() : p.name,
        unprotectedIds(p.type, value(r, p.type, pools, p.name, plausible)),
      ]);
  }
  if (chance(r, 0.1))
    params.push([pick(r, ['foo', 'id[0]', 'page', 'pagesize', 'listall', 'ZONEID']), junk(r)]);
  const a = r();
  const auth: Auth = a < 0.82 ? 'admin' : a < 0.94 ? 'user' : a < 0.97 ? 'anonymous' : 'badsig';
  const size = params.reduce((n, [k, v]) => n + k.length + (v.wire ?? v.text).length * 3, 0);
  return {
    command: api.name,
    index,
    auth,
    method: size > 3000 || chance(r, 0.3) ? 'POST' : 'GET',
    format: chance(r, 0.5) ? 'json' : 'xml',
    params,
  };
}

/** Percent-encodes every byte but the unreserved ones, so what is sent is exactly the UTF-8 of `s`. */
function enc(s: string): string {
  try {
    return encodeURIComponent(s);
  } catch {
    // A lone surrogate: send the UTF-8 Buffer makes of it (U+FFFD), byte by byte.
    return [...Buffer.from(s, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
  }
}

interface Keys {
  apiKey: string;
  secretKey: string;
}

function encodeRequest(req: FuzzRequest, keys: { admin: Keys; user: Keys }): string {
  const all: [string, WireValue][] = [['command', { text: req.command }], ...req.params];
  if (req.format === 'json') all.push(['response', { text: 'json' }]);
  if (req.auth === 'admin' || req.auth === 'user' || req.auth === 'badsig') {
    const k = req.auth === 'user' ? keys.user : keys.admin;
    all.push(['apiKey', { text: k.apiKey }]);
    all.push(['signatureVersion', { text: '3' }]);
    all.push(['expires', { text: formatExpires(Date.now() + 600_000) }]);
    // The server keeps the first of repeated names; so must what is signed. The text is signed as the server
    // will decode it (a lone surrogate has become U+FFFD on the way).
    const seen = new Map<string, string>();
    for (const [name, v] of all) {
      if (!seen.has(name)) seen.set(name, Buffer.from(v.text, 'utf8').toString('utf8'));
    }
    const sig = req.auth === 'badsig' ? 'AAAA' : signParams(seen, k.secretKey);
    all.push(['signature', { text: sig }]);
  }
  return all.map(([name, v]) => `${enc(name)}=${v.wire ?? enc(v.text)}`).join('&');
}

function describeRequest(req: FuzzRequest): string {
  const shown = req.params.map(([k, v]) => {
    const t = v.wire ?? v.text;
    return [k, t.length > 80 ? `${JSON.stringify(t.slice(0, 60))}…(${t.length} chars)` : JSON.stringify(t)];
  });
  return `seed=${SEED} ${req.command}#${req.index} auth=${req.auth} ${req.method} ${req.format} ${shown
    .map(([k, v]) => `${k}=${v}`)
    .join(' ')}`;
}

// What a driver error or a leaked stack looks like. Values the fuzz sent are removed from the text first.
const SQL_TEXT =
  /syntax error|SQLITE_|\bER_[A-Z_]{3,}\b|sqlMessage|invalid input syntax|violates .*constraint|duplicate key|\bselect\b[\s\S]*\bfrom\b|\binsert into\b|\bdelete from\b|\bupdate\s+\S+\s+set\b|no such (table|column)|Unknown column|relation "|column "|out of range for type|numeric field overflow|Incorrect (integer|datetime|string) value|Data too long|Out of range value|kysely|LIMIT must not|OFFSET must not/i;
const STACK_TRACE = /\n\s+at |\bat [\w$.<>]+ \(|node_modules|\.[jt]s:\d+:\d+/;

interface Failure {
  request: string;
  why: string;
}

/** Allowed 5xx: CloudStack's own 53x kinds other than InternalError (4250). */
function acceptableError(status: number, cs: unknown): boolean {
  if (status < 500) return true;
  return status >= 530 && status <= 535 && cs !== 4250;
}

function checkErrorFields(
  body: Record<string, unknown>,
  status: number,
  strip: (s: string) => string,
): string[] {
  const problems: string[] = [];
  if (Number(body.errorcode) !== status)
    problems.push(`errorcode ${String(body.errorcode)} is not the HTTP status ${status}`);
  if (status !== 401 && !Number.isInteger(Number(body.cserrorcode))) problems.push('no cserrorcode');
  if (typeof body.errortext !== 'string' || body.errortext.trim() === '') problems.push('no errortext');
  else {
    const t = strip(body.errortext);
    if (SQL_TEXT.test(t)) problems.push(`SQL text in errortext: ${body.errortext.slice(0, 300)}`);
    if (STACK_TRACE.test(t)) problems.push(`stack trace in errortext: ${body.errortext.slice(0, 300)}`);
    if (!acceptableError(status, Number(body.cserrorcode)))
      problems.push(`internal error: ${body.errortext.slice(0, 300)}`);
  }
  return problems;
}

/** A minimal XML reader for our flat error bodies: the text of `<name>` directly under the root. */
function xmlField(xml: string, name: string): string | undefined {
  const m = new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml);
  if (!m) return undefined;
  return m[1]!
    .replace(/&#x([0-9a-f]+);/gi, (_, h: string) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&#(\d+);/g, (_, d: string) => String.fromCodePoint(Number(d)))
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&');
}

async function send(url: string, req: FuzzRequest, keys: { admin: Keys; user: Keys }) {
  const q = encodeRequest(req, keys);
  const res =
    req.method === 'POST'
      ? await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: q,
        })
      : await fetch(`${url}?${q}`);
  const bytes = new Uint8Array(await res.arrayBuffer());
  return { status: res.status, contentType: res.headers.get('content-type') ?? '', bytes };
}

function checkAnswer(
  req: FuzzRequest,
  a: { status: number; contentType: string; bytes: Uint8Array },
): string[] {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(a.bytes);
  } catch {
    return ['body is not valid UTF-8'];
  }
  // Errors may echo what was sent (the first 100 characters of it): that text is not the server's.
  const sent = req.params
    .flatMap(([, v]) => [v.text, v.text.slice(0, 100)])
    .filter((t) => t.length >= 4 && t.length <= 300);
  const strip = (s: string) => sent.reduce((acc, t) => acc.split(t).join(''), s);
  const problems: string[] = [];
  if (req.auth === 'admin' && a.status === 401)
    problems.push('the admin signature was refused (fuzzer or server signing bug)');
  const wantJson = req.format === 'json';
  if (wantJson !== a.contentType.startsWith('application/json'))
    problems.push(`content type ${a.contentType} for ${req.format}`);
  if (a.contentType.startsWith('application/json')) {
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (e) {
      return [...problems, `invalid JSON: ${String(e)}: ${text.slice(0, 200)}`];
    }
    const keys = doc && typeof doc === 'object' ? Object.keys(doc) : [];
    if (keys.length !== 1 || !keys[0]!.endsWith('response'))
      problems.push(`not a CloudStack envelope: ${text.slice(0, 200)}`);
    else if (a.status !== 200) {
      const body = (doc as Record<string, Record<string, unknown>>)[keys[0]!]!;
      problems.push(...checkErrorFields(body, a.status, strip));
    }
  } else {
    try {
      assertWellFormedXml(text);
    } catch (e) {
      return [...problems, `malformed XML: ${(e as Error).message}`];
    }
    if (!/^<\?xml[^>]*\?><[a-z0-9]+response[ >]/.test(text))
      problems.push(`not a CloudStack envelope: ${text.slice(0, 200)}`);
    else if (a.status !== 200) {
      problems.push(
        ...checkErrorFields(
          {
            errorcode: xmlField(text, 'errorcode'),
            cserrorcode: xmlField(text, 'cserrorcode'),
            errortext: xmlField(text, 'errortext'),
          },
          a.status,
          strip,
        ),
      );
    }
  }
  if (a.status >= 500 && !problems.some((p) => p.startsWith('internal error'))) {
    // Any 5xx that is not a CloudStack 53x error body is a failure (checkErrorFields allows the legitimate ones).
    if (a.status < 530 || a.status > 535) problems.push(`HTTP ${a.status}`);
  }
  return problems;
}

async function pool<T>(items: readonly T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

function shuffled<T>(xs: T[], r: Rng): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}

for (const kind of testDbKinds()) {
  const perCommand = kind === 'sqlite' ? PER_COMMAND_SQLITE : PER_COMMAND_OTHER;
  describe(`fuzz every listApis command (${kind})`, () => {
    let tdb: TestDatabase;
    let server: ServerProcess;
    let keys: { admin: Keys; user: Keys };
    const admin = async (command: string, params: Record<string, string> = {}) => {
      const req: FuzzRequest = {
        command,
        index: -1,
        auth: 'admin',
        method: 'GET',
        format: 'json',
        params: Object.entries(params).map(([k, v]) => [k, { text: v }]),
      };
      const a = await send(server.url, req, keys);
      const text = new TextDecoder().decode(a.bytes);
      return {
        status: a.status,
        // eslint-disable-next-line @typescript-eslint/no-explicit-any -- answers are read loosely, as JSON
        body: Object.values(JSON.parse(text) as Record<string, unknown>)[0] as Record<string, any>,
      };
    };

    before(async () => {
      tdb = await createTestDatabase(kind);
      // --demo: a zone, public range and isolated network, so real ids reach the handlers' deeper paths.
      server = await startServer(tdb.url, {}, ['--demo']);
      keys = {
        admin: { apiKey: server.apiKey, secretKey: server.secretKey },
        user: { apiKey: '', secretKey: '' },
      };
    });

    after(async () => {
      const code = await server?.stop();
      assert.equal(code, 0, `server exit code after SIGTERM\n${server?.output().slice(-4000)}`);
      await tdb?.drop();
    });

    test(`${perCommand} requests per command, seed ${SEED}`, async () => {
      const acct = await admin('createAccount', {
        username: 'fuzzuser',
        password: 'fuzz-pw',
        email: 'fuzz@example.org',
        firstname: 'Fuzz',
        lastname: 'User',
        accounttype: '0',
      });
      assert.equal(acct.status, 200, JSON.stringify(acct.body));
      const userId = acct.body.account.user[0].id as string;
      const k = await admin('registerUserKeys', { id: userId });
      keys.user = { apiKey: k.body.userkeys.apikey, secretKey: k.body.userkeys.secretkey };

      const apis = (await admin('listApis')).body.api as Api[];
      assert.ok(apis.length > 20, 'listApis lists the served commands');

      // Ids of real objects, so that some requests get past "no such object"; never the admin's or the fuzz
      // user's own account, user or domain, so the run keeps its credentials.
      const protectedIds = new Set<string>([userId, acct.body.account.id]);
      for (const u of (await admin('listUsers', { listall: 'true' })).body.user ?? []) {
        if (u.username === 'admin') {
          protectedIds.add(u.id);
          protectedIds.add(u.accountid);
          protectedIds.add(u.domainid);
        }
      }
      const uuids = new Set<string>();
      for (const api of apis) {
        if (!api.name.startsWith('list') || api.params.some((p) => p.required)) continue;
        const r = await admin(api.name, { listall: 'true' });
        if (r.status !== 200) continue;
        for (const v of Object.values(r.body))
          if (Array.isArray(v))
            for (const o of v) if (typeof o?.id === 'string' && !protectedIds.has(o.id)) uuids.add(o.id);
      }
      const pools: Pools = { uuids: [...uuids].sort() };

      // login and logout are answered before authentication: fuzz them unauthenticated.
      // Requests are made when sent (some values are megabytes): the order is fixed by the seed, each request
      // by (seed, command, index).
      const order = shuffled(
        apis.flatMap((api) => Array.from({ length: perCommand }, (_, i): [Api, number] => [api, i])),
        rngFor(SEED, 'order', 0),
      );
      const make = ([api, i]: [Api, number]): FuzzRequest => {
        const req = generate(api, i, pools);
        return api.name === 'login' || api.name === 'logout' ? { ...req, auth: 'anonymous' } : req;
      };
      const failures: Failure[] = [];
      const byCommand = new Map<string, number>();
      const statuses = new Map<number, number>();
      const started = Date.now();
      await pool(order, CONCURRENCY, async (slot) => {
        const req = make(slot);
        let problems: string[];
        try {
          const a = await send(server.url, req, keys);
          statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
          problems = checkAnswer(req, a);
        } catch (e) {
          problems = [`request failed: ${String(e)}`];
        }
        for (const why of problems) {
          failures.push({ request: describeRequest(req), why });
          byCommand.set(req.command, (byCommand.get(req.command) ?? 0) + 1);
        }
      });

      // Jobs the fuzz queued run in the background: wait for them, and none may end in an internal error.
      const jobFailures: string[] = [];
      const deadline = Date.now() + 60_000;
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- answers are read loosely, as JSON
      let jobs: Record<string, any>[];
      for (;;) {
        const r = await admin('listAsyncJobs', { listall: 'true', pagesize: '-1' });
        assert.equal(r.status, 200, JSON.stringify(r.body));
        jobs = r.body.asyncjobs ?? [];
        if (jobs.every((j) => j.jobstatus !== 0) || Date.now() > deadline) break;
        await new Promise((res) => setTimeout(res, 500));
      }
      for (const j of jobs) {
        if (j.jobstatus === 0) jobFailures.push(`${j.cmd} ${j.jobid}: still pending after 60 s`);
        const res = j.jobresult as Record<string, unknown> | undefined;
        if (j.jobstatus === 2 && res) {
          const text = String(res.errortext ?? '');
          // Job results carry no cserrorcode (as CloudStack's): a 530 is a bug unless it is one of the deliberate
          // ones, including CloudStack's own for a stopped system VM, which has no host (DiagnosticsServiceImpl).
          const deliberate = /another operation|not supported|Unable to find host for virtual machine/i;
          if (Number(res.errorcode) === 530 && !deliberate.test(text))
            jobFailures.push(`${j.cmd} ${j.jobid}: internal error: ${text.slice(0, 300)}`);
          if (SQL_TEXT.test(text) || STACK_TRACE.test(text))
            jobFailures.push(`${j.cmd} ${j.jobid}: ${text.slice(0, 300)}`);
        }
      }

      const health = await fetch(`http://127.0.0.1:${server.port}/healthz`);
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      const categories = new Map<string, number>();
      for (const f of failures) {
        const c = f.why.replace(/[:(].*$/s, '').trim();
        categories.set(c, (categories.get(c) ?? 0) + 1);
      }
      const summary = [...byCommand]
        .sort((a, b) => b[1] - a[1])
        .map(([c, n]) => `${c}: ${n}`)
        .join(', ');
      console.log(
        `fuzz ${kind}: seed ${SEED}, ${order.length} requests to ${apis.length} commands in ${seconds} s, ` +
          `statuses ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}, ` +
          `${jobs.length} jobs, ${failures.length} failures ${JSON.stringify(Object.fromEntries(categories))}, ` +
          `${jobFailures.length} job failures, ` +
          `${(server.output().match(/Internal error while/g) ?? []).length} internal errors in the server log`,
      );
      const shown = failures
        .slice(0, 40)
        .map((f) => `${f.why}\n    ${f.request}`)
        .join('\n');
      assert.equal(health.status, 200, 'the server answers /healthz after the fuzz');
      assert.deepEqual(jobFailures, [], 'jobs queued by the fuzz');
      assert.equal(
        failures.length,
        0,
        `${failures.length} bad answers (by command: ${summary}); first ones:\n${shown}`,
      );
    });
  });
}
