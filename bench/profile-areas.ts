/**
 * A server's CPU profile (bench/server-cpu-profile.mjs) summed up by area of the server: self time of every
 * sampled function, put in one area by its file (and, for the frames that call into better-sqlite3, by name: their
 * self time is SQLite's own work). With `--per <n>` also µs per unit (jobs: the bench's `ok`).
 *   node --import tsx bench/profile-areas.ts <file.cpuprofile> [--per 5631]
 */
import { readFileSync } from 'node:fs';
import { filesAndFlags, type CpuProfile } from './common.js';

type Profile = CpuProfile;

let per = 0;
const files = filesAndFlags(
  process.argv.slice(2),
  'node --import tsx bench/profile-areas.ts <file> [--per N]',
  (flag, value) => {
    if (flag === '--per') per = Number(value());
    else return false;
    return true;
  },
);

/** The area of a frame: first match wins. */
const AREAS: [string, (f: string, u: string) => boolean][] = [
  ['idle', (f) => f === '(idle)'],
  ['garbage collector', (f) => f === '(garbage collector)'],
  [
    'SQLite (better-sqlite3 calls)',
    (f, u) =>
      (/store\/db\.js$/.test(u) && f === 'all') ||
      (/sqlite-driver\.js$/.test(u) && f === 'executeQuery') ||
      (/store\/prepared\.js$/.test(u) && f === 'run') ||
      /sqlite-fast-path\.js$|better-sqlite3|caller-check\.js$/.test(u),
  ],
  ['Kysely', (_f, u) => /node_modules\/kysely|dist\/esm\//.test(u)],
  ['logging (pino)', (_f, u) => /pino|sonic-boom|\/logging\//.test(u)],
  ['metrics (prom-client)', (_f, u) => /prom-client|\/metrics\//.test(u)],
  ['Fastify', (_f, u) => /fastify|find-my-way|fast-querystring|fast-decode-uri|secure-json/.test(u)],
  [
    'Node HTTP, sockets, streams',
    (f, u) =>
      /node:_http|node:net|node:internal\/stream|node:internal\/streams|node:stream|node:internal\/http|node:buffer/.test(
        u,
      ) || ['writev', 'writeString', 'writeBuffer', 'writeUtf8String', 'close'].includes(f),
  ],
  ['URL parsing', (_f, u) => /node:internal\/url|node:url|node:querystring/.test(u)],
  ['crypto (HMAC, uuid)', (f, u) => /crypto/.test(u) || (!u && /^(Hmac|digest|update)$/.test(f))],
  ['api: signature', (_f, u) => /dist\/api\/signature/.test(u)],
  ['api: jobs (runner, queue, commit groups)', (_f, u) => /dist\/api\/jobs\//.test(u)],
  ['api: front (parsing, dispatch, envelopes)', (_f, u) => /dist\/api\//.test(u)],
  ['public-ips', (_f, u) => /dist\/public-ips\//.test(u)],
  ['addresses, ipam', (_f, u) => /dist\/addresses\/|dist\/ipam\//.test(u)],
  ['store (JS)', (_f, u) => /dist\/store\//.test(u)],
  ['events, accounts, server', (_f, u) => /dist\/(events|accounts|server)\//.test(u)],
  [
    'start-up (module loading, schema compiling)',
    (f, u) =>
      /node:internal\/modules|node:fs|dist\/compile|ajv/.test(u) ||
      ['compileSourceTextModule', 'internalModuleStat', 'openFileHandle', 'fstat', 'read'].includes(f),
  ],
  ['other stacknet', (_f, u) => /\/dist\//.test(u)],
  ['promises, timers, events', (f, u) => f === 'runMicrotasks' || /task_queues|timers|node:events/.test(u)],
  ['other', () => true],
];

for (const file of files) {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const ms = new Map<string, number>();
  let busy = 0;
  p.samples.forEach((id, i) => {
    const { functionName: f, url: u } = byId.get(id)!.callFrame;
    const area = AREAS.find(([, match]) => match(f, u))![0];
    const t = (p.timeDeltas[i] ?? 0) / 1000;
    ms.set(area, (ms.get(area) ?? 0) + t);
    if (area !== 'idle') busy += t;
  });
  console.log(`${file}: ${busy.toFixed(0)} ms busy (idle not counted in the shares)`);
  for (const [area, t] of [...ms].sort((a, b) => b[1] - a[1])) {
    if (area === 'idle') continue;
    const share = `${((100 * t) / busy).toFixed(1)}%`.padStart(6);
    const unit = per ? `${((t * 1000) / per).toFixed(0).padStart(6)} µs/unit` : '';
    console.log(`${t.toFixed(0).padStart(8)} ms ${share} ${unit}  ${area}`);
  }
}
