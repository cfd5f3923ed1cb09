/**
 * How routers and VMs come to exist. The management server's services and the router reconciler talk only to
 * this interface; `simulator` (no root, in-process agents rendering into the data directory), `netns`
 * (Linux namespaces, a real agent and real DHCP clients) and `hosts` (registered hosts running `stacknet
 * host-agent`) implement it. Every method is idempotent: the
 * reconciler calls them again after a crash, a lost lease or a retry.
 */
import type { AgentStatus, PushOptions, PushResult } from '../agent/control-client.js';
import type { DesiredState, DesiredStateDelta } from '../agent/desired-state.js';
import type { InspectQuery, Inspection } from '../agent/inspect.js';

/** The control API of one router agent (HTTP in `netns`, a direct call in `simulator`). */
export interface RouterTransport {
  pushFull(state: DesiredState, o?: PushOptions): Promise<PushResult>;
  pushDelta(delta: DesiredStateDelta, o?: PushOptions): Promise<PushResult>;
  getStatus(): Promise<AgentStatus>;
}

export interface GuestNetworkRuntime {
  id: number;
  /** VLAN id or VXLAN VNI the network was implemented with; names the bridge. */
  vnet: number | null;
  isolation: 'VLAN' | 'VXLAN';
  cidr: string;
  gateway: string;
}

/** One public interface of a router (routers/public-nics.ts names them; the agent addresses them). */
export interface PublicNicRuntime {
  /** `eth2`, `eth3`, ... */
  interface: string;
  /** `untagged` or the VLAN id: names the public bridge. */
  vlan: string;
  /** The public range's gateway (held by the zone's upstream) and prefix length. */
  gateway: string;
  prefix: number;
}

export interface RouterRuntime {
  id: number;
  uuid: string;
  name: string;
  zoneId: number;
  network: GuestNetworkRuntime;
  guestIp: string;
  guestMac: string | null;
  /** With a redundant pair the gateway (VIP) moves between the two; each has its own guestIp. */
  redundant: boolean;
  /**
   * The VPC of a tier's router, or null: a tier router gets the VPC transit interface `vpc0` on the VPC's bridge
   * (desired-state.ts VpcSpec), where its agent puts the routes between the tiers.
   */
  vpcId: number | null;
  controlIp: string;
  controlPort: number;
  secret: string;
  /** The public VLANs it sits on, eth2 first; empty for a router without public IPs. */
  publicNics: PublicNicRuntime[];
  /** An internal LB appliance (its agent runs `--appliance internal-lb`): guest and control interfaces only. */
  appliance?: 'internalLb';
}

export interface VmNicRuntime {
  id: number;
  mac: string;
  /** Addresses the port may send from: primary and secondary IPv4s (anti-spoofing, reference §4.10). */
  ipv4s: string[];
  ipv6: string | null;
  isDefault: boolean;
  deviceId: number;
  network: GuestNetworkRuntime;
}

export interface VmRuntime {
  id: number;
  uuid: string;
  accountId: number;
  /** `i-<account id>-<vm id>-VM`. */
  instanceName: string;
  hostname: string;
  nics: VmNicRuntime[];
}

/** A VM port's anti-spoofing rules as the data plane has them (src/doctor's port step). */
export interface PortInspection {
  /** Where they are looked for (`bridge stacknet p_n<nic id>`). */
  chain: string;
  /** The chain exists and the port's `ports` map element jumps to it. */
  hooked: boolean;
  /** What should be there and is not (e.g. `ether saddr != <mac> drop`). */
  missing: string[];
}

export interface Driver {
  readonly name: 'simulator' | 'netns' | 'hosts';
  /** Control addresses come from here (the control network the server reaches routers on). */
  readonly controlCidr: string;
  /** Makes sure the router's instance runs (create/start as needed) and returns how to talk to it. */
  ensureRouter(r: RouterRuntime): Promise<RouterTransport>;
  stopRouter(r: RouterRuntime): Promise<void>;
  /** Stop, forget everything the instance had, start again: it is rebuilt from the database. */
  rebootRouter(r: RouterRuntime): Promise<void>;
  destroyRouter(r: RouterRuntime): Promise<void>;
  /** Starts the VM (netns: namespace, veth on the bridge, anti-spoofing rules, a DHCP client). */
  startVm(vm: VmRuntime): Promise<void>;
  /**
   * startVm with the guest held back until `ready` resolves (its routers know it: the guest asks for its address
   * at once, and a router that does not know it yet stays silent until the client's retry). What needs no router
   * (netns: the namespace, veths and port rules) is made meanwhile. `ready` rejecting: the guest is not started
   * and this rejects with its error. A driver without it gets startVm once `ready` has resolved.
   */
  startVmAfter?(vm: VmRuntime, ready: Promise<unknown>): Promise<void>;
  stopVm(vm: VmRuntime): Promise<void>;
  /** Removes what the VM had on the host (namespace, ports, rules). */
  destroyVm(vm: VmRuntime): Promise<void>;
  /** Addresses or NICs changed on a VM: refresh its ports and anti-spoofing rules. */
  updateVm(vm: VmRuntime): Promise<void>;
  /**
   * What the router really serves (its agent's `GET /v1/inspect`, src/agent/inspect.ts). Read-only: never starts
   * the router. Throws when the agent does not answer.
   */
  inspectRouter?(r: RouterRuntime, q: InspectQuery): Promise<Inspection>;
  /** The anti-spoofing rules in force on a VM's port; absent on a driver that enforces none (simulator). */
  inspectPort?(nic: VmNicRuntime): Promise<PortInspection>;
  /** Leaves routers and VMs as they are (stopping the server does not stop the data plane). */
  close(): Promise<void>;
}
