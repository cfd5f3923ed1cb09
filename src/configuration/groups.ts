/**
 * CloudStack 4.18's configuration groups and subgroups (listConfigurationGroups, the `group`/`subgroup` of
 * each setting), its `parent` links and its `displaytext`. CloudStack stores these in tables filled by its
 * 4.17→4.18 upgrade; they are fixed data, so here they are constants and each setting's group is computed the
 * way CloudStack computes it.
 */

export interface ConfigSubgroup {
  readonly name: string;
  /** Comma-free list; a name word that equals one, or is the start of one, puts the setting here. */
  readonly keywords: readonly string[];
  readonly precedence: number;
}

export interface ConfigGroup {
  readonly name: string;
  readonly description: string;
  readonly precedence: number;
  readonly subgroups: readonly ConfigSubgroup[];
}

const sub = (name: string, precedence: number, ...keywords: string[]): ConfigSubgroup => ({
  name,
  keywords,
  precedence,
});

/** In CloudStack's insertion order (its row ids), which decides ties when matching a setting to a subgroup. */
export const configGroups: readonly ConfigGroup[] = [
  {
    name: 'Miscellaneous',
    description: 'Miscellaneous configuration',
    precedence: 999,
    subgroups: [
      sub('Others', 999),
      sub('Backup & Recovery', 1, 'backup', 'recovery', 'veeam'),
      sub('Certificate Authority', 2, 'CA'),
      sub('Quota', 3),
      sub('Cloudian', 4),
    ],
  },
  {
    name: 'Access',
    description: 'Identity and Access management configuration',
    precedence: 1,
    subgroups: [
      sub('Account', 1),
      sub('Domain', 2),
      sub('Project', 3),
      sub('LDAP', 4),
      sub('SAML', 5, 'saml2'),
    ],
  },
  {
    name: 'Compute',
    description: 'Compute configuration',
    precedence: 2,
    subgroups: [
      sub('Virtual Machine', 1, 'vm', 'instance', 'cpu', 'ssh', 'affinity'),
      sub('Kubernetes', 2, 'kubernetes'),
      sub('High Availability', 3, 'ha'),
    ],
  },
  {
    name: 'Storage',
    description: 'Storage configuration',
    precedence: 3,
    subgroups: [
      sub('Images', 1, 'template', 'iso'),
      sub('Volume', 2, 'disk', 'diskoffering'),
      sub('Snapshot', 3),
      sub('VM Snapshot', 4, 'vmsnapshot'),
    ],
  },
  {
    name: 'Network',
    description: 'Network configuration',
    precedence: 4,
    subgroups: [
      sub('Network', 1, 'firewall', 'vlan', 'dns', 'globodns', 'ipaddress', 'cidr'),
      sub('DHCP', 2, 'externaldhcp'),
      sub('VPC', 3),
      sub('LoadBalancer', 4, 'lb', 'gslb'),
    ],
  },
  {
    name: 'Hypervisor',
    description: 'Hypervisor specific configuration',
    precedence: 5,
    subgroups: [
      sub('Hypervisor', 1, 'host'),
      sub('KVM', 2, 'libvirt'),
      sub('VMware', 3, 'vcenter'),
      sub('XenServer', 4, 'xen', 'xapi', 'XCP'),
      sub('OVM', 5, 'ovm3'),
      sub('Baremetal', 6),
    ],
  },
  {
    name: 'Management Server',
    description: 'Management Server configuration',
    precedence: 6,
    subgroups: [
      sub('API', 1),
      sub('Alerts', 2, 'alert'),
      sub('Events', 3, 'event'),
      sub('Security', 4, 'secure', 'password', 'authenticators'),
      sub('Usage', 5),
      sub('Limits', 6, 'capacity', 'delay', 'interval', 'workers'),
      sub('Jobs', 7, 'job'),
      sub('Agent', 8),
    ],
  },
  {
    name: 'System VMs',
    description: 'System VMs related configuration',
    precedence: 7,
    subgroups: [
      sub('ConsoleProxyVM', 1, 'cpvm', 'consoleproxy', 'novnc'),
      sub('SecStorageVM', 2, 'ssvm', 'secondary'),
      sub('VirtualRouter', 3, 'vr', 'router', 'vrouter'),
      sub('Diagnostics', 4),
    ],
  },
  {
    name: 'Infrastructure',
    description: 'Infrastructure configuration',
    precedence: 8,
    subgroups: [
      sub('Primary Storage', 1, 'storage', 'pool', 'primary'),
      sub('Secondary Storage', 2, 'image', 'secstorage'),
    ],
  },
];

