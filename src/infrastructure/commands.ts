/** Zones, pods, physical networks, traffic types and VLAN IP ranges: the API commands (root admin). */
import {
  allRoles,
  defineCommand,
  listResult,
  objectResult,
  refParams,
  rootAdminOnly,
  successResult,
} from '../api/command.js';
import type { AnyCommand, ResponseObject } from '../api/command.js';
import { deletedBeforeRerun, jobScopedUuid } from '../api/jobs/rerun.js';
import {
  dedicateGuestVlanRange,
  dedicatedVlanResponses,
  listDedicatedGuestVlanRanges,
  releaseDedicatedGuestVlanRange,
} from './dedicated-guest-vlans.js';
import {
  createGuestNetworkIpv6Prefix,
  deleteGuestNetworkIpv6Prefix,
  listGuestNetworkIpv6Prefixes,
  prefixResponses,
} from './guest-ipv6-prefixes.js';
import { readNet, withNet } from './net-context.js';
import {
  addTrafficType,
  createPhysicalNetwork,
  listPhysicalNetworks,
  listTrafficTypes,
  physicalNetworkResponse,
  trafficTypeResponse,
  updatePhysicalNetwork,
} from './physical-networks.js';
import {
  createVlanIpRange,
  dedicatePublicIpRange,
  deleteVlanIpRange,
  listVlanIpRanges,
  rangeResponses,
  releasePublicIpRange,
} from './vlan-ip-ranges.js';
import {
  createPod,
  createZone,
  deleteZone,
  listPods,
  listZones,
  podResponse,
  updateZone,
  zoneMetricsResponse,
  zoneResponse,
} from './zones.js';
import type { ZoneRow } from './zones.js';

const R = (o: Record<string, unknown>): ResponseObject => o as ResponseObject;

const zoneParams = [
  'dns1',
  'dns2',
  'internaldns1',
  'internaldns2',
  'ip6dns1',
  'ip6dns2',
  'guestcidraddress',
  'domain',
  'allocationstate',
] as const;

const createZoneCmd = defineCommand({
  name: 'createZone',
  roles: rootAdminOnly,
  params: refParams('createZone', [
    'name',
    'networktype',
    ...zoneParams,
    'localstorageenabled',
    'securitygroupenabled',
    'domainid',
  ]),
  async handler(p, ctx) {
    return withNet(ctx, async (n) => objectResult('zone', R(zoneResponse(await createZone(n, p)))));
  },
});

/** listZones and listZonesMetrics: the same list, answered with `respond` per zone. */
const zoneList = (name: 'listZones' | 'listZonesMetrics', respond: (z: ZoneRow) => Record<string, unknown>) =>
  defineCommand({
    name,
    roles: allRoles,
    params: refParams(name, [
      'id',
      'name',
      'keyword',
      'networktype',
      'available',
      'showcapacities',
      'page',
      'pagesize',
    ]),
    async handler(p, ctx) {
      return readNet(ctx, async (n) => {
        const r = await listZones(n, p);
        return listResult(
          'zone',
          r.items.map((z) => R(respond(z))),
          r.count,
        );
      });
    },
  });

const listZonesCmd = zoneList('listZones', zoneResponse);
const listZonesMetricsCmd = zoneList('listZonesMetrics', zoneMetricsResponse);

const updateZoneCmd = defineCommand({
  name: 'updateZone',
  roles: rootAdminOnly,
  params: refParams('updateZone', ['id', 'name', ...zoneParams]),
  async handler(p, ctx) {
    return withNet(ctx, async (n) => objectResult('zone', R(zoneResponse(await updateZone(n, p)))));
  },
});

const deleteZoneCmd = defineCommand({
  name: 'deleteZone',
  roles: rootAdminOnly,
  params: refParams('deleteZone', ['id']),
  async handler(p, ctx) {
    await withNet(ctx, (n) => deleteZone(n, p));
    return successResult();
  },
});

