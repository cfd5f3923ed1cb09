import { test } from 'node:test';
import assert from 'node:assert/strict';
import { internalIdTable, parseParams, parseIsoWithZone } from './params.js';
import { buildRegistry } from './registry.js';
import { pageFrom, pageWithTotal } from './list.js';
import { resultBody, serialize } from './envelope.js';
import { listResult } from './command.js';
import { CloudStackError } from '../errors/catalogue.js';

const specs = {
  id: { type: 'uuid', required: true },
  n: { type: 'integer' },
  flag: { type: 'boolean' },
  ids: { type: 'list', items: 'uuid' },
  details: { type: 'map' },
} as const;

test('parameters are typed from the definition; wrong or missing ones are 431 naming them', () => {
  const p = parseParams(
    specs,
    new Map([
      ['id', 'A3B4C5D6-0000-4000-8000-000000000001'],
      ['n', '12'],
      ['flag', 'TRUE'],
      ['ids', 'a3b4c5d6-0000-4000-8000-000000000001,a3b4c5d6-0000-4000-8000-000000000002'],
      ['details[1].key', 'b'],
      ['details[0].key', 'a'],
      ['details[0].value', '1'],
      ['unknown', 'ignored'],
    ]),
  );
  assert.equal(p.id, 'a3b4c5d6-0000-4000-8000-000000000001');
  assert.equal(p.n, 12);
  assert.equal(p.flag, true);
  assert.equal(p.ids?.length, 2);
  assert.deepEqual(p.details, [{ key: 'a', value: '1' }, { key: 'b' }]);
  const err = (m: Map<string, string>) => {
    try {
      parseParams(specs, m);
    } catch (e) {
      assert.ok(e instanceof CloudStackError);
      assert.equal(e.httpCode, 431);
      return e.message;
    }
    assert.fail('expected a 431');
  };
  assert.match(err(new Map()), /missing parameter id/);
  assert.match(err(new Map([['id', 'x']])), /parameter id: 'x'/);
  assert.match(
    err(
      new Map([
        ['id', 'a3b4c5d6-0000-4000-8000-000000000001'],
        ['n', '1.5'],
      ]),
    ),
    /parameter n/,
  );
  assert.match(
    err(
      new Map([
        ['id', 'a3b4c5d6-0000-4000-8000-000000000001'],
        ['n', '99999999999'],
      ]),
    ),
    /parameter n/,
  );
  assert.match(
    err(
      new Map([
        ['id', 'a3b4c5d6-0000-4000-8000-000000000001'],
        ['flag', 'yes'],
      ]),
    ),
    /parameter flag/,
  );
});

test('expires accepts the forms clients send', () => {
  assert.equal(parseIsoWithZone('2026-01-02T10:00:00+0000')?.toISOString(), '2026-01-02T10:00:00.000Z');
  assert.equal(parseIsoWithZone('2026-01-02T12:00:00+02:00')?.toISOString(), '2026-01-02T10:00:00.000Z');
  assert.equal(parseIsoWithZone('2026-01-02T10:00:00Z')?.toISOString(), '2026-01-02T10:00:00.000Z');
  assert.equal(parseIsoWithZone('tomorrow'), undefined);
});

test('page/pagesize rules', () => {
  assert.deepEqual(pageFrom({}, 500), { limit: 500, offset: 0 });
  assert.deepEqual(pageFrom({ page: 3, pagesize: 10 }, 500), { limit: 10, offset: 20 });
  assert.deepEqual(pageFrom({ pagesize: -1 }, 500), { offset: 0 });
  assert.throws(() => pageFrom({ page: 1 }, 500), /pagesize/);
  assert.throws(() => pageFrom({ page: 1, pagesize: 501 }, 500), /pagesize/);
  assert.throws(() => pageFrom({ page: 0, pagesize: 5 }, 500), /page/);
});

test('envelopes: empty list is {}, XML mirrors JSON', () => {
  assert.deepEqual(resultBody(listResult('network', [], 0)), {});
  const body = resultBody(listResult('network', [{ id: 'a', name: 'x<y' }], 7));
  assert.equal(
    serialize('listnetworksresponse', body, 'json').body,
    '{"listnetworksresponse":{"count":7,"network":[{"id":"a","name":"x<y"}]}}',
  );
  assert.match(
    serialize('listnetworksresponse', body, 'xml').body,
    /<listnetworksresponse cloud-stack-version="[^"]+"><count>7<\/count><network><id>a<\/id><name>x&lt;y<\/name><\/network><\/listnetworksresponse>$/,
  );
});

test('pageWithTotal counts only when the page cannot tell', async () => {
  let counted = 0;
  const count = async () => {
    counted++;
    return 42;
  };
  const rows = (n: number) => async () => Array.from({ length: n }, (_, i) => i);
  assert.deepEqual((await pageWithTotal({ limit: 10, offset: 0 }, rows(3), count)).total, 3);
  assert.deepEqual((await pageWithTotal({ limit: 10, offset: 20 }, rows(3), count)).total, 23);
  assert.equal(counted, 0);
  assert.deepEqual((await pageWithTotal({ limit: 3, offset: 0 }, rows(3), count)).total, 42);
  assert.deepEqual((await pageWithTotal({ limit: 3, offset: 99 }, rows(0), count)).total, 42);
  assert.equal(counted, 2);
});

test('internal ids: which parameters take them and which table they name', () => {
  assert.equal(internalIdTable('listZones', 'id', 'createZone,updateZone,listZones'), 'zones');
  assert.equal(internalIdTable('createNetwork', 'zoneid'), 'zones');
  assert.equal(
    internalIdTable('startRouter', 'id', 'destroyRouter,listInternalLoadBalancerVMs,listRouters'),
    'routers',
  );
  assert.equal(internalIdTable('registerUserKeys', 'id'), 'users');
  assert.equal(
    internalIdTable('enableStaticNat', 'ipaddressid', 'associateIpAddress,listPublicIpAddresses'),
    'ip_allocations',
  );
  assert.equal(internalIdTable('createVlanIpRange', 'projectid'), undefined, 'stacknet has no projects');
  const reg = buildRegistry();
  assert.equal(reg.get('listZones')!.params.id!.internalIdTable, 'zones');
  // `since 4.13.0` in the reference: CloudStack takes only a UUID there.
  assert.equal(reg.get('listPublicIpAddresses')!.params.networkid!.internalIdTable, undefined);
  const taking = {
    zoneid: { type: 'uuid', internalIdTable: 'zones' },
    ids: { type: 'list', items: 'uuid', internalIdTable: 'vms' },
  } as const;
  const p = parseParams(
    taking,
    new Map([
      ['zoneid', '12'],
      ['ids', '3,A3B4C5D6-0000-4000-8000-000000000001'],
    ]),
  );
  assert.equal(p.zoneid, '12');
  assert.deepEqual(p.ids, ['3', 'a3b4c5d6-0000-4000-8000-000000000001']);
  for (const bad of ['0', '-1', '1.5', '1234567890123456'])
    assert.throws(() => parseParams(taking, new Map([['zoneid', bad]])), /expected a UUID/);
  assert.throws(
    () => parseParams(specs, new Map([['id', '12']])),
    /expected a UUID/,
    'a parameter without a table',
  );
});
