/**
 * Regenerates cloudstack-4.18.generated.ts from CloudStack 4.18's own listApis dump, for the commands stacknet
 * serves or will serve (DESIGN.md "CloudStack API surface"). Add a name to `commands` and run:
 *   node --import tsx src/api/reference/generate.ts /work/shared/reference/cloudstack-4.18-apis.json
 * The parameter types are emitted `as const` (they type the handlers); descriptions and response fields are
 * emitted as one JSON string (they only feed listApis), which keeps the type checker fast.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const commands = [
  // session, discovery, jobs
  'login',
  'logout',
  'listApis',
  'queryAsyncJobResult',
  'listAsyncJobs',
  // accounts
  'createDomain',
  'listDomains',
  'deleteDomain',
  'createAccount',
  'listAccounts',
  'deleteAccount',
  'createUser',
  'listUsers',
  'registerUserKeys',
  'getUserKeys',
  'updateUser',
  'deleteUser',
  'moveUser',
  'disableUser',
  'enableUser',
  'lockUser',
  'disableAccount',
  'enableAccount',
  'lockAccount',
  'updateAccount',
  // infrastructure
  'createZone',
  'listZones',
  'updateZone',
  'deleteZone',
  'createPod',
  'listPods',
  'createPhysicalNetwork',
  'listPhysicalNetworks',
  'updatePhysicalNetwork',
  'addTrafficType',
  'listTrafficTypes',
  'listNetworkServiceProviders',
  'addNetworkServiceProvider',
  'updateNetworkServiceProvider',
  'deleteNetworkServiceProvider',
  'listSupportedNetworkServices',
  'createVlanIpRange',
  'listVlanIpRanges',
  'deleteVlanIpRange',
  'dedicatePublicIpRange',
  'releasePublicIpRange',
  'dedicateGuestVlanRange',
  'listDedicatedGuestVlanRanges',
  'releaseDedicatedGuestVlanRange',
  // offerings, templates
  'listNetworkOfferings',
  'createNetworkOffering',
  'listVPCOfferings',
  'listServiceOfferings',
  'listTemplates',
  'registerTemplate',
  'updateNetworkOffering',
  'deleteNetworkOffering',
  'createVPCOffering',
  'updateVPCOffering',
  'deleteVPCOffering',
  'createServiceOffering',
  'updateServiceOffering',
  'deleteServiceOffering',
  'listOsTypes',
  'listOsCategories',
  'changeServiceForVirtualMachine',
  'listDiskOfferings',
  'listVolumes',
  'listVirtualMachinesMetrics',
  'resetSSHKeyForVirtualMachine',
  // networks, VPCs
  'createNetwork',
  'listNetworks',
  'updateNetwork',
  'deleteNetwork',
  'restartNetwork',
  'createVPC',
  'listVPCs',
  'updateVPC',
  'deleteVPC',
  'restartVPC',
  // VPC network ACLs
  'createNetworkACLList',
  'deleteNetworkACLList',
  'updateNetworkACLList',
  'listNetworkACLLists',
  'createNetworkACL',
  'updateNetworkACLItem',
  'deleteNetworkACL',
  'moveNetworkAclItem',
  'listNetworkACLs',
  'replaceNetworkACLList',
  // public and portable IPs
  'associateIpAddress',
  'disassociateIpAddress',
  'listPublicIpAddresses',
  'reserveIpAddress',
  'releaseIpAddress',
  'enableStaticNat',
  'disableStaticNat',
  'createPortableIpRange',
  'listPortableIpRanges',
  'deletePortableIpRange',
  // port forwarding, firewall and egress rules
  'createPortForwardingRule',
  'updatePortForwardingRule',
  'deletePortForwardingRule',
  'listPortForwardingRules',
  'createFirewallRule',
  'updateFirewallRule',
  'deleteFirewallRule',
  'listFirewallRules',
  'createEgressFirewallRule',
  'updateEgressFirewallRule',
  'deleteEgressFirewallRule',
  'listEgressFirewallRules',
  // load balancer rules (src/lb)
  'createLoadBalancerRule',
  'updateLoadBalancerRule',
  'deleteLoadBalancerRule',
  'listLoadBalancerRules',
  'assignToLoadBalancerRule',
  'removeFromLoadBalancerRule',
  'listLoadBalancerRuleInstances',
  'createLBStickinessPolicy',
  'deleteLBStickinessPolicy',
  'listLBStickinessPolicies',
  'createLBHealthCheckPolicy',
  'deleteLBHealthCheckPolicy',
  'listLBHealthCheckPolicies',
  // internal load balancing in VPC tiers (src/lb/internal*.ts)
  'createLoadBalancer',
  'deleteLoadBalancer',
  'updateLoadBalancer',
  'listLoadBalancers',
  'listInternalLoadBalancerVMs',
  'startInternalLoadBalancerVM',
  'stopInternalLoadBalancerVM',
  // VMs and NICs
  'deployVirtualMachine',
  'listVirtualMachines',
  'startVirtualMachine',
  'stopVirtualMachine',
  'rebootVirtualMachine',
  'destroyVirtualMachine',
  'expungeVirtualMachine',
  'recoverVirtualMachine',
  'updateVirtualMachine',
  'resetPasswordForVirtualMachine',
  'listNics',
  'addNicToVirtualMachine',
  'removeNicFromVirtualMachine',
  'updateVmNicIp',
  'addIpToNic',
  'removeIpFromNic',
  'createSSHKeyPair',
  'registerSSHKeyPair',
  'listSSHKeyPairs',
  'deleteSSHKeyPair',
  // routers
  'listRouters',
  'startRouter',
  'stopRouter',
  'rebootRouter',
  'destroyRouter',
  'getRouterHealthCheckResults',
  // settings, capacity, events
  'listConfigurations',
  'updateConfiguration',
  'resetConfiguration',
  'listCapacity',
  'listEvents',
  'listEventTypes',
  'listConfigurationGroups',
  // hosts and clusters (src/hosts); storage and system VMs: none (empty answers)
  'listHosts',
  'addHost',
  'updateHost',
  'deleteHost',
  'prepareHostForMaintenance',
  'cancelHostMaintenance',
  'listClusters',
  'addCluster',
  'listStoragePools',
  'listSystemVms',
  // infrastructure counts, zone metrics, alerts (the UI's Infrastructure and Zones menus, dashboard)
  'listInfrastructure',
  'listZonesMetrics',
  'listAlerts',
  'deleteAlerts',
  'archiveAlerts',
  // diagnostics, IPv6
  'runDiagnostics',
  'getDiagnosticsData',
  'createGuestNetworkIpv6Prefix',
  'listGuestNetworkIpv6Prefixes',
  'deleteGuestNetworkIpv6Prefix',
  // projects (none)
  'listProjects',
  // resource tags
  'createTags',
  'deleteTags',
  'listTags',
  // what the CloudStack UI asks at start-up
  'listCapabilities',
  'listLdapConfigurations',
  'cloudianIsEnabled',
  'listResourceIcon',
];

interface RawField {
  name?: string;
  type?: string;
  description?: string;
  response?: RawField[];
}
interface RawParam {
  name: string;
  type: string;
  required: boolean;
  description: string;
  length: number;
  related?: string;
  since?: string;
}
interface RawApi {
  name: string;
  description: string;
  isasync: boolean;
  related?: string;
  since?: string;
  params: RawParam[];
  response: RawField[];
}

function cleanFields(fields: RawField[] | undefined): RawField[] | undefined {
  if (!fields) return undefined;
  // The dump holds empty `{}` entries (fields without annotations); they carry nothing.
  const out = fields
    .filter((f) => f.name)
    .map((f) => {
      const r: RawField = { name: f.name, type: f.type ?? 'string', description: f.description ?? '' };
      const nested = cleanFields(f.response);
      if (nested && nested.length > 0) r.response = nested;
      return r;
    });
  return out.sort((a, b) => (a.name! < b.name! ? -1 : a.name! > b.name! ? 1 : 0));
}

function main(): void {
  const src = process.argv[2] ?? '/work/shared/reference/cloudstack-4.18-apis.json';
  const dump = JSON.parse(readFileSync(src, 'utf8')) as { api: RawApi[] };
  const byName = new Map(dump.api.map((a) => [a.name, a]));
  const paramTypes: Record<string, Record<string, { type: string; required: boolean }>> = {};
  const apis: Record<string, unknown> = {};
  for (const name of [...new Set(commands)].sort()) {
    const a = byName.get(name);
    if (!a) continue; // not in 4.18: the command defines its own parameters
    paramTypes[name] = {};
    for (const p of [...a.params].sort((x, y) => (x.name < y.name ? -1 : 1))) {
      paramTypes[name][p.name] = { type: p.type, required: p.required };
    }
    apis[name] = {
      name: a.name,
      description: a.description,
      isasync: a.isasync,
      related: a.related ?? '',
      since: a.since,
      params: Object.fromEntries(
        a.params.map((p) => [
          p.name,
          { description: p.description, length: p.length, related: p.related, since: p.since },
        ]),
      ),
      response: cleanFields(a.response),
    };
  }
  const out = [
    '// GENERATED by src/api/reference/generate.ts from CloudStack 4.18 listApis output. Do not edit by hand.',
    "import type { ReferenceApi } from './reference-types.js';",
    '',
    `export const referenceParamTypes = ${JSON.stringify(paramTypes, null, 1)} as const;`,
    '',
    `export const referenceApis: Readonly<Record<string, ReferenceApi>> = JSON.parse(${JSON.stringify(JSON.stringify(apis))});`,
    '',
  ].join('\n');
  const target = fileURLToPath(new URL('./cloudstack-4.18.generated.ts', import.meta.url));
  writeFileSync(target, out);
  console.log(`wrote ${target}: ${Object.keys(apis).length} commands, ${out.length} bytes`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();
