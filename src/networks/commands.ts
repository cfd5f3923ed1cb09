/** Guest networks and VPCs: the API commands. */
import { jobScopedUuid, removedBeforeRerun } from '../api/jobs/rerun.js';
import {
  allRoles,
  defineCommand,
  listResult,
  objectResult,
  refParams,
  successResult,
} from '../api/command.js';
import type { AnyCommand, ResponseObject } from '../api/command.js';
import { readNet, withNet } from '../infrastructure/net-context.js';
import { networkById, vpcById } from './repository.js';
import { createNetwork, deleteNetwork, listNetworks, restartNetwork, updateNetwork } from './service.js';
import { createVpc, deleteVpc, listVpcs, restartVpc, updateVpc } from './vpcs.js';
import { networkResponses, vpcResponses } from './responses.js';

const R = (o: Record<string, unknown>): ResponseObject => o as ResponseObject;

const createNetworkCmd = defineCommand({
  name: 'createNetwork',
  roles: allRoles,
  params: refParams('createNetwork', [
    'name',
    'displaytext',
    'networkofferingid',
    'zoneid',
    'gateway',
    'netmask',
    'startip',
    'endip',
    'networkdomain',
    'account',
    'domainid',
    'projectid',
    'vpcid',
    'aclid',
    'vlan',
    'physicalnetworkid',
    'acltype',
    'dns1',
    'dns2',
    'ip6gateway',
    'ip6cidr',
    'displaynetwork',
    'subdomainaccess',
  ]),
  async handler(p, ctx) {
    return withNet(ctx, async (n) => {
      const row = await createNetwork(n, p);
      return objectResult('network', R((await networkResponses(n.tx, [row]))[0]!));
    });
  },
});

const listNetworksCmd = defineCommand({
  name: 'listNetworks',
  roles: allRoles,
  params: refParams('listNetworks', [
    'id',
    'zoneid',
    'type',
    'vpcid',
    'forvpc',
    'keyword',
    'traffictype',
    'acltype',
    'networkofferingid',
    'physicalnetworkid',
    'issystem',
    'canusefordeploy',
    'restartrequired',
    'vlan',
    'account',
    'domainid',
    'projectid',
    'isrecursive',
    'listall',
    'tags',
    'page',
    'pagesize',
  ]),
  async handler(p, ctx) {
    return readNet(ctx, async (n) => {
      const r = await listNetworks(n, p);
      return listResult('network', (await networkResponses(n.tx, r.items)).map(R), r.count);
    });
  },
});

const updateNetworkCmd = defineCommand({
  name: 'updateNetwork',
  roles: allRoles,
  params: refParams('updateNetwork', [
    'id',
    'name',
    'displaytext',
    'networkdomain',
    'guestvmcidr',
    'dns1',
    'dns2',
    'displaynetwork',
    'forced',
    'changecidr',
  ]),
  jobInstance: (p) => ({ type: 'Network', id: p.id }),
  async handler(p, ctx) {
    return withNet(ctx, async (n) => {
      const row = await updateNetwork(n, p);
      return objectResult('network', R((await networkResponses(n.tx, [row]))[0]!));
    });
  },
});

const deleteNetworkCmd = defineCommand({
  name: 'deleteNetwork',
  roles: allRoles,
  params: refParams('deleteNetwork', ['id', 'forced']),
  jobInstance: (p) => ({ type: 'Network', id: p.id }),
  async handler(p, ctx) {
    if (await removedBeforeRerun(ctx, 'networks', p.id)) return successResult();
    await withNet(ctx, (n) => deleteNetwork(n, p));
    return successResult();
  },
});

const restartNetworkCmd = defineCommand({
  name: 'restartNetwork',
  roles: allRoles,
  params: refParams('restartNetwork', ['id', 'cleanup', 'makeredundant', 'livepatch']),
  jobInstance: (p) => ({ type: 'Network', id: p.id }),
  async handler(p, ctx) {
    await withNet(ctx, (n) => restartNetwork(n, p));
    return successResult();
  },
});

const createVpcCmd = defineCommand({
  name: 'createVPC',
  roles: allRoles,
  params: refParams('createVPC', [
    'name',
    'displaytext',
    'cidr',
    'vpcofferingid',
    'zoneid',
    'networkdomain',
    'account',
    'domainid',
    'projectid',
    'start',
    'dns1',
    'dns2',
    'fordisplay',
  ]),
  async handler(p, ctx) {
    // Named by the job, so a re-run finds the VPC its earlier run created instead of creating a second one.
    const uuid = jobScopedUuid(ctx, 'vpc');
    return withNet(ctx, async (n) => {
      const earlier = await n.tx.selectFrom('vpcs').select('id').where('uuid', '=', uuid).executeTakeFirst();
      const vpc = earlier ?? (await createVpc(n, { ...p, uuid }));
      return objectResult('vpc', R((await vpcResponses(n.tx, [await vpcById(n.tx, vpc.id)]))[0]!));
    });
  },
});

const listVpcsCmd = defineCommand({
  name: 'listVPCs',
  roles: allRoles,
  params: refParams('listVPCs', [
    'id',
    'zoneid',
    'name',
    'cidr',
    'state',
    'keyword',
    'vpcofferingid',
    'restartrequired',
    'account',
    'domainid',
    'projectid',
    'isrecursive',
    'listall',
    'tags',
    'page',
    'pagesize',
  ]),
  async handler(p, ctx) {
    return readNet(ctx, async (n) => {
      const r = await listVpcs(n, p);
      return listResult('vpc', (await vpcResponses(n.tx, r.items)).map(R), r.count);
    });
  },
});

const updateVpcCmd = defineCommand({
  name: 'updateVPC',
  roles: allRoles,
  params: refParams('updateVPC', ['id', 'name', 'displaytext']),
  jobInstance: (p) => ({ type: 'Vpc', id: p.id }),
  async handler(p, ctx) {
    return withNet(ctx, async (n) => {
      const vpc = await updateVpc(n, p);
      return objectResult('vpc', R((await vpcResponses(n.tx, [vpc]))[0]!));
    });
  },
});

const deleteVpcCmd = defineCommand({
  name: 'deleteVPC',
  roles: allRoles,
  params: refParams('deleteVPC', ['id']),
  jobInstance: (p) => ({ type: 'Vpc', id: p.id }),
  async handler(p, ctx) {
    if (await removedBeforeRerun(ctx, 'vpcs', p.id)) return successResult();
    await withNet(ctx, (n) => deleteVpc(n, p));
    return successResult();
  },
});

const restartVpcCmd = defineCommand({
  name: 'restartVPC',
  roles: allRoles,
  params: refParams('restartVPC', ['id', 'cleanup', 'makeredundant', 'livepatch']),
  jobInstance: (p) => ({ type: 'Vpc', id: p.id }),
  async handler(p, ctx) {
    await withNet(ctx, (n) => restartVpc(n, p));
    return successResult();
  },
});

export const commands: AnyCommand[] = [
  createNetworkCmd,
  listNetworksCmd,
  updateNetworkCmd,
  deleteNetworkCmd,
  restartNetworkCmd,
  createVpcCmd,
  listVpcsCmd,
  updateVpcCmd,
  deleteVpcCmd,
  restartVpcCmd,
];

export { networkById };
