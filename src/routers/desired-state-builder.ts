/**
 * Database rows → the router agent's desired-state document. PURE (no store, no I/O): the reconciler loads the
 * rows (router-inputs.ts) and hands them here, so the mapping from CloudStack's rules (reference §4.2) to the
 * document is tested without a database.
 *
 * CloudStack rules matched here:
 * - a DHCP entry per NIC of every VM that is not expunged: entries leave the router at expunge, not at stop
 *   (PR #3608), so a stopped VM keeps its address and name;
 * - `default_entry` = the NIC's default flag: non-default NICs get no router/DNS option;
 * - DNS handed to guests is the VR (the gateway, i.e. the VIP on a redundant pair) unless use.external.dns;
 *   the VR forwards to the network's dns1/dns2, else the zone's;
 * - an empty network domain becomes `cloudnine.internal`, as the VR substitutes;
 * - metadata per NIC address in this network with the keys CommandSetupHelper.generateVmDataCommand always
 *   produces; the password only for the VM's default NIC (createPasswordCommand).
 */
import type {
  DesiredState,
  HostSpec,
  PublicSpec,
  RouterSpec,
  RuleSpec,
  VmMetadata,
  VpcSpec,
} from '../agent/desired-state.js';
import { groupPublicNics, ipv4Number } from './public-nics.js';
import type { RouterPublicIp } from './public-nics.js';

export const DEFAULT_VR_DOMAIN = 'cloudnine.internal';

export interface RouterRowInput {
  name: string;
  guestIp: string;
  role: 'standalone' | 'primary' | 'backup' | 'internallb';
  publicIp: string | null;
  /** Present for a member of a redundant pair. */
  redundant?: { virtualRouterId: number; authPass: string; vrrpIntervalSeconds: number };
}

export interface NetworkRowInput {
  cidr: string;
  gateway: string;
  networkDomain: string | null;
  dns1: string | null;
  dns2: string | null;
  ipv6Cidr: string | null;
  /** Basic zones / shared networks serve the VM's own address as public-ipv4 (reference §4.2). */
  type: 'Isolated' | 'Shared' | 'L2';
}

export interface ZoneRowInput {
  name: string;
  dns1: string | null;
  dns2: string | null;
}

export interface NicRowInput {
  mac: string;
  ipv4: string | null;
  ipv6: string | null;
  isDefault: boolean;
}

export interface VmRowInput {
  uuid: string;
  instanceName: string;
  hostname: string;
  userData: string | null;
  publicKeys: string | null;
  password: string | null;
  serviceOfferingName: string | null;
  /** Static-NAT address of this VM in the network, when one is enabled. */
  staticNatIp?: string | null;
  /** The VM's NICs in THIS network (a VM with two NICs here gets two entries). */
  nics: NicRowInput[];
}

export interface BuildInput {
  generation: number;
  /** An internal LB appliance: its address, its tier and its rules only (buildApplianceState). */
  appliance?: 'internalLb';
  router: RouterRowInput;
  network: NetworkRowInput;
  zone: ZoneRowInput;
  useExternalDns: boolean;
  /** `stacknet.dhcp.lease.time` seconds; 0 or negative = infinite (CloudStack's hard-coded value). */
  leaseSeconds: number;
  /** `cloud.identifier` (the installation's UUID); guests read `CloudStack-{<it>}`. Empty: not served. */
  cloudIdentifier?: string;
  vms: VmRowInput[];
  /** The router's public side (public VLANs, addresses, source and static NAT), when it has one. */
  public?: PublicSpec;
  /** Port forwards, firewall, egress and ACL rules the router enforces (rule-inputs.ts). */
  rules?: RuleSpec[];
  /** Present for a VPC tier's router. */
  vpc?: VpcRowInput;
}

/** A VPC tier's router: the VPC and its live tiers (tiers with a live router, this one included). */
export interface VpcRowInput {
  /** The VPC's super CIDR. */
  cidr: string;
  /** This router's tier. */
  networkId: number;
  /** The tier whose router holds the VPC's public IPs (public-inputs.ts vpcEdgeNetworkId). */
  edgeNetworkId: number | null;
  tiers: { networkId: number; cidr: string; gateway: string }[];
}

/** The transit interface every tier router of a VPC has on the VPC's bridge. */
export const VPC_TRANSIT_INTERFACE = 'vpc0';

