/**
 * What the reconciler keeps of the last state it pushed to a router, to send the next change as a delta: not the
 * state itself but a digest of each part a delta replaces or upserts (a section, a host by MAC, a VM's metadata
 * by IP, a rule by id). A router of a 10,000-VM network has a desired state of tens of megabytes; keeping every
 * router's last state whole made the server's memory grow with the zone (issue 16: 50 such routers, over a
 * gigabyte). `diffAgainstBase(baseOf(a), b)` is the same delta as `diffStates(a, b)` (its test checks it).
 *
 * Passwords are kept whole: the reconciler clears a password from the VM row only when the agent reports it
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
  /** Every host's MAC as pushed, one per line (a removal names the MAC as the base spelled it). */
  hostMacs: string;
  metadata: DigestTable;
  rules: DigestTable;
  passwords: Record<string, string>;
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
 * Keys and their digests, packed: the keys in one string (in the order given), their offsets and the 16-byte
 * digests in typed arrays. A Map of string keys to string digests took about 110 bytes per entry (two
 * or three entries per VM of a network: host, metadata, rules), so fifty 10,000-VM routers held ~250 MB of bases;
 * packed it is the keys' characters and 20 bytes.
 */
export class DigestTable {
  private readonly keys: string;
  private readonly starts: Uint32Array;
  private readonly digests: Uint8Array;

  /** `entries` may repeat a key: it keeps its first place and its last value (as a Map built from them). */
  constructor(entries: [key: string, value: unknown][]) {
    const last = new Map<string, number>();
    entries.forEach(([k], i) => last.set(k, i));
    const order = [...last.keys()];
    this.starts = new Uint32Array(order.length + 1);
    this.digests = new Uint8Array(order.length * DIGEST_BYTES);
    let at = 0;
    order.forEach((k, i) => {
      this.starts[i] = at;
      at += k.length;
      this.digests.set(digestBytes(entries[last.get(k)!]![1]), i * DIGEST_BYTES);
    });
    this.starts[order.length] = at;
    this.keys = order.join('');
  }

  get size(): number {
    return this.starts.length - 1;
  }

  private key(i: number): string {
    return this.keys.slice(this.starts[i], this.starts[i + 1]);
  }

  /**
   * A lookup for one diff: key → whether `value` has the digest kept for it. Builds a Map of the keys for the
   * call (a binary search per entry cost more than the Map, which is garbage once the diff is made).
   */
  matcher(): (key: string, value: unknown) => boolean {
    const at = new Map<string, number>();
    for (let i = 0; i < this.size; i++) at.set(this.key(i), i);
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
  *entries(): IterableIterator<string> {
    for (let i = 0; i < this.size; i++) yield this.key(i);
  }
}

const lower = (mac: string) => mac.toLowerCase();

export function baseOf(s: DesiredState): DeltaBase {
  return {
    generation: s.generation,
    sections: {
      router: digest(s.router),
      network: digest(s.network),
      firewall: digest(s.firewall),
      public: digest(s.public),
      vpc: digest(s.vpc),
    },
    hosts: new DigestTable(s.hosts.map((h) => [lower(h.mac), h])),
    hostMacs: s.hosts.map((h) => h.mac).join('\n'),
    metadata: new DigestTable(Object.entries(s.metadata)),
    rules: new DigestTable((s.rules ?? []).map((r) => [r.id, r])),
    passwords: { ...s.passwords },
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
  const baseMacs = from.hostMacs === '' ? [] : from.hostMacs.split('\n');
  const remove = baseMacs.filter((mac) => !newHosts.has(lower(mac)));
  if (upsert.length || remove.length) delta.hosts = { upsert, remove };
  const md: Record<string, DesiredState['metadata'][string]> = {};
  const sameMd = from.metadata.matcher();
  for (const [ip, m] of Object.entries(to.metadata)) if (!sameMd(ip, m)) md[ip] = m;
  const mdRemove = [...from.metadata.entries()].filter((ip) => !(ip in to.metadata));
  if (Object.keys(md).length || mdRemove.length) delta.metadata = { upsert: md, remove: mdRemove };
  const pw: Record<string, string> = {};
  for (const [ip, p] of Object.entries(to.passwords)) if (from.passwords[ip] !== p) pw[ip] = p;
  const pwRemove = Object.keys(from.passwords).filter((ip) => !(ip in to.passwords));
  if (Object.keys(pw).length || pwRemove.length) delta.passwords = { upsert: pw, remove: pwRemove };
  return delta;
}
