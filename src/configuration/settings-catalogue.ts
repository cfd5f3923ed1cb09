/**
 * The CloudStack global settings stacknet honours (reference §3.2), with CloudStack's names, defaults, types
 * and scopes, plus our own DHCP lease time. Only values somebody changed are stored (configurations table).
 */
export type SettingType = 'Integer' | 'Long' | 'Float' | 'Boolean' | 'String';
export type SettingScope = 'global' | 'zone' | 'account' | 'domain';

export interface SettingDefinition {
  readonly name: string;
  readonly type: SettingType;
  readonly defaultValue: string;
  readonly scope: SettingScope;
  readonly category: string;
  readonly component: string;
  readonly description: string;
  /** False when a change needs a server restart (CloudStack's `isdynamic`). */
  readonly isDynamic: boolean;
  /** Extra check beyond the type, e.g. a range; returns why the value is wrong. */
  readonly check?: (value: string) => string | undefined;
}

const positive = (v: string): string | undefined => (Number(v) > 0 ? undefined : 'must be greater than 0');
const nonNegative = (v: string): string | undefined => (Number(v) >= 0 ? undefined : 'must be 0 or more');
const fraction = (v: string): string | undefined =>
  Number(v) >= 0 && Number(v) <= 1 ? undefined : 'must be between 0 and 1';

function s<const N extends string, const T extends SettingType>(
  name: N,
  type: T,
  defaultValue: string,
  scope: SettingScope,
  component: string,
  description: string,
  extra: Partial<Pick<SettingDefinition, 'isDynamic' | 'check' | 'category'>> = {},
): SettingDefinition & { readonly name: N; readonly type: T } {
  return {
    name,
    type,
    defaultValue,
    scope,
    category: extra.category ?? 'Advanced',
    component,
    description,
    isDynamic: extra.isDynamic ?? true,
    check: extra.check,
  };
}

