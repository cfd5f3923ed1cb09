/**
 * The `hosts` driver's contract (issue 19): what the management server and `stacknet host-agent` say to each
 * other, and what a host agent converges its host to. Types only, so both sides import it.
 *
 * The channel (JSON over HTTP; every call after registration carries `Authorization: Bearer <host secret>`):
 *
 * Host agent → management server, on the server's API port:
 * - `POST /v1/hosts/register` with {@link HostRegistration} (its `token` is a registration token the operator got
 *   from the server: `stacknet host token`, or the `host.registration.token` setting): answers
 *   {@link HostRegistered}. The host's own secret is generated then, stored sealed like router secrets, and
 *   replaces the token for everything after. Registering again with the same `name` and the token (a reinstalled
 *   host) keeps the host's id and gives it a new secret.
 * - `POST /v1/hosts/<uuid>/heartbeat` with {@link HostHeartbeat}: answers {@link HostHeartbeatAnswer}. Every
 *   `ping.interval` seconds (CloudStack's setting, default 60; tests set it low). A host silent for
 *   `ping.timeout` × `ping.interval` is Disconnected (CloudStack's timing), one `ping.interval` more Down.
 * - `GET /v1/hosts/<uuid>/desired?after=<generation>&waitMs=<ms>`: the host's {@link HostDesiredState}; with
 *   `after`, long-polls until the generation is greater (or `waitMs` passes: 304). Level-based: the agent
 *   always converges to the whole answer, never to a difference.
 *
 * Management server → host agent, on the address and port the host registered:
 * - `ANY /v1/routers/<router name>/<agent path>`: relayed as is to that router's `stacknet router-agent` control
 *   API on the host's local control bridge (CloudStack's link-local relay through the KVM agent). The router's
 *   own secret still authorises the relayed request; the host secret authorises the relay, in
 *   `X-Host-Authorization: Bearer <host secret>` (`Authorization` carries the router's secret, passed on as is).
 *   A request whose `Authorization` holds that router's own secret is relayed without it, so the server's router
 *   transport is `control-client.ts` with `http://<host address>:<port>/v1/routers/<name>` as its address.
 * - `GET /v1/status`: the host's {@link HostStatus}, the same the heartbeat carries.
 * - `GET /v1/vms/<instance name>/console`: the VM's serial console so far (text), for tests and the doctor.
 */

/** The header the host secret authorises a relayed request in (the server sends it on every call to a host). */
export const HOST_RELAY_AUTH_HEADER = 'x-host-authorization';

/** What a host says about itself when it registers. */
export interface HostRegistration {
  token: string;
  /** The host's name (CloudStack's host name; unique). */
  name: string;
  /** The zone it joins (uuid); the first zone when absent. Pod and cluster: the zone's first, created on demand. */
  zoneId?: string;
  podId?: string;
  clusterId?: string;
  /** The underlay address the agent listens on and VXLAN tunnels end at. */
  address: string;
  port: number;
  capabilities: HostCapabilities;
}

export interface HostCapabilities {
  cpus: number;
  /** CPU speed in MHz as CloudStack reports it (from /proc/cpuinfo; 1000 when unknown). */
  cpuSpeedMhz: number;
  memoryMiB: number;
  /** /dev/kvm usable: domains of type kvm; otherwise qemu (TCG), or always qemu with the setting. */
  kvm: boolean;
  /** The host's interfaces per traffic type (CloudStack's traffic labels): `guest` carries VLANs and VXLAN. */
  trafficLabels: { guest: string; public?: string; management?: string };
  /** The VM backends the host runs: `libvirt` (domains), `netns` (light VMs: a namespace with a DHCP client). */
  vmBackends: ('libvirt' | 'netns')[];
  /** `stacknet --version` of the agent. */
  version: string;
}

export interface HostRegistered {
  id: number;
  uuid: string;
  secret: string;
  /** `ping.interval` in seconds: how often the agent heartbeats (the agent's `--ping-interval` when absent). */
  pingInterval?: number;
}

export interface HostHeartbeat {
  status: HostStatus;
}

export interface HostHeartbeatAnswer {
  /** The server's current generation for this host: the agent fetches the desired state when it is ahead. */
  desiredGeneration: number;
  /** `ping.interval` in seconds, when the server says it (a changed setting reaches running agents). */
  pingInterval?: number;
}

export interface HostStatus {
  /** The generation the host last converged to completely (null before the first). */
  appliedGeneration: number | null;
  vms: { instanceName: string; state: 'Running' | 'Stopped' | 'Missing' | 'Error'; message?: string }[];
  routers: { name: string; running: boolean; message?: string }[];
  /** Things the agent could not converge (a bridge, a port's rules, a domain): quarantined, never blocking. */
  errors: { what: string; message: string }[];
}

