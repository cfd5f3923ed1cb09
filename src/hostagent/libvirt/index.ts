/**
 * The libvirt VM backend of `stacknet host-agent` (issue 19; contract: ../vm-backend.ts). See README.md.
 *
 * Layout of the data directory (the backend's own; the host agent gives it e.g. `<agent data>/libvirt`):
 *   etc/ run/ lib/ log/ sock/ libvirtd.pid   its libvirtd (libvirtd.ts), unless `uri` names another libvirt
 *   templates/<id>-<checksum>/               the template cache (templates.ts)
 *   vms/<instance name>/                     domain.xml as last defined, console.log, disk.qcow2 (qcow2 overlay)
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { HostTemplateSpec, HostVmSpec } from '../../hosts/protocol.js';
import { run } from '../../netns/exec.js';
import type { BackendVm, VmBackend } from '../vm-backend.js';
import {
  cpuFetchFlagged,
  libvirtdPaths,
  libvirtdUri,
  lightenCpuCheck,
  startLibvirtd,
  stopLibvirtd,
  type LibvirtdPaths,
} from './libvirtd.js';
import {
  domainSpecHash,
  kernelCmdline,
  metadataNamespace,
  renderDomainXml,
  specHashOf,
  tscCmdline,
  tscEarlyKhz,
  type DomainBoot,
  type DomainInput,
} from './render.js';
import { hasPvhEntry } from './kernel-image.js';
import { TemplateCache, type CachedTemplate } from './templates.js';
import { Virsh, VirshError, isRunningState } from './virsh.js';

export interface LibvirtBackendOptions {
  /** The backend's own directory (created if missing): its libvirtd, template cache, VM files. */
  dataDir: string;
  /** Prepended to every instance name to make the domain name (`''` for none); only such domains are listed. */
  prefix: string;
  log?: (m: string) => void;
  /** Domains of type kvm (the host's /dev/kvm works), else qemu (TCG emulation). */
  kvm: boolean;
  /**
   * An existing libvirt to use instead of starting one, e.g. `qemu:///system` on a KVM host whose libvirtd is run
   * by systemd. The backend then never starts or stops a daemon; see README.md for what that libvirt needs.
   */
  uri?: string;
  /**
   * The firmware for kernel-initrd templates whose kernel QEMU enters at its PVH entry (an ELF with the Xen
   * PHYS32 note), instead of SeaBIOS; default `/usr/share/qemu/qboot.rom` when that file exists (Debian's
   * qemu-system-x86 ships it), `null` for SeaBIOS always. See `firmwareFor`.
   */
  pvhFirmware?: string | null;
  /**
   * The network namespace (a name under /run/netns) to run the backend's libvirtd in, and so every qemu and tap
   * it makes; default: the agent's own. For tests that stand a namespace for a host without putting the agent in it.
   */
  netns?: string;
}

/** How long after a listing its states may stand in for `virsh domstate` (a pass lists just before its VMs). */
const LISTED_FRESH_MS = 5_000;

export function createLibvirtBackend(opts: LibvirtBackendOptions): VmBackend {
  return new LibvirtBackend(opts);
}