export const settingDefinitions = [
  // Network garbage collection (NetworkOrchestrationService)
  s(
    'network.gc.interval',
    'Integer',
    '600',
    'global',
    'NetworkOrchestrationService',
    'Seconds to wait before checking for networks to shutdown',
    { check: positive },
  ),
  s(
    'network.gc.wait',
    'Integer',
    '600',
    'global',
    'NetworkOrchestrationService',
    "Time (in seconds) to wait before shutting down a network that's not in used",
    { check: positive },
  ),
  s(
    'network.lock.timeout',
    'Integer',
    '600',
    'global',
    'NetworkOrchestrationService',
    'Lock wait timeout (seconds) while implementing network',
    { check: positive },
  ),
  // DNS / DHCP handed to guests
  s(
    'guest.domain.suffix',
    'String',
    'cloud.internal',
    'zone',
    'management-server',
    'Default domain name for vms inside virtualized networks fronted by router',
  ),
  s(
    'use.external.dns',
    'Boolean',
    'false',
    'zone',
    'management-server',
    'Bypass internal dns, use external dns1 and dns2',
  ),
  s(
    'expose.dns.externally',
    'Boolean',
    'false',
    'zone',
    'management-server',
    'open dns, dhcp, userdata and password ports on router outside the guest network',
  ),
  s(
    'network.dns.basiczone.updates',
    'String',
    'all',
    'global',
    'management-server',
    'This parameter can take 2 values: all (default) and pod. It defines if DHCP/DNS requests have to be send to all dhcp servers in cloudstack, or only to the one in the same pod',
  ),
  s(
    'network.dhcp.nondefaultnetwork.setgateway.guestos',
    'String',
    'Windows',
    'global',
    'management-server',
    "The guest OS's name start with this fields would result in DHCP server response gateway information even when the network it's on is not default network. Names are separated by comma.",
  ),
  s(
    'direct.network.no.default.route',
    'Boolean',
    'false',
    'global',
    'management-server',
    'Direct Network Dhcp Server should not send a default route',
  ),
  s(
    'stacknet.dhcp.lease.time',
    'String',
    'infinite',
    'zone',
    'stacknet',
    'DHCP lease time handed to guests: "infinite" (CloudStack\'s hard-coded behaviour) or a number of seconds (120 or more)',
    {
      check: (v) =>
        v === 'infinite' || (/^\d+$/.test(v) && Number(v) >= 120)
          ? undefined
          : 'must be "infinite" or a number of seconds, 120 or more',
    },
  ),
  // Virtual routers
  s(
    'router.redundant.vrrp.interval',
    'Integer',
    '1',
    'global',
    'VirtualNetworkApplianceManager',
    'seconds between VRRP broadcast. It would 3 times broadcast fail to trigger fail-over mechanism of redundant router',
    { check: positive },
  ),
  s(
    'router.check.interval',
    'Integer',
    '30',
    'global',
    'VirtualNetworkApplianceManager',
    'Interval (in seconds) to report redundant router status.',
    { check: positive },
  ),
  s(
    'router.extra.public.nics',
    'Integer',
    '2',
    'global',
    'VirtualNetworkApplianceManager',
    'specify extra public nics used for virtual router(up to 5)',
    { check: (v) => (Number(v) >= 0 && Number(v) <= 5 ? undefined : 'must be between 0 and 5') },
  ),
  s(
    'router.aggregation.command.each.timeout',
    'Integer',
    '600',
    'global',
    'VirtualNetworkApplianceManager',
    'timeout in seconds for each Virtual Router command being aggregated. The final aggregation command timeout would be determined by this timeout * commands counts ',
    { check: positive },
  ),
  s(
    'router.health.checks.enabled',
    'Boolean',
    'true',
    'global',
    'VirtualNetworkApplianceManager',
    'If true, router health checks are allowed to be executed and read. If false, all scheduled checks and API calls for on demand checks are disabled.',
  ),
  s(
    'router.health.checks.basic.interval',
    'Integer',
    '3',
    'global',
    'VirtualNetworkApplianceManager',
    'Interval in minutes at which basic router health checks are performed. If set to 0, no tests are scheduled.',
    { check: nonNegative },
  ),
  s(
    'router.health.checks.advanced.interval',
    'Integer',
    '10',
    'global',
    'VirtualNetworkApplianceManager',
    'Interval in minutes at which advanced router health checks are performed. If set to 0, no tests are scheduled.',
    { check: nonNegative },
  ),
  s(
    'systemvm.release.control.ip.on.stop',
    'Boolean',
    'true',
    'zone',
    'VirtualNetworkApplianceManager',
    'Release the control ip on system VM stop',
  ),
  s(
    'network.throttling.rate',
    'Integer',
    '200',
    'zone',
    'management-server',
    'Default data transfer rate in megabits per second allowed in network.',
    { check: nonNegative },
  ),
  s(
    'control.cidr',
    'String',
    '169.254.0.0/16',
    'global',
    'management-server',
    'Changes the cidr for the control network traffic.  Defaults to using link local.  Must be unique within pods',
    { isDynamic: false },
  ),
  s(
    'control.gateway',
    'String',
    '169.254.0.1',
    'global',
    'management-server',
    'gateway for the control network traffic',
    { isDynamic: false },
  ),
  // Guest and public IP address management
  s(
    'network.guest.cidr.limit',
    'Integer',
    '22',
    'global',
    'management-server',
    "size limit for guest cidr; can't be less than this value",
    { check: (v) => (Number(v) >= 0 && Number(v) <= 32 ? undefined : 'must be between 0 and 32') },
  ),
  s(
    'vm.network.nic.max.secondary.ipaddresses',
    'Integer',
    '256',
    'global',
    'management-server',
    'Specify the number of secondary ip addresses per nic per vm. Default value 10 is used, if not specified.',
    { check: nonNegative },
  ),
  s(
    'use.system.public.ips',
    'Boolean',
    'true',
    'account',
    'management-server',
    'If true, when account has dedicated public ip range(s), once the ips dedicated to the account have been consumed ips will be acquired from the system pool',
  ),
  s(
    'system.vm.public.ip.reservation.mode.strictness',
    'Boolean',
    'false',
    'global',
    'IpAddressManager',
    'If enabled, the use of System VMs public IP reservation is strict, preferred if not.',
  ),
  s(
    'public.ip.address.quarantine.duration',
    'Integer',
    '0',
    'domain',
    'IpAddressManager',
    'The duration (in minutes) for the public IP address to be quarantined when it is disassociated.',
    { check: nonNegative },
  ),
  s(
    'vrouter.redundant.tiers.placement',
    'String',
    'random',
    'account',
    'IpAddressManager',
    'Set placement of vrouter ips in redundant mode in vpc tiers, this can be 3 value: `first` to use first ips in tiers, `last` to use last ips in tiers and `random` to take random ips in tiers.',
    { check: (v) => (['first', 'last', 'random'].includes(v) ? undefined : 'must be first, last or random') },
  ),
  s(
    'max.account.public.ips',
    'Long',
    '20',
    'global',
    'management-server',
    'The default maximum number of public IPs that can be consumed by an account',
  ),
  s(
    'max.domain.public.ips',
    'Long',
    '40',
    'global',
    'management-server',
    'The default maximum number of public IPs that can be consumed by a domain',
  ),
  s(
    'max.project.public.ips',
    'Long',
    '20',
    'global',
    'management-server',
    'The default maximum number of public IPs that can be consumed by a project',
  ),
  s(
    'zone.virtualnetwork.publicip.capacity.notificationthreshold',
    'Float',
    '0.75',
    'zone',
    'AlertManager',
    'Percentage (as a value between 0 and 1) of public IP address space utilization above which alerts will be sent.',
    { category: 'Alert', check: fraction },
  ),
  s(
    'zone.directnetwork.publicip.capacity.notificationthreshold',
    'Float',
    '0.75',
    'zone',
    'AlertManager',
    'Percentage (as a value between 0 and 1) of Direct Network Public Ip Utilization above which alerts will be sent.',
    { category: 'Alert', check: fraction },
  ),
  s(
    'pod.privateip.capacity.notificationthreshold',
    'Float',
    '0.75',
    'zone',
    'AlertManager',
    'Percentage (as a value between 0 and 1) of private IP address space utilization above which alerts will be sent.',
    { category: 'Alert', check: fraction },
  ),
  // IPv6
  s(
    'network.ipv6.search.retry.max',
    'Integer',
    '10000',
    'global',
    'IpAddressManager',
    'The maximum number of retrying times to search for an available IPv6 address in the table',
    { check: positive },
  ),
  s(
    'network.offering.ipv6.enabled',
    'Boolean',
    'false',
    'global',
    'Ipv6Service',
    'Set this to true to enable IPv6 support for network offerings',
  ),
  s(
    'network.ipv6.prefix.subnet.cleanup.interval',
    'Integer',
    '1800',
    'global',
    'Ipv6Service',
    'Interval in seconds to clean up IPv6 subnets that were allocated but never used',
    { check: positive },
  ),
  // VM expunge (when DHCP/DNS entries leave the router)
  s(
    'expunge.delay',
    'Integer',
    '86400',
    'global',
    'management-server',
    'Determines how long (in seconds) to wait before actually expunging destroyed vm. The default value = the default value of expunge.interval',
    { check: nonNegative },
  ),
  s(
    'expunge.interval',
    'Integer',
    '86400',
    'global',
    'management-server',
    'The interval (in seconds) to wait before running the expunge thread.',
    { check: positive },
  ),
  // The API
  s(
    'default.page.size',
    'Long',
    '500',
    'global',
    'management-server',
    'Default page size for API list* commands',
    {
      check: (v) =>
        Number(v) === -1 || Number(v) > 0 ? undefined : 'must be -1 (unlimited) or greater than 0',
    },
  ),
  s(
    'integration.api.port',
    'Integer',
    '0',
    'global',
    'ApiServer',
    'Integration (unauthenticated) API port. To disable set it to 0 or negative.',
    { isDynamic: false },
  ),
  s(
    'metadata.allow.expose.domain',
    'Boolean',
    'false',
    'domain',
    'management-server',
    'Allow the domain of the account to be exposed in instance metadata (cloud-domain and cloud-domain-id)',
  ),
  s('api.throttling.enabled', 'Boolean', 'false', 'global', 'ApiServer', 'Enable/disable Api rate limit', {
    isDynamic: false,
  }),
  s(
    'api.throttling.interval',
    'Integer',
    '1',
    'global',
    'ApiServer',
    'Time interval (in seconds) to reset API count',
    { check: positive, isDynamic: false },
  ),
  s(
    'api.throttling.max',
    'Integer',
    '25',
    'global',
    'ApiServer',
    'Max allowed number of APIs within fixed interval',
    { check: positive, isDynamic: false },
  ),
  s(
    'api.throttling.cachesize',
    'Integer',
    '50000',
    'global',
    'ApiServer',
    'Account based API count cache size',
    { check: positive, isDynamic: false },
  ),
  // Login throttle (accounts/login-throttle.ts). CloudStack's setting disables the user for good; stacknet
  // locks for incorrect.login.lock.seconds instead, so that guessing cannot lock an operator out indefinitely.
  s(
    'incorrect.login.attempts.allowed',
    'Integer',
    '5',
    'global',
    'ManagementServer',
    'Incorrect login attempts allowed before the user is locked for incorrect.login.lock.seconds (when value > 0). If value <= 0 users are not locked after failed login attempts',
  ),
  s(
    'incorrect.login.lock.seconds',
    'Integer',
    '300',
    'global',
    'ManagementServer',
    'Seconds a user (or a source address) stays locked after too many incorrect login attempts; failures older than this are forgotten',
    { check: positive },
  ),
  s(
    'incorrect.login.attempts.allowed.per.address',
    'Integer',
    '20',
    'global',
    'ManagementServer',
    'Incorrect login attempts allowed from one source address, whatever the user, before the address is locked for incorrect.login.lock.seconds (when value > 0)',
  ),
] as const satisfies readonly SettingDefinition[];

