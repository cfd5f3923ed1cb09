/**
 * The event outbox on the three databases, without a broker: rows only while a bus is on, two publishers
 * draining one outbox concurrently (every row published once, each resource's rows in order), and a dead
 * publisher's claim taken over once it expires.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestStore, testDbKinds } from '../store/testing/test-databases.js';
import type { Store } from '../store/db.js';
import { transaction } from '../store/db.js';
import { recordEvent } from './record.js';
import type { EventOwner } from './record.js';
import { claimOutbox, deletePublished, enableOutbox, outboxSize } from './outbox.js';

const owner: EventOwner = { accountId: 1, accountName: 'admin', domainId: 1, domainPath: '/' };

const record = (store: Store, resource: string, n: number) =>
  transaction(store, (tx) =>
    recordEvent(tx, {
      type: 'ZONE.EDIT',
      description: `edit ${n} of ${resource}`,
      owner,
      resourceType: 'Zone',
      resourceId: resource,
    }),
  );

for (const kind of testDbKinds()) {
  describe(`event outbox (${kind})`, () => {
    let store: Store;
    let cleanup: () => Promise<void>;
    before(async () => {
      ({ store, cleanup } = await createTestStore(kind, 6));
    });
    after(async () => cleanup());

    test('no bus, no rows; a bus on, one row per event in its transaction', async () => {
      await record(store, 'r-none', 0);
      assert.equal(await outboxSize(store.db), 0);
      const disable = enableOutbox();
      try {
        await record(store, 'r-one', 0);
        // Rolled back with its change: no event, no message.
        await assert.rejects(
          transaction(store, async (tx) => {
            await recordEvent(tx, { type: 'ZONE.EDIT', description: 'x', owner });
            throw new Error('the change failed');
          }),
        );
      } finally {
        disable();
      }
      const rows = await store.db.selectFrom('event_outbox').selectAll().execute();
      assert.equal(rows.length, 1);
      assert.equal(rows[0]!.routing_key, 'management-server.ActionEvent.ZONE-EDIT.Zone.r-one');
      assert.equal(rows[0]!.resource_key, 'Zone:r-one');
      const body = JSON.parse(rows[0]!.body) as Record<string, string>;
      assert.equal(body.event, 'ZONE.EDIT');
      assert.equal(body.status, 'Completed');
      assert.equal(body.entityuuid, 'r-one');
      assert.match(body.eventDateTime!, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000$/);
      await store.db.deleteFrom('event_outbox').execute();
    });

    test('two publishers: every row once, each resource in order', async () => {
      const disable = enableOutbox();
      try {
        for (let i = 0; i < 60; i++) await record(store, `res-${i % 6}`, i);
      } finally {
        disable();
      }
      const seen: { publisher: string; key: string; description: string; id: number }[] = [];
      const drain = async (name: string) => {
        for (let idle = 0; idle < 3;) {
          const rows = await claimOutbox(store, name, 30_000, 7);
          if (rows.length === 0) {
            idle++;
            await new Promise((r) => setTimeout(r, 5));
            continue;
          }
          idle = 0;
          for (const r of rows) {
            const body = JSON.parse(r.body) as { description: string };
            seen.push({ publisher: name, key: r.resourceKey, description: body.description, id: r.id });
          }
          await deletePublished(
            store,
            name,
            rows.map((r) => r.id),
          );
        }
      };
      await Promise.all([drain('p1'), drain('p2')]);
      assert.equal(await outboxSize(store.db), 0);
      const ids = seen.map((s) => s.id);
      assert.equal(new Set(ids).size, ids.length, 'no row published twice');
      assert.equal(ids.length, 60);
      // Published order per resource is the recorded order (the order `seen` got them in).
      for (let k = 0; k < 6; k++) {
        const mine = seen
          .filter((s) => s.key === `Zone:res-${k}`)
          .map((s) => Number(s.description.split(' ')[1]));
        assert.deepEqual(
          mine,
          [...mine].sort((a, b) => a - b),
          `res-${k} in order`,
        );
        assert.equal(mine.length, 10);
      }
      assert.ok(new Set(seen.map((s) => s.publisher)).size >= 1);
    });

    test("a dead publisher's claim is taken over after it expires", async () => {
      const disable = enableOutbox();
      try {
        for (let i = 0; i < 3; i++) await record(store, 'res-dead', i);
      } finally {
        disable();
      }
      const dead = await claimOutbox(store, 'dead', 150, 10);
      assert.equal(dead.length, 3);
      assert.equal((await claimOutbox(store, 'alive', 30_000, 10)).length, 0, 'held while the claim lasts');
      await new Promise((r) => setTimeout(r, 200));
      const taken = await claimOutbox(store, 'alive', 30_000, 10);
      assert.deepEqual(
        taken.map((r) => r.id),
        dead.map((r) => r.id),
      );
      await deletePublished(
        store,
        'alive',
        taken.map((r) => r.id),
      );
      assert.equal(await outboxSize(store.db), 0);
    });
  });
}
