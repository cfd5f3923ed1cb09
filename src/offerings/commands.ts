/** Offerings, templates and OS types: the API commands (service offerings in service-offering-commands.ts). */
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
import { pageArray, pageOf } from '../api/list.js';
import { readNet, withNet } from '../infrastructure/net-context.js';
import {
  createNetworkOffering,
  deleteNetworkOffering,
  listNetworkOfferings,
  networkOfferingResponse,
  updateNetworkOffering,
} from './network-offerings.js';
import { osCategories, osTypes } from './os-types.js';
import { commands as serviceOfferingCommands } from './service-offering-commands.js';
import { commands as diskOfferingCommands } from './disk-offerings.js';
import { listTemplates, registerTemplate, templateResponses } from './templates.js';
import {
  createVpcOffering,
  deleteVpcOffering,
  listVpcOfferings,
  updateVpcOffering,
  vpcOfferingResponse,
} from './vpc-offerings.js';

const R = (o: Record<string, unknown>): ResponseObject => o as ResponseObject;

const listNetworkOfferingsCmd = defineCommand({
  name: 'listNetworkOfferings',
  roles: allRoles,
  params: refParams('listNetworkOfferings', [
    'id',
    'name',
    'displaytext',
    'guestiptype',
    'traffictype',
    'forvpc',
    'isdefault',
    'specifyvlan',
    'specifyipranges',
    'sourcenatsupported',
    'state',
    'availability',
    'supportedservices',
    'networkid',
    'zoneid',
    'domainid',
    'tags',
    'istagged',
    'keyword',
    'page',
    'pagesize',
  ]),
  async handler(p, ctx) {
    return readNet(ctx, async (n) => {
      const r = await listNetworkOfferings(n, p);
      const items: ResponseObject[] = [];
      for (const o of r.items) items.push(R(await networkOfferingResponse(n.tx, o)));
      return listResult('networkoffering', items, r.count);
    });
  },
});

const createNetworkOfferingCmd = defineCommand({
  name: 'createNetworkOffering',
  roles: rootAdminOnly,
  params: refParams('createNetworkOffering', [
    'name',
    'displaytext',
    'guestiptype',
    'traffictype',
    'supportedservices',
    'serviceproviderlist',
    'specifyvlan',
    'specifyipranges',
    'forvpc',
    'ispersistent',
    'conservemode',
    'egressdefaultpolicy',
    'availability',
    'networkrate',
    'tags',
    'enable',
    'domainid',
    'zoneid',
    'maxconnections',
    'keepaliveenabled',
    'internetprotocol',
    'serviceofferingid',
  ]),
  async handler(p, ctx) {
    return withNet(ctx, async (n) =>
      objectResult(
        'networkoffering',
        R(await networkOfferingResponse(n.tx, await createNetworkOffering(n, p))),
      ),
    );
  },
});

const updateNetworkOfferingCmd = defineCommand({
  name: 'updateNetworkOffering',
  roles: rootAdminOnly,
  params: refParams('updateNetworkOffering', [
    'id',
    'name',
    'displaytext',
    'availability',
    'state',
    'sortkey',
    'tags',
    'maxconnections',
    'keepaliveenabled',
    'domainid',
    'zoneid',
  ]),
  async handler(p, ctx) {
    return withNet(ctx, async (n) =>
      objectResult(
        'networkoffering',
        R(await networkOfferingResponse(n.tx, await updateNetworkOffering(n, p))),
      ),
    );
  },
});

const deleteNetworkOfferingCmd = defineCommand({
  name: 'deleteNetworkOffering',
  roles: rootAdminOnly,
  params: refParams('deleteNetworkOffering', ['id']),
  async handler(p, ctx) {
    await withNet(ctx, (n) => deleteNetworkOffering(n, p));
    return successResult();
  },
});

const listVpcOfferingsCmd = defineCommand({
  name: 'listVPCOfferings',
  roles: allRoles,
  params: refParams('listVPCOfferings', [
    'id',
    'name',
    'displaytext',
    'isdefault',
    'state',
    'supportedservices',
    'domainid',
    'zoneid',
    'keyword',
    'page',
    'pagesize',
  ]),
  async handler(p, ctx) {
    return readNet(ctx, async (n) => {
      const r = await listVpcOfferings(n, p);
      const items: ResponseObject[] = [];
      for (const o of r.items) items.push(R(await vpcOfferingResponse(n.tx, o)));
      return listResult('vpcoffering', items, r.count);
    });
  },
});

const createVpcOfferingCmd = defineCommand({
  name: 'createVPCOffering',
  roles: rootAdminOnly,
  params: refParams('createVPCOffering', [
    'name',
    'displaytext',
    'supportedservices',
    'serviceproviderlist',
    'serviceofferingid',
    'internetprotocol',
    'domainid',
    'zoneid',
    'enable',
  ]),
  async handler(p, ctx) {
    return withNet(ctx, async (n) =>
      objectResult('vpcoffering', R(await vpcOfferingResponse(n.tx, await createVpcOffering(n, p)))),
    );
  },
});

