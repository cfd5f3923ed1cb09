/**
 * The built-in offerings and template, with CloudStack's own names so scripts written for CloudStack
 * (`listNetworkOfferings name=DefaultIsolatedNetworkOfferingWithSourceNatService`) find them. Seeded by
 * migration 0003; pure data, no I/O.
 */

export type GuestIpType = 'Isolated' | 'Shared' | 'L2';

/** service name -> provider, as CloudStack's `serviceproviderlist`. */
export type ServiceMap = Record<string, string>;

export interface NetworkOfferingSeed {
  name: string;
  displayText: string;
  guestIpType: GuestIpType;
  services: ServiceMap;
  forVpc: boolean;
  specifyVlan: boolean;
  specifyIpRanges: boolean;
  isPersistent: boolean;
  conserveMode: boolean;
  availability: 'Required' | 'Optional';
  egressDefaultPolicy: boolean;
}

const vr = (services: string[], provider = 'VirtualRouter'): ServiceMap =>
  Object.fromEntries(services.map((s) => [s, provider]));

export const DEFAULT_ISOLATED_OFFERING = 'DefaultIsolatedNetworkOfferingWithSourceNatService';
export const DEFAULT_SHARED_OFFERING = 'DefaultSharedNetworkOffering';
export const DEFAULT_VPC_TIER_OFFERING = 'DefaultIsolatedNetworkOfferingForVpcNetworks';
export const DEFAULT_VPC_OFFERING = 'Default VPC offering';

export const defaultNetworkOfferings: readonly NetworkOfferingSeed[] = [
  {
    name: DEFAULT_ISOLATED_OFFERING,
    displayText: 'Offering for Isolated networks with Source Nat service enabled',
    guestIpType: 'Isolated',
    services: vr([
      'Dhcp',
      'Dns',
      'UserData',
      'Firewall',
      'Gateway',
      'Lb',
      'PortForwarding',
      'SourceNat',
      'StaticNat',
      'Vpn',
    ]),
    forVpc: false,
    specifyVlan: false,
    specifyIpRanges: false,
    isPersistent: false,
    conserveMode: true,
    availability: 'Required',
    egressDefaultPolicy: false,
  },
  {
    name: 'DefaultIsolatedNetworkOffering',
    displayText: 'Offering for Isolated networks with no Source Nat service',
    guestIpType: 'Isolated',
    services: vr(['Dhcp', 'Dns', 'UserData']),
    forVpc: false,
    specifyVlan: true,
    specifyIpRanges: true,
    isPersistent: false,
    conserveMode: true,
    availability: 'Optional',
    egressDefaultPolicy: false,
  },
  {
    name: DEFAULT_SHARED_OFFERING,
    displayText: 'Offering for Shared networks',
    guestIpType: 'Shared',
    services: vr(['Dhcp', 'Dns', 'UserData']),
    forVpc: false,
    specifyVlan: true,
    specifyIpRanges: true,
    isPersistent: false,
    conserveMode: true,
    availability: 'Optional',
    egressDefaultPolicy: false,
  },
  {
    name: DEFAULT_VPC_TIER_OFFERING,
    displayText: 'Offering for Isolated VPC networks with Source Nat service enabled',
    guestIpType: 'Isolated',
    services: vr(
      [
        'Dhcp',
        'Dns',
        'UserData',
        'SourceNat',
        'StaticNat',
        'PortForwarding',
        'Lb',
        'NetworkACL',
        'Vpn',
        'Gateway',
      ],
      'VpcVirtualRouter',
    ),
    forVpc: true,
    specifyVlan: false,
    specifyIpRanges: false,
    isPersistent: false,
    conserveMode: false,
    availability: 'Optional',
    egressDefaultPolicy: false,
  },
  {
    name: 'DefaultL2NetworkOffering',
    displayText: 'Offering for L2 networks',
    guestIpType: 'L2',
    services: {},
    forVpc: false,
    specifyVlan: false,
    specifyIpRanges: false,
    isPersistent: false,
    conserveMode: true,
    availability: 'Optional',
    egressDefaultPolicy: false,
  },
];

export interface VpcOfferingSeed {
  name: string;
  displayText: string;
  services: ServiceMap;
}

