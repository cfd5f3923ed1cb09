// How long SQLite's commit groups (src/api/jobs/commit-group.ts) hold the connection: each group's BEGIN IMMEDIATE
// to its COMMIT's end, and its members (its SAVEPOINTs), timed from better-sqlite3's statements in the server.
//
//   BENCH_SERVER_NODE_OPTIONS="--import $PWD/bench/commit-group-holds.mjs" HOLDS_OUT=/tmp/holds.json \
//     npm run bench:api -- --no-build --phases associate --duration 10 --clients 64
//   node bench/commit-group-holds.mjs /tmp/holds.json      # the holds' percentiles, overall and by group size
//
// Loaded by the server (--import), it writes [members, ms] per group to $HOLDS_OUT every second and at exit.
import { dirname, join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';

if (process.argv[1] === fileURLToPath(import.meta.url)) summarise(process.argv.slice(2));
else record();

function record() {
  const root = dirname(dirname(process.argv[1])); // <root>/bin/stacknet.js
  const Database = createRequire(join(root, 'package.json'))('better-sqlite3');
  const prepare = Database.prototype.prepare;
  const holds = [];
  let begun = 0;
  let members = 0;
  Database.prototype.prepare = function (src, ...rest) {
    const st = prepare.call(this, src, ...rest);
    const s = String(src).trim().toUpperCase();
    const kind = s.startsWith('BEGIN')
      ? 'begin'
      : s === 'COMMIT' || s === 'ROLLBACK'
        ? 'end'
        : s.startsWith('SAVEPOINT STACKNET_GROUP')
          ? 'member'
          : undefined;
    if (!kind) return st;
    const run = st.run.bind(st);
    st.run = (...a) => {
      if (kind === 'begin') {
        begun = performance.now();
        members = 0;
      }
      const r = run(...a);
      if (kind === 'member') members++;
      // Only groups: a transaction of its own has no group member's savepoint.
      if (kind === 'end' && members > 0 && s === 'COMMIT') holds.push([members, performance.now() - begun]);
      if (kind === 'end') members = 0;
      return r;
    };
    return st;
  };
  const dump = () => writeFileSync(process.env.HOLDS_OUT ?? 'commit-group-holds.json', JSON.stringify(holds));
  setInterval(dump, 1000).unref();
  process.on('exit', dump);
}

function summarise(files) {
  const sizes = [
    [1, '1'],
    [2, '2-3'],
    [4, '4-7'],
    [8, '8-15'],
    [16, '16-31'],
    [32, '32-47'],
    [48, '48-63'],
    [64, '64'],
  ];
  const pct = (xs, p) =>
    [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))].toFixed(1);
  for (const f of files) {
    const holds = JSON.parse(readFileSync(f, 'utf8'));
    const ms = holds.map((h) => h[1]);
    const members = holds.reduce((s, h) => s + h[0], 0);
    console.log(
      `${f}: ${holds.length} groups, ${members} members (${(members / holds.length).toFixed(1)} a group);` +
        ` hold p50 ${pct(ms, 0.5)} p90 ${pct(ms, 0.9)} p99 ${pct(ms, 0.99)} max ${pct(ms, 1)} ms`,
    );
    for (let i = 0; i < sizes.length; i++) {
      const [lo, name] = sizes[i];
      const hi = sizes[i + 1]?.[0] ?? Infinity;
      const these = holds.filter((h) => h[0] >= lo && h[0] < hi).map((h) => h[1]);
      if (these.length)
        console.log(
          `  ${name.padStart(5)}: ${these.length} groups, hold p50 ${pct(these, 0.5)} p90 ${pct(these, 0.9)} max ${pct(these, 1)} ms`,
        );
    }
  }
}