const createPodCmd = defineCommand({
  name: 'createPod',
  roles: rootAdminOnly,
  params: refParams('createPod', [
    'name',
    'zoneid',
    'gateway',
    'netmask',
    'startip',
    'endip',
    'allocationstate',
  ]),
  async handler(p, ctx) {
    return withNet(ctx, async (n) => {
      const pod = await createPod(n, p);
      const r = await listPods(n, { id: pod.uuid });
      return objectResult('pod', R(podResponse(r.items[0]!)));
    });
  },
});

const listPodsCmd = defineCommand({
  name: 'listPods',
  roles: rootAdminOnly,
  params: refParams('listPods', ['id', 'name', 'zoneid', 'keyword', 'allocationstate', 'page', 'pagesize']),
  async handler(p, ctx) {
    return readNet(ctx, async (n) => {
      const r = await listPods(n, p);
      return listResult(
        'pod',
        r.items.map((x) => R(podResponse(x))),
        r.count,
      );
    });
  },
});

const createPhysicalNetworkCmd = defineCommand({
  name: 'createPhysicalNetwork',
  roles: rootAdminOnly,
  params: refParams('createPhysicalNetwork', [
    'name',
    'zoneid',
    'isolationmethods',
    'vlan',
    'tags',
    'networkspeed',
    'broadcastdomainrange',
    'domainid',
  ]),
  async handler(p, ctx) {
    // Named by the job, so a re-run finds what its earlier run created instead of overlapping its VLANs.
    const uuid = jobScopedUuid(ctx, 'physical-network');
    return withNet(ctx, async (n) => {
      const pn =
        (await n.tx
          .selectFrom('physical_networks')
          .selectAll()
          .where('uuid', '=', uuid)
          .executeTakeFirst()) ?? (await createPhysicalNetwork(n, { ...p, uuid }));
      return objectResult('physicalnetwork', R(await physicalNetworkResponse(n.tx, pn)));
    });
  },
});

const updatePhysicalNetworkCmd = defineCommand({
  name: 'updatePhysicalNetwork',
  roles: rootAdminOnly,
  params: refParams('updatePhysicalNetwork', ['id', 'vlan', 'state', 'tags', 'networkspeed']),
  async handler(p, ctx) {
    return withNet(ctx, async (n) =>
      objectResult(
        'physicalnetwork',
        R(await physicalNetworkResponse(n.tx, await updatePhysicalNetwork(n, p))),
      ),
    );
  },
});

const listPhysicalNetworksCmd = defineCommand({
  name: 'listPhysicalNetworks',
  roles: rootAdminOnly,
  params: refParams('listPhysicalNetworks', ['id', 'name', 'zoneid', 'keyword', 'page', 'pagesize']),
  async handler(p, ctx) {
    return readNet(ctx, async (n) => {
      const r = await listPhysicalNetworks(n, p);
      const items = [];
      for (const pn of r.items) items.push(R(await physicalNetworkResponse(n.tx, pn)));
      return listResult('physicalnetwork', items, r.count);
    });
  },
});

const addTrafficTypeCmd = defineCommand({
  name: 'addTrafficType',
  roles: rootAdminOnly,
  params: refParams('addTrafficType', [
    'physicalnetworkid',
    'traffictype',
    'kvmnetworklabel',
    'xennetworklabel',
    'vmwarenetworklabel',
    'hypervnetworklabel',
    'ovm3networklabel',
    'vlan',
    'isolationmethod',
  ]),
  async handler(p, ctx) {
    // Named by the job, so a re-run finds the traffic type its earlier run added instead of refusing it.
    const uuid = jobScopedUuid(ctx, 'traffic-type');
    return withNet(ctx, async (n) => {
      const t =
        (await n.tx.selectFrom('traffic_types').selectAll().where('uuid', '=', uuid).executeTakeFirst()) ??
        (await addTrafficType(n, { ...p, uuid }));
      return objectResult('traffictype', R(trafficTypeResponse(t, p.physicalnetworkid)));
    });
  },
});