export type SettingName = (typeof settingDefinitions)[number]['name'];

type DefByName<N extends SettingName> = Extract<(typeof settingDefinitions)[number], { name: N }>;
/** The TypeScript type of a setting's value: numbers for Integer/Long/Float, booleans, strings. */
export type SettingValue<N extends SettingName> = DefByName<N>['type'] extends 'Boolean'
  ? boolean
  : DefByName<N>['type'] extends 'String'
    ? string
    : number;

const byName = new Map<string, SettingDefinition>(settingDefinitions.map((d) => [d.name, d]));

export function findSetting(name: string): SettingDefinition | undefined {
  return byName.get(name);
}

/** Why `value` is not acceptable for the setting, or undefined when it is. */
export function checkSettingValue(def: SettingDefinition, value: string): string | undefined {
  switch (def.type) {
    case 'Integer':
    case 'Long':
      if (!/^-?\d+$/.test(value.trim())) return `must be an integer (${def.type})`;
      break;
    case 'Float':
      if (value.trim() === '' || !Number.isFinite(Number(value))) return 'must be a number';
      break;
    case 'Boolean':
      if (!['true', 'false'].includes(value.trim().toLowerCase())) return 'must be true or false';
      break;
    case 'String':
      break;
  }
  return def.check?.(value.trim());
}

export function decodeSetting(def: SettingDefinition, value: string): number | boolean | string {
  if (def.type === 'Boolean') return value.trim().toLowerCase() === 'true';
  if (def.type === 'String') return value;
  return Number(value);
}