export const defaultVpcOfferings: readonly VpcOfferingSeed[] = [
  {
    name: DEFAULT_VPC_OFFERING,
    displayText: DEFAULT_VPC_OFFERING,
    services: vr(
      [
        'Dhcp',
        'Dns',
        'UserData',
        'SourceNat',
        'StaticNat',
        'PortForwarding',
        'Lb',
        'NetworkACL',
        'Vpn',
        'Gateway',
      ],
      'VpcVirtualRouter',
    ),
  },
];

export interface ServiceOfferingSeed {
  name: string;
  displayText: string;
  cpuNumber: number;
  cpuSpeed: number;
  memory: number;
}

/** CloudStack ships "Small Instance" and "Medium Instance" as its default compute offerings. */
export const defaultServiceOfferings: readonly ServiceOfferingSeed[] = [
  { name: 'Small Instance', displayText: 'Small Instance', cpuNumber: 1, cpuSpeed: 500, memory: 512 },
  { name: 'Medium Instance', displayText: 'Medium Instance', cpuNumber: 1, cpuSpeed: 1000, memory: 1024 },
];

export interface SystemOfferingSeed extends ServiceOfferingSeed {
  systemVmType: 'domainrouter' | 'internalloadbalancervm';
}

/** CloudStack's default system offerings for its virtual routers and internal LB VMs (1 CPU, 500 MHz, 256 MiB). */
export const defaultSystemOfferings: readonly SystemOfferingSeed[] = [
  {
    name: 'System Offering For Software Router',
    displayText: 'System Offering For Software Router',
    cpuNumber: 1,
    cpuSpeed: 500,
    memory: 256,
    systemVmType: 'domainrouter',
  },
  {
    name: 'System Offering For Internal LB VM',
    displayText: 'System Offering For Internal LB VM',
    cpuNumber: 1,
    cpuSpeed: 500,
    memory: 256,
    systemVmType: 'internalloadbalancervm',
  },
];

export interface TemplateSeed {
  name: string;
  displayText: string;
  osTypeName: string;
  format: string;
  hypervisor: string;
  templateType: string;
  passwordEnabled: boolean;
  /** The virtual size of the disk a VM deployed from it gets (its ROOT volume), in bytes. */
  sizeBytes: number;
}

/** CloudStack's built-in guest template name (templatetype BUILTIN), so deploy scripts find it by name. */
export const defaultTemplates: readonly TemplateSeed[] = [
  {
    name: 'CentOS 5.5(64-bit) no GUI (KVM)',
    displayText: 'CentOS 5.5(64-bit) no GUI (KVM)',
    osTypeName: 'CentOS 5.5 (64-bit)',
    format: 'QCOW2',
    hypervisor: 'KVM',
    templateType: 'BUILTIN',
    passwordEnabled: true,
    // stacknet ships no image for it; 5 GiB is the size it answers for the template and its VMs' ROOT volumes.
    sizeBytes: 5 * 1024 ** 3,
  },
];

/** A built-in template's size by name; 0 for a template stacknet does not know the size of. */
export const templateSizeBytes = (name: string): number =>
  defaultTemplates.find((t) => t.name === name)?.sizeBytes ?? 0;

export const serviceNames = [
  'Dhcp',
  'Dns',
  'UserData',
  'Firewall',
  'Gateway',
  'Lb',
  'PortForwarding',
  'SourceNat',
  'StaticNat',
  'Vpn',
  'NetworkACL',
  'SecurityGroup',
] as const;

/** `Dhcp:VirtualRouter,Dns:VirtualRouter` in the column; the API shows `service: [{name, provider:[{name}]}]`. */
export const encodeServices = (services: ServiceMap): string =>
  Object.entries(services)
    .map(([s, p]) => `${s}:${p}`)
    .join(',');

export function decodeServices(text: string | null | undefined): ServiceMap {
  const out: ServiceMap = {};
  if (!text) return out;
  for (const pair of text.split(',')) {
    const [s, p] = pair.split(':');
    if (s) out[s] = p ?? 'VirtualRouter';
  }
  return out;
}

export const servicesResponse = (services: ServiceMap): { name: string; provider: { name: string }[] }[] =>
  Object.entries(services).map(([name, provider]) => ({ name, provider: [{ name: provider }] }));
