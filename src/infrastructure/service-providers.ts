/**
 * Network service providers of a physical network (listNetworkServiceProviders, addNetworkServiceProvider,
 * updateNetworkServiceProvider, deleteNetworkServiceProvider, listSupportedNetworkServices): which providers a
 * physical network has, their state, and the services each offers. A network whose offering names a provider
 * that is not Enabled in its physical network is not implemented (requireProviderEnabled), as in CloudStack.
 */
import {
  defineCommand,
  listResult,
  objectResult,
  refParams,
  rootAdminOnly,
  successResult,
} from '../api/command.js';
import type { AnyCommand, ResponseObject } from '../api/command.js';
import { jobScopedUuid } from '../api/jobs/rerun.js';
import { pageArray, pageOf, pageOfQuery } from '../api/list.js';
import { invalidParameter } from '../errors/catalogue.js';
import type { NetTx } from '../networks/tables.js';
import { pageWindow, requireRootAdmin } from './context.js';
import { readNet, withNet } from './net-context.js';
import { physicalNetworkByUuid } from './physical-networks.js';
import { defaultProviders, providerByName } from './provider-catalogue.js';
import { offeringProviders } from './provider-rows.js';
import { serviceNames } from '../offerings/defaults.js';

interface ProviderRow {
  id: number;
  uuid: string;
  physical_network_id: number;
  provider_name: string;
  state: string;
  destination_physical_network_id: number | null;
  services: string;
}

async function findProvider(tx: NetTx, uuid: string): Promise<ProviderRow | undefined> {
  return (await tx
    .selectFrom('network_service_providers')
    .selectAll()
    .where('uuid', '=', uuid)
    .executeTakeFirst()) as ProviderRow | undefined;
}

async function providerByUuid(tx: NetTx, uuid: string): Promise<ProviderRow> {
  const row = await findProvider(tx, uuid);
  if (!row) throw invalidParameter('id', uuid, 'no network service provider has this id');
  return row;
}

async function providerResponse(tx: NetTx, r: ProviderRow): Promise<ResponseObject> {
  const ids = [r.physical_network_id, r.destination_physical_network_id].filter(
    (x): x is number => x !== null,
  );
  const pns = await tx
    .selectFrom('physical_networks')
    .select(['id', 'uuid'])
    .where('id', 'in', ids)
    .execute();
  const uuidOf = (id: number | null) => pns.find((p) => Number(p.id) === Number(id))?.uuid;
  return {
    id: r.uuid,
    name: r.provider_name,
    physicalnetworkid: uuidOf(r.physical_network_id),
    destinationphysicalnetworkid: uuidOf(r.destination_physical_network_id) ?? '0',
    state: r.state,
    canenableindividualservice: true,
    servicelist: r.services === '' ? [] : r.services.split(','),
  };
}

/** Services named in `servicelist`: CloudStack's names, each one the provider can offer. */
function checkServiceList(provider: string, list: string[]): string[] {
  const def = providerByName(provider);
  for (const s of list) {
    const known = serviceNames.find((n) => n.toLowerCase() === s.toLowerCase());
    if (!known)
      throw invalidParameter('servicelist', s, `not a network service (${serviceNames.join(', ')})`);
    if (def && !def.services.includes(known))
      throw invalidParameter('servicelist', s, `${provider} does not provide ${known}`);
  }
  return list.map((s) => serviceNames.find((n) => n.toLowerCase() === s.toLowerCase())!);
}

/** A provider that networks of its physical network still use cannot be disabled or deleted. */
async function networksUsing(tx: NetTx, r: ProviderRow): Promise<number> {
  const rows = await tx
    .selectFrom('networks')
    .innerJoin('network_offerings', 'network_offerings.id', 'networks.offering_id')
    .select(['network_offerings.services'])
    .where('networks.physical_network_id', '=', r.physical_network_id)
    .where('networks.removed', 'is', null)
    .execute();
  return rows.filter((n) => offeringProviders(n.services).includes(r.provider_name)).length;
}

