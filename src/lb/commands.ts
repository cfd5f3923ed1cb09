/** Load balancer rules, members and policies: the API commands (CloudStack's names, params and responses). */
import {
  allRoles,
  defineCommand,
  listResult,
  objectResult,
  refParams,
  successResult,
} from '../api/command.js';
import type { AnyCommand, CommandContext, CommandResult } from '../api/command.js';
import { changedBeforeRerun, deletedBeforeRerun, jobAttempt } from '../api/jobs/rerun.js';
import { readNet, withNet } from '../infrastructure/net-context.js';
import { waitRuleApplied } from '../rules/commands.js';
import { ruleByUuid } from '../rules/repository.js';
import { lbByUuid } from './repository.js';
import type { PolicyRow } from './repository.js';
import {
  assignToLoadBalancerRule,
  createLoadBalancerRule,
  deleteLoadBalancerRule,
  listLoadBalancerRules,
  removeFromLoadBalancerRule,
  updateLoadBalancerRule,
} from './service.js';
import {
  createHealthCheckPolicy,
  createStickinessPolicy,
  deletePolicy,
  policiesRule,
  policyByUuid,
} from './policies.js';
import { instanceResponses, lbResponses, listLbInstances, policyResponse } from './responses.js';

/** The job's answer once the routers took the rule (or the wait ran out: the rule stays Add, see src/rules). */
async function lbResult(ctx: CommandContext, uuid: string): Promise<CommandResult> {
  await waitRuleApplied(ctx, uuid);
  return readNet(ctx, async (n) =>
    objectResult('loadbalancer', (await lbResponses(n, [(await lbByUuid(n.tx, uuid))!]))[0]!),
  );
}

const createLb = defineCommand({
  name: 'createLoadBalancerRule',
  roles: allRoles,
  params: refParams('createLoadBalancerRule', [
    'publicipid',
    'networkid',
    'zoneid',
    'name',
    'description',
    'algorithm',
    'publicport',
    'privateport',
    'protocol',
    'openfirewall',
    'cidrlist',
    'account',
    'domainid',
    'fordisplay',
  ]),
  // BaseAsyncCreateCmd: checked and written at request time (refusals are the HTTP answer), the job waits.
  async prepare(p, ctx) {
    const row = await withNet(ctx, (n) => createLoadBalancerRule(n, p));
    return { id: row.uuid, instanceType: 'LoadBalancerRule' };
  },
  async handler(p, ctx) {
    const uuid = ctx.prepared
      ? ctx.prepared.id
      : (await withNet(ctx, (n) => createLoadBalancerRule(n, p))).uuid;
    return lbResult(ctx, uuid);
  },
});

const updateLb = defineCommand({
  name: 'updateLoadBalancerRule',
  roles: allRoles,
  params: refParams('updateLoadBalancerRule', [
    'id',
    'name',
    'description',
    'algorithm',
    'protocol',
    'customid',
    'fordisplay',
  ]),
  jobInstance: (p) => ({ type: 'LoadBalancerRule', id: p.id }),
  async handler(p, ctx) {
    if (await changedBeforeRerun(ctx, ['LB.UPDATE'], p.id))
      return lbResult(
        ctx,
        (await readNet(ctx, (n) => lbByUuid(n.tx, p.customid ?? p.id))) ? (p.customid ?? p.id) : p.id,
      );
    const row = await withNet(ctx, (n) => updateLoadBalancerRule(n, p));
    return lbResult(ctx, row.uuid);
  },
});

const deleteLb = defineCommand({
  name: 'deleteLoadBalancerRule',
  roles: allRoles,
  params: refParams('deleteLoadBalancerRule', ['id']),
  jobInstance: (p) => ({ type: 'LoadBalancerRule', id: p.id }),
  async handler(p, ctx) {
    if (jobAttempt(ctx) > 1) {
      const row = await readNet(ctx, (n) => ruleByUuid(n.tx, p.id));
      if (row?.removed != null) return successResult();
    }
    await withNet(ctx, (n) => deleteLoadBalancerRule(n, p.id));
    return successResult();
  },
});

const listLb = defineCommand({
  name: 'listLoadBalancerRules',
  roles: allRoles,
  params: refParams('listLoadBalancerRules', [
    'id',
    'name',
    'publicipid',
    'networkid',
    'virtualmachineid',
    'zoneid',
    'fordisplay',
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
      const r = await listLoadBalancerRules(n, p);
      return listResult('loadbalancerrule', await lbResponses(n, r.items), r.count);
    });
  },
});

function membersCommand(name: 'assignToLoadBalancerRule' | 'removeFromLoadBalancerRule'): AnyCommand {
  const event = name === 'assignToLoadBalancerRule' ? 'LB.ASSIGN.TO.RULE' : 'LB.REMOVE.FROM.RULE';
  const change = name === 'assignToLoadBalancerRule' ? assignToLoadBalancerRule : removeFromLoadBalancerRule;
  return defineCommand({
    name,
    roles: allRoles,
    params: refParams(name, ['id', 'virtualmachineids', 'vmidipmap']),
    jobInstance: (p) => ({ type: 'LoadBalancerRule', id: p.id }),
    async handler(p, ctx) {
      // The event is written with the change: a re-run whose earlier run committed only waits again.
      if (!(await changedBeforeRerun(ctx, [event], p.id))) await withNet(ctx, (n) => change(n, p));
      await waitRuleApplied(ctx, p.id);
      return successResult();
    },
  });
}

