import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CloudStackError } from '../errors/catalogue.js';
import { parseCidr } from '../ipam/cidr.js';
import {
  applyGuestVmCidr,
  checkTierPlacement,
  defaultNetworkDomain,
  isolatedAddressing,
  reservedIpRange,
} from './guest-cidr.js';

test('isolated addressing: zone guest CIDR by default, gateway first host', () => {
  const a = isolatedAddressing({ zoneGuestCidr: '10.1.1.0/24' });
  assert.equal(a.gateway, '10.1.1.1');
  assert.equal(a.netmask, '255.255.255.0');
  const b = isolatedAddressing({ gateway: '192.168.5.1', netmask: '255.255.255.128' });
  assert.equal(b.cidr.prefix, 25);
  assert.throws(() => isolatedAddressing({ gateway: '192.168.5.1' }), CloudStackError);
  assert.throws(
    () => isolatedAddressing({ gateway: '10.0.0.1', netmask: '255.0.0.0' }),
    /network.guest.cidr.limit/,
  );
});

test('network domain is cs<hex account id><suffix> with no dot', () => {
  assert.equal(defaultNetworkDomain(2, 'cloud.internal'), 'cs2cloud.internal');
  assert.equal(defaultNetworkDomain(26, 'cloud.internal'), 'cs1acloud.internal');
});

test('VPC tiers lie inside the VPC and do not overlap', () => {
  const vpc = { name: 'v', cidr: parseCidr('10.0.0.0/16') };
  const t1 = { name: 't1', cidr: parseCidr('10.0.1.0/24') };
  checkTierPlacement(parseCidr('10.0.2.0/24'), vpc, [t1]);
  assert.throws(
    () => checkTierPlacement(parseCidr('10.0.1.128/25'), vpc, [t1]),
    /overlaps 10.0.1.0\/24 of tier 't1'/,
  );
  assert.throws(
    () => checkTierPlacement(parseCidr('10.1.0.0/24'), vpc, []),
    /not inside the CIDR 10.0.0.0\/16/,
  );
});

test('guestvmcidr reservation narrows and resets', () => {
  const whole = parseCidr('10.1.1.0/24');
  const r = applyGuestVmCidr({ cidr: whole, networkCidr: undefined }, '10.1.1.0/25', [
    { address: '10.1.1.10', owner: 'vm1' },
  ]);
  assert.equal(r.cidr.prefix, 25);
  assert.equal(reservedIpRange(r), '10.1.1.128-10.1.1.254');
  assert.throws(
    () =>
      applyGuestVmCidr({ cidr: whole, networkCidr: undefined }, '10.1.1.0/25', [
        { address: '10.1.1.200', owner: 'vm2' },
      ]),
    /10.1.1.200 of vm2 is outside/,
  );
  const reset = applyGuestVmCidr(r, '10.1.1.0/24', []);
  assert.equal(reset.networkCidr, undefined);
});
