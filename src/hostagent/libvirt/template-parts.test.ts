// The test template's parts that need no VM: the cpio writer (checked with a real cpio reader), module
// dependencies, checksums, and reading the guest's console.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { run } from '../../netns/exec.js';
import { kernelInitrdChecksum, parseChecksum } from './checksum.js';
import { cpioNewc } from './cpio.js';
import { parseGuestConsole } from './guest-console.js';
import { moduleDepends, rdtscProgram, testTemplateInitramfs } from './test-template.js';

describe('test template parts', () => {
  it('writes a newc cpio archive that busybox cpio lists and unpacks as written', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sn-cpio-'));
    try {
      const archive = join(dir, 'a.cpio');
      await writeFile(
        archive,
        cpioNewc([
          { path: 'bin', type: 'dir' },
          { path: 'bin/hello', type: 'file', mode: 0o755, data: Buffer.from('#!/bin/sh\necho hi\n') },
          { path: 'bin/sh', type: 'symlink', target: 'hello' },
          { path: 'odd', type: 'file', data: Buffer.from('12345') }, // not a multiple of 4: padding
          { path: 'dev', type: 'dir' },
          { path: 'dev/console', type: 'char', major: 5, minor: 1 },
        ]),
      );
      const names = await run(['busybox', 'cpio', '-t', '-F', archive]);
      assert.deepEqual(names.stdout.trim().split('\n'), [
        'bin',
        'bin/hello',
        'bin/sh',
        'odd',
        'dev',
        'dev/console',
      ]);
      const lines = (await run(['busybox', 'cpio', '-t', '-v', '-F', archive])).stdout.trim().split('\n');
      assert.match(lines[1]!, /^-rwxr-xr-x .* bin\/hello$/);
      assert.match(lines[5]!, /^crw------- .* dev\/console$/);
      const out = join(dir, 'x');
      await run(['mkdir', out]);
      await run(['sh', '-c', `cd ${out} && busybox cpio -i -d -F ${archive} 2>&1`]);
      assert.equal((await run(['cat', join(out, 'odd')])).stdout, '12345');
      assert.equal((await run(['readlink', join(out, 'bin/sh')])).stdout.trim(), 'hello');
      // the device numbers of /dev/console (hex major,minor)
      assert.equal(
        (await run(['stat', '-c', '%F %t,%T', join(out, 'dev/console')])).stdout.trim(),
        'character special file 5,1',
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('the initramfs is gzip of newc with /init, busybox, the modules in load order and /dev/console', () => {
    const img = testTemplateInitramfs(Buffer.from('BUSYBOX'), [
      ['virtio', Buffer.from('ko1')],
      ['virtio_net', Buffer.from('ko2')],
    ]);
    const text = gunzipSync(img).toString('latin1');
    assert.ok(text.startsWith('070701'));
    for (const name of [
      'init',
      'bin/busybox',
      'lib/modules/virtio.ko',
      'lib/modules/virtio_net.ko',
      'bin/rdtsc',
      'dev/console',
    ]) {
      assert.ok(text.includes(`${name}\0`), name);
    }
    assert.match(text, /for m in virtio virtio_net; do/);
    assert.ok(text.endsWith('\0') && text.includes('TRAILER!!!'));
  });

  it('/bin/rdtsc runs on this x86-64 host and prints its TSC: a decimal that grows', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sn-rdtsc-'));
    try {
      const f = join(dir, 'rdtsc');
      await writeFile(f, rdtscProgram(), { mode: 0o755 });
      const a = (await run([f])).stdout;
      const b = (await run([f])).stdout;
      assert.match(a, /^[1-9][0-9]*\n$/);
      assert.match(b, /^[1-9][0-9]*\n$/);
      assert.ok(BigInt(b) > BigInt(a), `${a.trim()} then ${b.trim()}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("reads a module's depends= from its .modinfo", () => {
    const ko = Buffer.concat([
      Buffer.from('\x7fELF...'),
      Buffer.from('\0license=GPL\0depends=virtio_ring,virtio,net_failover\0retpoline=Y\0'),
    ]);
    assert.deepEqual(moduleDepends(ko), ['virtio_ring', 'virtio', 'net_failover']);
    assert.deepEqual(moduleDepends(Buffer.from('\0depends=\0intree=Y\0')), []);
    assert.deepEqual(moduleDepends(Buffer.from('no modinfo')), []);
  });

  it('parses checksums as CloudStack writes them, and hashes a kernel-initrd directory as its manifest', async () => {
    assert.deepEqual(parseChecksum('{SHA-256}' + 'AB'.repeat(32)), {
      algorithm: 'sha256',
      hex: 'ab'.repeat(32),
    });
    assert.deepEqual(parseChecksum('d41d8cd98f00b204e9800998ecf8427e'), {
      algorithm: 'md5',
      hex: 'd41d8cd98f00b204e9800998ecf8427e',
    });
    assert.throws(() => parseChecksum('xyz'), /not hex/);
    assert.throws(() => parseChecksum('abc'), /not hex/);
    const dir = await mkdtemp(join(tmpdir(), 'sn-sum-'));
    try {
      await writeFile(join(dir, 'vmlinuz'), 'kernel');
      await writeFile(join(dir, 'initrd.img'), 'initrd');
      // what `sha256sum vmlinuz initrd.img | sha256sum` prints
      const shell = await run(['sh', '-c', `cd ${dir} && sha256sum vmlinuz initrd.img | sha256sum`]);
      assert.equal(await kernelInitrdChecksum(dir), shell.stdout.split(' ')[0]);
      const md5 = await run(['sh', '-c', `cd ${dir} && md5sum vmlinuz initrd.img | md5sum`]);
      assert.equal(await kernelInitrdChecksum(dir, 'md5'), md5.stdout.split(' ')[0]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("reads the guest's report from its console, the last boot's, through kernel noise", () => {
    const consoleText = [
      '[    0.000000] Linux version 6.1.0',
      'STACKNET-INIT uptime=4.00',
      'STACKNET-LEASE ip=10.0.0.9 mask=255.255.255.0 router=10.0.0.1 dns=10.0.0.1 hostname=old',
      'STACKNET-PASSWORD first-boot',
      '[    9.000000] reboot: Restarting system',
      'STACKNET-INIT uptime=3.10',
      '[    3.2] virtio_net virtio0 eth0: renamed',
      'STACKNET-DHCP uptime=3.40',
      'udhcpc: lease of 10.0.0.5 obtained from 10.0.0.1, lease time 3600',
      'STACKNET-LEASE ip=10.0.0.5 mask=255.255.255.0 router=10.0.0.1 dns=10.0.0.1,10.0.0.2 hostname=vm5',
      'STACKNET-TIMING lease=3.55',
      'STACKNET-META instance-id=abc-123',
      'STACKNET-META public-keys=key one\\nkey two',
      'STACKNET-META empty=',
      `STACKNET-USERDATA ${Buffer.from('#cloud-config\n').toString('base64')}`,
      'STACKNET-PASSWORD ',
      'STACKNET-PING name=vm6 ip=10.0.0.6 ok',
      'STACKNET-PING name=gone ip= fail',
      '[    3.9] random: crng init doneSTACKNET-READY uptime=3.91',
      'STACKNET-CLOCK tsc=11510422345 uptime=3.95-3.99',
    ].join('\r\n');
    assert.deepEqual(parseGuestConsole(consoleText), {
      initUptime: 3.1,
      dhcpUptime: 3.4,
      lease: {
        ip: '10.0.0.5',
        mask: '255.255.255.0',
        router: '10.0.0.1',
        dns: ['10.0.0.1', '10.0.0.2'],
        hostname: 'vm5',
      },
      leaseUptime: 3.55,
      meta: { 'instance-id': 'abc-123', 'public-keys': 'key one\nkey two', empty: '' },
      userData: '#cloud-config\n',
      password: '',
      pings: { vm6: { ip: '10.0.0.6', ok: true }, gone: { ip: '', ok: false } },
      readyUptime: 3.91,
      clock: { tsc: 11510422345, uptimeFrom: 3.95, uptimeTo: 3.99 },
      errors: [],
    });
    assert.deepEqual(parseGuestConsole('SeaBIOS'), { meta: {}, pings: {}, errors: [] });
  });
});
