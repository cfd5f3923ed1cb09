/**
 * listHosts, listClusters, listStoragePools, listSystemVms: CloudStack's hypervisor-side inventory. stacknet has
 * no hypervisor hosts, clusters, primary storage or system VMs yet (routers are listed by listRouters), so each
 * answers an empty list the way CloudStack does for a zone without any (`{"listhostsresponse":{}}`), after the
 * same checks of its parameters (types, page/pagesize against default.page.size). Clients such as the
 * CloudStack UI's dashboard call them and need an answer, not an unknown-command error.
 */
import { defineCommand, listResult, objectResult, rootAdminOnly } from '../api/command.js';
import type { AnyCommand, ParamSpecs } from '../api/command.js';
import { pageOf } from '../api/list.js';
import { referenceParamTypes } from '../api/reference/cloudstack-4.18.generated.js';
import { countOpenAlerts } from '../alerts/service.js';
import type { Executor } from '../store/db.js';

function emptyList(name: 'listHosts' | 'listClusters' | 'listStoragePools' | 'listSystemVms', item: string) {
  return defineCommand({
    name,
    roles: rootAdminOnly,
    params: referenceParamTypes[name] as ParamSpecs,
    async handler(p, ctx) {
      await pageOf(ctx.store.db, p);
      return listResult(item, [], 0);
    },
  });
}

async function countLive(db: Executor, table: 'zones' | 'pods' | 'routers'): Promise<number> {
  const r = await db
    .selectFrom(table)
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('removed', 'is', null)
    .executeTakeFirstOrThrow();
  return Number(r.n);
}

/**
 * listInfrastructure: counts for the UI's Infrastructure page. Hypervisor-side objects stacknet does not have are
 * 0; routers are every router not yet expunged, alerts those not archived. stacknet keeps no registry of
 * management servers (they share the database and lease work), so it reports the one answering.
 */
const listInfrastructure = defineCommand({
  name: 'listInfrastructure',
  roles: rootAdminOnly,
  params: {},
  async handler(_p, ctx) {
    const db = ctx.store.db;
    return objectResult('infrastructure', {
      zones: await countLive(db, 'zones'),
      pods: await countLive(db, 'pods'),
      clusters: 0,
      hosts: 0,
      storagepools: 0,
      imagestores: 0,
      systemvms: 0,
      routers: await countLive(db, 'routers'),
      ilbvms: 0,
      managementservers: 1,
      cpusockets: 0,
      alerts: await countOpenAlerts(db),
    });
  },
});

export const commands: AnyCommand[] = [
  listInfrastructure,
  emptyList('listHosts', 'host'),
  emptyList('listClusters', 'cluster'),
  emptyList('listStoragePools', 'storagepool'),
  emptyList('listSystemVms', 'systemvm'),
];
