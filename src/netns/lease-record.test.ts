// The hook's lease record is written in place (no rename, which was a process per event): readLease must never
// return a record cut short, whether it finds it empty or without its last line.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { leaseStatePath, readLease, stateDir } from './index.js';

const ns = `sn-${randomBytes(3).toString('hex')}-lease`;
const whole =
  'client=udhcpc\nevent=bound\ninterface=eth0\nip=10.9.0.5\nmask=255.255.255.0\nrouters=10.9.0.1\n' +
  'dns=10.9.0.1\ndomain=cs.internal\nlease=3600\nserverid=10.9.0.1\nhostname=vm5\nat=1796620000000\n';

describe('readLease and a record written in place', () => {
  mkdirSync(stateDir(ns), { recursive: true });
  after(() => rmSync(stateDir(ns), { recursive: true, force: true }));

  it('reads again until the record has its last line', async () => {
    for (const partial of ['', whole.slice(0, whole.indexOf('hostname=')), whole.slice(0, -1)]) {
      writeFileSync(leaseStatePath(ns, 'eth0'), partial);
      setTimeout(() => writeFileSync(leaseStatePath(ns, 'eth0'), whole), 30);
      const l = await readLease(ns, 'eth0');
      assert.equal(l?.ip, '10.9.0.5', JSON.stringify(partial));
      assert.equal(l?.at, 1796620000000);
    }
  });

  it('a record that stays cut short is no record; none at all is undefined', async () => {
    writeFileSync(leaseStatePath(ns, 'eth0'), whole.slice(0, 40));
    assert.equal(await readLease(ns, 'eth0'), undefined);
    rmSync(leaseStatePath(ns, 'eth0'));
    assert.equal(await readLease(ns, 'eth0'), undefined);
  });
});