const listNetworkServiceProvidersCmd = defineCommand({
  name: 'listNetworkServiceProviders',
  roles: rootAdminOnly,
  params: refParams('listNetworkServiceProviders', [
    'physicalnetworkid',
    'name',
    'state',
    'keyword',
    'page',
    'pagesize',
  ]),
  async handler(p, ctx) {
    return readNet(ctx, async (n) => {
      requireRootAdmin(n.caller, 'listNetworkServiceProviders');
      let q = n.tx.selectFrom('network_service_providers').selectAll();
      if (p.physicalnetworkid !== undefined)
        q = q.where('physical_network_id', '=', (await physicalNetworkByUuid(n.tx, p.physicalnetworkid)).id);
      if (p.name !== undefined) q = q.where('provider_name', '=', p.name);
      if (p.state !== undefined) q = q.where('state', '=', p.state);
      if (p.keyword !== undefined) q = q.where('provider_name', 'like', `%${p.keyword}%`);
      const { rows, total } = await pageOfQuery(q, pageWindow(p), (x) => x.orderBy('id'));
      const items = [];
      for (const r of rows) items.push(await providerResponse(n.tx, r as ProviderRow));
      return listResult('networkserviceprovider', items, total);
    });
  },
});

const addNetworkServiceProviderCmd = defineCommand({
  name: 'addNetworkServiceProvider',
  roles: rootAdminOnly,
  params: refParams('addNetworkServiceProvider', [
    'physicalnetworkid',
    'name',
    'servicelist',
    'destinationphysicalnetworkid',
  ]),
  async handler(p, ctx) {
    const uuid = jobScopedUuid(ctx, 'network-service-provider');
    return withNet(ctx, async (n) => {
      requireRootAdmin(n.caller, 'addNetworkServiceProvider');
      const again = await findProvider(n.tx, uuid);
      if (again) return objectResult('networkserviceprovider', await providerResponse(n.tx, again));
      const def = providerByName(p.name);
      if (!def)
        throw invalidParameter(
          'name',
          p.name,
          `stacknet has no such provider (${defaultProviders.map((d) => d.name).join(', ')})`,
        );
      const pn = await physicalNetworkByUuid(n.tx, p.physicalnetworkid);
      const dest =
        p.destinationphysicalnetworkid !== undefined
          ? (await physicalNetworkByUuid(n.tx, p.destinationphysicalnetworkid)).id
          : null;
      const exists = await n.tx
        .selectFrom('network_service_providers')
        .select('id')
        .where('physical_network_id', '=', pn.id)
        .where('provider_name', '=', def.name)
        .executeTakeFirst();
      if (exists)
        throw invalidParameter(
          'name',
          p.name,
          `physical network ${pn.name} already has provider ${def.name}`,
        );
      const services = p.servicelist ? checkServiceList(def.name, p.servicelist) : [...def.services];
      await n.tx
        .insertInto('network_service_providers')
        .values({
          uuid,
          physical_network_id: pn.id,
          provider_name: def.name,
          // CloudStack adds a provider Disabled; it is enabled once configured.
          state: 'Disabled',
          destination_physical_network_id: dest,
          services: services.join(','),
          created: n.now,
        })
        .execute();
      await n.recorder.event(n.tx, {
        type: 'SERVICE.PROVIDER.CREATE',
        description: `Added service provider ${def.name} to physical network ${pn.name}`,
        resourceType: 'PhysicalNetworkServiceProvider',
        resourceId: uuid,
        owner: n.caller,
      });
      return objectResult(
        'networkserviceprovider',
        await providerResponse(n.tx, await providerByUuid(n.tx, uuid)),
      );
    });
  },
});

