/**
 * What holds the live set of a V8 heap snapshot (`npm run bench:zone -- --heap-snapshot` writes one of the
 * measured server after its list round):
 *   node --import tsx bench/zone-heap.ts <file.heapsnapshot> [--min-kb 64] [--top 30] [--roots DigestTable,...]
 * Prints one JSON object per line: self size by node type; the biggest (type, constructor) groups; every node of at
 * least `--min-kb` grouped by its retainer chain (first strong retainer, up to 6 steps); and, for each name in
 * `--roots` (a constructor, or `prop:<name>` for objects with that property), the size of everything reachable from
 * those objects without passing another object of a listed class's parent (an upper bound of what they retain:
 * hidden classes and prototypes are not followed).
 * The file is scanned as bytes (a snapshot of a few hundred MB is past the longest string V8 can parse).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from './common.js';

let file = '';
let minKb = 64;
let top = 30;
let roots = ['DigestTable', 'prop:hostMacs'];
parseArgs(
  process.argv.slice(2),
  'node --import tsx bench/zone-heap.ts <file> [--min-kb N] [--top N] [--roots A,B]',
  (flag, value) => {
    if (flag === '--min-kb') minKb = Number(value());
    else if (flag === '--top') top = Number(value());
    else if (flag === '--roots') roots = value().split(',');
    else if (!flag.startsWith('--') && !file) file = flag;
    else return false;
    return true;
  },
);
const emit = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify(o) + '\n');
const mb = (x: number) => Math.round(x / 104857.6) / 10;

const buf = readFileSync(file);
const find = (s: string, from = 0) => {
  const at = buf.indexOf(s, from, 'latin1');
  if (at < 0) throw new Error(`${s} not in ${file}`);
  return at;
};
const nodesAt = find('"nodes":[');
const header = JSON.parse(buf.toString('utf8', 0, nodesAt).replace(/,\s*$/, '') + '}') as {
  snapshot: {
    meta: {
      node_fields: string[];
      node_types: [string[]];
      edge_fields: string[];
      edge_types: [string[]];
    };
    node_count: number;
    edge_count: number;
  };
};
const { meta, node_count: nodeCount, edge_count: edgeCount } = header.snapshot;

/** The unsigned integers of a JSON array starting at `at` (just after its '['), into `out`; the offset after ']'. */
function numbers(at: number, out: Uint32Array): number {
  let n = 0;
  let v = 0;
  let inNum = false;
  for (let i = at; ; i++) {
    const c = buf[i]!;
    if (c >= 48 && c <= 57) {
      v = v * 10 + (c - 48);
      inNum = true;
    } else {
      if (inNum) out[n++] = v;
      v = 0;
      inNum = false;
      if (c === 93) return i + 1;
    }
  }
}
const NF = meta.node_fields.length;
const EF = meta.edge_fields.length;
const nodes = new Uint32Array(nodeCount * NF);
const afterNodes = numbers(nodesAt + '"nodes":['.length, nodes);
const edges = new Uint32Array(edgeCount * EF);
const edgesAt = find('"edges":[', afterNodes);
const afterEdges = numbers(edgesAt + '"edges":['.length, edges);
const stringsAt = find('"strings":[', afterEdges);
const stringsEnd = buf.lastIndexOf(']');
const strings = JSON.parse(buf.toString('utf8', stringsAt + '"strings":'.length, stringsEnd + 1)) as string[];

const nType = meta.node_fields.indexOf('type');
const nName = meta.node_fields.indexOf('name');
const nSize = meta.node_fields.indexOf('self_size');
const nEdges = meta.node_fields.indexOf('edge_count');
const eType = meta.edge_fields.indexOf('type');
const eName = meta.edge_fields.indexOf('name_or_index');
const eTo = meta.edge_fields.indexOf('to_node');
const nodeTypes = meta.node_types[0];
const edgeTypes = meta.edge_types[0];
const WEAK = edgeTypes.indexOf('weak');
const SHORTCUT = edgeTypes.indexOf('shortcut');
const ELEMENT = edgeTypes.indexOf('element');
const HIDDEN = edgeTypes.indexOf('hidden');

const firstEdge = new Uint32Array(nodeCount + 1);
for (let i = 0, e = 0; i < nodeCount; i++) {
  firstEdge[i] = e;
  e += nodes[i * NF + nEdges]!;
}
firstEdge[nodeCount] = edgeCount;
const typeOf = (i: number) => nodeTypes[nodes[i * NF + nType]!]!;
const nameOf = (i: number) => strings[nodes[i * NF + nName]!]!;
const sizeOf = (i: number) => nodes[i * NF + nSize]!;
const edgeName = (e: number) => {
  const t = edges[e * EF + eType]!;
  const n = edges[e * EF + eName]!;
  return t === ELEMENT || t === HIDDEN ? `[${n}]` : strings[n]!;
};
const label = (i: number) => {
  const t = typeOf(i);
  const n = nameOf(i);
  return t === 'string' || t === 'concatenated string' || t === 'sliced string'
    ? `${t}(${n.length})`
    : `${t}:${n.slice(0, 60)}`;
};

