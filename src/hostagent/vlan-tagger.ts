/**
 * VLANs on a kernel without 802.1Q (CONFIG_VLAN_8021Q unset: `ip link add ... type vlan` says "Unknown device
 * type"; these machines and their CI): the VLAN device `<label>.<vid>` a guest or public bridge holds is then one
 * end of a veth pair, its peer `<label>t<vid>` joined to the traffic label by two cls_bpf filters running
 * bpf/vlan-tagger.c (the tag pushed on the way out, popped on the way in, each side's `action mirred` redirecting
 * to the other). The bridge, and the rest of the agent, see a device of the same name either way.
 *
 * The object is built with clang on first need into `/run/stacknet/bpf/vlan-tagger-<hash of the source>.o` (one
 * object serves every VLAN and every agent of the machine: the VLAN id is the filter's classid). Our filters are
 * known by their preference (`TAGGER_PREF_BASE + vid`) and the object's name; on the label, only they are
 * touched. The label's clsact qdisc is added when missing and deleted when no filter at all is left on it, in
 * either direction (ours or anyone's): an empty clsact does nothing, whoever added it, so nothing of the
 * operator's is lost, and no record of who added it can go stale.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { assertIfname, exec, run } from '../netns/index.js';

/** Our filters' preference on the label and on the peer: one per VLAN, in a range an operator is unlikely to use. */
export const TAGGER_PREF_BASE = 0xc000;
const pref = (vid: number) => TAGGER_PREF_BASE + vid;
const classid = (vid: number) => `1:${vid.toString(16)}`;

/** The hidden end of a tagged VLAN's veth: `<label>t<vid>`, as long as `<label>.<vid>`. */
export function taggerPeerName(label: string, vid: number): string {
  return `${label}t${vid}`;
}

/** `<label>.<vid>` split (the label may hold dots itself: the last one separates the VLAN id), or null. */
export function parseVlanDevice(dev: string): { label: string; vid: number } | null {
  const m = /^(.+)\.(\d{1,4})$/.exec(dev);
  return m && Number(m[2]) >= 1 && Number(m[2]) <= 4094 ? { label: m[1]!, vid: Number(m[2]) } : null;
}

let probed: Promise<boolean> | null = null;

/**
 * Whether this kernel makes 802.1Q sub-interfaces, asked once per process: a VLAN on `lo` is refused either way,
 * "Unknown device type" only when there is no 802.1Q (built in, or its module loadable).
 */
export function kernelHas8021q(): Promise<boolean> {
  probed ??= (async () => {
    const name = 'snvlanprobe';
    const r = await exec(['ip', 'link', 'add', 'link', 'lo', 'name', name, 'type', 'vlan', 'id', '4094']);
    if (r.code === 0) await exec(['ip', 'link', 'del', name]);
    return !/Unknown device type/.test(r.stderr);
  })();
  return probed;
}

const SOURCE_CANDIDATES = [
  // Run from src/ (tsx), or from dist/ with the checkout's src/ beside it (the package ships both).
  new URL('./bpf/vlan-tagger.c', import.meta.url),
  new URL('../../src/hostagent/bpf/vlan-tagger.c', import.meta.url),
];

export interface TaggerBuildOptions {
  /** The compiler (default `clang`). */
  clang?: string;
  /** Where the object is cached (default `/run/stacknet/bpf`, else the temporary directory). */
  dir?: string;
}

const building = new Map<string, Promise<string>>();

/** The tagger's object file, built with clang when this source's object is not cached yet. */
export function taggerObject(o: TaggerBuildOptions = {}): Promise<string> {
  const source = SOURCE_CANDIDATES.map((u) => fileURLToPath(u)).find((p) => existsSync(p));
  if (!source) return Promise.reject(new Error('the eBPF VLAN tagger source bpf/vlan-tagger.c is missing'));
  const text = readFileSync(source);
  const dir = o.dir ?? defaultDir();
  const object = join(dir, `vlan-tagger-${createHash('sha256').update(text).digest('hex').slice(0, 16)}.o`);
  let p = building.get(object);
  if (!p) {
    p = build(source, object, o.clang ?? 'clang');
    building.set(object, p);
    // A failed build is tried again at the next need (clang installed meanwhile).
    p.catch(() => building.delete(object));
  }
  return p;
}

function defaultDir(): string {
  for (const d of ['/run/stacknet/bpf', join(tmpdir(), 'stacknet-bpf')])
    try {
      mkdirSync(d, { recursive: true });
      return d;
    } catch {
      /* not writable: the next */
    }
  return tmpdir();
}