/**
 * The router's `public` section from the public IPs it holds (routers/public-inputs.ts); none: no section. One
 * NIC per public VLAN (groupPublicNics names them), static NATs sorted by public IP. `egressDefaultAllow` is the
 * offering's egressdefaultpolicy; a VPC tier passes true, as its network ACL governs egress instead.
 */
export function publicSpecOf(
  ips: readonly RouterPublicIp[],
  egressDefaultAllow: boolean,
): PublicSpec | undefined {
  if (ips.length === 0) return undefined;
  return {
    nics: groupPublicNics(ips).map((g) => ({
      interface: g.interface,
      vlan: g.vlan,
      gateway: g.gateway,
      prefix: g.prefix,
      addresses: g.ips.map((i) => i.address),
    })),
    sourceNatIp: ips.find((i) => i.sourceNat)?.address ?? null,
    staticNats: ips
      .filter((i) => i.staticNatGuestIp !== null)
      .sort((a, b) => ipv4Number(a.address) - ipv4Number(b.address))
      .map((i) => ({ publicIp: i.address, guestIp: i.staticNatGuestIp! })),
    egressDefaultAllow,
  };
}

const dnsList = (...xs: (string | null | undefined)[]): string[] =>
  xs.filter((x): x is string => typeof x === 'string' && x.trim() !== '').map((x) => x.trim());

/** The desired state a router must serve. Deterministic: the same rows always give the same document. */
export function buildDesiredState(input: BuildInput): DesiredState {
  if (input.appliance) return buildApplianceState(input, input.appliance);
  const { network, zone, router } = input;
  const routerSpec: RouterSpec = { name: router.name, guestIp: router.guestIp };
  if (router.redundant) {
    routerSpec.redundant = {
      // CloudStack gives the primary a higher VRRP priority; either wins an election in a fresh pair.
      priority: router.role === 'backup' ? 99 : 100,
      vrrpIntervalSeconds: router.redundant.vrrpIntervalSeconds,
      virtualRouterId: router.redundant.virtualRouterId,
      authPass: router.redundant.authPass,
    };
  }
  const forwarders = dnsList(network.dns1, network.dns2);
  const state: DesiredState = {
    generation: input.generation,
    router: routerSpec,
    network: {
      cidr: network.cidr,
      gateway: network.gateway,
      domain: network.networkDomain?.trim() || DEFAULT_VR_DOMAIN,
      dnsServers: forwarders.length ? forwarders : dnsList(zone.dns1, zone.dns2),
      useExternalDns: input.useExternalDns,
      leaseTime: input.leaseSeconds > 0 ? Math.max(120, Math.floor(input.leaseSeconds)) : 'infinite',
      ...(network.ipv6Cidr ? { ipv6Cidr: network.ipv6Cidr } : {}),
    },
    hosts: [],
    metadata: {},
    passwords: {},
    firewall: { enabled: true },
  };
  if (input.public) state.public = input.public;
  if (input.vpc) state.vpc = buildVpcSpec(input.vpc);
  if (input.rules?.length)
    state.rules = [...input.rules].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const seenMacs = new Set<string>();
  const seenIps = new Set<string>([network.gateway, router.guestIp]);
  const seenNames = new Set<string>(['data-server']);
  // Stable order (by address) so the document, and so its hash, depends on the rows and not on query order.
  const entries = input.vms
    .flatMap((vm) => vm.nics.map((nic) => ({ vm, nic })))
    .filter((e) => e.nic.ipv4)
    .sort((a, b) => ipv4Number(a.nic.ipv4!) - ipv4Number(b.nic.ipv4!));
  for (const { vm, nic } of entries) {
    const ip = nic.ipv4!;
    const mac = nic.mac.toLowerCase();
    // The database's constraints make these impossible; a router must still never be sent a document its agent
    // would refuse as a whole, so a duplicate is dropped here rather than blocking every other VM.
    if (seenMacs.has(mac) || seenIps.has(ip)) continue;
    seenMacs.add(mac);
    seenIps.add(ip);
    let hostname = vm.hostname.toLowerCase();
    // Two NICs of one VM in one network: CloudStack names both after the VM; dnsmasq needs distinct names.
    if (seenNames.has(hostname)) hostname = `${hostname}-${mac.replace(/:/g, '').slice(-6)}`;
    if (seenNames.has(hostname)) continue;
    seenNames.add(hostname);
    const host: HostSpec = { mac, ipv4: ip, hostname, defaultNic: nic.isDefault, vmId: vm.uuid };
    if (nic.ipv6) host.ipv6 = nic.ipv6;
    state.hosts.push(host);
    state.metadata[ip] = vmMetadata(input, vm, ip);
    if (nic.isDefault && vm.password) state.passwords[ip] = vm.password;
  }
  return state;
}