// Subgroups in CloudStack's row-id order: every group's subgroups were inserted group by group, Miscellaneous's
// first one (Others) before all the rest and its other four last.
const subgroupRows: readonly { group: ConfigGroup; sub: ConfigSubgroup }[] = (() => {
  const misc = configGroups[0]!;
  const rows = [{ group: misc, sub: misc.subgroups[0]! }];
  for (const g of configGroups.slice(1)) for (const sg of g.subgroups) rows.push({ group: g, sub: sg });
  for (const sg of misc.subgroups.slice(1)) rows.push({ group: misc, sub: sg });
  return rows;
})();

export interface SettingGroup {
  group: string;
  subgroup: string;
}

/**
 * The group a setting name falls in, as CloudStack 4.18 assigns it: the first dot-separated word of the name
 * that is a subgroup's name (case-insensitively), or else equals or begins one of a subgroup's keywords, picks
 * that subgroup; a name no word matches goes to Miscellaneous / Others.
 */
export function groupOfSetting(name: string): SettingGroup {
  for (const word of name.split('.')) {
    if (word === '') continue;
    const w = word.toLowerCase();
    const hit =
      subgroupRows.find((r) => r.sub.name.toLowerCase() === w) ??
      subgroupRows.find((r) =>
        r.sub.keywords.some((k) => k.toLowerCase() === w || k.toLowerCase().startsWith(w)),
      );
    if (hit) return { group: hit.group.name, subgroup: hit.sub.name };
  }
  return { group: 'Miscellaneous', subgroup: 'Others' };
}

/**
 * CloudStack's parent links (a setting that only matters when its parent is on). Kept as CloudStack's data has
 * them, including `router.health.checks.enable`, a name no setting has.
 */
const parents: Readonly<Record<string, readonly string[]>> = {
  'agent.lb.enabled': ['agent.load.threshold'],
  'alert.purge.delay': ['alert.purge.interval'],
  'api.throttling.enabled': ['api.throttling.cachesize', 'api.throttling.interval', 'api.throttling.max'],
  'event.purge.delay': ['event.purge.interval'],
  'network.loadbalancer.basiczone.elb.enabled': [
    'network.loadbalancer.basiczone.elb.network',
    'network.loadbalancer.basiczone.elb.vm.cpu.mhz',
    'network.loadbalancer.basiczone.elb.vm.ram.size',
    'network.loadbalancer.basiczone.elb.vm.vcpu.num',
    'network.loadbalancer.basiczone.elb.gc.interval.minutes',
  ],
  'router.health.checks.enable': [
    'router.health.checks.basic.interval',
    'router.health.checks.advanced.interval',
    'router.health.checks.config.refresh.interval',
    'router.health.checks.results.fetch.interval',
    'router.health.checks.to.exclude',
    'router.health.checks.failures.to.recreate.vr',
    'router.health.checks.free.disk.space.threshold',
    'router.health.checks.max.cpu.usage.threshold',
    'router.health.checks.max.memory.usage.threshold',
  ],
};

const parentOf = new Map<string, string>(
  Object.entries(parents).flatMap(([parent, children]) => children.map((c) => [c, parent] as const)),
);

export function parentOfSetting(name: string): string | undefined {
  return parentOf.get(name);
}

/** CloudStack's display text: the name with dots as spaces, its first letter upper case and the rest lower. */
export function displayTextOfSetting(name: string): string {
  const spaced = name.replace(/\./g, ' ');
  return spaced.charAt(0).toUpperCase() + spaced.slice(1).toLowerCase();
}
