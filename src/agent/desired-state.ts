/**
 * The virtual router's desired state: what the management server pushes to `stacknet router-agent`, and the
 * delta format for incremental pushes. This module is shared with the server (the router reconciler builds these
 * documents from the database), so it imports nothing from the agent process: types plus pure functions only.
 *
 * The JSON Schema in docs/desired-state.schema.json is generated from `desiredStateSchema` in
 * desired-state-schema.ts (a test keeps them equal).
 */

/** CloudStack metadata keys (reference §4.2) every VM gets; other keys (user-data details) are allowed too. */
export const wellKnownMetadataKeys = [
  'service-offering',
  'availability-zone',
  'local-ipv4',
  'local-hostname',
  'public-ipv4',
  'public-hostname',
  'instance-id',
  'vm-id',
  'public-keys',
  'cloud-identifier',
  'hypervisor-host-name',
  'cloud-domain',
  'cloud-domain-id',
] as const;

/** Keys CloudStack's `latest/.htaccess` also serves as `/latest/<key>` (reference §4.6). */
export const legacyMetadataKeys = [
  'availability-zone',
  'cloud-identifier',
  'instance-id',
  'local-hostname',
  'local-ipv4',
  'public-hostname',
  'public-ipv4',
  'public-keys',
  'service-offering',
  'vm-id',
] as const;

export interface RedundancySpec {
  /** VRRP priority; the higher one becomes primary. CloudStack uses 100 (primary) / 99 style values. */
  priority: number;
  /** `router.redundant.vrrp.interval` in seconds (CloudStack default 1). */
  vrrpIntervalSeconds: number;
  /** VRRP virtual router id, 1..255, the same on both routers of a pair. */
  virtualRouterId: number;
  /** Shared VRRP password (CloudStack: first 8 chars of the router password). */
  authPass: string;
}

export interface RouterSpec {
  name: string;
  /**
   * The router's own address on the guest network. Without redundancy this is normally the network gateway.
   * With redundancy each router of the pair has its own guest address and the gateway is the virtual address.
   */
  guestIp: string;
  redundant?: RedundancySpec;
  /**
   * Absent: a virtual router. `internalLb`: CloudStack's internal LB VM in a VPC tier. It holds `guestIp` (the
   * rules' source address) on its guest interface with a default route via `network.gateway`, and runs only
   * haproxy for its `loadBalancer` rules (`publicIp` = that source address): no DHCP/DNS, metadata, password
   * server, firewall or NAT. The agent started with `--appliance internal-lb` runs only those services
   * (`applianceServices`).
   */
  appliance?: 'internalLb';
}

export interface NetworkSpec {
  /** Guest IPv4 CIDR, e.g. `10.1.1.0/24`. */
  cidr: string;
  /** The gateway guests use (router/DNS/data-server). With redundancy: the VRRP virtual address. */
  gateway: string;
  /** Network domain (`cloudnine.internal` when CloudStack's is empty). */
  domain: string;
  /** Upstream forwarders for names outside the domain (zone dns1/dns2). */
  dnsServers: string[];
  /** `use.external.dns`: hand guests the zone DNS instead of the VR, and do not answer DNS. */
  useExternalDns: boolean;
  /** Lease time in seconds, or `infinite` (CloudStack's hard-coded value and the default). */
  leaseTime?: number | 'infinite';
  /**
   * Guest IPv6 prefix (CloudStack gives isolated networks a /64). The VR takes `ipv6Gateway` on its guest interface
   * and advertises the prefix (router advertisements, SLAAC: guests form their EUI-64 address, reference §2.6).
   */
  ipv6Cidr?: string;
  /** The VR's IPv6 address, the guests' IPv6 gateway; default the first address of `ipv6Cidr`. */
  ipv6Gateway?: string;
}

export interface HostSpec {
  mac: string;
  ipv4: string;
  ipv6?: string;
  hostname: string;
  /** Non-default NICs get no router, DNS or domain option, so they do not steal the default route. */
  defaultNic: boolean;
  vmId: string;
}

export interface VmMetadata {
  /** Base64 user data as CloudStack stores it; served decoded at `/latest/user-data`. */
  userData?: string;
  /** `/latest/meta-data/<key>` values, e.g. `local-ipv4`, `instance-id`. */
  metaData: Record<string, string>;
}

export interface FirewallSpec {
  /** Load the nftables ruleset inside the VR (DHCP on guest only; DNS/metadata/password from the guest CIDR). */
  enabled: boolean;
}

