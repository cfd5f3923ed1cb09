// Every better-sqlite3 statement a process runs, counted and timed in CPU (process.cpuUsage around each run),
// by SQL text; a TSV (count, CPU ms, text) written when it exits, dearest first. For a server under the bench:
//   BENCH_SERVER_NODE_OPTIONS="--import $PWD/bench/sqlite-statement-cpu.mjs" PROFILE_DIR=/tmp/p npm run bench:api -- ...
// The two cpuUsage calls per statement cost the server ~1 µs each: compare runs taken the same way.
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';

const Database = createRequire(import.meta.url)('better-sqlite3');
const probe = new Database(':memory:');
const statement = Object.getPrototypeOf(probe.prepare('select 1'));
const database = Object.getPrototypeOf(probe);
probe.close();
const stats = new Map();
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const add = (key, ms) => {
  let s = stats.get(key);
  if (!s) stats.set(key, (s = { n: 0, ms: 0 }));
  s.n++;
  s.ms += ms;
};
for (const method of ['run', 'get', 'all']) {
  const original = statement[method];
  statement[method] = function (...args) {
    const t = cpu();
    try {
      return original.apply(this, args);
    } finally {
      add(`${method}: ${this.source}`, cpu() - t);
    }
  };
}
const exec = database.exec;
database.exec = function (text) {
  const t = cpu();
  try {
    return exec.call(this, text);
  } finally {
    add(`exec: ${text}`, cpu() - t);
  }
};
process.on('exit', () => {
  const rows = [...stats]
    .sort((a, b) => b[1].ms - a[1].ms)
    .map(([k, s]) => `${s.n}\t${s.ms.toFixed(1)}\t${k.replace(/\s+/g, ' ')}`);
  writeFileSync(`${process.env.PROFILE_DIR ?? '/tmp'}/statements-${process.pid}.tsv`, `${rows.join('\n')}\n`);
});
