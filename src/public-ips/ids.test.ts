import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodePublicIpUuid, publicIpUuid } from './ids.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

test('public IP ids are UUID-shaped and round-trip to zone/region and address', () => {
  fc.assert(
    fc.property(
      fc.constantFrom('pub' as const, 'portable' as const),
      fc.integer({ min: 1, max: 0xffff }),
      fc.bigInt({ min: 0n, max: 0xffffffffn }),
      (kind, scopeId, value) => {
        const id = publicIpUuid(kind, scopeId, 4, value);
        assert.match(id, UUID);
        assert.deepEqual(decodePublicIpUuid(id), { kind, scopeId, family: 4, value });
      },
    ),
  );
  assert.equal(publicIpUuid('pub', 1, 4, 0xcb00710an), 'f1ee0001-0000-4000-8004-0000cb00710a');
  assert.equal(decodePublicIpUuid('9aa5e259-0876-4a7e-bded-4acd5e5b476f'), undefined);
});