/** Everything one host must have, computed by the server from the database. */
export interface HostDesiredState {
  generation: number;
  host: { id: number; uuid: string; name: string };
  /** The control network (the server's control.cidr) routers' controlIp are in (the agent's `--control-cidr` when absent). */
  controlCidr?: string;
  /** The guest networks carried by this host: those of its VMs and its routers. */
  networks: HostNetworkSpec[];
  routers: HostRouterSpec[];
  vms: HostVmSpec[];
  /**
   * The templates the host's VMs may be deployed from (every registered template with a URL: they are ready in
   * every zone): the agent fetches and verifies each into its cache ahead of a VM's first use of it, so that VM
   * does not wait for the copy and the checksum. Absent from older servers.
   */
  templates?: HostTemplateSpec[];
}

export interface HostNetworkSpec {
  /** The guest network's id. */
  id: number;
  isolation: 'VLAN' | 'VXLAN';
  /** VLAN id or VNI. */
  vnet: number;
  /**
   * The host interface it rides on: the VLAN sub-interface's parent (`<label>.<vlan>`), or the VXLAN device's
   * underlay device (`vxlan <vni> dev <label> local <host address> dstport 4789`, nolearning).
   */
  trafficLabel: string;
  /** The bridge the host makes for it: `brvl<vlan>` or `brvx<vni>` (≤ 15 characters). */
  bridge: string;
  /** VXLAN: the underlay addresses of the other hosts carrying this network, as static all-zero FDB entries. */
  peers: string[];
  mtu: number;
}

/** A router (or internal LB appliance) placed on this host: a namespace running `stacknet router-agent`. */
export interface HostRouterSpec {
  id: number;
  name: string;
  networkId: number;
  guestIp: string;
  guestMac: string;
  /** Its control address on the host's control bridge (the host agent relays to it; never routed off the host). */
  controlIp: string;
  controlPort: number;
  secret: string;
  redundant: boolean;
  vpcId: number | null;
  appliance?: 'internalLb';
  /**
   * Its public interfaces (eth2, eth3, ...), as the netns driver plugs them: veths `hp<id>e<N>` on the host's
   * public bridge of the VLAN (`vlan`: `untagged` or the id), made on the public traffic label (`trafficLabel`,
   * else the host's own `--public-label`): untagged `brpub` holding the label, or `brpub<vlan>` holding
   * `<label>.<vlan>` (a label that is itself a bridge carries untagged traffic as is). The agent in the router
   * puts the addresses on. Absent: none.
   */
  publicNics?: {
    interface: string;
    vlan: string;
    gateway: string;
    prefix: number;
    /** The physical network's Public traffic label for KVM (`kvmnetworklabel`), when it names one. */
    trafficLabel?: string;
  }[];
}

export interface HostVmSpec {
  id: number;
  uuid: string;
  /** `i-<account id>-<vm id>-VM`: the libvirt domain name. */
  instanceName: string;
  hostname: string;
  /** What the host must make of it: Running (defined and started) or Stopped (defined, shut off). */
  state: 'Running' | 'Stopped';
  backend: 'libvirt' | 'netns';
  cpus: number;
  memoryMiB: number;
  template: HostTemplateSpec;
  nics: HostVmNicSpec[];
}

export interface HostTemplateSpec {
  id: number;
  name: string;
  /** `file://` or `http(s)://` the host can read; the host caches it by id and checksum. */
  url: string;
  /** `kernel-initrd`: a directory (or tar) with `vmlinuz` and `initrd.img` booted directly; `qcow2`: a disk. */
  format: 'kernel-initrd' | 'qcow2';
  checksum: string | null;
}

export interface HostVmNicSpec {
  id: number;
  mac: string;
  /** Anti-spoofing: the addresses the port may send from (primary and secondary IPv4s). */
  ipv4s: string[];
  ipv6: string | null;
  networkId: number;
  deviceId: number;
  isDefault: boolean;
}

/** The host-side name of a VM NIC's port (libvirt `<target dev>`, or the netns backend's veth): `vn<nic id>`. */
export function vmPortName(nicId: number): string {
  return `vn${nicId}`;
}

/** The bridge a host makes for a public VLAN (`untagged` or the VLAN id) on its public traffic label. */
export function publicBridgeName(vlan: string): string {
  return vlan === 'untagged' ? 'brpub' : `brpub${vlan}`;
}

/** The bridge a host makes for a guest network. */
export function guestBridgeName(isolation: 'VLAN' | 'VXLAN', vnet: number): string {
  return isolation === 'VLAN' ? `brvl${vnet}` : `brvx${vnet}`;
}