/**
 * One public VLAN the router sits on (CloudStack's eth2, then eth3... for IPs from other public VLANs). The
 * interface names come from `publicInterfaceName`: the source-NAT address's VLAN first, the others in VLAN order,
 * so the server (which plugs the interfaces) and the agent (which addresses them) agree without talking.
 */
export interface PublicNicSpec {
  /** `eth2`, `eth3`, ... */
  interface: string;
  /** The public range's VLAN: `untagged` or the VLAN id as text (names the public bridge). */
  vlan: string;
  /** The range's gateway (the upstream router) and prefix length. */
  gateway: string;
  prefix: number;
  /** Public IPv4s held on this interface: the source-NAT address first when it is here, then in address order. */
  addresses: string[];
}

/** 1:1 NAT between a public IP and one guest address (a VM's primary or secondary IP: `vmguestip`). */
export interface StaticNatSpec {
  publicIp: string;
  guestIp: string;
}

export interface PublicSpec {
  nics: PublicNicSpec[];
  /** The network's (VPC's) source-NAT address, held on one of `nics`; null: the network has no source NAT. */
  sourceNatIp: string | null;
  /** Sorted by public IP. */
  staticNats: StaticNatSpec[];
  /**
   * The offering's `egressdefaultpolicy`: true = guests reach everything outside but what an egress rule names
   * (rules deny); false = nothing but what an egress rule names (rules allow). CloudStack's built-in isolated
   * offerings deny; createNetworkOffering's default allows.
   */
  egressDefaultAllow: boolean;
}

/**
 * A VPC tier's router. stacknet runs one router per tier; the tier routers of a VPC are joined by the VPC transit
 * (one bridge per VPC, interface `transitInterface` in each tier router), where each router holds its tier's
 * gateway address and reaches the other tiers' gateways on-link. The edge tier's router holds the VPC's public
 * IPs (routers/public-inputs.ts) and source-NATs the whole VPC CIDR; the other tiers route outside through it.
 * ACL items (RuleSpec kind `acl`) filter what is forwarded into and out of this tier.
 */
export interface VpcSpec {
  /** The VPC's super CIDR (source NAT on the edge covers it). */
  cidr: string;
  /** `vpc0`. */
  transitInterface: string;
  /** This router holds the VPC's public IPs. */
  edge: boolean;
  /** The edge tier's gateway: a non-edge tier's default route (on-link over the transit); null on the edge. */
  edgeGateway: string | null;
  /** The VPC's other live tiers, sorted by CIDR. */
  peers: { cidr: string; gateway: string }[];
}

export interface PortRange {
  start: number;
  end: number;
}

/** tcp, udp, icmp, all, or (ACL items only) an IP protocol number as text. */
export type RuleProtocol = 'tcp' | 'udp' | 'icmp' | 'all' | `${number}`;

interface RuleBase {
  /** The rule's uuid (CloudStack's id): the key deltas upsert and remove by. */
  id: string;
  protocol: RuleProtocol;
  /** tcp/udp only; absent = every port. */
  ports?: PortRange;
  /** icmp only; -1 or absent = any. */
  icmpType?: number;
  icmpCode?: number;
}

/** Port forwarding: public IP + port range → guest IP + port range (same length, or a single private port). */
export interface PortForwardRuleSpec {
  kind: 'portForward';
  id: string;
  protocol: 'tcp' | 'udp';
  publicIp: string;
  publicPorts: PortRange;
  guestIp: string;
  privatePorts: PortRange;
  /** Sources that may use the forward (CloudStack's PF `cidrlist`, VPC only); ['0.0.0.0/0'] = any. */
  sourceCidrs: string[];
}

/** Ingress firewall on a public IP: inbound traffic to that IP passes only where such a rule allows it. */
export interface FirewallRuleSpec extends RuleBase {
  kind: 'firewall';
  publicIp: string;
  sourceCidrs: string[];
}

/** Egress from the guest network to outside (see PublicSpec.egressDefaultAllow for allow vs deny). */
export interface EgressRuleSpec extends RuleBase {
  kind: 'egress';
  /** Guest sources the rule covers (CloudStack's `cidrlist`); empty = the whole guest CIDR. */
  sourceCidrs: string[];
  /** Destinations (`destcidrlist`); empty = anywhere. */
  destCidrs: string[];
}

/**
 * A VPC tier's network ACL item. Ingress items filter traffic forwarded *into* the tier (from outside, from other
 * tiers), egress items traffic forwarded *out of* it; items are matched by ascending `number`, first match wins,
 * and what matches none is dropped (CloudStack's ACL chains end in DROP).
 */