const updateNetworkServiceProviderCmd = defineCommand({
  name: 'updateNetworkServiceProvider',
  roles: rootAdminOnly,
  params: refParams('updateNetworkServiceProvider', ['id', 'state', 'servicelist']),
  jobInstance: (p) => ({ type: 'PhysicalNetworkServiceProvider', id: p.id }),
  async handler(p, ctx) {
    return withNet(ctx, async (n) => {
      requireRootAdmin(n.caller, 'updateNetworkServiceProvider');
      const r = await providerByUuid(n.tx, p.id);
      let state = r.state;
      if (p.state !== undefined) {
        const wanted = ['Enabled', 'Disabled', 'Shutdown'].find(
          (s) => s.toLowerCase() === p.state!.toLowerCase(),
        );
        if (!wanted) throw invalidParameter('state', p.state, 'expected Enabled, Disabled or Shutdown');
        if (wanted === 'Shutdown')
          throw invalidParameter(
            'state',
            p.state,
            'stacknet does not shut a provider down (that would destroy its routers); set Disabled to stop new networks from using it',
          );
        if (wanted === 'Enabled' && r.provider_name === 'InternalLbVm')
          throw invalidParameter(
            'state',
            p.state,
            'the internal LB appliance is not available in stacknet yet',
          );
        if (wanted === 'Disabled' && r.state === 'Enabled') {
          const users = await networksUsing(n.tx, r);
          if (users > 0)
            throw invalidParameter(
              'state',
              p.state,
              `${users} network(s) of this physical network use ${r.provider_name}; delete them or move them to another offering first`,
            );
        }
        state = wanted;
      }
      let services = r.services;
      if (p.servicelist !== undefined) {
        if (r.state === 'Enabled' && state === 'Enabled')
          throw invalidParameter(
            'servicelist',
            p.servicelist.join(','),
            'disable the provider before changing its services',
          );
        services = checkServiceList(r.provider_name, p.servicelist).join(',');
      }
      await n.tx
        .updateTable('network_service_providers')
        .set({ state, services })
        .where('id', '=', r.id)
        .execute();
      await n.recorder.event(n.tx, {
        type: 'SERVICE.PROVIDER.UPDATE',
        description: `Updated service provider ${r.provider_name}: state ${state}`,
        resourceType: 'PhysicalNetworkServiceProvider',
        resourceId: r.uuid,
        owner: n.caller,
      });
      return objectResult(
        'networkserviceprovider',
        await providerResponse(n.tx, await providerByUuid(n.tx, r.uuid)),
      );
    });
  },
});

const deleteNetworkServiceProviderCmd = defineCommand({
  name: 'deleteNetworkServiceProvider',
  roles: rootAdminOnly,
  params: refParams('deleteNetworkServiceProvider', ['id']),
  jobInstance: (p) => ({ type: 'PhysicalNetworkServiceProvider', id: p.id }),
  async handler(p, ctx) {
    return withNet(ctx, async (n) => {
      requireRootAdmin(n.caller, 'deleteNetworkServiceProvider');
      const r = await findProvider(n.tx, p.id);
      // Already gone (a re-run of this job, or a second delete): CloudStack answers success.
      if (!r) return successResult();
      const users = await networksUsing(n.tx, r);
      if (users > 0)
        throw invalidParameter(
          'id',
          p.id,
          `${users} network(s) of this physical network use ${r.provider_name}; delete them first`,
        );
      await n.tx.deleteFrom('network_service_providers').where('id', '=', r.id).execute();
      await n.recorder.event(n.tx, {
        type: 'SERVICE.PROVIDER.DELETE',
        description: `Deleted service provider ${r.provider_name}`,
        resourceType: 'PhysicalNetworkServiceProvider',
        resourceId: r.uuid,
        owner: n.caller,
      });
      return successResult();
    });
  },
});

const listSupportedNetworkServicesCmd = defineCommand({
  name: 'listSupportedNetworkServices',
  roles: rootAdminOnly,
  params: refParams('listSupportedNetworkServices', ['service', 'provider', 'keyword', 'page', 'pagesize']),
  async handler(p, ctx) {
    const page = await pageOf(ctx.store.db, p);
    const providers = p.provider ? defaultProviders.filter((d) => d.name === p.provider) : defaultProviders;
    if (p.provider && providers.length === 0)
      throw invalidParameter('provider', p.provider, 'stacknet has no such provider');
    const items = serviceNames
      .filter((s) => p.service === undefined || s.toLowerCase() === p.service.toLowerCase())
      .filter((s) => p.keyword === undefined || s.toLowerCase().includes(p.keyword.toLowerCase()))
      .map((s) => ({
        name: s,
        provider: providers.filter((d) => d.services.includes(s)).map((d) => ({ name: d.name })),
      }))
      .filter((s) => s.provider.length > 0);
    return listResult('networkservice', pageArray(items, page) as unknown as ResponseObject[], items.length);
  },
});

export const providerCommands: AnyCommand[] = [
  listNetworkServiceProvidersCmd,
  addNetworkServiceProviderCmd,
  updateNetworkServiceProviderCmd,
  deleteNetworkServiceProviderCmd,
  listSupportedNetworkServicesCmd,
];
