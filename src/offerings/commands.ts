/** Offerings and templates: the API commands. */
import {
  allRoles,
  defineCommand,
  listResult,
  objectResult,
  refParams,
  rootAdminOnly,
} from '../api/command.js';
import type { AnyCommand, ResponseObject } from '../api/command.js';
import { readNet, withNet } from '../infrastructure/net-context.js';
import {
  createNetworkOffering,
  listNetworkOfferings,
  listServiceOfferings,
  listTemplates,
  listVpcOfferings,
  networkOfferingResponse,
  serviceOfferingResponse,
  templateResponses,
  vpcOfferingResponse,
} from './service.js';

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
    'keyword',
    'page',
    'pagesize',
  ]),
  async handler(p, ctx) {
    return readNet(ctx, async (n) => {
      const r = await listNetworkOfferings(n, p);
      return listResult(
        'networkoffering',
        r.items.map((o) => R(networkOfferingResponse(o))),
        r.count,
      );
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
    'internetprotocol',
  ]),
  async handler(p, ctx) {
    return withNet(ctx, async (n) =>
      objectResult('networkoffering', R(networkOfferingResponse(await createNetworkOffering(n, p)))),
    );
  },
});

const listVpcOfferingsCmd = defineCommand({
  name: 'listVPCOfferings',
  roles: allRoles,
  params: refParams('listVPCOfferings', ['id', 'name', 'isdefault', 'state', 'keyword', 'page', 'pagesize']),
  async handler(p, ctx) {
    return readNet(ctx, async (n) => {
      const r = await listVpcOfferings(n, p);
      return listResult(
        'vpcoffering',
        r.items.map((o) => R(vpcOfferingResponse(o))),
        r.count,
      );
    });
  },
});

const listServiceOfferingsCmd = defineCommand({
  name: 'listServiceOfferings',
  roles: allRoles,
  params: refParams('listServiceOfferings', ['id', 'name', 'keyword', 'issystem', 'page', 'pagesize']),
  async handler(p, ctx) {
    return readNet(ctx, async (n) => {
      const r = await listServiceOfferings(n, p);
      return listResult(
        'serviceoffering',
        r.items.map((o) => R(serviceOfferingResponse(o))),
        r.count,
      );
    });
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

export const commands: AnyCommand[] = [
  listNetworkOfferingsCmd,
  createNetworkOfferingCmd,
  listVpcOfferingsCmd,
  listServiceOfferingsCmd,
  listTemplatesCmd,
];
