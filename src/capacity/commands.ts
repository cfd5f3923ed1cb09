/** listCapacity (network capacity types). */
import { defineCommand, listResult, refParams, rootAdminOnly } from '../api/command.js';
import type { AnyCommand, ResponseObject } from '../api/command.js';
import { readNet } from '../infrastructure/net-context.js';
import { capacityResponse, listCapacity } from './service.js';

const listCapacityCmd = defineCommand({
  name: 'listCapacity',
  roles: rootAdminOnly,
  params: refParams('listCapacity', [
    'zoneid',
    'podid',
    'clusterid',
    'type',
    'fetchlatest',
    'sortby',
    'keyword',
    'page',
    'pagesize',
  ]),
  async handler(p, ctx) {
    return readNet(ctx, async (n) => {
      const r = await listCapacity(n, p);
      return listResult(
        'capacity',
        r.items.map((f) => capacityResponse(f) as ResponseObject),
        r.count,
      );
    });
  },
});

export const commands: AnyCommand[] = [listCapacityCmd];
