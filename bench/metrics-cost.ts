/**
 * What metrics and the request log add to one API request, measured alone (no server, no database): the
 * `observe` call the pipeline makes after each answer (counter + histogram; plus one JSON log line into a
 * discarding stream), and a scrape of a registry holding 200 commands' series. A noisy machine makes bench:api's
 * on/off difference hard to read; this is the per-request figure it has to explain.
 *   node --import tsx bench/metrics-cost.ts [--n 200000]
 */
import { ServerMetrics } from '../src/metrics/server-metrics.js';
import { createLogger } from '../src/logging/logger.js';
import { observeRequests } from '../src/server/observe.js';
import type { Store } from '../src/store/db.js';
import type { Caller } from '../src/api/command.js';

const i = process.argv.indexOf('--n');
const n = i >= 0 ? Number(process.argv[i + 1]) : 200_000;
// The scrape's queries are not measured here: only the in-memory parts.
const metrics = new ServerMetrics({} as Store);
const caller = {
  userId: 2,
  userUuid: 'u',
  username: 'admin',
  accountId: 2,
  accountUuid: 'a',
  accountName: 'admin',
  accountType: 1,
  role: 'Admin',
  domainId: 1,
  domainUuid: 'd',
  domainPath: '/',
} as unknown as Caller;
const commands = Array.from({ length: 200 }, (_, k) => `command${k}`);

function time(name: string, fn: (k: number) => void): void {
  for (let k = 0; k < 10_000; k++) fn(k);
  const t = performance.now();
  for (let k = 0; k < n; k++) fn(k);
  const us = ((performance.now() - t) * 1000) / n;
  console.log(
    JSON.stringify({ bench: 'metrics-cost', what: name, n, us_per_call: Math.round(us * 100) / 100 }),
  );
}

const metricsOnly = observeRequests(metrics, undefined)!;
time('metrics (counter + histogram)', (k) =>
  metricsOnly({ command: commands[k % 200]!, errorcode: k % 10 === 0 ? 431 : 0, seconds: 0.004, caller }),
);
const sink = { write: (_l: string) => undefined };
const logged = observeRequests(undefined, createLogger({ destination: sink }))!;
time('request log line (pino JSON, discarded)', (k) =>
  logged({ command: commands[k % 200]!, errorcode: 0, seconds: 0.004, caller, jobId: 'j' }),
);
const both = observeRequests(metrics, createLogger({ destination: sink }))!;
time('metrics + log line', (k) =>
  both({ command: commands[k % 200]!, errorcode: 0, seconds: 0.004, caller, jobId: 'j' }),
);
// The first render compiles; the figure is the best of 10 after it.
let best = Infinity;
let text = await metrics.registry.metrics();
for (let k = 0; k < 10; k++) {
  const t = performance.now();
  text = await metrics.registry.metrics();
  best = Math.min(best, performance.now() - t);
}
console.log(
  JSON.stringify({
    bench: 'metrics-cost',
    what: 'render 200 commands x 2 errorcodes (no DB reads)',
    ms: Math.round(best * 100) / 100,
    bytes: text.length,
  }),
);
metrics.close();
