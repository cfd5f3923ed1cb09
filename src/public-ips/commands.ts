/** Public and portable IPs: the API commands. */
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
import { changedBeforeRerun, deletedBeforeRerun, jobScopedUuid } from '../api/jobs/rerun.js';
import { readNet, withNet, withNetResult } from '../infrastructure/net-context.js';
import type { NetCtx } from '../infrastructure/context.js';
import { resolveOwner } from '../infrastructure/owners.js';
import { zoneById, zoneByUuid } from '../infrastructure/zones.js';
import { networkForCaller } from '../networks/service.js';
import { vpcByUuid } from '../networks/repository.js';
import { ipResponses, listPublicIpAddresses } from './list.js';
import {
  createPortableIpRange,
  deletePortableIpRange,
  listPortableIpRanges,
  portableRangeByUuid,
  portableRangeResponse,
} from './portable-ranges.js';
import {
  abandonAllocating,
  associateIpAddress,
  completeAssociate,
  disassociateIpAddress,
} from './associate.js';
import type { AssociateDeps } from './associate.js';
import { releaseIpAddress, reserveIpAddress } from './reserve.js';
import { knownOwners } from './service.js';
import { disableStaticNat, enableStaticNat } from './static-nat.js';
import type { IpRow } from './service.js';

const R = (o: Record<string, unknown>): ResponseObject => o as ResponseObject;

const deps = (n: NetCtx): AssociateDeps => ({
  resolveOwner: (p) => resolveOwner(n.tx, n.caller, p),
  network: (uuid) => networkForCaller(n, uuid, 'networkid', false),
  vpc: (uuid) => vpcByUuid(n.tx, uuid),
  zone: (uuid) => zoneByUuid(n.tx, uuid),
  zoneById: (id) => zoneById(n.tx, id),
});

const ipResult = async (n: NetCtx, row: IpRow) =>
  objectResult('ipaddress', R((await ipResponses(n.tx, [{ row, owner: knownOwners.get(row) }]))[0]!));

const associateIpAddressCmd = defineCommand({
  name: 'associateIpAddress',
  roles: allRoles,
  params: refParams('associateIpAddress', [
    'zoneid',
    'networkid',
    'vpcid',
    'ipaddress',
    'isportable',
    'regionid',
    'account',
    'domainid',
    'projectid',
    'fordisplay',
  ]),
  // CloudStack's AssociateIPAddrCmd is a BaseAsyncCreateCmd: create() takes the address at request time, so a
  // refusal (431/531/532) or an exhausted zone (533, zone uuid in uuidList) is answered at once, and the job
  // confirms the association.
  // The request's first statement (the zone and its ranges) confirms a remembered caller (caller-check.ts).
  foldsCallerCheck: true,
  // Its job only confirms the held address (a change, its event and usage record): database work alone.
  completesInline: true,
  async prepare(p, ctx) {
    const row = await withNet(ctx, (n) =>
      associateIpAddress(n, p, deps(n), { hold: true, inline: ctx.inline, callerCheck: ctx.callerCheck }),
    );
    return { id: row.uuid!, instanceType: 'IpAddress' };
  },
  async handler(p, ctx) {
    if (!ctx.prepared) return withNet(ctx, async (n) => ipResult(n, await associateIpAddress(n, p, deps(n))));
    const id = ctx.prepared.id;
    try {
      return await withNetResult(ctx, async (n) => ipResult(n, await completeAssociate(n, id, p, deps(n))));
    } catch (e) {
      await withNet(ctx, (n) => abandonAllocating(n, id)).catch(() => undefined);
      throw e;
    }
  },
});

const disassociateIpAddressCmd = defineCommand({
  name: 'disassociateIpAddress',
  roles: allRoles,
  params: refParams('disassociateIpAddress', ['id']),
  // Database work only: withNet's services see the transaction, never the store, and the routers learn of the
  // change by the generation it bumps (its re-run check reads only on a re-run).
  completesInline: true,
  jobInstance: (p) => ({ type: 'IpAddress', id: p.id }),
  async handler(p, ctx) {
    // A re-run whose earlier run released the address (the row is gone) has nothing left to do.
    if (await deletedBeforeRerun(ctx, ['NET.IPRELEASE', 'PORTABLE.IPRELEASE'], p.id)) return successResult();
    await withNet(ctx, (n) => disassociateIpAddress(n, p));
    return successResult();
  },
});