const listTrafficTypesCmd = defineCommand({
  name: 'listTrafficTypes',
  roles: rootAdminOnly,
  params: refParams('listTrafficTypes', ['physicalnetworkid', 'keyword', 'page', 'pagesize']),
  async handler(p, ctx) {
    return readNet(ctx, async (n) => {
      const r = await listTrafficTypes(n, p);
      return listResult(
        'traffictype',
        r.items.map((t) => R(trafficTypeResponse(t, p.physicalnetworkid))),
        r.count,
      );
    });
  },
});

const createVlanIpRangeCmd = defineCommand({
  name: 'createVlanIpRange',
  roles: rootAdminOnly,
  params: refParams('createVlanIpRange', [
    'zoneid',
    'podid',
    'physicalnetworkid',
    'networkid',
    'vlan',
    'gateway',
    'netmask',
    'startip',
    'endip',
    'forvirtualnetwork',
    'forsystemvms',
    'account',
    'domainid',
    'projectid',
    'ip6gateway',
    'ip6cidr',
    'startipv6',
    'endipv6',
  ]),
  async handler(p, ctx) {
    return withNet(ctx, async (n) => {
      const row = await createVlanIpRange(n, p);
      return objectResult('vlan', R((await rangeResponses(n.tx, [row]))[0]!));
    });
  },
});

const listVlanIpRangesCmd = defineCommand({
  name: 'listVlanIpRanges',
  roles: rootAdminOnly,
  params: refParams('listVlanIpRanges', [
    'id',
    'zoneid',
    'podid',
    'physicalnetworkid',
    'networkid',
    'vlan',
    'forvirtualnetwork',
    'account',
    'domainid',
    'keyword',
    'page',
    'pagesize',
  ]),
  async handler(p, ctx) {
    return readNet(ctx, async (n) => {
      const r = await listVlanIpRanges(n, p);
      return listResult('vlaniprange', (await rangeResponses(n.tx, r.items)).map(R), r.count);
    });
  },
});

const deleteVlanIpRangeCmd = defineCommand({
  name: 'deleteVlanIpRange',
  roles: rootAdminOnly,
  params: refParams('deleteVlanIpRange', ['id']),
  async handler(p, ctx) {
    await withNet(ctx, (n) => deleteVlanIpRange(n, p));
    return successResult();
  },
});

const dedicatePublicIpRangeCmd = defineCommand({
  name: 'dedicatePublicIpRange',
  roles: rootAdminOnly,
  params: refParams('dedicatePublicIpRange', ['id', 'domainid', 'account', 'projectid']),
  async handler(p, ctx) {
    return withNet(ctx, async (n) => {
      const row = await dedicatePublicIpRange(n, p);
      return objectResult('vlan', R((await rangeResponses(n.tx, [row]))[0]!));
    });
  },
});

const releasePublicIpRangeCmd = defineCommand({
  name: 'releasePublicIpRange',
  roles: rootAdminOnly,
  params: refParams('releasePublicIpRange', ['id']),
  async handler(p, ctx) {
    await withNet(ctx, (n) => releasePublicIpRange(n, p));
    return successResult();
  },
});

const dedicateGuestVlanRangeCmd = defineCommand({
  name: 'dedicateGuestVlanRange',
  roles: rootAdminOnly,
  params: refParams('dedicateGuestVlanRange', [
    'vlanrange',
    'physicalnetworkid',
    'account',
    'domainid',
    'projectid',
  ]),
  async handler(p, ctx) {
    return withNet(ctx, async (n) =>
      objectResult(
        'dedicatedguestvlanrange',
        R((await dedicatedVlanResponses(n.tx, [await dedicateGuestVlanRange(n, p)]))[0]!),
      ),
    );
  },
});

