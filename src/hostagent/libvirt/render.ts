/**
 * A VM's libvirt domain XML, rendered purely from its spec (no I/O: paths come in as parameters). The spec hash
 * in the domain's metadata lets the backend see whether a defined domain is still what the spec says without
 * comparing XML that libvirt rewrites (it adds addresses, controllers and defaults on define).
 */
import { createHash } from 'node:crypto';
import type { HostVmSpec } from '../../hosts/protocol.js';
import { vmPortName } from '../../hosts/protocol.js';

/** The XML namespace of the backend's `<metadata>` element: a domain carrying it is this backend's. */
export const metadataNamespace = 'https://stacknet.dev/xmlns/libvirt-vm/1';

/**
 * Kernel command line for kernel-initrd templates: the serial console is where the guest reports. `quiet` keeps
 * the kernel's boot messages off it: under QEMU emulation every byte written to the emulated UART costs, and the
 * test template's boot took 3.2 s of CPU with it against 3.5–4.3 s without (interleaved runs, docs/benchmarks.md).
 * `no_timer_check` skips the kernel's check that the IO-APIC delivers the timer's interrupt (`check_timer`, a
 * busy wait for ticks): on a loaded host an emulated guest's vCPU can miss it, and the kernel then panics "IO-APIC
 * + timer doesn't work!" (seen here at load average 13–20, a plain QEMU boot of the test template with qboot), so
 * the VM never boots; cloud images' kernels are commonly booted with it for that reason.
 */
export const kernelCmdline = 'console=ttyS0 quiet no_timer_check';

/**
 * The kernel's `tsc_early_khz=` for a guest under QEMU emulation on this host, from the host's /proc/cpuinfo, or
 * null. Under TCG the guest's TSC is the host's own (QEMU's `rdtsc` helper reads the host's ticks), so its rate is
 * the host's TSC rate; told it, the guest kernel skips measuring it against the emulated PIT before its clock
 * starts (`quick_pit_calibrate`: a busy loop of port reads, each one a trip into QEMU's device model). Measured
 * here, plain QEMU, the test template, load 13–20: QEMU's CPU until the guest's clock began 1240 / 1400 / 1500 ms
 * without it against 870 / 960 / 1030 ms with it. Only when the host's "cpu MHz" is its TSC's rate: the host
 * kernel was given the TSC's frequency (`tsc_known_freq`, a hypervisor's or CPUID's), the TSC is constant, and
 * no APERF/MPERF makes "cpu MHz" the current clock instead. Elsewhere (null) the guest measures it, as before.
 */
export function tscEarlyKhz(cpuinfo: string): number | null {
  const flags = new Set((/^flags\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? '').split(/\s+/));
  if (!['tsc', 'constant_tsc', 'tsc_known_freq'].every((f) => flags.has(f)) || flags.has('aperfmperf'))
    return null;
  const mhz = Number(/^cpu MHz\s*:\s*([0-9.]+)$/m.exec(cpuinfo)?.[1]);
  return Number.isFinite(mhz) && mhz > 0 ? Math.round(mhz * 1000) : null;
}

/**
 * What an emulated guest's kernel is told of its TSC when the host's rate is known (`tscEarlyKhz`): the rate, and
 * `tsc=reliable`. The guest's TSC is the host's constant one, so the kernel's clocksource watchdog, which checks
 * the TSC against a slower clock, has nothing to find; on QEMU's microvm machine (no HPET, no ACPI PM timer) that
 * slower clock is the jiffies, which an emulated guest loses ticks of, and the watchdog then marks the TSC
 * unstable: the guest's clock falls back to the jiffies and runs behind the wall (seen here: its uptime at /init
 * 1.5–2 s behind the time its console lines arrived, against 0.1–0.6 s with `tsc=reliable` or on the PC machine).
 */
export function tscCmdline(khz: number): string {
  return `tsc_early_khz=${khz} tsc=reliable`;
}

export type DomainBoot =
  | {
      kind: 'kernel-initrd';
      kernel: string;
      initrd: string;
      cmdline: string;
      /**
       * The firmware ROM QEMU runs instead of its default SeaBIOS (`-bios`), e.g. qboot: see `firmwareFor` in
       * index.ts for when the backend picks it.
       */
      firmware?: string;
      /**
       * QEMU's `microvm` machine instead of the default PC (`machine` in the template's own `template.json`,
       * templates.ts): no PCI bus, no firmware POST, the NICs as virtio-mmio devices that the guest finds through
       * ACPI, so its kernel must drive them (`virtio_mmio`, built in or in its initramfs). See `microvm` below.
       */
      machine?: 'microvm';
    }
  /** A qcow2 template: the VM's own overlay on top of the cached template (the backend creates it). */
  | { kind: 'disk'; path: string };

export interface DomainInput {
  vm: HostVmSpec;
  /** The libvirt domain name: the backend's prefix and the instance name. */
  domainName: string;
  /** Domain type kvm (hardware virtualisation) or qemu (TCG emulation). */
  kvm: boolean;
  /** Guest network id → the host bridge its NICs attach to. */
  bridges: ReadonlyMap<number, string>;
  boot: DomainBoot;
  /** The serial console's log file. */
  consoleLog: string;
}

