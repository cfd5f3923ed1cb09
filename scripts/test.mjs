#!/usr/bin/env node
// Runs the whole suite with node's own test runner: builds the CLI first (tests spawn the real
// `bin/stacknet.js`), then every `*.test.ts` under src/ and test/. Arguments filter files by substring:
//   npm test -- ipam store
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const filters = process.argv.slice(2);

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.test.ts')) out.push(relative(root, p));
  }
  return out;
}

// The longest files start first, longest first, so that the two lanes end together instead of one running a long
// file alone at the end; every other file follows in name order. Durations from a whole run on a quiet 2-core
// machine (2026-12-07, 10.4 min in all).
const LONGEST = [
  'test/api/fuzz.test.ts', // 77 s
  'test/e2e/hosts-libvirt.test.ts', // 77 s at load 13 (VXLAN and VLAN)
  'test/e2e/rogue-dhcp.test.ts', // 65 s
  'test/reliability/sqlite-crash.test.ts', // 62 s
  'test/agent/vr-dhcp-backends.test.ts', // 50 s
  'test/reliability/fault.test.ts', // 48 s
  'test/e2e/hosts-vpc-redundant.test.ts', // 46 s
  'test/hosts/hosts-channel.test.ts', // 42 s
  'test/e2e/diagnostics-netns.test.ts', // 37 s
  'test/agent/vr-big-network.test.ts', // 35 s
  'test/lb/lb-cs.test.ts', // 33 s
];
const first = (f) => {
  const i = LONGEST.indexOf(f);
  return i === -1 ? LONGEST.length : i;
};

const files = ['src', 'test']
  .flatMap((d) => {
    try {
      return walk(join(root, d), []);
    } catch {
      return [];
    }
  })
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort((a, b) => first(a) - first(b) || a.localeCompare(b));

if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}

const build = spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);

const concurrency = process.env.STACKNET_TEST_CONCURRENCY ?? '2';
const run = spawnSync(
  process.execPath,
  // A hung test must fail, not hang CI: no single test may take more than 10 minutes.
  ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-timeout=600000', ...files],
  { cwd: root, stdio: 'inherit', env: { ...process.env, STACKNET_ROOT: root } },
);
process.exit(run.status ?? 1);
