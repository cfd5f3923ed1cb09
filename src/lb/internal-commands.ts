/**
 * Internal load balancing (CloudStack's names, params and responses): createLoadBalancer, deleteLoadBalancer,
 * updateLoadBalancer, listLoadBalancers (scheme Internal) and the appliance's listInternalLoadBalancerVMs,
 * startInternalLoadBalancerVM, stopInternalLoadBalancerVM (router-shaped answers, `internalloadbalancervm`).
 */
import {
  adminRoles,
  allRoles,
  defineCommand,
  listResult,
  objectResult,
  refParams,
  successResult,
} from '../api/command.js';
import type { AnyCommand, CommandContext, CommandResult } from '../api/command.js';
import { changedBeforeRerun, jobAttempt } from '../api/jobs/rerun.js';
import { ownerById } from '../infrastructure/owners.js';
import { readNet, withNet } from '../infrastructure/net-context.js';
import type { NetCtx } from '../infrastructure/context.js';
import { waitRuleApplied } from '../rules/commands.js';
import { ruleByUuid } from '../rules/repository.js';
import {
  converged,
  idOf,
  routerForCaller,
  routerListQuery,
  routerListResult,
  routerResponse,
  waitFor,
} from '../routers/commands.js';
import { bumpRouter } from '../routers/repository.js';
import type { RouterRow } from '../routers/repository.js';
import { lbByUuid } from './repository.js';
import {
  createInternalLoadBalancer,
  deleteInternalLoadBalancer,
  internalLbResponses,
  listInternalLoadBalancers,
  updateInternalLoadBalancer,
} from './internal.js';

/** The job's answer once the tier's routers and the appliance took the rule (or the wait ran out: state Add). */
async function internalLbResult(ctx: CommandContext, uuid: string): Promise<CommandResult> {
  await waitRuleApplied(ctx, uuid);
  return readNet(ctx, async (n) =>
    objectResult('loadbalancer', (await internalLbResponses(n, [(await lbByUuid(n.tx, uuid))!]))[0]!),
  );
}

const createLoadBalancer = defineCommand({
  name: 'createLoadBalancer',
  roles: allRoles,
  params: refParams('createLoadBalancer', [
    'name',
    'description',
    'scheme',
    'sourceipaddressnetworkid',
    'sourceipaddress',
    'networkid',
    'sourceport',
    'instanceport',
    'algorithm',
    'fordisplay',
  ]),
  // BaseAsyncCreateCmd: checked and written at request time (refusals are the HTTP answer), the job waits.
  async prepare(p, ctx) {
    const row = await withNet(ctx, (n) => createInternalLoadBalancer(n, p));
    return { id: row.uuid, instanceType: 'LoadBalancerRule' };
  },
  async handler(p, ctx) {
    const uuid = ctx.prepared
      ? ctx.prepared.id
      : (await withNet(ctx, (n) => createInternalLoadBalancer(n, p))).uuid;
    return internalLbResult(ctx, uuid);
  },
});

const deleteLoadBalancer = defineCommand({
  name: 'deleteLoadBalancer',
  roles: allRoles,
  params: refParams('deleteLoadBalancer', ['id']),
  jobInstance: (p) => ({ type: 'LoadBalancerRule', id: p.id }),
  async handler(p, ctx) {
    if (jobAttempt(ctx) > 1) {
      const row = await readNet(ctx, (n) => ruleByUuid(n.tx, p.id));
      if (row?.removed != null) return successResult();
    }
    await withNet(ctx, (n) => deleteInternalLoadBalancer(n, p.id));
    return successResult();
  },
});

const updateLoadBalancer = defineCommand({
  name: 'updateLoadBalancer',
  roles: allRoles,
  params: refParams('updateLoadBalancer', ['id', 'customid', 'fordisplay']),
  jobInstance: (p) => ({ type: 'LoadBalancerRule', id: p.id }),
  async handler(p, ctx) {
    if (await changedBeforeRerun(ctx, ['LB.UPDATE'], p.id)) {
      const moved = await readNet(ctx, (n) => lbByUuid(n.tx, p.customid ?? p.id));
      return internalLbResult(ctx, moved ? (p.customid ?? p.id) : p.id);
    }
    const row = await withNet(ctx, (n) => updateInternalLoadBalancer(n, p));
    return internalLbResult(ctx, row.uuid);
  },
});

