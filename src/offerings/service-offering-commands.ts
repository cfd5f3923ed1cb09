/** Service offerings: createServiceOffering, updateServiceOffering, deleteServiceOffering, listServiceOfferings. */
import {
  adminRoles,
  allRoles,
  defineCommand,
  listResult,
  objectResult,
  refParams,
  successResult,
} from '../api/command.js';
import type { AnyCommand, ResponseObject } from '../api/command.js';
import { readNet, withNet } from '../infrastructure/net-context.js';
import {
  createServiceOffering,
  deleteServiceOffering,
  listServiceOfferings,
  serviceOfferingResponse,
  updateServiceOffering,
} from './service-offerings.js';

const R = (o: Record<string, unknown>): ResponseObject => o as ResponseObject;

const createServiceOfferingCmd = defineCommand({
  name: 'createServiceOffering',
  roles: adminRoles,
  params: refParams('createServiceOffering', [
    'name',
    'displaytext',
    'cpunumber',
    'cpuspeed',
    'memory',
    'customized',
    'mincpunumber',
    'maxcpunumber',
    'minmemory',
    'maxmemory',
    'offerha',
    'limitcpuuse',
    'isvolatile',
    'storagetype',
    'provisioningtype',
    'tags',
    'hosttags',
    'issystem',
    'systemvmtype',
    'networkrate',
    'dynamicscalingenabled',
    'domainid',
    'zoneid',
  ]),
  async handler(p, ctx) {
    return withNet(ctx, async (n) =>
      objectResult(
        'serviceoffering',
        R(await serviceOfferingResponse(n.tx, await createServiceOffering(n, p))),
      ),
    );
  },
});

const updateServiceOfferingCmd = defineCommand({
  name: 'updateServiceOffering',
  roles: adminRoles,
  params: refParams('updateServiceOffering', [
    'id',
    'name',
    'displaytext',
    'sortkey',
    'domainid',
    'zoneid',
    'storagetags',
    'hosttags',
  ]),
  async handler(p, ctx) {
    return withNet(ctx, async (n) =>
      objectResult(
        'serviceoffering',
        R(await serviceOfferingResponse(n.tx, await updateServiceOffering(n, p))),
      ),
    );
  },
});

const deleteServiceOfferingCmd = defineCommand({
  name: 'deleteServiceOffering',
  roles: adminRoles,
  params: refParams('deleteServiceOffering', ['id']),
  async handler(p, ctx) {
    await withNet(ctx, (n) => deleteServiceOffering(n, p));
    return successResult();
  },
});

const listServiceOfferingsCmd = defineCommand({
  name: 'listServiceOfferings',
  roles: allRoles,
  params: refParams('listServiceOfferings', [
    'id',
    'name',
    'keyword',
    'issystem',
    'systemvmtype',
    'domainid',
    'isrecursive',
    'zoneid',
    'cpunumber',
    'cpuspeed',
    'memory',
    'virtualmachineid',
    'listall',
    'page',
    'pagesize',
  ]),
  async handler(p, ctx) {
    return readNet(ctx, async (n) => {
      const r = await listServiceOfferings(n, p);
      const items: ResponseObject[] = [];
      for (const o of r.items) items.push(R(await serviceOfferingResponse(n.tx, o)));
      return listResult('serviceoffering', items, r.count);
    });
  },
});

export const commands: AnyCommand[] = [
  createServiceOfferingCmd,
  updateServiceOfferingCmd,
  deleteServiceOfferingCmd,
  listServiceOfferingsCmd,
];