async function build(source: string, object: string, clang: string): Promise<string> {
  if (existsSync(object)) return object;
  mkdirSync(join(object, '..'), { recursive: true });
  // Built beside, then renamed: another agent of the machine may build the same object at once.
  const tmp = `${object}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  const r = await exec([clang, '-O2', '-target', 'bpf', '-c', source, '-o', tmp], {
    timeoutMs: 60_000,
  }).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT')
      throw new Error(
        `this kernel has no 802.1Q (CONFIG_VLAN_8021Q); VLAN networks need clang to build the eBPF VLAN tagger, or the 8021q module (${clang}: not found)`,
      );
    throw e;
  });
  if (r.code !== 0) {
    rmSync(tmp, { force: true });
    throw new Error(`building the eBPF VLAN tagger with ${clang} failed: ${r.stderr.trim().slice(0, 2000)}`);
  }
  renameSync(tmp, object);
  return object;
}

interface TcFilter {
  pref: number;
  kind: string;
  options?: {
    flowid?: string;
    bpf_name?: string;
    actions?: { kind?: string; mirred_action?: string; direction?: string; to_dev?: string }[];
  };
}

async function filters(dev: string, direction: 'ingress' | 'egress'): Promise<TcFilter[]> {
  const r = await exec(['tc', '-j', 'filter', 'show', 'dev', dev, direction]);
  if (r.code !== 0) {
    if (/Cannot find device/.test(r.stderr)) return [];
    throw new Error(`tc filter show dev ${dev} ${direction}: ${r.stderr.trim()}`);
  }
  return JSON.parse(r.stdout.trim() || '[]') as TcFilter[];
}

/** A filter of our object (any build of it) in section `sec`. */
const isOurs = (f: TcFilter, sec: 'vlan_tag' | 'vlan_untag') =>
  f.kind === 'bpf' && !!f.options?.bpf_name?.match(new RegExp(`^vlan-tagger-[0-9a-f]+\\.o:\\[${sec}\\]$`));

/** The filter on `dev` at the VLAN's preference is this very object's `sec` for `vid`, redirecting to `to`. */
function inPlace(list: TcFilter[], object: string, sec: string, vid: number, to: string): boolean {
  const mine = list.filter((f) => f.pref === pref(vid) && f.options);
  const a = mine[0]?.options?.actions;
  return (
    mine.length === 1 &&
    mine[0]!.kind === 'bpf' &&
    mine[0]!.options!.bpf_name === `${basename(object)}:[${sec}]` &&
    mine[0]!.options!.flowid === classid(vid) &&
    a?.length === 1 &&
    a[0]!.kind === 'mirred' &&
    a[0]!.mirred_action === 'redirect' &&
    a[0]!.direction === 'egress' &&
    a[0]!.to_dev === to
  );
}

/**
 * The two filters of VLAN `vid` on `label` (the veth pair `<label>.<vid>` / `<label>t<vid>` exists): each made or
 * replaced when it is not this object's for this VLAN (a filter deleted by hand, a tagger source changed);
 * returns what it changed. `fresh`: the peer was made just now (it has no filter to list).
 */
export async function ensureTaggerFilters(
  label: string,
  vid: number,
  fresh: boolean,
  o: TaggerBuildOptions = {},
): Promise<string[]> {
  const peer = taggerPeerName(label, vid);
  for (const n of [label, peer]) assertIfname(n);
  const object = await taggerObject(o);
  const tagOk = !fresh && inPlace(await filters(peer, 'ingress'), object, 'vlan_tag', vid, label);
  const untagOk = inPlace(await filters(label, 'ingress'), object, 'vlan_untag', vid, peer);
  if (tagOk && untagOk) return [];
  const lines: string[] = [];
  const changed: string[] = [];
  for (const [ok, dev, sec, to] of [
    [tagOk, peer, 'vlan_tag', label],
    [untagOk, label, 'vlan_untag', peer],
  ] as const) {
    if (ok) continue;
    await addClsact(dev);
    lines.push(
      `filter replace dev ${dev} ingress pref ${pref(vid)} handle 1 bpf obj ${object} sec ${sec} classid ${classid(vid)} action mirred egress redirect dev ${to}`,
    );
    changed.push(`${sec} filter on ${dev}`);
  }
  await run(['tc', '-b', '-'], { input: `${lines.join('\n')}\n` });
  return changed;
}

/** The clsact qdisc on `dev` unless there is one (or an ingress qdisc, which takes ingress filters as well). */
async function addClsact(dev: string): Promise<void> {
  const r = await exec(['tc', 'qdisc', 'add', 'dev', dev, 'clsact']);
  if (r.code !== 0 && !/Exclusivity flag on|File exists/.test(r.stderr))
    throw new Error(`tc qdisc add dev ${dev} clsact: ${r.stderr.trim()}`);
}

/**
 * Removes VLAN `vid`'s tagger from `label` (missing parts are fine): the veth pair, our filter on the label, and
 * the label's clsact qdisc when no filter at all is left on it. Harmless for an 802.1Q sub-interface's VLAN.
 */
export async function removeTagger(label: string, vid: number): Promise<void> {
  const peer = taggerPeerName(label, vid);
  for (const n of [label, peer]) assertIfname(n);
  // The peer goes with it (a veth pair is made and deleted whole); a link of that name alone is not ours to delete
  // (on an 802.1Q host, this runs for the sub-interface's VLAN too).
  const r = await exec(['ip', 'link', 'del', `${label}.${vid}`]);
  if (r.code !== 0 && !/Cannot find device|does not exist/.test(r.stderr)) throw new Error(r.stderr.trim());
  const ingress = await filters(label, 'ingress');
  if (ingress.some((f) => f.pref === pref(vid) && isOurs(f, 'vlan_untag'))) {
    const d = await exec(['tc', 'filter', 'del', 'dev', label, 'ingress', 'pref', String(pref(vid))]);
    if (d.code !== 0 && !/not found/.test(d.stderr))
      throw new Error(`tc filter del dev ${label} ingress pref ${pref(vid)}: ${d.stderr.trim()}`);
    if (
      ingress.every((f) => f.pref === pref(vid)) &&
      (await filters(label, 'egress')).length === 0 &&
      (await filters(label, 'ingress')).length === 0
    )
      await exec(['tc', 'qdisc', 'del', 'dev', label, 'clsact']);
  }
}