export class LibvirtBackend implements VmBackend {
  readonly name = 'libvirt' as const;
  readonly virsh: Virsh;
  private readonly daemon: LibvirtdPaths | null;
  private readonly templates: TemplateCache;
  private readonly vmsDir: string;
  private readonly log: (m: string) => void;
  /** Domain names known to carry this backend's metadata. */
  private readonly ours = new Set<string>();
  private readonly queues = new Map<string, Promise<unknown>>();
  /**
   * Per domain, the spec hash its inactive definition carries as this backend last defined or read it: a pass
   * finding the same hash wanted skips `virsh dumpxml` (one virsh process and a libvirtd call per VM per pass,
   * which on a host booting guests under emulation is CPU the guests wait for). Forgotten when the domain is
   * removed or a define fails; a restarted agent reads each domain once.
   */
  private readonly definedHash = new Map<string, string>();
  /**
   * Every domain's state as the last `list()` read it (`virsh list --all`), when it was read, and the domains this
   * backend changed or asked about since: a pass lists once, then each `ensure` of a domain listed takes its
   * state from here instead of a `virsh domstate` of its own (a process and a libvirtd call per VM per pass). An
   * entry serves once, only while fresh (`LISTED_FRESH_MS`), and not after this backend changed the domain.
   */
  private listed: { at: number; states: Map<string, string>; used: Set<string> } | null = null;
  /** Domains with an ensure or destroy under way (count), and the listings being read (each collects them). */
  private readonly busy = new Map<string, number>();
  private readonly listing = new Set<Set<string>>();
  /** Per cached kernel file: whether it is a PVH ELF (read once). */
  private readonly pvh = new Map<string, Promise<boolean>>();
  private readonly pvhFirmware: string | null;
  /** Kernel-initrd guests' command line: under emulation with the host's TSC rate (render.ts `tscEarlyKhz`). */
  private readonly cmdline: string;

  constructor(readonly opts: LibvirtBackendOptions) {
    this.log = opts.log ?? (() => {});
    this.daemon = opts.uri ? null : libvirtdPaths(opts.dataDir);
    this.virsh = new Virsh(opts.uri ?? libvirtdUri(this.daemon!.socket));
    this.templates = new TemplateCache(join(opts.dataDir, 'templates'), this.log);
    this.vmsDir = join(opts.dataDir, 'vms');
    const qboot = '/usr/share/qemu/qboot.rom';
    this.pvhFirmware = opts.pvhFirmware !== undefined ? opts.pvhFirmware : existsSync(qboot) ? qboot : null;
    let khz: number | null = null;
    if (!opts.kvm)
      try {
        khz = tscEarlyKhz(readFileSync('/proc/cpuinfo', 'utf8'));
      } catch {
        // not Linux on x86: the guest measures its TSC itself
      }
    this.cmdline = khz === null ? kernelCmdline : `${kernelCmdline} ${tscCmdline(khz)}`;
  }

  /**
   * The firmware a kernel-initrd template boots with: qboot (`pvhFirmware`) when its kernel is a PVH ELF, else
   * QEMU's default SeaBIOS. qboot only jumps to the kernel QEMU loaded (its PVH option ROM): no POST, no boot menu,
   * no PCI option ROM scan. Measured on the test template under TCG (docs/benchmarks.md, "Six VMs at once on three
   * hosts"): QEMU's CPU until the guest's clock starts 0.62–0.92 s against 0.72–1.18 s with SeaBIOS, the guest's
   * own boot unchanged. A bzImage is left to SeaBIOS: booted by qboot, the test kernel's bzImage panicked (IO-APIC
   * timer check).
   */
  private async firmwareFor(t: CachedTemplate): Promise<string | undefined> {
    if (t.format !== 'kernel-initrd' || !this.pvhFirmware) return undefined;
    let p = this.pvh.get(t.kernel);
    if (!p) {
      p = readFile(t.kernel).then(hasPvhEntry, () => false);
      this.pvh.set(t.kernel, p);
    }
    return (await p) ? this.pvhFirmware : undefined;
  }

  domainName(instanceName: string): string {
    return `${this.opts.prefix}${instanceName}`;
  }