export function xmlEscape(s: string): string {
  return s.replace(
    /[<>&'"]/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!,
  );
}

/** The hash of everything the domain is rendered from: a defined domain with another hash is redefined. */
export function domainSpecHash(input: DomainInput): string {
  const { vm, bridges } = input;
  const canonical = {
    domainName: input.domainName,
    kvm: input.kvm,
    uuid: vm.uuid,
    cpus: vm.cpus,
    memoryMiB: vm.memoryMiB,
    boot: input.boot,
    consoleLog: input.consoleLog,
    nics: [...vm.nics]
      .sort((a, b) => a.deviceId - b.deviceId)
      .map((n) => ({ id: n.id, mac: n.mac.toLowerCase(), bridge: bridges.get(n.networkId) ?? null })),
  };
  return createHash('sha256').update(JSON.stringify(canonical)).digest('hex').slice(0, 32);
}

export function renderDomainXml(input: DomainInput): string {
  const { vm, boot } = input;
  const e = xmlEscape;
  const nics = [...vm.nics].sort((a, b) => a.deviceId - b.deviceId);
  const lines: string[] = [];
  const add = (indent: number, s: string) => lines.push(' '.repeat(indent) + s);

  add(0, `<domain type='${input.kvm ? 'kvm' : 'qemu'}'>`);
  add(2, `<name>${e(input.domainName)}</name>`);
  add(2, `<uuid>${e(vm.uuid)}</uuid>`);
  add(2, `<title>${e(vm.hostname)}</title>`);
  add(2, '<metadata>');
  add(4, `<stacknet:vm xmlns:stacknet='${metadataNamespace}'>`);
  add(6, `<stacknet:instance>${e(vm.instanceName)}</stacknet:instance>`);
  add(6, `<stacknet:id>${vm.id}</stacknet:id>`);
  add(6, `<stacknet:template>${vm.template.id}</stacknet:template>`);
  add(6, `<stacknet:spec>${domainSpecHash(input)}</stacknet:spec>`);
  add(4, '</stacknet:vm>');
  add(2, '</metadata>');
  add(2, `<memory unit='MiB'>${vm.memoryMiB}</memory>`);
  add(2, `<vcpu placement='static'>${vm.cpus}</vcpu>`);
  const microvm = boot.kind === 'kernel-initrd' && boot.machine === 'microvm';
  add(2, '<os>');
  add(4, microvm ? "<type arch='x86_64' machine='microvm'>hvm</type>" : "<type arch='x86_64'>hvm</type>");
  if (boot.kind === 'kernel-initrd') {
    if (boot.firmware) add(4, `<loader readonly='yes' type='rom'>${e(boot.firmware)}</loader>`);
    add(4, `<kernel>${e(boot.kernel)}</kernel>`);
    add(4, `<initrd>${e(boot.initrd)}</initrd>`);
    add(4, `<cmdline>${e(boot.cmdline)}</cmdline>`);
  } else {
    add(4, "<boot dev='hd'/>");
  }
  add(2, '</os>');
  add(2, '<features>');
  add(4, '<acpi/>');
  add(2, '</features>');
  // KVM guests get the host's CPU model; TCG emulates its default (qemu64), which every host can run.
  if (input.kvm) add(2, "<cpu mode='host-passthrough'/>");
  add(2, "<clock offset='utc'/>");
  add(2, '<on_poweroff>destroy</on_poweroff>');
  add(2, '<on_reboot>restart</on_reboot>');
  add(2, '<on_crash>destroy</on_crash>');
  add(2, '<devices>');
  if (boot.kind === 'disk') {
    add(4, "<disk type='file' device='disk'>");
    add(6, "<driver name='qemu' type='qcow2'/>");
    add(6, `<source file='${e(boot.path)}'/>`);
    add(6, "<target dev='vda' bus='virtio'/>");
    add(4, '</disk>');
  }
  for (const nic of nics) {
    const bridge = input.bridges.get(nic.networkId);
    if (!bridge) {
      throw new Error(
        `${vm.instanceName}: NIC ${nic.id} is on network ${nic.networkId}, which has no bridge here`,
      );
    }
    add(4, "<interface type='bridge'>");
    add(6, `<mac address='${e(nic.mac.toLowerCase())}'/>`);
    add(6, `<source bridge='${e(bridge)}'/>`);
    add(6, `<target dev='${vmPortName(nic.id)}'/>`);
    add(6, "<model type='virtio'/>");
    if (microvm) {
      // microvm has no PCI bus: libvirt (9.0) would look for one to put the NIC on unless told virtio-mmio.
      add(6, "<address type='virtio-mmio'/>");
    } else {
      // No iPXE option ROM: the guest boots its kernel or disk, never from the network; the ROM only costs time.
      add(6, "<rom enabled='no'/>");
    }
    add(4, '</interface>');
  }
  add(4, "<serial type='file'>");
  add(6, `<source path='${e(input.consoleLog)}' append='off'/>`);
  add(6, "<target port='0'/>");
  add(4, '</serial>');
  add(4, "<controller type='usb' model='none'/>");
  add(4, "<memballoon model='none'/>");
  add(2, '</devices>');
  add(0, '</domain>');
  return lines.join('\n') + '\n';
}

/** The spec hash a domain's XML carries (null when it is not this backend's, or older than the hash). */
export function specHashOf(xml: string): string | null {
  return /<stacknet:spec>([0-9a-f]+)<\/stacknet:spec>/.exec(xml)?.[1] ?? null;
}