const listDedicatedGuestVlanRangesCmd = defineCommand({
  name: 'listDedicatedGuestVlanRanges',
  roles: rootAdminOnly,
  params: refParams('listDedicatedGuestVlanRanges', [
    'id',
    'account',
    'domainid',
    'projectid',
    'guestvlanrange',
    'physicalnetworkid',
    'zoneid',
    'keyword',
    'page',
    'pagesize',
  ]),
  async handler(p, ctx) {
    return readNet(ctx, async (n) => {
      const r = await listDedicatedGuestVlanRanges(n, p);
      return listResult(
        'dedicatedguestvlanrange',
        (await dedicatedVlanResponses(n.tx, r.items)).map(R),
        r.count,
      );
    });
  },
});

const releaseDedicatedGuestVlanRangeCmd = defineCommand({
  name: 'releaseDedicatedGuestVlanRange',
  roles: rootAdminOnly,
  params: refParams('releaseDedicatedGuestVlanRange', ['id']),
  async handler(p, ctx) {
    if (await deletedBeforeRerun(ctx, ['GUEST.VLAN.RANGE.RELEASE'], p.id)) return successResult();
    await withNet(ctx, (n) => releaseDedicatedGuestVlanRange(n, p));
    return successResult();
  },
});

const createGuestNetworkIpv6PrefixCmd = defineCommand({
  name: 'createGuestNetworkIpv6Prefix',
  roles: rootAdminOnly,
  params: refParams('createGuestNetworkIpv6Prefix', ['zoneid', 'prefix']),
  async handler(p, ctx) {
    // Named by the job, so a re-run finds the prefix its earlier run added instead of refusing it as an overlap.
    const uuid = jobScopedUuid(ctx, 'guest-ipv6-prefix');
    return withNet(ctx, async (n) => {
      const row =
        (await n.tx
          .selectFrom('guest_ipv6_prefixes')
          .selectAll()
          .where('uuid', '=', uuid)
          .executeTakeFirst()) ?? (await createGuestNetworkIpv6Prefix(n, { ...p, uuid }));
      return objectResult('guestnetworkipv6prefix', R((await prefixResponses(n.tx, [row]))[0]!));
    });
  },
});

const listGuestNetworkIpv6PrefixesCmd = defineCommand({
  name: 'listGuestNetworkIpv6Prefixes',
  roles: rootAdminOnly,
  params: refParams('listGuestNetworkIpv6Prefixes', ['id', 'zoneid', 'keyword', 'page', 'pagesize']),
  async handler(p, ctx) {
    return readNet(ctx, async (n) => {
      const r = await listGuestNetworkIpv6Prefixes(n, p);
      return listResult('guestnetworkipv6prefix', (await prefixResponses(n.tx, r.items)).map(R), r.count);
    });
  },
});

const deleteGuestNetworkIpv6PrefixCmd = defineCommand({
  name: 'deleteGuestNetworkIpv6Prefix',
  roles: rootAdminOnly,
  params: refParams('deleteGuestNetworkIpv6Prefix', ['id']),
  async handler(p, ctx) {
    if (await deletedBeforeRerun(ctx, ['GUEST.IP6.PREFIX.DELETE'], p.id)) return successResult();
    await withNet(ctx, (n) => deleteGuestNetworkIpv6Prefix(n, p));
    return successResult();
  },
});

export const commands: AnyCommand[] = [
  createZoneCmd,
  listZonesCmd,
  listZonesMetricsCmd,
  updateZoneCmd,
  deleteZoneCmd,
  createPodCmd,
  listPodsCmd,
  createPhysicalNetworkCmd,
  updatePhysicalNetworkCmd,
  listPhysicalNetworksCmd,
  addTrafficTypeCmd,
  listTrafficTypesCmd,
  createVlanIpRangeCmd,
  listVlanIpRangesCmd,
  deleteVlanIpRangeCmd,
  dedicatePublicIpRangeCmd,
  releasePublicIpRangeCmd,
  dedicateGuestVlanRangeCmd,
  listDedicatedGuestVlanRangesCmd,
  releaseDedicatedGuestVlanRangeCmd,
  createGuestNetworkIpv6PrefixCmd,
  listGuestNetworkIpv6PrefixesCmd,
  deleteGuestNetworkIpv6PrefixCmd,
];
