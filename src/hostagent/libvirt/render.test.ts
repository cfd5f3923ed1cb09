import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { HostVmSpec } from '../../hosts/protocol.js';
import { golden } from '../../agent/testing/golden.js';
import {
  domainSpecHash,
  kernelCmdline,
  renderDomainXml,
  specHashOf,
  tscEarlyKhz,
  type DomainInput,
} from './render.js';

const testdata = join(dirname(fileURLToPath(import.meta.url)), 'testdata');

const vm = (): HostVmSpec => ({
  id: 5,
  uuid: '0b7e6a3c-1d2e-4f50-8a9b-0c1d2e3f4a5b',
  instanceName: 'i-2-5-VM',
  hostname: 'web-1',
  state: 'Running',
  backend: 'libvirt',
  cpus: 2,
  memoryMiB: 256,
  template: { id: 9, name: 'tiny', url: 'file:///srv/t', format: 'kernel-initrd', checksum: null },
  nics: [
    // listed out of device order: the domain's interfaces follow deviceId
    {
      id: 12,
      mac: '02:00:0A:00:00:0C',
      ipv4s: ['10.2.0.12'],
      ipv6: null,
      networkId: 4,
      deviceId: 1,
      isDefault: false,
    },
    {
      id: 11,
      mac: '02:00:0a:00:00:0b',
      ipv4s: ['10.1.0.11'],
      ipv6: null,
      networkId: 3,
      deviceId: 0,
      isDefault: true,
    },
  ],
});

const bridges = new Map([
  [3, 'brvl100'],
  [4, 'brvx5001'],
]);

const kernelInitrd = (): DomainInput => ({
  vm: vm(),
  domainName: 'i-2-5-VM',
  kvm: false,
  bridges,
  boot: {
    kind: 'kernel-initrd',
    kernel: '/var/lib/stacknet/libvirt/templates/9-url-abc/vmlinuz',
    initrd: '/var/lib/stacknet/libvirt/templates/9-url-abc/initrd.img',
    cmdline: kernelCmdline,
  },
  consoleLog: '/var/lib/stacknet/libvirt/vms/i-2-5-VM/console.log',
});

const qcow2Kvm = (): DomainInput => ({
  ...kernelInitrd(),
  domainName: 'h1-i-2-5-VM',
  kvm: true,
  boot: { kind: 'disk', path: '/var/lib/stacknet/libvirt/vms/i-2-5-VM/disk.qcow2' },
});

describe('libvirt domain render: golden files', () => {
  it('kernel-initrd template, QEMU emulation, two NICs', () => {
    golden(testdata, 'kernel-initrd-tcg.xml', renderDomainXml(kernelInitrd()));
  });
  it('kernel-initrd template booted by qboot instead of SeaBIOS', () => {
    const k = kernelInitrd();
    golden(
      testdata,
      'kernel-initrd-qboot.xml',
      renderDomainXml({
        ...k,
        boot: { ...k.boot, firmware: '/usr/share/qemu/qboot.rom' } as DomainInput['boot'],
      }),
    );
  });
  it("kernel-initrd template on QEMU's microvm machine: virtio-mmio NICs", () => {
    const k = kernelInitrd();
    golden(
      testdata,
      'kernel-initrd-microvm.xml',
      renderDomainXml({ ...k, boot: { ...k.boot, machine: 'microvm' } as DomainInput['boot'] }),
    );
  });
  it('qcow2 template with its overlay, KVM, a domain name prefix', () => {
    golden(testdata, 'qcow2-kvm.xml', renderDomainXml(qcow2Kvm()));
  });
});

describe('libvirt domain render: rules', () => {
  it('carries its spec hash, which changes with what the domain is made of and nothing else', () => {
    const base = kernelInitrd();
    const h = domainSpecHash(base);
    assert.equal(specHashOf(renderDomainXml(base)), h);
    // libvirt rewrites the XML with double quotes: the hash is still found
    assert.equal(specHashOf(renderDomainXml(base).replace(/'/g, '"')), h);
    const nicsReordered = { ...base, vm: { ...base.vm, nics: [...base.vm.nics].reverse() } };
    assert.equal(domainSpecHash(nicsReordered), h);
    // the spec's desired state and addresses are not part of the domain
    assert.equal(domainSpecHash({ ...base, vm: { ...base.vm, state: 'Stopped' } }), h);
    const changes: DomainInput[] = [
      { ...base, vm: { ...base.vm, memoryMiB: 512 } },
      { ...base, vm: { ...base.vm, cpus: 1 } },
      { ...base, kvm: true },
      { ...base, boot: { ...base.boot, firmware: '/usr/share/qemu/qboot.rom' } as DomainInput['boot'] },
      { ...base, boot: { ...base.boot, machine: 'microvm' } as DomainInput['boot'] },
      { ...base, bridges: new Map([...bridges, [3, 'brvl101']]) },
      { ...base, vm: { ...base.vm, nics: base.vm.nics.slice(1) } },
    ];
    for (const c of changes) assert.notEqual(domainSpecHash(c), h);
  });

  it('refuses a NIC whose network has no bridge on the host', () => {
    assert.throws(
      () => renderDomainXml({ ...kernelInitrd(), bridges: new Map([[3, 'brvl100']]) }),
      /NIC 12 is on network 4, which has no bridge/,
    );
  });

  it('escapes what it puts in XML', () => {
    const x = renderDomainXml({
      ...kernelInitrd(),
      vm: { ...vm(), hostname: `a<b>&'c"` },
      consoleLog: "/tmp/it's/console.log",
    });
    assert.match(x, /<title>a&lt;b&gt;&amp;&apos;c&quot;<\/title>/);
    assert.match(x, /<source path='\/tmp\/it&apos;s\/console.log' append='off'\/>/);
  });
});

describe('tscEarlyKhz: the host TSC rate an emulated guest is told', () => {
  const info = (flags: string, mhz = '2096.013') =>
    `processor\t: 0\nmodel name\t: AMD EPYC\ncpu MHz\t\t: ${mhz}\nflags\t\t: fpu ${flags} sse\n`;
  it('is "cpu MHz" in kHz when the host was given a constant TSC rate', () => {
    assert.equal(tscEarlyKhz(info('tsc constant_tsc nonstop_tsc tsc_known_freq')), 2096013);
  });
  it('is null when "cpu MHz" may not be the TSC rate', () => {
    assert.equal(tscEarlyKhz(info('tsc constant_tsc')), null); // measured by the host: left to the guest
    assert.equal(tscEarlyKhz(info('tsc constant_tsc tsc_known_freq aperfmperf')), null); // the current clock
    assert.equal(tscEarlyKhz(info('tsc tsc_known_freq')), null);
    assert.equal(tscEarlyKhz(info('tsc constant_tsc tsc_known_freq', '')), null);
    assert.equal(tscEarlyKhz(''), null);
  });
});
