/** VPC network ACL lists and items: the API commands (async exactly where CloudStack 4.18's are). */
import { createHash } from 'node:crypto';
import { jobScopedUuid } from '../api/jobs/rerun.js';
import {
  allRoles,
  defineCommand,
  listResult,
  objectResult,
  refParams,
  successResult,
} from '../api/command.js';
import type { AnyCommand } from '../api/command.js';
import { readNet, withNet } from '../infrastructure/net-context.js';
import {
  createAclItem,
  createAclList,
  deleteAclItem,
  deleteAclList,
  listAclItems,
  listAclLists,
  moveAclItem,
  replaceAclList,
  updateAclItem,
  updateAclList,
} from './service.js';
import { aclItemResponses, aclListResponses } from './responses.js';
import { aclDb } from './tables.js';

const md5 = (s: string) => createHash('md5').update(s).digest('hex');

const createNetworkAclListCmd = defineCommand({
  name: 'createNetworkACLList',
  roles: allRoles,
  params: refParams('createNetworkACLList', ['name', 'vpcid', 'description', 'fordisplay']),
  async handler(p, ctx) {
    // Named by the job, so a re-run finds the list its earlier run created.
    const uuid = jobScopedUuid(ctx, 'acl-list');
    return withNet(ctx, async (n) => {
      const earlier = await aclDb(n.tx)
        .selectFrom('network_acl_lists')
        .selectAll()
        .where('uuid', '=', uuid)
        .executeTakeFirst();
      const list = earlier ?? (await createAclList(n, { ...p, uuid }));
      return objectResult('networkacllist', (await aclListResponses(n.tx, [list as never]))[0]!);
    });
  },
});

const deleteNetworkAclListCmd = defineCommand({
  name: 'deleteNetworkACLList',
  roles: allRoles,
  params: refParams('deleteNetworkACLList', ['id']),
  jobInstance: (p) => ({ type: 'NetworkAcl', id: p.id }),
  async handler(p, ctx) {
    await withNet(ctx, (n) => deleteAclList(n, p));
    return successResult();
  },
});

const updateNetworkAclListCmd = defineCommand({
  name: 'updateNetworkACLList',
  roles: allRoles,
  params: refParams('updateNetworkACLList', ['id', 'name', 'description', 'fordisplay']),
  jobInstance: (p) => ({ type: 'NetworkAcl', id: p.id }),
  async handler(p, ctx) {
    await withNet(ctx, (n) => updateAclList(n, p));
    return successResult();
  },
});

const listNetworkAclListsCmd = defineCommand({
  name: 'listNetworkACLLists',
  roles: allRoles,
  params: refParams('listNetworkACLLists', [
    'id',
    'name',
    'vpcid',
    'networkid',
    'keyword',
    'fordisplay',
    'account',
    'domainid',
    'projectid',
    'isrecursive',
    'listall',
    'page',
    'pagesize',
  ]),
  async handler(p, ctx) {
    return readNet(ctx, async (n) => {
      const r = await listAclLists(n, p);
      return listResult('networkacllist', await aclListResponses(n.tx, r.items), r.count);
    });
  },
});

const createNetworkAclCmd = defineCommand({
  name: 'createNetworkACL',
  roles: allRoles,
  params: refParams('createNetworkACL', [
    'aclid',
    'networkid',
    'protocol',
    'startport',
    'endport',
    'icmptype',
    'icmpcode',
    'cidrlist',
    'traffictype',
    'action',
    'number',
    'reason',
    'fordisplay',
  ]),
  async handler(p, ctx) {
    const uuid = jobScopedUuid(ctx, 'acl-item');
    const newListUuid = jobScopedUuid(ctx, 'acl-item-list');
    return withNet(ctx, async (n) => {
      const earlier = await aclDb(n.tx)
        .selectFrom('network_acl_items')
        .selectAll()
        .where('uuid', '=', uuid)
        .executeTakeFirst();
      const item = earlier ?? (await createAclItem(n, { ...p, uuid, newListUuid }));
      return objectResult('networkacl', (await aclItemResponses(n.tx, [item as never]))[0]!);
    });
  },
});

const updateNetworkAclItemCmd = defineCommand({
  name: 'updateNetworkACLItem',
  roles: allRoles,
  params: refParams('updateNetworkACLItem', [
    'id',
    'protocol',
    'startport',
    'endport',
    'icmptype',
    'icmpcode',
    'cidrlist',
    'traffictype',
    'action',
    'number',
    'reason',
    'fordisplay',
    'partialupgrade',
    'customid',
  ]),
  jobInstance: (p) => ({ type: 'NetworkAclItem', id: p.id }),
  async handler(p, ctx) {
    return withNet(ctx, async (n) => {
      const item = await updateAclItem(n, p);
      return objectResult('networkacl', (await aclItemResponses(n.tx, [item]))[0]!);
    });
  },
});

const deleteNetworkAclCmd = defineCommand({
  name: 'deleteNetworkACL',
  roles: allRoles,
  params: refParams('deleteNetworkACL', ['id']),
  jobInstance: (p) => ({ type: 'NetworkAclItem', id: p.id }),
  async handler(p, ctx) {
    await withNet(ctx, (n) => deleteAclItem(n, p));
    return successResult();
  },
});

const moveNetworkAclItemCmd = defineCommand({
  name: 'moveNetworkAclItem',
  roles: allRoles,
  params: refParams('moveNetworkAclItem', [
    'id',
    'previousaclruleid',
    'nextaclruleid',
    'aclconsistencyhash',
    'customid',
  ]),
  jobInstance: (p) => ({ type: 'NetworkAclItem', id: p.id }),
  async handler(p, ctx) {
    return withNet(ctx, async (n) => {
      const item = await moveAclItem(n, p, md5);
      return objectResult('networkacl', (await aclItemResponses(n.tx, [item]))[0]!);
    });
  },
});

const listNetworkAclsCmd = defineCommand({
  name: 'listNetworkACLs',
  roles: allRoles,
  params: refParams('listNetworkACLs', [
    'id',
    'aclid',
    'networkid',
    'traffictype',
    'protocol',
    'action',
    'keyword',
    'fordisplay',
    'tags',
    'account',
    'domainid',
    'projectid',
    'isrecursive',
    'listall',
    'page',
    'pagesize',
  ]),
  async handler(p, ctx) {
    return readNet(ctx, async (n) => {
      const r = await listAclItems(n, p);
      return listResult('networkacl', await aclItemResponses(n.tx, r.items), r.count);
    });
  },
});

const replaceNetworkAclListCmd = defineCommand({
  name: 'replaceNetworkACLList',
  roles: allRoles,
  params: refParams('replaceNetworkACLList', ['aclid', 'networkid', 'gatewayid']),
  jobInstance: (p) => ({ type: 'Network', id: p.networkid }),
  async handler(p, ctx) {
    await withNet(ctx, (n) => replaceAclList(n, p));
    return successResult();
  },
});

export const commands: AnyCommand[] = [
  createNetworkAclListCmd,
  deleteNetworkAclListCmd,
  updateNetworkAclListCmd,
  listNetworkAclListsCmd,
  createNetworkAclCmd,
  updateNetworkAclItemCmd,
  deleteNetworkAclCmd,
  moveNetworkAclItemCmd,
  listNetworkAclsCmd,
  replaceNetworkAclListCmd,
];