const listPublicIpAddressesCmd = defineCommand({
  name: 'listPublicIpAddresses',
  roles: allRoles,
  params: refParams('listPublicIpAddresses', [
    'id',
    'ipaddress',
    'zoneid',
    'networkid',
    'associatednetworkid',
    'vpcid',
    'vlanid',
    'physicalnetworkid',
    'state',
    'allocatedonly',
    'forvirtualnetwork',
    'issourcenat',
    'isstaticnat',
    'forloadbalancing',
    'keyword',
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
      const r = await listPublicIpAddresses(n, p);
      return listResult('publicipaddress', (await ipResponses(n.tx, r.items)).map(R), r.count);
    });
  },
});

const reserveIpAddressCmd = defineCommand({
  name: 'reserveIpAddress',
  roles: allRoles,
  params: refParams('reserveIpAddress', ['id', 'account', 'domainid', 'projectid', 'fordisplay']),
  async handler(p, ctx) {
    return withNet(ctx, async (n) => ipResult(n, await reserveIpAddress(n, p, deps(n))));
  },
});

const releaseIpAddressCmd = defineCommand({
  name: 'releaseIpAddress',
  roles: allRoles,
  params: refParams('releaseIpAddress', ['id']),
  async handler(p, ctx) {
    await withNet(ctx, (n) => releaseIpAddress(n, p));
    return successResult();
  },
});

const enableStaticNatCmd = defineCommand({
  name: 'enableStaticNat',
  roles: allRoles,
  params: refParams('enableStaticNat', ['ipaddressid', 'virtualmachineid', 'networkid', 'vmguestip']),
  async handler(p, ctx) {
    await withNet(ctx, (n) => enableStaticNat(n, p, deps(n)));
    return successResult();
  },
});

const disableStaticNatCmd = defineCommand({
  name: 'disableStaticNat',
  roles: allRoles,
  params: refParams('disableStaticNat', ['ipaddressid']),
  // As disassociateIpAddress: database work only.
  completesInline: true,
  jobInstance: (p) => ({ type: 'IpAddress', id: p.ipaddressid }),
  async handler(p, ctx) {
    // The address keeps no trace of who turned static NAT off: the event its earlier run committed does.
    if (await changedBeforeRerun(ctx, ['STATICNAT.DISABLE'], p.ipaddressid)) return successResult();
    await withNet(ctx, (n) => disableStaticNat(n, p));
    return successResult();
  },
});

const createPortableIpRangeCmd = defineCommand({
  name: 'createPortableIpRange',
  roles: rootAdminOnly,
  params: refParams('createPortableIpRange', ['regionid', 'startip', 'endip', 'gateway', 'netmask', 'vlan']),
  // As disassociateIpAddress: database work only (its uuid from ctx.jobId, which an inline run has).
  completesInline: true,
  async handler(p, ctx) {
    // Named by the job, so a re-run finds the range its earlier run created instead of overlapping it.
    const uuid = jobScopedUuid(ctx, 'portable-range');
    return withNet(ctx, async (n) => {
      const range =
        (await portableRangeByUuid(n.tx, uuid)) ?? (await createPortableIpRange(n, { ...p, uuid }));
      return objectResult('portableiprange', R(await portableRangeResponse(n.tx, range)));
    });
  },
});

const listPortableIpRangesCmd = defineCommand({
  name: 'listPortableIpRanges',
  roles: rootAdminOnly,
  params: refParams('listPortableIpRanges', ['id', 'regionid', 'keyword', 'page', 'pagesize']),
  async handler(p, ctx) {
    return readNet(ctx, async (n) => {
      const r = await listPortableIpRanges(n, p);
      const items = [];
      for (const row of r.items) items.push(R(await portableRangeResponse(n.tx, row)));
      return listResult('portableiprange', items, r.count);
    });
  },
});

const deletePortableIpRangeCmd = defineCommand({
  name: 'deletePortableIpRange',
  roles: rootAdminOnly,
  params: refParams('deletePortableIpRange', ['id']),
  // As disassociateIpAddress: database work only.
  completesInline: true,
  async handler(p, ctx) {
    if (await deletedBeforeRerun(ctx, ['PORTABLE.IP.RANGE.DELETE'], p.id)) return successResult();
    await withNet(ctx, (n) => deletePortableIpRange(n, p));
    return successResult();
  },
});

export const commands: AnyCommand[] = [
  associateIpAddressCmd,
  disassociateIpAddressCmd,
  listPublicIpAddressesCmd,
  reserveIpAddressCmd,
  releaseIpAddressCmd,
  enableStaticNatCmd,
  disableStaticNatCmd,
  createPortableIpRangeCmd,
  listPortableIpRangesCmd,
  deletePortableIpRangeCmd,
];
