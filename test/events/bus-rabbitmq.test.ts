/**
 * Events on RabbitMQ (src/events/README.md), against the real broker on 127.0.0.1:5672 (`.ci/run` starts it):
 * each event recorded through the API arrives on the exchange with CloudStack's routing key and body, one
 * resource's events in order; with the broker stopped mid-stream (`rabbitmqctl stop_app`) the API keeps answering,
 * the outbox grows, and everything recorded meanwhile arrives once it is back. Each test has its own exchange and
 * queue. On SQLite (the outbox's claims are tested on all three databases in src/events/outbox.test.ts).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import amqp from 'amqplib';
import { buildTestServer, injectClient } from '../../src/server/testing/test-server.js';
import type { BuiltServer } from '../../src/server/build-server.js';
import { outboxSize } from '../../src/events/outbox.js';
import { eventually } from '../api/harness.js';

const AMQP_URL = process.env.STACKNET_TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const keys = { apiKey: 'bus-key', secretKey: 'bus-secret' };

interface Got {
  key: string;
  body: Record<string, string>;
  messageId: string;
}

/** A durable queue bound to everything on the exchange, read until closed. */
async function consume(exchange: string, queue: string) {
  const conn = await amqp.connect(AMQP_URL);
  conn.on('error', () => undefined);
  const ch = await conn.createChannel();
  ch.on('error', () => undefined);
  await ch.assertExchange(exchange, 'topic', { durable: true });
  await ch.assertQueue(queue, { durable: true });
  await ch.bindQueue(queue, exchange, '#');
  const got: Got[] = [];
  await ch.consume(queue, (m) => {
    if (!m) return;
    got.push({
      key: m.fields.routingKey,
      body: JSON.parse(m.content.toString()) as Record<string, string>,
      messageId: String(m.properties.messageId),
    });
    ch.ack(m);
  });
  return { got, close: () => conn.close().catch(() => undefined) };
}

async function cleanupBroker(exchange: string, queue: string): Promise<void> {
  const conn = await amqp.connect(AMQP_URL);
  try {
    const ch = await conn.createChannel();
    await ch.deleteQueue(queue);
    await ch.deleteExchange(exchange);
  } finally {
    await conn.close();
  }
}

const rabbitmqctl = (...args: string[]) =>
  execFileSync('rabbitmqctl', args, { stdio: 'ignore', timeout: 120_000 });

describe('events on RabbitMQ (sqlite)', () => {
  let dir: string;
  let s: BuiltServer;
  const exchange = `stacknet-test-${randomBytes(4).toString('hex')}`;
  const queue = `${exchange}-q`;
  const client = injectClient(() => s, keys);
  let zone: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'stacknet-bus-'));
    s = await buildTestServer({
      dataDir: dir,
      dbUrl: `sqlite:${join(dir, 'db.sqlite')}`,
      keys,
      amqpUrl: AMQP_URL,
      amqpExchange: exchange,
    });
  });

  after(async () => {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
    await cleanupBroker(exchange, queue).catch(() => undefined);
  });

  test("CloudStack's routing key and body, one resource's events in order", async () => {
    const c = await consume(exchange, queue);
    try {
      zone = (
        await client.okCall('createZone', {
          name: 'bus-z',
          networktype: 'Advanced',
          dns1: '192.0.2.53',
          internaldns1: '192.0.2.53',
        })
      ).zone.id as string;
      for (let i = 1; i <= 10; i++) await client.okCall('updateZone', { id: zone, name: `bus-z${i}` });
      const mine = await eventually(
        async () => {
          const m = c.got.filter((g) => g.key.endsWith(`.Zone.${zone}`));
          return m.length >= 11 ? m : undefined;
        },
        20_000,
        '11 zone events',
      );
      assert.equal(mine[0]!.key, `management-server.ActionEvent.ZONE-CREATE.Zone.${zone}`);
      assert.ok(mine.slice(1).every((g) => g.key === `management-server.ActionEvent.ZONE-EDIT.Zone.${zone}`));
      const admin = (await client.okCall('listAccounts', { name: 'admin', listall: 'true' })).account[0];
      const b = mine[0]!.body;
      assert.equal(b.event, 'ZONE.CREATE');
      assert.equal(b.status, 'Completed');
      assert.equal(b.entity, 'Zone');
      assert.equal(b.entityuuid, zone);
      assert.equal(b.account, admin.id);
      assert.equal(b.user, admin.user[0].id);
      assert.match(b.description!, /bus-z/);
      assert.match(b.eventDateTime!, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000$/);
      // In order: each edit's description names the name it set, 1 to 10.
      const listed = (await client.okCall('listEvents', { type: 'ZONE.EDIT', page: '1', pagesize: '100' }))
        .event as {
        id: string;
      }[];
      assert.deepEqual(
        mine.slice(1).map((g) => g.messageId),
        listed.map((e) => e.id).reverse(),
        'the message ids are the event ids, in the order recorded',
      );
      await eventually(
        async () => ((await outboxSize(s.store.db)) === 0 ? true : undefined),
        10_000,
        'outbox empty',
      );
    } finally {
      await c.close();
    }
  });

  test('a broker stopped mid-stream loses nothing and blocks nothing', async () => {
    let c = await consume(exchange, queue);
    let stopped = false;
    try {
      c.got.length = 0;
      for (let i = 1; i <= 3; i++) await client.okCall('updateZone', { id: zone, name: `before-${i}` });
      await eventually(
        async () => (c.got.length >= 3 ? true : undefined),
        20_000,
        'events before the outage',
      );
      await c.close();
      rabbitmqctl('stop_app');
      stopped = true;
      const t0 = Date.now();
      for (let i = 1; i <= 20; i++) await client.okCall('updateZone', { id: zone, name: `during-${i}` });
      assert.ok(Date.now() - t0 < 10_000, 'the API does not wait for the broker');
      assert.ok((await outboxSize(s.store.db)) >= 20, 'the outbox keeps what the broker could not take');
      rabbitmqctl('start_app');
      rabbitmqctl('await_startup');
      stopped = false;
      for (let i = 1; i <= 2; i++) await client.okCall('updateZone', { id: zone, name: `after-${i}` });
      c = await consume(exchange, queue);
      // The events of and after the outage, in the order recorded (listEvents answers newest first).
      const recorded = (
        (await client.okCall('listEvents', { type: 'ZONE.EDIT', page: '1', pagesize: '100' })).event as {
          id: string;
        }[]
      )
        .map((e) => e.id)
        .reverse()
        .slice(-22);
      const arrived = await eventually(
        async () => {
          const firsts = [...new Set(c.got.map((g) => g.messageId))].filter((id) => recorded.includes(id));
          return firsts.length === 22 ? firsts : undefined;
        },
        60_000,
        'every event of the outage after the broker is back',
      );
      assert.deepEqual(arrived, recorded, 'in the order recorded');
      await eventually(
        async () => ((await outboxSize(s.store.db)) === 0 ? true : undefined),
        20_000,
        'outbox empty',
      );
    } finally {
      if (stopped) {
        rabbitmqctl('start_app');
        rabbitmqctl('await_startup');
      }
      await c.close();
    }
  });
});