const listLoadBalancers = defineCommand({
  name: 'listLoadBalancers',
  roles: allRoles,
  params: refParams('listLoadBalancers', [
    'id',
    'name',
    'sourceipaddress',
    'sourceipaddressnetworkid',
    'networkid',
    'scheme',
    'fordisplay',
    'keyword',
    'account',
    'domainid',
    'isrecursive',
    'listall',
    'tags',
    'page',
    'pagesize',
  ]),
  async handler(p, ctx) {
    return readNet(ctx, async (n) => {
      const r = await listInternalLoadBalancers(n, p);
      return listResult('loadbalancer', await internalLbResponses(n, r.items), r.count);
    });
  },
});

const listInternalLoadBalancerVMs = defineCommand({
  name: 'listInternalLoadBalancerVMs',
  roles: adminRoles,
  params: refParams('listInternalLoadBalancerVMs', [
    'id',
    'name',
    'state',
    'zoneid',
    'networkid',
    'vpcid',
    'forvpc',
    'keyword',
    'listall',
    'page',
    'pagesize',
    'fetchhealthcheckresults',
  ]),
  async handler(p, ctx) {
    const ex = ctx.store.db;
    let q = await routerListQuery(ex, ctx.caller, p, { appliances: true });
    // Every appliance is in a VPC tier: forvpc=false finds none.
    if (p.forvpc === false) q = q.where('routers.id', '=', -1);
    if (p.vpcid !== undefined) {
      const vpc = await idOf(ex, 'vpcs', p.vpcid);
      q = q.where(
        'routers.network_id',
        'in',
        ex.selectFrom('networks').select('id').where('vpc_id', '=', vpc),
      );
    }
    return routerListResult(ex, q, p, 'internalloadbalancervm');
  },
});

async function applianceEvent(n: NetCtx, r: RouterRow, type: 'INTERNALLBVM.START' | 'INTERNALLBVM.STOP') {
  if (r.account_id === null) return;
  await n.recorder.event(n.tx, {
    type,
    description: `Internal LB VM ${r.name} ${type === 'INTERNALLBVM.START' ? 'started' : 'stopped'}`,
    resourceType: 'InternalLbVm',
    resourceId: r.uuid,
    resourceName: r.name,
    owner: await ownerById(n.tx, Number(r.account_id)),
  });
}

/** start: Starting and a bump; the reconciler plugs the appliance back in and pushes its rules from the database. */
const startInternalLoadBalancerVM = defineCommand({
  name: 'startInternalLoadBalancerVM',
  roles: adminRoles,
  params: refParams('startInternalLoadBalancerVM', ['id']),
  jobInstance: (p) => ({ type: 'InternalLbVm', id: p.id }),
  async handler(p, ctx) {
    const r = await routerForCaller(ctx, p.id, 'id', false, true);
    await withNet(ctx, async (n) => {
      await n.tx.updateTable('routers').set({ state: 'Starting' }).where('id', '=', r.id).execute();
      await bumpRouter(n.tx as never, Number(r.id));
      await applianceEvent(n, r, 'INTERNALLBVM.START');
    });
    const done = await waitFor(ctx, Number(r.id), converged);
    return objectResult('internalloadbalancervm', await routerResponse(ctx.store.db, done));
  },
});

const stopInternalLoadBalancerVM = defineCommand({
  name: 'stopInternalLoadBalancerVM',
  roles: adminRoles,
  params: refParams('stopInternalLoadBalancerVM', ['id', 'forced']),
  jobInstance: (p) => ({ type: 'InternalLbVm', id: p.id }),
  async handler(p, ctx) {
    const r = await routerForCaller(ctx, p.id, 'id', false, true);
    await withNet(ctx, async (n) => {
      await n.tx.updateTable('routers').set({ state: 'Stopping' }).where('id', '=', r.id).execute();
      await applianceEvent(n, r, 'INTERNALLBVM.STOP');
    });
    const done = await waitFor(ctx, Number(r.id), (x) => x.state === 'Stopped');
    return objectResult('internalloadbalancervm', await routerResponse(ctx.store.db, done));
  },
});

export const commands: AnyCommand[] = [
  createLoadBalancer,
  deleteLoadBalancer,
  updateLoadBalancer,
  listLoadBalancers,
  listInternalLoadBalancerVMs,
  startInternalLoadBalancerVM,
  stopInternalLoadBalancerVM,
];
