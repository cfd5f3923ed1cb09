/**
 * The reconciler's delta base (src/routers/delta-base.ts) of one router of the big zone: what a base keeps (bytes of
 * V8 heap and array buffers per base, its state's strings not shared with anything else, as in the server) and what
 * baseOf and a diff against it cost, for this checkout's build and another's (`--baseline <dir>`, a built checkout),
 * alternating.
 *   node --expose-gc --import tsx bench/zone-delta-base.ts --state <applied-state.json> [--baseline <dir>]
 *        [--rounds 3] [--bases 20] [--reps 10]
 * `--state`: a router's full state, e.g. the simulator's `<data>/routers/<name>/applied-state.json` of a server
 * running on the bench:zone zone (10,000 hosts, metadata and passwords). Prints one JSON object per line.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DesiredState } from '../src/agent/desired-state.js';
import { benchOutput, loadavg, parseArgs, quantile } from './common.js';

let stateFile = '';
let baseline = '';
let rounds = 3;
let bases = 20;
let reps = 10;
parseArgs(
  process.argv.slice(2),
  'node --expose-gc --import tsx bench/zone-delta-base.ts --state <file> [--baseline <dir>] [--rounds N] [--bases N] [--reps N]',
  (flag, value) => {
    if (flag === '--state') stateFile = value();
    else if (flag === '--baseline') baseline = value();
    else if (flag === '--rounds') rounds = Number(value());
    else if (flag === '--bases') bases = Number(value());
    else if (flag === '--reps') reps = Number(value());
    else return false;
    return true;
  },
);
const { emit } = benchOutput('zone-delta-base');
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');
const text = readFileSync(stateFile, 'utf8');
/** A fresh copy (its own strings, as a state the builder just made). */
const fresh = (): DesiredState => {
  const s = JSON.parse(text) as DesiredState & { state?: DesiredState };
  return s.state ?? s;
};
/** The next state: one host renamed, one VM gone (host, metadata, password), one generation on. */
const next = (): DesiredState => {
  const s = fresh();
  s.generation++;
  s.hosts[0] = { ...s.hosts[0]!, hostname: 'renamed' };
  const gone = s.hosts.pop()!;
  delete s.metadata[gone.ipv4];
  delete s.passwords[gone.ipv4];
  return s;
};

interface Impl {
  baseOf(s: DesiredState): unknown;
  diffAgainstBase(b: unknown, s: DesiredState): unknown;
}
const root = new URL('..', import.meta.url).pathname;
const variants: [string, Impl][] = [];
if (baseline)
  variants.push(['baseline', (await import(join(baseline, 'dist/routers/delta-base.js'))) as Impl]);
variants.push(['change', (await import(join(root, 'dist/routers/delta-base.js'))) as Impl]);

/** Heap and array buffers in use, once the dead ones are swept (V8 frees array buffers' memory concurrently). */
const used = async () => {
  gc();
  await new Promise((r) => setTimeout(r, 500));
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};
const ms = (f: () => void) => {
  const t = process.cpuUsage();
  f();
  const d = process.cpuUsage(t);
  return (d.user + d.system) / 1000;
};

for (let round = 1; round <= rounds; round++)
  for (const [variant, impl] of round % 2 === 1 ? variants : [...variants].reverse()) {
    const load = loadavg();
    // Retained: `bases` bases of fresh states, the states dropped.
    const before = await used();
    const held: unknown[] = [];
    for (let i = 0; i < bases; i++) held.push(impl.baseOf(fresh()));
    const after = await used();
    const build: number[] = [];
    const diff: number[] = [];
    const to = next();
    for (let i = 0; i < reps; i++) {
      const s = fresh();
      let b: unknown;
      build.push(ms(() => (b = impl.baseOf(s))));
      diff.push(ms(() => impl.diffAgainstBase(b, to)));
    }
    const r1 = (x: number) => Math.round(x * 10) / 10;
    emit({
      variant,
      round,
      hosts: to.hosts.length + 1,
      kb_per_base: Math.round((after - before) / bases / 1024),
      base_cpu_ms_p50: r1(quantile(build, 0.5)),
      diff_cpu_ms_p50: r1(quantile(diff, 0.5)),
      load_start: load,
      load_end: loadavg(),
    });
    held.length = 0;
  }
