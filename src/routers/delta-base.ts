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
  hosts: Map<string, string>;
  /** Every host's MAC as pushed (a removal names the MAC as the base spelled it). */
  hostMacs: string[];
  metadata: Map<string, string>;
  rules: Map<string, string>;
  passwords: Record<string, string>;
}

/** The one-shot crypto.hash() (Node ≥ 20.12; the engines field allows 20.10): 3–7× cheaper than a hash object per entry. */
const sha256: (text: string) => string =
  typeof crypto.hash === 'function'
    ? (text) => crypto.hash('sha256', text, 'base64')
    : (text) => crypto.createHash('sha256').update(text).digest('base64');

/** 128 bits of SHA-256 of the JSON text: a collision would hide a change from a delta, so not a short hash. */
function digest(value: unknown): string {
  const text = JSON.stringify(value);
  return text === undefined ? '' : sha256(text).slice(0, 22);
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
    hosts: new Map(s.hosts.map((h) => [lower(h.mac), digest(h)])),
    hostMacs: s.hosts.map((h) => h.mac),
    metadata: new Map(Object.entries(s.metadata).map(([ip, m]) => [ip, digest(m)])),
    rules: new Map((s.rules ?? []).map((r) => [r.id, digest(r)])),
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
  const ruleUpsert = (to.rules ?? []).filter((r) => from.rules.get(r.id) !== digest(r));
  const ruleRemove = [...from.rules.keys()].filter((id) => !newRules.has(id));
  if (ruleUpsert.length || ruleRemove.length) delta.rules = { upsert: ruleUpsert, remove: ruleRemove };
  const newHosts = new Set(to.hosts.map((h) => lower(h.mac)));
  const upsert = to.hosts.filter((h) => from.hosts.get(lower(h.mac)) !== digest(h));
  const remove = from.hostMacs.filter((mac) => !newHosts.has(lower(mac)));
  if (upsert.length || remove.length) delta.hosts = { upsert, remove };
  const md: Record<string, DesiredState['metadata'][string]> = {};
  for (const [ip, m] of Object.entries(to.metadata)) if (from.metadata.get(ip) !== digest(m)) md[ip] = m;
  const mdRemove = [...from.metadata.keys()].filter((ip) => !(ip in to.metadata));
  if (Object.keys(md).length || mdRemove.length) delta.metadata = { upsert: md, remove: mdRemove };
  const pw: Record<string, string> = {};
  for (const [ip, p] of Object.entries(to.passwords)) if (from.passwords[ip] !== p) pw[ip] = p;
  const pwRemove = Object.keys(from.passwords).filter((ip) => !(ip in to.passwords));
  if (Object.keys(pw).length || pwRemove.length) delta.passwords = { upsert: pw, remove: pwRemove };
  return delta;
}
