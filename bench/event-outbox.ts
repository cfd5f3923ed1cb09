/**
 * The event bus's cost per recorded change, in-process on one database: transactions that each write an event
 * and a usage record (what an IP assign commits besides the address), in alternating batches with the outbox off
 * and on, while a publisher drains the outbox to the broker. Alternating batches keep the machine's other load
 * out of the comparison, which `bench:api` on a busy machine cannot. Prints one JSON line.
 *   node --import tsx bench/event-outbox.ts [--db-url sqlite:...|postgres://...] [--amqp-url amqp://...]
 *     [--batches 20] [--batch 200] [--no-publisher] (the outbox's writes alone)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openMigratedStore, transaction } from '../src/store/db.js';
import { recordEvent, recordUsage } from '../src/events/record.js';
import { enableOutbox, outboxSize } from '../src/events/outbox.js';
import { EventPublisher } from '../src/events/publisher.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1]! : dflt;
}

process.env.STACKNET_SQLITE_SYNC ??= 'NORMAL';
const dir = mkdtempSync(join(tmpdir(), 'stacknet-bench-outbox-'));
const store = await openMigratedStore(arg('--db-url', `sqlite:${join(dir, 'b.db')}`), { poolSize: 8 });
const batches = Number(arg('--batches', '20'));
const batch = Number(arg('--batch', '200'));
const publisher = new EventPublisher({
  store,
  url: arg('--amqp-url', 'amqp://guest:guest@127.0.0.1:5672'),
  exchange: 'stacknet-bench-outbox',
});
if (!process.argv.includes('--no-publisher')) publisher.start();
// The caller of an API command, as most events have one (the account's uuid then needs no lookup).
const actor = {
  userId: 1,
  userUuid: '00000000-0000-4000-8000-000000000001',
  username: 'admin',
  accountId: 1,
  accountUuid: '00000000-0000-4000-8000-000000000002',
  accountName: 'admin',
  accountType: 1,
  role: 'Admin',
  domainId: 1,
  domainUuid: '00000000-0000-4000-8000-000000000003',
  domainPath: '/',
} as const;
const one = (i: number) =>
  transaction(store, async (tx) => {
    await recordEvent(tx, {
      type: 'NET.IPASSIGN',
      description: `assigned 203.0.113.${i % 250}`,
      actor,
      resourceType: 'IpAddress',
      resourceId: `00000000-0000-4000-8000-${String(i % 1000).padStart(12, '0')}`,
    });
    await recordUsage(tx, { type: 'NET.IPASSIGN', accountId: 1, domainId: 1, resourceId: i });
  });
const ms = { off: 0, on: 0 };
let n = 0;
try {
  for (let b = 0; b < batches * 2; b++) {
    const on = b % 2 === 1;
    const disable = on ? enableOutbox() : () => undefined;
    const t = performance.now();
    for (let i = 0; i < batch; i++) await one(n++);
    ms[on ? 'on' : 'off'] += performance.now() - t;
    disable();
  }
  const drained = performance.now();
  if (!process.argv.includes('--no-publisher'))
    while ((await outboxSize(store.db)) > 0) await new Promise((r) => setTimeout(r, 20));
  const per = (x: number) => Math.round((batches * batch) / (x / 1000));
  console.log(
    JSON.stringify({
      bench: 'event-outbox',
      db: store.kind,
      transactions_each: batches * batch,
      per_second_off: per(ms.off),
      per_second_on: per(ms.on),
      cost_pct: Math.round((ms.on / ms.off - 1) * 1000) / 10,
      published: publisher.published,
      drain_after_ms: Math.round(performance.now() - drained),
    }),
  );
} finally {
  await publisher.stop();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}