export interface AclRuleSpec extends RuleBase {
  kind: 'acl';
  number: number;
  action: 'allow' | 'deny';
  traffic: 'ingress' | 'egress';
  /** Ingress: sources; egress: destinations. */
  cidrs: string[];
}

/** One backend of a load balancer rule: a VM's guest address (primary, or a secondary one: vmidipmap). */
export interface LbMemberSpec {
  /** The VM's uuid (health reports name it). */
  vmId: string;
  guestIp: string;
}

/**
 * A load balancer rule. Public (createLoadBalancerRule), served by haproxy on the router: TCP on
 * `publicIp:publicPort` spread over `members` on `privatePort`. Inbound traffic to it still needs a firewall rule
 * on the IP (`openfirewall`, as for a port forward); `sourceCidrs` limits it further (CloudStack's LB `cidrlist`).
 * Internal (createLoadBalancer scheme=Internal), on an internal LB appliance: `publicIp` is the rule's source
 * address in the VPC tier, `publicPort` its `sourceport`, `privatePort` its `instanceport`.
 */
export interface LoadBalancerRuleSpec {
  kind: 'loadBalancer';
  id: string;
  publicIp: string;
  publicPort: number;
  privatePort: number;
  /** CloudStack's names: roundrobin, leastconn, source. */
  algorithm: 'roundrobin' | 'leastconn' | 'source';
  /** Sorted by guest IP. */
  members: LbMemberSpec[];
  sourceCidrs: string[];
  /** createLBStickinessPolicy: LbCookie (cookie name etc. in params), AppCookie, SourceBased. */
  stickiness?: { method: 'LbCookie' | 'AppCookie' | 'SourceBased'; params: Record<string, string> };
  /** createLBHealthCheckPolicy: an HTTP check of `pingPath` (absent: a TCP connect check). */
  healthCheck?: {
    pingPath?: string;
    intervalSeconds: number;
    timeoutSeconds: number;
    healthyThreshold: number;
    unhealthyThreshold: number;
  };
}

export type RuleSpec =
  PortForwardRuleSpec | FirewallRuleSpec | EgressRuleSpec | AclRuleSpec | LoadBalancerRuleSpec;

export interface DesiredState {
  /** Monotonic per router; bumped by the server in the same transaction as any change affecting the router. */
  generation: number;
  router: RouterSpec;
  network: NetworkSpec;
  hosts: HostSpec[];
  /** Keyed by the VM's IPv4 address in this network (the source address that selects it). */
  metadata: Record<string, VmMetadata>;
  /** One-shot passwords keyed by VM IPv4 (default NIC only, as CloudStack). */
  passwords: Record<string, string>;
  firewall: FirewallSpec;
  /** The public side (isolated networks and VPC tiers with a public IP); absent = no public interface. */
  public?: PublicSpec;
  /** Port forwards, firewall, egress and ACL rules, sorted by id; deltas upsert and remove them by id. */
  rules?: RuleSpec[];
  /** Present on a VPC tier's router. */
  vpc?: VpcSpec;
}

/**
 * A change against a stated base generation. The agent applies it only if `baseGeneration` equals its current
 * generation; otherwise it answers 409 and the server sends the full state.
 */
export interface DesiredStateDelta {
  baseGeneration: number;
  generation: number;
  /** Replaces router/network wholesale when present. */
  router?: RouterSpec;
  network?: NetworkSpec;
  firewall?: FirewallSpec;
  /** Replaces the public side wholesale; `null` removes it. */
  public?: PublicSpec | null;
  /** Replaces the VPC section wholesale; `null` removes it. */
  vpc?: VpcSpec | null;
  rules?: { upsert?: RuleSpec[]; remove?: string[] /* rule ids */ };
  hosts?: { upsert?: HostSpec[]; remove?: string[] /* MACs */ };
  metadata?: { upsert?: Record<string, VmMetadata>; remove?: string[] /* VM IPs */ };
  passwords?: { upsert?: Record<string, string>; remove?: string[] /* VM IPs */ };
}

export const defaultLeaseTime = 'infinite' as const;

/** The services (renderer names, appliers/renderers.ts) an appliance runs; a router runs them all. */
export const applianceServices: Record<NonNullable<RouterSpec['appliance']>, readonly string[]> = {
  internalLb: ['addresses', 'haproxy'],
};

/** The router's interface for its `index`-th public VLAN (0 = the source-NAT address's): eth2, eth3, ... */
export function publicInterfaceName(index: number): string {
  return `eth${index + 2}`;
}

