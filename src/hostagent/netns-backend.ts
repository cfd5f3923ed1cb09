/**
 * The `netns` VM backend: a light VM is a namespace `<prefix><instance name>` with a veth per NIC (inside
 * `eth<device id>` with the NIC's MAC, outside `vmPortName(nic.id)` on the network's bridge) and a real busybox
 * udhcpc on the default NIC, detached so it outlives the agent. What it made for each VM is in
 * `<dataDir>/vms/<instance name>/` (the spec it was made from, udhcpc.pid, udhcpc.log): `list()` reads it back.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HostVmSpec } from '../hosts/protocol.js';
import { vmPortName } from '../hosts/protocol.js';
import {
  createNamespace,
  deleteNamespace,
  deleteLink,
  exec,
  killNamespacePids,
  killPid,
  leaseStatePath,
  listLinks,
  listNamespaces,
  pidAlive,
  removeState,
  run,
  startDetachedUdhcpc,
} from '../netns/index.js';
import { linkTable } from './host-links.js';
import type { BackendVm, VmBackend } from './vm-backend.js';

export interface VmBackendOptions {
  /** The agent's data directory (the backend keeps its own state under it). */
  dataDir: string;
  /** Prefix of every namespace (tests: `sn-<random>-<host>-`; production: empty). */
  prefix: string;
  log: (m: string) => void;
  /** /dev/kvm usable (the libvirt backend's domain type). */
  kvm: boolean;
}

export class NetnsVmBackend implements VmBackend {
  readonly name = 'netns' as const;
  private readonly root: string;

  constructor(private readonly o: VmBackendOptions) {
    this.root = join(o.dataDir, 'vms');
  }

  async start(): Promise<void> {
    mkdirSync(this.root, { recursive: true });
  }

  private ns(instanceName: string): string {
    return `${this.o.prefix}${instanceName}`;
  }

  private dir(instanceName: string): string {
    return join(this.root, instanceName);
  }

  private spec(instanceName: string): HostVmSpec | null {
    try {
      return JSON.parse(readFileSync(join(this.dir(instanceName), 'spec.json'), 'utf8')) as HostVmSpec;
    } catch {
      return null;
    }
  }

  private async dhcpPid(instanceName: string): Promise<number | null> {
    try {
      const pid = Number(readFileSync(join(this.dir(instanceName), 'udhcpc.pid'), 'utf8'));
      return pid > 1 && (await pidAlive(pid)) ? pid : null;
    } catch {
      return null;
    }
  }

  async ensure(vm: HostVmSpec, bridges: ReadonlyMap<number, string>): Promise<void> {
    const ns = this.ns(vm.instanceName);
    const dir = this.dir(vm.instanceName);
    mkdirSync(dir, { recursive: true });
    // Written first: a VM half made is still listed, so it is destroyed if its spec goes away.
    writeFileSync(join(dir, 'spec.json'), JSON.stringify(vm));
    // No process per check when nothing is to do: the namespace is a file, and a veth's inner end exists while
    // its outer end (in the agent's table) does.
    if (!existsSync(`/run/netns/${ns}`)) await createNamespace(ns);
    const outer = await linkTable();
    for (const nic of vm.nics) {
      const bridge = bridges.get(nic.networkId);
      if (!bridge) throw new Error(`NIC ${nic.id}: network ${nic.networkId} has no bridge on this host`);
      const port = vmPortName(nic.id);
      const ifname = `eth${nic.deviceId}`;
      if (outer.get(port)?.kind !== 'veth' || !(await listLinks(ns)).includes(ifname)) {
        await deleteLink(port);
        await run([
          'ip',
          'link',
          'add',
          port,
          'type',
          'veth',
          'peer',
          'name',
          ifname,
          'address',
          nic.mac,
          'netns',
          ns,
        ]);
        await run(['ip', '-n', ns, 'link', 'set', ifname, 'up']);
        outer.delete(port);
      }
      // Always checked: the bridge may have been made again (drift healed) since the port was put on it.
      const have = outer.get(port);
      if (have?.master !== bridge || !have.flags.includes('UP'))
        await run(['ip', 'link', 'set', port, 'master', bridge, 'up']);
    }
    const running = await this.dhcpPid(vm.instanceName);
    if (vm.state === 'Stopped') {
      if (running) await killPid(running, 2000);
      for (const nic of vm.nics)
        await exec(['ip', '-n', ns, '-4', 'addr', 'flush', 'dev', `eth${nic.deviceId}`]);
      return;
    }
    if (running) return;
    const def = vm.nics.find((n) => n.isDefault) ?? vm.nics[0];
    if (!def) return;
    const pid = await startDetachedUdhcpc(ns, `eth${def.deviceId}`, {
      hostname: vm.hostname,
      logFile: join(dir, 'udhcpc.log'),
    });
    writeFileSync(join(dir, 'udhcpc.pid'), String(pid));
    this.o.log(`vm ${vm.instanceName}: started udhcpc (pid ${pid}) in ${ns}`);
  }

  async destroy(instanceName: string): Promise<void> {
    const pid = await this.dhcpPid(instanceName);
    if (pid) await killPid(pid, 2000);
    const ns = this.ns(instanceName);
    const spec = this.spec(instanceName);
    for (const nic of spec?.nics ?? []) await deleteLink(vmPortName(nic.id)).catch(() => undefined);
    if ((await listNamespaces()).includes(ns)) {
      await killNamespacePids(ns).catch(() => undefined);
      await deleteNamespace(ns);
    }
    await removeState(ns);
    rmSync(this.dir(instanceName), { recursive: true, force: true });
    this.o.log(`vm ${instanceName}: destroyed`);
  }

  async list(): Promise<BackendVm[]> {
    if (!existsSync(this.root)) return [];
    const out: BackendVm[] = [];
    for (const name of readdirSync(this.root)) {
      if (!this.spec(name)) continue;
      out.push({ instanceName: name, state: (await this.dhcpPid(name)) ? 'Running' : 'Stopped' });
    }
    return out;
  }

  /** A light VM has no serial console: its DHCP client's output and the lease its hook recorded stand for it. */
  async console(instanceName: string): Promise<string | null> {
    const spec = this.spec(instanceName);
    if (!spec) return null;
    const read = (f: string) => {
      try {
        return readFileSync(f, 'utf8');
      } catch {
        return '';
      }
    };
    const def = spec.nics.find((n) => n.isDefault) ?? spec.nics[0];
    const lease = def ? read(leaseStatePath(this.ns(instanceName), `eth${def.deviceId}`)) : '';
    return `${read(join(this.dir(instanceName), 'udhcpc.log'))}${lease ? `--- lease\n${lease}` : ''}`;
  }

  async close(): Promise<void> {}
}

export function createNetnsBackend(o: VmBackendOptions): VmBackend {
  return new NetnsVmBackend(o);
}
