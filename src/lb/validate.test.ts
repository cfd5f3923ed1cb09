/** The pure LB checks: algorithms, the router's protocol, stickiness methods and params, health check bounds. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CloudStackError } from '../errors/catalogue.js';
import { algorithmOf, checkHealthCheck, checkStickiness, lbProtocolOf } from './validate.js';
import { ipOrder } from './members.js';

const refused = (fn: () => unknown, param: string, text: RegExp) =>
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CloudStackError, String(e));
    assert.equal(e.httpCode, 431);
    assert.match(e.message, new RegExp(param));
    assert.match(e.message, text);
    return true;
  });

test('algorithms and the protocol the virtual router balances', () => {
  assert.equal(algorithmOf('RoundRobin'), 'roundrobin');
  assert.equal(algorithmOf('source'), 'source');
  refused(() => algorithmOf('random'), 'algorithm', /Invalid algorithm: random/);
  assert.equal(lbProtocolOf(undefined), 'tcp');
  assert.equal(lbProtocolOf('TCP'), 'tcp');
  for (const p of ['udp', 'tcp-proxy'])
    refused(() => lbProtocolOf(p), 'protocol', /VirtualRouter provider supports tcp/);
  refused(() => lbProtocolOf('sctp'), 'protocol', /Invalid LB protocol/);
});

test("stickiness: CloudStack's methods, param names, flags and formats", () => {
  assert.deepEqual(
    checkStickiness('r', 'lbcookie', [{ name: 'cookie-name', value: 'C' }, { name: 'nocache' }]),
    {
      method: 'LbCookie',
      params: { 'cookie-name': 'C', nocache: '' },
    },
  );
  refused(
    () => checkStickiness('r', 'Magic', []),
    'methodname',
    /Failed to match Stickiness method name for LB rule:r/,
  );
  refused(
    () => checkStickiness('r', 'LbCookie', [{ name: 'length', value: '3' }]),
    'param',
    /does not support param name :length/,
  );
  refused(
    () => checkStickiness('r', 'LbCookie', [{ name: 'domain' }]),
    'param',
    /Value expected for the Param :domain/,
  );
  refused(
    () => checkStickiness('r', 'AppCookie', [{ name: 'length', value: '5x' }]),
    'param',
    /length is not a number: 5x/,
  );
  assert.equal(
    checkStickiness('r', 'AppCookie', [{ name: 'holdtime', value: '300' }]).params.holdtime,
    '300',
  );
  refused(
    () => checkStickiness('r', 'AppCookie', [{ name: 'holdtime', value: '3y' }]),
    'param',
    /holdtime is not in timeformat/,
  );
  assert.equal(
    checkStickiness('r', 'SourceBased', [{ name: 'tablesize', value: '200k' }]).method,
    'SourceBased',
  );
  refused(
    () => checkStickiness('r', 'SourceBased', [{ name: 'tablesize', value: '200' }]),
    'param',
    /tablesize is not in size format/,
  );
  refused(
    () => checkStickiness('r', 'SourceBased', [{ name: 'expire', value: 'm' }]),
    'param',
    /expire is not in timeformat/,
  );
});

test("health checks: CloudStack's defaults (0 = default), ranges and the interval/timeout check", () => {
  const dflt = {
    pingPath: '/',
    responseTimeout: 2,
    intervalTime: 5,
    healthyThreshold: 2,
    unhealthyThreshold: 1,
  };
  assert.deepEqual(checkHealthCheck({}), dflt);
  assert.deepEqual(checkHealthCheck({ responsetimeout: 0, intervaltime: 0 }), dflt);
  assert.equal(checkHealthCheck({ pingpath: '/up', intervaltime: 30 }).intervalTime, 30);
  refused(
    () => checkHealthCheck({ responsetimeout: 9, intervaltime: 8 }),
    'responsetimeout',
    /Monitor interval must be greater than response timeout/,
  );
  refused(() => checkHealthCheck({ responsetimeout: 1 }), 'responsetimeout', /between 2 and 60/);
  refused(() => checkHealthCheck({ intervaltime: 20941 }), 'intervaltime', /between 1 and 20940/);
  refused(() => checkHealthCheck({ healthythreshold: -1 }), 'healthythreshold', /between/);
  refused(() => checkHealthCheck({ pingpath: 'health' }), 'pingpath', /starting with \//);
});

test('members are ordered by address numerically', () => {
  assert.deepEqual(['10.0.0.10', '10.0.0.9', '9.1.1.1'].sort(ipOrder), ['9.1.1.1', '10.0.0.9', '10.0.0.10']);
});
