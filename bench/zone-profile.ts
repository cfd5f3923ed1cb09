/**
 * Sums up a CPU profile (`.cpuprofile`, e.g. from `npm run bench:zone -- --trace-calls`): the functions with the
 * most self time and the most total time (self + callees, each function counted once per sample even when it
 * recurses), in ms and % of the profile, and per source file.
 *   node --import tsx bench/zone-profile.ts <file.cpuprofile> [--top 30] [--calls 200]
 * `--calls` also prints each figure per call.
 * A `.heapprofile` (V8's sampling heap profiler; bench:zone's probe with STACKNET_BENCH_HEAP_SAMPLING) is summed
 * up the same way in MB: by allocating function (self), by function on the stack (total), and the heaviest
 * allocating stacks (`--depth` frames each, 8 unless told).
 */
import { readFileSync } from 'node:fs';
import { filesAndFlags, type CpuProfile } from './common.js';

type Profile = CpuProfile;
type Node = CpuProfile['nodes'][number];

let top = 30;
let calls = 0;
let depth = 8;
const files = filesAndFlags(
  process.argv.slice(2),
  'node --import tsx bench/zone-profile.ts <file>... [--top N] [--calls N]',
  (flag, value) => {
    if (flag === '--top') top = Number(value());
    else if (flag === '--calls') calls = Number(value());
    else if (flag === '--depth') depth = Number(value());
    else return false;
    return true;
  },
);

interface HeapNode {
  id: number;
  callFrame: Node['callFrame'];
  selfSize: number;
  children: HeapNode[];
}

const labelOf = (f: Node['callFrame']) => {
  const url = f.url.replace(/^file:\/\//, '').replace(/^.*\/(dist|node_modules)\//, '$1/');
  return `${f.functionName || '(anonymous)'} ${url ? `${url}:${f.lineNumber + 1}` : ''}`.trim();
};

function heapProfile(file: string, head: HeapNode): void {
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const stacks = new Map<string, number>();
  let all = 0;
  const walk = (n: HeapNode, path: string[]) => {
    const here = [...path, labelOf(n.callFrame)];
    if (n.selfSize > 0) {
      all += n.selfSize;
      self.set(here.at(-1)!, (self.get(here.at(-1)!) ?? 0) + n.selfSize);
      for (const l of new Set(here)) total.set(l, (total.get(l) ?? 0) + n.selfSize);
      const key = here.slice(-depth).reverse().join('\n      <- ');
      stacks.set(key, (stacks.get(key) ?? 0) + n.selfSize);
    }
    for (const c of n.children) walk(c, here);
  };
  walk(head, []);
  const mb = (x: number) => x / 1048576;
  const row = (name: string, bytes: number) =>
    `${mb(bytes).toFixed(2).padStart(9)} MB ${((100 * bytes) / all).toFixed(1).padStart(5)}%${
      calls ? ` ${((1024 * mb(bytes)) / calls).toFixed(1).padStart(7)} KB/call` : ''
    }  ${name}`;
  const print = (title: string, m: Map<string, number>, n = top) => {
    console.log(`\n${title}`);
    for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, n)) console.log(row(k, v));
  };
  console.log(`${file}: ${mb(all).toFixed(1)} MB sampled`);
  print('self (allocating function)', self);
  print('total (function on the stack)', total);
  print('heaviest stacks', stacks, Math.min(top, 15));
}

for (const file of files) {
  if (file.endsWith('.heapprofile')) {
    heapProfile(file, (JSON.parse(readFileSync(file, 'utf8')) as { head: HeapNode }).head);
    continue;
  }
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const label = (n: Node) => {
    const f = n.callFrame;
    const url = f.url.replace(/^file:\/\//, '').replace(/^.*\/(dist|node_modules)\//, '$1/');
    return `${f.functionName || '(anonymous)'} ${url ? `${url}:${f.lineNumber + 1}` : ''}`.trim();
  };
  const fileOf = (n: Node) =>
    n.callFrame.url
      ? n.callFrame.url.replace(/^file:\/\//, '').replace(/^.*\/(dist|node_modules)\//, '$1/')
      : n.callFrame.functionName;
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const perFile = new Map<string, number>();
  let all = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = (p.timeDeltas[i + 1] ?? 0) / 1000;
    const leaf = byId.get(p.samples[i]!)!;
    all += dt;
    self.set(label(leaf), (self.get(label(leaf)) ?? 0) + dt);
    perFile.set(fileOf(leaf), (perFile.get(fileOf(leaf)) ?? 0) + dt);
    const seen = new Set<string>();
    for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
      const l = label(byId.get(id)!);
      if (seen.has(l)) continue;
      seen.add(l);
      total.set(l, (total.get(l) ?? 0) + dt);
    }
  }
  const row = (name: string, ms: number) =>
    `${ms.toFixed(1).padStart(9)} ms ${((100 * ms) / all).toFixed(1).padStart(5)}%${
      calls ? ` ${(ms / calls).toFixed(2).padStart(7)} ms/call` : ''
    }  ${name}`;
  const print = (title: string, m: Map<string, number>) => {
    console.log(`\n${title}`);
    for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(row(k, v));
  };
  console.log(`${file}: ${all.toFixed(0)} ms sampled, ${p.samples.length} samples`);
  print('self time', self);
  print('self time by file', perFile);
  print('total time', total);
}