const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

function normalizeMac(mac: string): string {
  return mac.toLowerCase();
}

/** Apply a delta to a state. Pure; the caller has already checked `baseGeneration`. Host upserts match by MAC. */
export function applyDelta(state: DesiredState, delta: DesiredStateDelta): DesiredState {
  const hosts = new Map(state.hosts.map((h) => [normalizeMac(h.mac), h]));
  for (const mac of delta.hosts?.remove ?? []) hosts.delete(normalizeMac(mac));
  for (const h of delta.hosts?.upsert ?? []) hosts.set(normalizeMac(h.mac), h);
  const metadata = { ...state.metadata };
  for (const ip of delta.metadata?.remove ?? []) delete metadata[ip];
  Object.assign(metadata, delta.metadata?.upsert ?? {});
  const passwords = { ...state.passwords };
  for (const ip of delta.passwords?.remove ?? []) delete passwords[ip];
  Object.assign(passwords, delta.passwords?.upsert ?? {});
  const out: DesiredState = {
    generation: delta.generation,
    router: delta.router ?? state.router,
    network: delta.network ?? state.network,
    hosts: [...hosts.values()],
    metadata,
    passwords,
    firewall: delta.firewall ?? state.firewall,
  };
  const pub = delta.public === undefined ? state.public : (delta.public ?? undefined);
  if (pub) out.public = pub;
  const vpc = delta.vpc === undefined ? state.vpc : (delta.vpc ?? undefined);
  if (vpc) out.vpc = vpc;
  if (delta.rules) {
    const rules = new Map((state.rules ?? []).map((r) => [r.id, r]));
    for (const id of delta.rules.remove ?? []) rules.delete(id);
    for (const r of delta.rules.upsert ?? []) rules.set(r.id, r);
    if (rules.size) out.rules = [...rules.values()].sort(byId);
  } else if (state.rules?.length) out.rules = state.rules;
  return out;
}

/** The delta that turns `from` into `to` (host upserts for new/changed MACs, removals for gone ones). Pure. */
export function diffStates(from: DesiredState, to: DesiredState): DesiredStateDelta {
  const delta: DesiredStateDelta = { baseGeneration: from.generation, generation: to.generation };
  if (JSON.stringify(from.router) !== JSON.stringify(to.router)) delta.router = to.router;
  if (JSON.stringify(from.network) !== JSON.stringify(to.network)) delta.network = to.network;
  if (JSON.stringify(from.firewall) !== JSON.stringify(to.firewall)) delta.firewall = to.firewall;
  if (JSON.stringify(from.public) !== JSON.stringify(to.public)) delta.public = to.public ?? null;
  if (JSON.stringify(from.vpc) !== JSON.stringify(to.vpc)) delta.vpc = to.vpc ?? null;
  const oldRules = new Map((from.rules ?? []).map((r) => [r.id, r]));
  const newRules = new Set((to.rules ?? []).map((r) => r.id));
  const ruleUpsert = (to.rules ?? []).filter((r) => JSON.stringify(oldRules.get(r.id)) !== JSON.stringify(r));
  const ruleRemove = [...oldRules.keys()].filter((id) => !newRules.has(id));
  if (ruleUpsert.length || ruleRemove.length) delta.rules = { upsert: ruleUpsert, remove: ruleRemove };
  const oldHosts = new Map(from.hosts.map((h) => [normalizeMac(h.mac), h]));
  const newHosts = new Map(to.hosts.map((h) => [normalizeMac(h.mac), h]));
  const upsert = to.hosts.filter(
    (h) => JSON.stringify(oldHosts.get(normalizeMac(h.mac))) !== JSON.stringify(h),
  );
  const remove = from.hosts.filter((h) => !newHosts.has(normalizeMac(h.mac))).map((h) => h.mac);
  if (upsert.length || remove.length) delta.hosts = { upsert, remove };
  const recordDiff = <T>(a: Record<string, T>, b: Record<string, T>) => {
    const up: Record<string, T> = {};
    for (const [k, v] of Object.entries(b)) if (JSON.stringify(a[k]) !== JSON.stringify(v)) up[k] = v;
    const rm = Object.keys(a).filter((k) => !(k in b));
    return Object.keys(up).length || rm.length ? { upsert: up, remove: rm } : undefined;
  };
  const md = recordDiff(from.metadata, to.metadata);
  if (md) delta.metadata = md;
  const pw = recordDiff(from.passwords, to.passwords);
  if (pw) delta.passwords = pw;
  return delta;
}
