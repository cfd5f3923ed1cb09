/**
 * What the reconciler keeps of the last state it pushed to a router, to send the next change as a delta: not the
 * state itself but a digest of each part a delta replaces or upserts (a section, a host by MAC, a VM's metadata
 * by IP, a rule by id). A router of a 10,000-VM network has a desired state of tens of megabytes; keeping every
 * router's last state whole made the server's memory grow with the zone (issue 16: 50 such routers, over a
 * gigabyte). `diffAgainstBase(baseOf(a), b)` is the same delta as `diffStates(a, b)` (its test checks it).
 *
 * Passwords are kept (packed): the reconciler clears a password from the VM row only when the agent reports it
 * acknowledged and it is still the one that was pushed (repository.ts clearSavedPasswords), so it needs the value.
 */
import * as crypto from 'node:crypto';
import type { DesiredState, DesiredStateDelta } from '../agent/desired-state.js';

export interface DeltaBase {
  generation: number;
  /** Digests of the sections a delta replaces wholesale ('' = absent). */
  sections: Record<'router' | 'network' | 'firewall' | 'public' | 'vpc', string>;
  /** Host digest by lower-case MAC (the last host of a MAC wins, as in diffStates). */
  hosts: DigestTable;
  /**
   * Every host's MAC as pushed (a removal names the MAC as the base spelled it), when that list is not the keys
   * of `hosts` in their order (a MAC not in lower case, or twice); null when it is, as the server writes them.
   */
  hostMacs: StringList | null;
  metadata: DigestTable;
  rules: DigestTable;
  /** The passwords themselves (clearing an acknowledged one needs its value), by VM IP. */
  passwords: StringTable;
}