const listInstances = defineCommand({
  name: 'listLoadBalancerRuleInstances',
  roles: allRoles,
  params: refParams('listLoadBalancerRuleInstances', [
    'id',
    'applied',
    'lbvmips',
    'keyword',
    'page',
    'pagesize',
  ]),
  async handler(p, ctx) {
    return readNet(ctx, async (n) => {
      const r = await listLbInstances(n, p);
      const lbvmips = p.lbvmips === true;
      // CloudStack: the VMs as `loadbalancerruleinstance`; with lbvmips each VM and its addresses as `lbrulevmidip`.
      return listResult(
        lbvmips ? 'lbrulevmidip' : 'loadbalancerruleinstance',
        await instanceResponses(n, r.items, lbvmips),
        r.count,
      );
    });
  },
});

const responseNameOf = (k: PolicyRow['kind']) =>
  k === 'Stickiness' ? 'stickinesspolicies' : 'healthcheckpolicies';

function createPolicyCommand(name: 'createLBStickinessPolicy' | 'createLBHealthCheckPolicy'): AnyCommand {
  const kind: PolicyRow['kind'] = name === 'createLBStickinessPolicy' ? 'Stickiness' : 'HealthCheck';
  const params =
    name === 'createLBStickinessPolicy'
      ? refParams(name, ['lbruleid', 'name', 'methodname', 'description', 'param', 'fordisplay'])
      : refParams(name, [
          'lbruleid',
          'pingpath',
          'description',
          'responsetimeout',
          'intervaltime',
          'healthythreshold',
          'unhealthythreshold',
          'fordisplay',
        ]);
  const create = (n: Parameters<typeof createStickinessPolicy>[0], p: never) =>
    kind === 'Stickiness' ? createStickinessPolicy(n, p) : createHealthCheckPolicy(n, p);
  return defineCommand({
    name,
    roles: allRoles,
    params,
    async prepare(p, ctx) {
      const row = await withNet(ctx, (n) => create(n, p as never));
      return {
        id: row.uuid,
        instanceType: name === 'createLBStickinessPolicy' ? 'LBStickinessPolicy' : 'LBHealthCheckPolicy',
      };
    },
    async handler(p, ctx) {
      const uuid = ctx.prepared ? ctx.prepared.id : (await withNet(ctx, (n) => create(n, p as never))).uuid;
      const ruleUuid = (p as unknown as { lbruleid: string }).lbruleid;
      await waitRuleApplied(ctx, ruleUuid);
      return readNet(ctx, async (n) => {
        const pol = await policyByUuid(n, uuid);
        const rule = (await lbByUuid(n.tx, ruleUuid))!;
        return objectResult(responseNameOf(kind), await policyResponse(n, rule, kind, pol));
      });
    },
  });
}

function deletePolicyCommand(name: 'deleteLBStickinessPolicy' | 'deleteLBHealthCheckPolicy'): AnyCommand {
  const kind: PolicyRow['kind'] = name === 'deleteLBStickinessPolicy' ? 'Stickiness' : 'HealthCheck';
  const event = kind === 'Stickiness' ? 'LB.STICKINESSPOLICY.DELETE' : 'LB.HEALTHCHECKPOLICY.DELETE';
  return defineCommand({
    name,
    roles: allRoles,
    params: refParams(name, ['id']),
    jobInstance: (p) => ({
      type: kind === 'Stickiness' ? 'LBStickinessPolicy' : 'LBHealthCheckPolicy',
      id: p.id,
    }),
    async handler(p, ctx) {
      if (await deletedBeforeRerun(ctx, [event], p.id)) return successResult();
      await withNet(ctx, (n) => deletePolicy(n, kind, p.id));
      return successResult();
    },
  });
}

function listPolicyCommand(name: 'listLBStickinessPolicies' | 'listLBHealthCheckPolicies'): AnyCommand {
  const kind: PolicyRow['kind'] = name === 'listLBStickinessPolicies' ? 'Stickiness' : 'HealthCheck';
  return defineCommand({
    name,
    roles: allRoles,
    params: refParams(name, ['id', 'lbruleid', 'fordisplay', 'keyword', 'page', 'pagesize']),
    async handler(p, ctx) {
      return readNet(ctx, async (n) => {
        const rule = await policiesRule(n, kind, p);
        if (!rule) return listResult(responseNameOf(kind), [], 0);
        const pol = p.id ? await policyByUuid(n, p.id) : undefined;
        return listResult(responseNameOf(kind), [await policyResponse(n, rule, kind, pol)], 1);
      });
    },
  });
}

export const commands: AnyCommand[] = [
  createLb,
  updateLb,
  deleteLb,
  listLb,
  membersCommand('assignToLoadBalancerRule'),
  membersCommand('removeFromLoadBalancerRule'),
  listInstances,
  createPolicyCommand('createLBStickinessPolicy'),
  deletePolicyCommand('deleteLBStickinessPolicy'),
  listPolicyCommand('listLBStickinessPolicies'),
  createPolicyCommand('createLBHealthCheckPolicy'),
  deletePolicyCommand('deleteLBHealthCheckPolicy'),
  listPolicyCommand('listLBHealthCheckPolicies'),
];