  private vmDir(instanceName: string): string {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(instanceName))
      throw new Error(`bad instance name ${instanceName}`);
    return join(this.vmsDir, instanceName);
  }

  /** Runs `f` after every earlier call for the same VM (ensure and destroy of one VM never interleave). */
  private serial<T>(instanceName: string, f: () => Promise<T>): Promise<T> {
    const prev = this.queues.get(instanceName) ?? Promise.resolve();
    const name = this.domainName(instanceName);
    // The listing no longer tells the state of a domain worked on while or since it was read.
    const work = async () => {
      this.busy.set(name, (this.busy.get(name) ?? 0) + 1);
      try {
        return await f();
      } finally {
        if (this.busy.get(name) === 1) this.busy.delete(name);
        else this.busy.set(name, this.busy.get(name)! - 1);
        this.listed?.used.add(name);
        for (const w of this.listing) w.add(name);
      }
    };
    const next = prev.then(work, work);
    const settled = next.catch(() => {});
    this.queues.set(instanceName, settled);
    void settled.then(() => {
      if (this.queues.get(instanceName) === settled) this.queues.delete(instanceName);
    });
    return next;
  }

  async start(): Promise<void> {
    await mkdir(this.vmsDir, { recursive: true });
    if (this.daemon) {
      // Under TCG its own capabilities cache, so that each start reads the guest's CPU in 2 QMP calls, not 397
      // (libvirtd.ts `lightenCpuCheck`); a KVM QEMU answers them fast enough.
      const light = !this.opts.kvm;
      const opts = { log: this.log, netns: this.opts.netns, lightCpuCheck: light };
      await startLibvirtd(this.daemon, opts);
      // libvirtd probes QEMU's capabilities (~8 s here) on the first domain it starts: do it now, so the host's
      // first VM does not pay for it (the result is cached under the data dir for the next start).
      const t0 = Date.now();
      const r = await this.virsh.exec(
        ['domcapabilities', '--virttype', this.opts.kvm ? 'kvm' : 'qemu'],
        60_000,
      );
      this.log(
        `libvirt: QEMU capabilities ${r.code === 0 ? 'ready' : 'not probed'} in ${Date.now() - t0} ms`,
      );
      // A daemon that probed QEMU itself (no cache to seed from), or one an older agent left running, read the
      // flag: once more without it (its domains keep running across the restart).
      const lightened = light ? await lightenCpuCheck(this.daemon) : [];
      if (lightened.length) {
        await stopLibvirtd(this.daemon);
        await startLibvirtd(this.daemon, opts);
        this.log(
          `libvirt: libvirtd restarted to read its capabilities cache without cpu-unavailable-features (${lightened.join(', ')})`,
        );
        // It keeps those files unless it finds them outdated (libvirtd.ts `startCpus`): then it probed QEMU again,
        // wrote the flag back, and the agent's next start restarts it once more. Said here, where it happened.
        const again = await cpuFetchFlagged(this.daemon);
        if (again.length) {
          this.log(
            `libvirt: the restarted libvirtd found its capabilities cache outdated and probed QEMU again (${again.join(', ')})`,
          );
        }
      }
    } else {
      await this.virsh.run(['version'], 30_000);
      this.log(`libvirt: using ${this.virsh.uri}`);
    }
  }

  /** True when domain `name` carries this backend's metadata (so it may be changed or removed). */
  private async isOurs(name: string): Promise<boolean> {
    if (this.ours.has(name)) return true;
    const r = await this.virsh.exec(['dumpxml', '--inactive', name]);
    if (r.code !== 0) return false;
    if (!r.stdout.includes(metadataNamespace)) return false;
    this.ours.add(name);
    return true;
  }

  async ensure(vm: HostVmSpec, bridges: ReadonlyMap<number, string>): Promise<void> {
    await this.serial(vm.instanceName, () => this.converge(vm, bridges));
  }

  private async converge(vm: HostVmSpec, bridges: ReadonlyMap<number, string>): Promise<void> {
    const name = this.domainName(vm.instanceName);
    const dir = this.vmDir(vm.instanceName);
    await mkdir(dir, { recursive: true });
    const template = await this.templates.get(vm.template);
    let boot: DomainBoot;
    if (template.format === 'kernel-initrd') {
      // microvm brings its own firmware; the PC's is chosen by the kernel's kind (firmwareFor).
      const firmware = template.machine ? undefined : await this.firmwareFor(template);
      boot = {
        kind: 'kernel-initrd',
        kernel: template.kernel,
        initrd: template.initrd,
        cmdline: template.cmdline ? `${this.cmdline} ${template.cmdline}` : this.cmdline,
        ...(firmware ? { firmware } : {}),
        ...(template.machine ? { machine: template.machine } : {}),
      };
    } else {
      const overlay = join(dir, 'disk.qcow2');
      if (!existsSync(overlay)) {
        // The VM's writes go to its own overlay; the cached template stays read-only and shared.
        await run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', template.disk, overlay], {
          timeoutMs: 60_000,
        });
      }
      boot = { kind: 'disk', path: overlay };
    }
    const input: DomainInput = {
      vm,
      domainName: name,
      kvm: this.opts.kvm,
      bridges,
      boot,
      consoleLog: join(dir, 'console.log'),
    };
    const xml = renderDomainXml(input);
    const file = join(dir, 'domain.xml');
    const hash = domainSpecHash(input);
    const listed = this.fromListing(name);
    if (vm.state === 'Running' && !this.ours.has(name) && listed === undefined) {
      // A domain this backend has not seen nor listed: a new VM, nearly always. Started and defined by one virsh
      // without asking its state first (a `virsh domstate` less on a deploy's way: a process and a libvirt
      // connection, tens to hundreds of ms on a loaded host). `create` starts the domain from the XML and fails
      // when a domain of its name with another UUID, or of its UUID with another name, is there (someone else's),
      // or it runs already; `define` then makes it persistent, and fails in the first two cases too. A failure
      // (virsh exits with the last command's status) takes the path below, which asks the state and refuses a
      // domain stacknet did not make; ours already running is only redefined, as below.
      await writeFile(file, xml);
      const t0 = Date.now();
      this.definedHash.delete(name);
      const r = await this.virsh.execAll([
        ['create', file],
        ['define', file],
      ]);
      if (r.code === 0) {
        this.definedHash.set(name, hash);
        this.ours.add(name);
        // The bench reads "started in N ms" as `virsh start`'s span; here it includes the define (tens of ms).
        this.log(`libvirt: ${name} defined (new) and started in ${Date.now() - t0} ms`);
        return;
      }
    }
    let state = listed ?? (await this.virsh.domstate(name));
    if (state !== null && !(await this.isOurs(name))) {
      throw new Error(
        `domain ${name} exists in ${this.virsh.uri} and was not made by stacknet: not touching it`,
      );
    }
    const define = async (why: string) => {
      await writeFile(file, xml);
      const t0 = Date.now();
      this.definedHash.delete(name);
      await this.virsh.run(['define', file]);
      this.definedHash.set(name, hash);
      this.ours.add(name);
      this.log(`libvirt: ${name} defined (${why}) in ${Date.now() - t0} ms`);
    };
    if (state === null && vm.state === 'Running') {
      // A new VM to run: defined and started by one virsh (`runAll`), the commonest path of a deploy.
      await writeFile(file, xml);
      const t0 = Date.now();
      this.definedHash.delete(name);
      await this.virsh.runAll([
        ['define', file],
        ['start', name],
      ]);
      this.definedHash.set(name, hash);
      this.ours.add(name);
      // The bench reads "started in N ms" as `virsh start`'s span; here it includes the define (tens of ms).
      this.log(`libvirt: ${name} defined (new) and started in ${Date.now() - t0} ms`);
      return;
    }
    if (state === null) {
      await define('new');
      state = 'shut off';
    } else {
      let defined = this.definedHash.get(name);
      if (defined !== hash) {
        defined = specHashOf(await this.virsh.run(['dumpxml', '--inactive', name])) ?? undefined;
        if (defined) this.definedHash.set(name, defined);
      }
      if (defined !== hash) {
        // A running guest is never restarted for a change: the new definition applies at its next start, as
        // CloudStack applies offering changes at the next start.
        await define(isRunningState(state) ? 'changed; applies at its next start' : 'changed');
      }
    }
    const running = isRunningState(state);
    if (vm.state === 'Running' && !running) {
      const t0 = Date.now();
      await this.virsh.run(['start', name]);
      this.log(`libvirt: ${name} started in ${Date.now() - t0} ms`);
    } else if (vm.state === 'Stopped' && running) {
      await this.destroyDomain(name);
      this.log(`libvirt: ${name} shut off`);
    }
  }

  /**
   * The domain's state word from the last listing while it serves (once), else undefined: then `virsh domstate`
   * asks. A domain the listing lacks is asked anyway (or defined by UUID, above): one defined since by someone else
   * must be seen (and refused) before a `virsh define` would replace it.
   */
  private fromListing(name: string): string | undefined {
    const l = this.listed;
    const state = l?.states.get(name);
    if (l && state !== undefined && !l.used.has(name) && Date.now() - l.at <= LISTED_FRESH_MS) {
      l.used.add(name);
      return state;
    }
    return undefined;
  }

  /** Powers the domain off (libvirt's destroy: the guest is stopped at once, as CloudStack's forced stop). */
  private async destroyDomain(name: string): Promise<void> {
    const r = await this.virsh.exec(['destroy', name]);
    if (r.code !== 0 && !/not running|Domain not found|failed to get domain/i.test(r.stderr)) {
      throw new VirshError(r, this.virsh.uri);
    }
  }

  async destroy(instanceName: string): Promise<void> {
    await this.serial(instanceName, async () => {
      const name = this.domainName(instanceName);
      if ((await this.virsh.domstate(name)) !== null) {
        if (!(await this.isOurs(name))) {
          throw new Error(`domain ${name} in ${this.virsh.uri} was not made by stacknet: not removing it`);
        }
        await this.destroyDomain(name);
        const r = await this.virsh.exec(['undefine', name]);
        if (r.code !== 0 && !new VirshError(r, this.virsh.uri).noDomain)
          throw new VirshError(r, this.virsh.uri);
        this.log(`libvirt: ${name} removed`);
      }
      this.ours.delete(name);
      this.definedHash.delete(name);
      await rm(this.vmDir(instanceName), { recursive: true, force: true });
    });
  }

  async list(): Promise<BackendVm[]> {
    const out: BackendVm[] = [];
    const at = Date.now();
    // Domains changed while the listing ran may or may not show it: those are asked again.
    const used = new Set(this.busy.keys());
    this.listing.add(used);
    let doms: { name: string; state: string }[];
    try {
      doms = await this.virsh.list();
    } finally {
      this.listing.delete(used);
    }
    for (const b of this.busy.keys()) used.add(b);
    this.listed = { at, states: new Map(doms.map((d) => [d.name, d.state])), used };
    for (const d of doms) {
      if (!d.name.startsWith(this.opts.prefix)) continue;
      if (!(await this.isOurs(d.name))) continue;
      out.push({
        instanceName: d.name.slice(this.opts.prefix.length),
        state: isRunningState(d.state) ? 'Running' : 'Stopped',
      });
    }
    return out;
  }

  async prefetch(template: HostTemplateSpec): Promise<void> {
    // Its firmware too: a VM's first start does not read the 52 MB kernel to tell.
    await this.firmwareFor(await this.templates.get(template));
  }

  async console(instanceName: string): Promise<string | null> {
    try {
      return await readFile(join(this.vmDir(instanceName), 'console.log'), 'utf8');
    } catch {
      return null;
    }
  }

  /** The qemu process of a running VM (for measurements and the doctor), or null. */
  async qemuPid(instanceName: string): Promise<number | null> {
    const name = this.domainName(instanceName);
    const file = this.daemon
      ? join(this.daemon.run, 'qemu', `${name}.pid`)
      : join('/run/libvirt/qemu', `${name}.pid`);
    try {
      const pid = Number((await readFile(file, 'utf8')).trim());
      return pid > 1 ? pid : null;
    } catch {
      return null;
    }
  }

  async close(): Promise<void> {
    if (this.daemon) await stopLibvirtd(this.daemon);
  }
}