/**
 * CloudStack's internal LB VM: one guest NIC in the tier holding the rules' source address, routed via the tier's
 * gateway, running haproxy only. No hosts, metadata or passwords (no DHCP/DNS or guest services), no firewall
 * (the tier's network ACL on its router filters what reaches it), no public side, no VPC transit.
 */
export function buildApplianceState(input: BuildInput, appliance: 'internalLb'): DesiredState {
  const state: DesiredState = {
    generation: input.generation,
    router: { name: input.router.name, guestIp: input.router.guestIp, appliance },
    network: {
      cidr: input.network.cidr,
      gateway: input.network.gateway,
      domain: input.network.networkDomain?.trim() || DEFAULT_VR_DOMAIN,
      dnsServers: [],
      useExternalDns: false,
    },
    hosts: [],
    metadata: {},
    passwords: {},
    firewall: { enabled: false },
  };
  const lb = (input.rules ?? []).filter((r) => r.kind === 'loadBalancer');
  if (lb.length) state.rules = [...lb].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return state;
}

/**
 * The VPC section: peers are the other live tiers (their gateways answer on the transit), sorted by CIDR so the
 * document does not depend on query order. A tier whose router is not live has nobody on the transit to route
 * through, so it is no peer; its CIDR is unreachable until its router runs, as in CloudStack before a tier's
 * first VM. The edge is the tier of `edgeNetworkId`; while there is none (cannot happen for a live router, whose
 * own tier counts) the router takes itself for the edge rather than routing outside through nobody.
 */
export function buildVpcSpec(v: VpcRowInput): VpcSpec {
  const edgeTier = v.tiers.find((t) => t.networkId === v.edgeNetworkId);
  const edge = v.edgeNetworkId === null || v.edgeNetworkId === v.networkId || !edgeTier;
  return {
    cidr: v.cidr,
    transitInterface: VPC_TRANSIT_INTERFACE,
    edge,
    edgeGateway: edge ? null : edgeTier.gateway,
    peers: v.tiers
      .filter((t) => t.networkId !== v.networkId && t.cidr && t.gateway)
      .map((t) => ({ cidr: t.cidr, gateway: t.gateway }))
      .sort(byCidr),
  };
}

function byCidr(a: { cidr: string }, b: { cidr: string }): number {
  const [aa, al] = a.cidr.split('/');
  const [ba, bl] = b.cidr.split('/');
  return ipv4Number(aa!) - ipv4Number(ba!) || Number(al) - Number(bl);
}

function vmMetadata(input: BuildInput, vm: VmRowInput, ip: string): VmMetadata {
  const publicIp = input.network.type === 'Shared' ? ip : (vm.staticNatIp ?? input.router.publicIp ?? '');
  const publicHostname = input.network.type === 'Shared' ? vm.hostname : publicIp;
  const metaData: Record<string, string> = {
    'service-offering': vm.serviceOfferingName ?? '',
    'availability-zone': input.zone.name,
    'local-ipv4': ip,
    'local-hostname': vm.hostname,
    'public-ipv4': publicIp,
    'public-hostname': publicHostname,
    'instance-id': vm.uuid,
    'vm-id': vm.uuid,
    'public-keys': vm.publicKeys ?? '',
    'cloud-identifier': input.cloudIdentifier ? `CloudStack-{${input.cloudIdentifier}}` : '',
    'hypervisor-host-name': 'stacknet',
  };
  // An empty value means "not present" (CloudStack's deletion convention); leaving them out keeps the document
  // small and its meaning the same.
  for (const k of Object.keys(metaData)) if (metaData[k] === '') delete metaData[k];
  const md: VmMetadata = { metaData };
  if (vm.userData) md.userData = vm.userData;
  return md;
}