const updateVpcOfferingCmd = defineCommand({
  name: 'updateVPCOffering',
  roles: rootAdminOnly,
  params: refParams('updateVPCOffering', [
    'id',
    'name',
    'displaytext',
    'sortkey',
    'state',
    'domainid',
    'zoneid',
  ]),
  jobInstance: (p) => ({ type: 'VpcOffering', id: p.id }),
  async handler(p, ctx) {
    return withNet(ctx, async (n) =>
      objectResult('vpcoffering', R(await vpcOfferingResponse(n.tx, await updateVpcOffering(n, p)))),
    );
  },
});

const deleteVpcOfferingCmd = defineCommand({
  name: 'deleteVPCOffering',
  roles: rootAdminOnly,
  params: refParams('deleteVPCOffering', ['id']),
  jobInstance: (p) => ({ type: 'VpcOffering', id: p.id }),
  async handler(p, ctx) {
    await withNet(ctx, (n) => deleteVpcOffering(n, p));
    return successResult();
  },
});

const listTemplatesCmd = defineCommand({
  name: 'listTemplates',
  roles: allRoles,
  params: refParams('listTemplates', [
    'templatefilter',
    'id',
    'name',
    'keyword',
    'zoneid',
    'hypervisor',
    'page',
    'pagesize',
  ]),
  async handler(p, ctx) {
    return readNet(ctx, async (n) => {
      const r = await listTemplates(n, p);
      const items = await templateResponses(n, r.items, p.zoneid);
      return listResult('template', items.map(R), items.length);
    });
  },
});

const registerTemplateCmd = defineCommand({
  name: 'registerTemplate',
  roles: rootAdminOnly,
  params: refParams('registerTemplate', [
    'name',
    'displaytext',
    'url',
    'format',
    'hypervisor',
    'checksum',
    'ostypeid',
    'passwordenabled',
    'ispublic',
    'isfeatured',
    'zoneid',
  ]),
  async handler(p, ctx) {
    return withNet(ctx, async (n) => {
      const items = await templateResponses(n, [await registerTemplate(n, p)], p.zoneid);
      return listResult('template', items.map(R), items.length);
    });
  },
});

const contains = (text: string, keyword: string) => text.toLowerCase().includes(keyword.toLowerCase());

const listOsTypesCmd = defineCommand({
  name: 'listOsTypes',
  roles: allRoles,
  params: refParams('listOsTypes', ['id', 'oscategoryid', 'description', 'keyword', 'page', 'pagesize']),
  async handler(p, ctx) {
    const found = osTypes.filter(
      (t) =>
        (p.id === undefined || t.id === p.id) &&
        (p.oscategoryid === undefined || t.categoryId === p.oscategoryid) &&
        (p.description === undefined || t.description.toLowerCase() === p.description.toLowerCase()) &&
        (p.keyword === undefined || contains(t.description, p.keyword)),
    );
    const page = pageArray(found, await pageOf(ctx.store.db, p));
    return listResult(
      'ostype',
      page.map((t) => ({
        id: t.id,
        description: t.description,
        name: t.description,
        oscategoryid: t.categoryId,
        oscategoryname: t.categoryName,
        isuserdefined: false,
        fordisplay: true,
      })),
      found.length,
    );
  },
});

const listOsCategoriesCmd = defineCommand({
  name: 'listOsCategories',
  roles: allRoles,
  params: refParams('listOsCategories', ['id', 'name', 'keyword', 'page', 'pagesize']),
  async handler(p, ctx) {
    const found = osCategories.filter(
      (c) =>
        (p.id === undefined || c.id === p.id) &&
        (p.name === undefined || c.name.toLowerCase() === p.name.toLowerCase()) &&
        (p.keyword === undefined || contains(c.name, p.keyword)),
    );
    const page = pageArray(found, await pageOf(ctx.store.db, p));
    return listResult(
      'oscategory',
      page.map((c) => ({ id: c.id, name: c.name })),
      found.length,
    );
  },
});

export const commands: AnyCommand[] = [
  listNetworkOfferingsCmd,
  createNetworkOfferingCmd,
  updateNetworkOfferingCmd,
  deleteNetworkOfferingCmd,
  listVpcOfferingsCmd,
  createVpcOfferingCmd,
  updateVpcOfferingCmd,
  deleteVpcOfferingCmd,
  listTemplatesCmd,
  registerTemplateCmd,
  listOsTypesCmd,
  listOsCategoriesCmd,
  ...serviceOfferingCommands,
  ...diskOfferingCommands,
];