/** `v` as a LEB128 varint into `out` at `at`; the offset after it. */
function putVarint(out: Uint8Array, at: number, v: number): number {
  while (v >= 0x80) {
    out[at++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  out[at++] = v;
  return at;
}

/**
 * Strings packed in one byte array, front-coded: each as the number of UTF-16 code units it shares with the one
 * before, the number that follow, and those code units, every number a varint (an ASCII character is one byte;
 * any JavaScript string comes back as it was, a lone surrogate too). The keys of a router's state come in runs
 * (MACs from one counter, addresses of one network), so a key mostly repeats the one before it: 3–5 bytes, where
 * a V8 string of its own is 24–40 and its slice of one joined string its length. Read in order only.
 */
export class StringList {
  readonly length: number;
  private readonly bytes: Uint8Array;

  constructor(strings: Iterable<string>) {
    let out = new Uint8Array(4096);
    let n = 0;
    let prev = '';
    let count = 0;
    for (const s of strings) {
      let shared = 0;
      const limit = Math.min(s.length, prev.length);
      while (shared < limit && s.charCodeAt(shared) === prev.charCodeAt(shared)) shared++;
      const need = n + 10 + 3 * (s.length - shared);
      if (need > out.length) {
        const grown = new Uint8Array(Math.max(out.length * 2, need));
        grown.set(out.subarray(0, n));
        out = grown;
      }
      n = putVarint(out, n, shared);
      n = putVarint(out, n, s.length - shared);
      for (let i = shared; i < s.length; i++) n = putVarint(out, n, s.charCodeAt(i));
      prev = s;
      count++;
    }
    this.bytes = out.slice(0, n);
    this.length = count;
  }

  *[Symbol.iterator](): IterableIterator<string> {
    const b = this.bytes;
    let units = new Uint16Array(64);
    let at = 0;
    const varint = () => {
      let v = 0;
      for (let shift = 0; ; shift += 7) {
        const x = b[at++]!;
        v |= (x & 0x7f) << shift;
        if (x < 0x80) return v >>> 0;
      }
    };
    for (let i = 0; i < this.length; i++) {
      const shared = varint();
      const len = shared + varint();
      if (len > units.length) {
        const grown = new Uint16Array(Math.max(units.length * 2, len));
        grown.set(units.subarray(0, shared));
        units = grown;
      }
      for (let u = shared; u < len; u++) units[u] = varint();
      // The code units as they are (no validation: a lone surrogate stays one).
      yield len <= 4096
        ? String.fromCharCode.apply(null, units.subarray(0, len) as unknown as number[])
        : Buffer.from(units.buffer, 0, len * 2).toString('ucs2');
    }
  }

  /** Bytes held (the packed text). */
  get byteLength(): number {
    return this.bytes.byteLength;
  }
}

/** String keys to string values, both packed (StringList), in the order given. */
export class StringTable {
  private readonly keys: StringList;
  private readonly values: StringList;

  constructor(record: Record<string, string>) {
    this.keys = new StringList(Object.keys(record));
    this.values = new StringList(Object.values(record));
  }

  get size(): number {
    return this.keys.length;
  }

  /** The pairs, in the order given. */
  *entries(): IterableIterator<[string, string]> {
    const values = this.values[Symbol.iterator]();
    for (const k of this.keys) yield [k, values.next().value as string];
  }

  /** The values of `wanted` keys that are here (one pass over the table). */
  pick(wanted: Iterable<string>): Map<string, string> {
    const want = new Set(wanted);
    const found = new Map<string, string>();
    if (want.size === 0) return found;
    for (const [k, v] of this.entries()) if (want.has(k)) found.set(k, v);
    return found;
  }
}

/** The one-shot crypto.hash() (Node ≥ 20.12; the engines field allows 20.10): 3–7× cheaper than a hash object per entry. */
const sha256: (text: string) => Buffer =
  typeof crypto.hash === 'function'
    ? (text) => crypto.hash('sha256', text, 'buffer')
    : (text) => crypto.createHash('sha256').update(text).digest();

const DIGEST_BYTES = 16;

const ABSENT = Buffer.alloc(DIGEST_BYTES);

/**
 * 128 bits of SHA-256 of the JSON text: a collision would hide a change from a delta, so not a short hash. An
 * absent value (undefined) is all zeros.
 */
function digestBytes(value: unknown): Buffer {
  const text = JSON.stringify(value);
  return text === undefined ? ABSENT : sha256(text).subarray(0, DIGEST_BYTES);
}

function digest(value: unknown): string {
  return value === undefined ? '' : digestBytes(value).toString('base64');
}

/**
 * Keys and their digests, packed: the keys front-coded in one byte array (StringList, in the order given) and the
 * 16-byte digests in one typed array. A Map of string keys to string digests took about 110 bytes per entry (two
 * or three entries per VM of a network: host, metadata, rules), so fifty 10,000-VM routers held ~250 MB of bases;
 * packed it is the few bytes a key does not share with the one before it, and 16.
 */
export class DigestTable {
  private readonly keys: StringList;
  private readonly digests: Uint8Array;

  /** `entries` may repeat a key: it keeps its first place and its last value (as a Map built from them). */
  constructor(entries: [key: string, value: unknown][]) {
    const last = new Map<string, number>();
    entries.forEach(([k], i) => last.set(k, i));
    this.digests = new Uint8Array(last.size * DIGEST_BYTES);
    let i = 0;
    for (const at of last.values()) this.digests.set(digestBytes(entries[at]![1]), DIGEST_BYTES * i++);
    this.keys = new StringList(last.keys());
  }

  get size(): number {
    return this.keys.length;
  }

  /**
   * A lookup for one diff: key → whether `value` has the digest kept for it. Builds a Map of the keys for the
   * call (a binary search per entry cost more than the Map, which is garbage once the diff is made).
   */
  matcher(): (key: string, value: unknown) => boolean {
    const at = new Map<string, number>();
    let i = 0;
    for (const k of this.keys) at.set(k, i++);
    return (key, value) => {
      const i = at.get(key);
      if (i === undefined) return false;
      const d = digestBytes(value);
      const o = i * DIGEST_BYTES;
      for (let b = 0; b < DIGEST_BYTES; b++) if (d[b] !== this.digests[o + b]) return false;
      return true;
    };
  }

  /** The keys, in the order given. */
  entries(): IterableIterator<string> {
    return this.keys[Symbol.iterator]();
  }
}

const lower = (mac: string) => mac.toLowerCase();

export function baseOf(s: DesiredState): DeltaBase {
  const hosts = new DigestTable(s.hosts.map((h) => [lower(h.mac), h]));
  return {
    generation: s.generation,
    sections: {
      router: digest(s.router),
      network: digest(s.network),
      firewall: digest(s.firewall),
      public: digest(s.public),
      vpc: digest(s.vpc),
    },
    hosts,
    hostMacs:
      hosts.size === s.hosts.length && s.hosts.every((h) => h.mac === lower(h.mac))
        ? null
        : new StringList(s.hosts.map((h) => h.mac)),
    metadata: new DigestTable(Object.entries(s.metadata)),
    rules: new DigestTable((s.rules ?? []).map((r) => [r.id, r])),
    passwords: new StringTable(s.passwords),
  };
}

/** The delta from the pushed state `from` (as its base) to `to`: what diffStates(from, to) gives. */
export function diffAgainstBase(from: DeltaBase, to: DesiredState): DesiredStateDelta {
  const delta: DesiredStateDelta = { baseGeneration: from.generation, generation: to.generation };
  if (from.sections.router !== digest(to.router)) delta.router = to.router;
  if (from.sections.network !== digest(to.network)) delta.network = to.network;
  if (from.sections.firewall !== digest(to.firewall)) delta.firewall = to.firewall;
  if (from.sections.public !== digest(to.public)) delta.public = to.public ?? null;
  if (from.sections.vpc !== digest(to.vpc)) delta.vpc = to.vpc ?? null;
  const newRules = new Set((to.rules ?? []).map((r) => r.id));
  const sameRule = from.rules.matcher();
  const ruleUpsert = (to.rules ?? []).filter((r) => !sameRule(r.id, r));
  const ruleRemove = [...from.rules.entries()].filter((id) => !newRules.has(id));
  if (ruleUpsert.length || ruleRemove.length) delta.rules = { upsert: ruleUpsert, remove: ruleRemove };
  const newHosts = new Set(to.hosts.map((h) => lower(h.mac)));
  const sameHost = from.hosts.matcher();
  const upsert = to.hosts.filter((h) => !sameHost(lower(h.mac), h));
  const baseMacs = [...(from.hostMacs ?? from.hosts.entries())];
  const remove = baseMacs.filter((mac) => !newHosts.has(lower(mac)));
  if (upsert.length || remove.length) delta.hosts = { upsert, remove };
  const md: Record<string, DesiredState['metadata'][string]> = {};
  const sameMd = from.metadata.matcher();
  for (const [ip, m] of Object.entries(to.metadata)) if (!sameMd(ip, m)) md[ip] = m;
  const mdRemove = [...from.metadata.entries()].filter((ip) => !(ip in to.metadata));
  if (Object.keys(md).length || mdRemove.length) delta.metadata = { upsert: md, remove: mdRemove };
  const pw: Record<string, string> = {};
  const pushed = new Map(from.passwords.entries());
  for (const [ip, p] of Object.entries(to.passwords)) if (pushed.get(ip) !== p) pw[ip] = p;
  const pwRemove = [...pushed.keys()].filter((ip) => !(ip in to.passwords));
  if (Object.keys(pw).length || pwRemove.length) delta.passwords = { upsert: pw, remove: pwRemove };
  return delta;
}
