/**
 * The network service providers stacknet has, with the services each can provide (CloudStack's names). Pure:
 * the migration and the API both read it.
 */
export interface ProviderDefinition {
  name: string;
  services: readonly string[];
  /** The state a new physical network's provider starts in. */
  initialState: 'Enabled' | 'Disabled';
  /** What stacknet does with it, for the operator. */
  note: string;
}

const routerServices = [
  'Dhcp',
  'Dns',
  'UserData',
  'SourceNat',
  'StaticNat',
  'PortForwarding',
  'Firewall',
  'Gateway',
  'Lb',
  'Vpn',
] as const;

/**
 * CloudStack adds these to every new physical network. Its routers start Disabled until the zone wizard
 * enables them; stacknet's router is ready as soon as the physical network exists, so VirtualRouter and
 * VpcVirtualRouter start Enabled. The internal LB appliance does not exist yet: InternalLbVm stays Disabled and
 * cannot be enabled.
 */
export const defaultProviders: readonly ProviderDefinition[] = [
  {
    name: 'VirtualRouter',
    services: routerServices,
    initialState: 'Enabled',
    note: "the guest network's router of isolated and shared networks",
  },
  {
    name: 'VpcVirtualRouter',
    services: [...routerServices, 'NetworkACL'],
    initialState: 'Enabled',
    note: "a VPC's router",
  },
  {
    name: 'InternalLbVm',
    services: ['Lb'],
    initialState: 'Disabled',
    note: 'the internal load balancer appliance of VPC tiers (not available yet)',
  },
];

export const providerByName = (name: string): ProviderDefinition | undefined =>
  defaultProviders.find((p) => p.name.toLowerCase() === name.toLowerCase());