let total = 0;
const byType = new Map<string, number>();
const byName = new Map<string, [number, number]>();
for (let i = 0; i < nodeCount; i++) {
  const s = sizeOf(i);
  total += s;
  const t = typeOf(i);
  byType.set(t, (byType.get(t) ?? 0) + s);
  const k = t === 'object' || t === 'native' || t === 'hidden' || t === 'array' ? `${t}:${nameOf(i)}` : t;
  const g = byName.get(k) ?? [0, 0];
  g[0] += s;
  g[1]++;
  byName.set(k, g);
}
emit({
  file,
  nodes: nodeCount,
  edges: edgeCount,
  total_mb: mb(total),
  by_type_mb: Object.fromEntries([...byType].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, mb(v)])),
});
emit({
  biggest_groups: [...byName]
    .sort((a, b) => b[1][0] - a[1][0])
    .slice(0, top)
    .map(([k, [s, n]]) => ({ group: k, mb: mb(s), count: n })),
});

// Retainers of the nodes of interest (the big ones, and the chains above them): one strong retainer each.
const retainer = new Int32Array(nodeCount).fill(-1);
const retainerEdge = new Int32Array(nodeCount).fill(-1);
for (let i = 0; i < nodeCount; i++)
  for (let e = firstEdge[i]!; e < firstEdge[i + 1]!; e++) {
    const t = edges[e * EF + eType]!;
    if (t === WEAK || t === SHORTCUT) continue;
    const to = edges[e * EF + eTo]! / NF;
    if (retainer[to] === -1 && to !== i) {
      retainer[to] = i;
      retainerEdge[to] = e;
    }
  }
const chainOf = (i: number) => {
  const steps: string[] = [];
  for (let n = i, k = 0; k < 6 && retainer[n] !== -1; k++) {
    const r = retainer[n]!;
    steps.push(`${label(r)}.${edgeName(retainerEdge[n]!)}`);
    n = r;
  }
  return steps.join(' <- ');
};
const big = new Map<string, [number, number]>();
for (let i = 0; i < nodeCount; i++) {
  if (sizeOf(i) < minKb * 1024) continue;
  // Element indexes dropped: the same structure of fifty routers is one group.
  const k = `${label(i).replace(/\(\d+\)$/, '')} <- ${chainOf(i).replace(/\[\d+\]/g, '[]')}`;
  const g = big.get(k) ?? [0, 0];
  g[0] += sizeOf(i);
  g[1]++;
  big.set(k, g);
}
emit({
  min_kb: minKb,
  big_nodes_mb: mb([...big.values()].reduce((a, [s]) => a + s, 0)),
  by_chain: [...big]
    .sort((a, b) => b[1][0] - a[1][0])
    .slice(0, top)
    .map(([k, [s, n]]) => ({ chain: k, mb: mb(s), count: n })),
});

// What a class's objects reach (strong edges, no hidden classes/prototypes/code), each node counted once.
const NOT_FOLLOWED = new Set(['map', '__proto__', 'constructor', 'prototype', 'code', 'shared']);
for (const root of roots) {
  const starts: number[] = [];
  for (let i = 0; i < nodeCount; i++) {
    if (root.startsWith('prop:')) {
      if (typeOf(i) !== 'object') continue;
      for (let e = firstEdge[i]!; e < firstEdge[i + 1]!; e++)
        if (
          edgeTypes[edges[e * EF + eType]!] === 'property' &&
          strings[edges[e * EF + eName]!] === root.slice(5)
        ) {
          starts.push(i);
          break;
        }
    } else if (typeOf(i) === 'object' && nameOf(i) === root) starts.push(i);
  }
  const seen = new Uint8Array(nodeCount);
  const stack = [...starts];
  for (const s of starts) seen[s] = 1;
  let size = 0;
  const parts = new Map<string, number>();
  while (stack.length) {
    const i = stack.pop()!;
    size += sizeOf(i);
    const k = label(i).replace(/\(\d+\)$/, '');
    parts.set(k, (parts.get(k) ?? 0) + sizeOf(i));
    for (let e = firstEdge[i]!; e < firstEdge[i + 1]!; e++) {
      const t = edges[e * EF + eType]!;
      if (t === WEAK || t === SHORTCUT) continue;
      if (NOT_FOLLOWED.has(edgeName(e))) continue;
      const to = edges[e * EF + eTo]! / NF;
      const tt = typeOf(to);
      if (seen[to] || tt === 'code' || (tt === 'hidden' && nameOf(to).startsWith('system / Map'))) continue;
      seen[to] = 1;
      stack.push(to);
    }
  }
  emit({
    root,
    objects: starts.length,
    reachable_mb: mb(size),
    parts_mb: Object.fromEntries(
      [...parts]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 12)
        .map(([k, v]) => [k, mb(v)]),
    ),
  });
}
