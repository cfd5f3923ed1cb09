/**
 * How a host agent runs VMs (issue 19): the host agent converges ports, bridges and rules itself and asks a
 * backend only for the VM. `libvirt` (src/hostagent/libvirt/) defines and starts domains; `netns` runs light VMs
 * (a namespace with a veth and a real DHCP client), as the netns driver does, for fast tests.
 *
 * Each NIC's host-side port is named `vmPortName(nic.id)` (src/hosts/protocol.ts) and is attached to
 * `bridges.get(nic.networkId)` by the backend (libvirt: `<interface type='bridge'>` with `<target dev>`); the
 * agent then hooks the port's anti-spoofing rules. Every method is idempotent and leaves running VMs that are
 * already what the spec says untouched (a restarted agent must not restart guests).
 */
import type { HostTemplateSpec, HostVmSpec } from '../hosts/protocol.js';

export interface BackendVm {
  instanceName: string;
  state: 'Running' | 'Stopped';
}

export interface VmBackend {
  readonly name: 'libvirt' | 'netns';
  /** Prepares the backend (libvirt: its own libvirtd with its socket under the data directory). */
  start(): Promise<void>;
  /** Makes the VM exist in the spec's state: define it if missing, start a Running one, shut off a Stopped one. */
  ensure(vm: HostVmSpec, bridges: ReadonlyMap<number, string>): Promise<void>;
  /** Removes the VM and everything the backend made for it (domain, disk overlay, console log). */
  destroy(instanceName: string): Promise<void>;
  /** The VMs this backend has on the host, whatever their spec: the agent destroys those no spec names. */
  list(): Promise<BackendVm[]>;
  /** The VM's serial console so far (libvirt: the console log file), or null when it has none. */
  console(instanceName: string): Promise<string | null>;
  /**
   * Fetches and verifies a template into the backend's cache ahead of a VM's first use of it (libvirt); a VM
   * ensured meanwhile waits for the same fetch. Backends without a template cache have none.
   */
  prefetch?(template: HostTemplateSpec): Promise<void>;
  /** Stops the backend's own daemons when the agent is cleaned up (`stacknet host-agent cleanup`). */
  close(): Promise<void>;
}
