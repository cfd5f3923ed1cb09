/**
 * listHosts, listClusters, listStoragePools, listSystemVms: CloudStack's hypervisor-side inventory. stacknet has
 * no hypervisor hosts, clusters, primary storage or system VMs yet (routers are listed by listRouters), so each
 * answers an empty list the way CloudStack does for a zone without any (`{"listhostsresponse":{}}`), after the
 * same checks of its parameters (types, page/pagesize against default.page.size). Clients such as the
 * CloudStack UI's dashboard call them and need an answer, not an unknown-command error.
 */
import { defineCommand, listResult, rootAdminOnly } from '../api/command.js';
import type { AnyCommand, ParamSpecs } from '../api/command.js';
import { pageOf } from '../api/list.js';
import { referenceParamTypes } from '../api/reference/cloudstack-4.18.generated.js';

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

export const commands: AnyCommand[] = [
  emptyList('listHosts', 'host'),
  emptyList('listClusters', 'cluster'),
  emptyList('listStoragePools', 'storagepool'),
  emptyList('listSystemVms', 'systemvm'),
];
