/** Port forwarding, firewall and egress rules: the API commands. */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  allRoles,
  defineCommand,
  listResult,
  objectResult,
  refParams,
  successResult,
} from '../api/command.js';
import type { AnyCommand, CommandContext, CommandResult, ResponseObject } from '../api/command.js';
import { changedBeforeRerun, jobAttempt } from '../api/jobs/rerun.js';
import { readNet, withNet } from '../infrastructure/net-context.js';
import type { NetCtx } from '../infrastructure/context.js';
import { ruleByUuid, ruleEvents, ruleProgress } from './repository.js';
import type { RuleKind, RuleRow } from './repository.js';
import {
  createEgressFirewallRule,
  createFirewallRule,
  createPortForwardingRule,
  deleteRule,
  listRules,
  ruleResponses,
  updateRule,
} from './service.js';

const responseName = (k: RuleKind) => (k === 'portForward' ? 'portforwardingrule' : 'firewallrule');

const ruleResult = async (n: NetCtx, kind: RuleKind, row: RuleRow): Promise<CommandResult> =>
  objectResult(responseName(kind), (await ruleResponses(n, [row]))[0]!);

/**
 * A create job's wait: until every router enforcing the rule applied it, one of them reported an error, or
 * `stacknet.rules.apply.wait` seconds passed. Reads only the router rows (no writes while waiting). The answer
 * carries the rule in either state: CloudStack would fail the job and revoke the rule; stacknet keeps it (in
 * state Add), because the router retries and applies it once it can (see README).
 */
async function waitApplied(ctx: CommandContext, kind: RuleKind, uuid: string): Promise<CommandResult> {
  await waitRuleApplied(ctx, uuid);
  return readNet(ctx, async (n) => ruleResult(n, kind, (await ruleByUuid(n.tx, uuid))!));
}

/** The wait alone, for every rule kind kept in firewall_rules (load balancer rules too: src/lb). */
export async function waitRuleApplied(ctx: CommandContext, uuid: string): Promise<void> {
  const waitS = Number(await readNet(ctx, (n) => n.setting('stacknet.rules.apply.wait')));
  const deadline = Date.now() + (Number.isFinite(waitS) ? waitS : 10) * 1000;
  let delay = 10;
  for (;;) {
    const done = await readNet(ctx, async (n) => {
      const row = await ruleByUuid(n.tx, uuid);
      if (!row) return true;
      const p = (await ruleProgress(n.tx, [row])).get(Number(row.id))!;
      return p.applied || p.error !== null;
    });
    if (done || Date.now() >= deadline) break;
    await sleep(delay);
    delay = Math.min(delay * 2, 200);
  }
}

/**
 * CloudStack's create*Rule are BaseAsyncCreateCmds: the rule is created (and refused with 431) at request time,
 * its id returned beside the job id, and the job applies it. A job re-run only waits again.
 */
function createCommand<P extends Parameters<typeof defineCommand>[0]['params']>(
  name: 'createPortForwardingRule' | 'createFirewallRule' | 'createEgressFirewallRule',
  kind: RuleKind,
  params: P,
  create: (n: NetCtx, p: never) => Promise<RuleRow>,
): AnyCommand {
  return defineCommand({
    name,
    roles: allRoles,
    params,
    async prepare(p, ctx) {
      const row = await withNet(ctx, (n) => create(n, p as never));
      return { id: row.uuid, instanceType: kind === 'portForward' ? 'PortForwardingRule' : 'FirewallRule' };
    },
    async handler(p, ctx) {
      const uuid = ctx.prepared ? ctx.prepared.id : (await withNet(ctx, (n) => create(n, p as never))).uuid;
      return waitApplied(ctx, kind, uuid);
    },
  });
}

function updateCommand<P extends Parameters<typeof defineCommand>[0]['params']>(
  name: 'updatePortForwardingRule' | 'updateFirewallRule' | 'updateEgressFirewallRule',
  kind: RuleKind,
  params: P,
): AnyCommand {
  return defineCommand({
    name,
    roles: allRoles,
    params,
    jobInstance: (p) => ({
      type: kind === 'portForward' ? 'PortForwardingRule' : 'FirewallRule',
      id: (p as unknown as { id: string }).id,
    }),
    async handler(p, ctx) {
      const q = p as unknown as { id: string; customid?: string };
      // The event is written with the change: a re-run whose earlier run committed answers the rule as it is.
      if (await changedBeforeRerun(ctx, [ruleEvents[kind].modify], q.id)) {
        return readNet(ctx, async (n) =>
          ruleResult(
            n,
            kind,
            (await ruleByUuid(n.tx, q.customid ?? q.id)) ?? (await ruleByUuid(n.tx, q.id))!,
          ),
        );
      }
      // A changed guest side is applied by the routers like a new rule: the job answers once they did.
      const row = await withNet(ctx, (n) => updateRule(n, kind, p as never));
      return waitApplied(ctx, kind, row.uuid);
    },
  });
}

function deleteCommand(
  name: 'deletePortForwardingRule' | 'deleteFirewallRule' | 'deleteEgressFirewallRule',
  kind: RuleKind,
): AnyCommand {
  return defineCommand({
    name,
    roles: allRoles,
    params: refParams(name, ['id']),
    jobInstance: (p) => ({ type: kind === 'portForward' ? 'PortForwardingRule' : 'FirewallRule', id: p.id }),
    async handler(p, ctx) {
      // Rules are kept, marked removed: a re-run finds its earlier run's deletion committed.
      if (jobAttempt(ctx) > 1) {
        const row = await readNet(ctx, (n) => ruleByUuid(n.tx, p.id));
        if (row?.removed != null) return successResult();
      }
      await withNet(ctx, (n) => deleteRule(n, kind, p.id));
      return successResult();
    },
  });
}

const LIST_COMMON = [
  'id',
  'ipaddressid',
  'networkid',
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
] as const;

function listCommand(
  name: 'listPortForwardingRules' | 'listFirewallRules' | 'listEgressFirewallRules',
  kind: RuleKind,
): AnyCommand {
  return defineCommand({
    name,
    roles: allRoles,
    params: refParams(name, LIST_COMMON),
    async handler(p, ctx) {
      return readNet(ctx, async (n) => {
        const r = await listRules(n, kind, p);
        return listResult(responseName(kind), (await ruleResponses(n, r.items)) as ResponseObject[], r.count);
      });
    },
  });
}

export const commands: AnyCommand[] = [
  createCommand(
    'createPortForwardingRule',
    'portForward',
    refParams('createPortForwardingRule', [
      'ipaddressid',
      'protocol',
      'publicport',
      'publicendport',
      'privateport',
      'privateendport',
      'virtualmachineid',
      'vmguestip',
      'networkid',
      'openfirewall',
      'cidrlist',
      'fordisplay',
    ]),
    createPortForwardingRule,
  ),
  updateCommand(
    'updatePortForwardingRule',
    'portForward',
    refParams('updatePortForwardingRule', [
      'id',
      'privateport',
      'privateendport',
      'virtualmachineid',
      'vmguestip',
      'customid',
      'fordisplay',
    ]),
  ),
  deleteCommand('deletePortForwardingRule', 'portForward'),
  listCommand('listPortForwardingRules', 'portForward'),
  createCommand(
    'createFirewallRule',
    'firewall',
    refParams('createFirewallRule', [
      'ipaddressid',
      'protocol',
      'startport',
      'endport',
      'icmptype',
      'icmpcode',
      'cidrlist',
      'type',
      'fordisplay',
    ]),
    createFirewallRule,
  ),
  updateCommand(
    'updateFirewallRule',
    'firewall',
    refParams('updateFirewallRule', ['id', 'customid', 'fordisplay']),
  ),
  deleteCommand('deleteFirewallRule', 'firewall'),
  listCommand('listFirewallRules', 'firewall'),
  createCommand(
    'createEgressFirewallRule',
    'egress',
    refParams('createEgressFirewallRule', [
      'networkid',
      'protocol',
      'startport',
      'endport',
      'icmptype',
      'icmpcode',
      'cidrlist',
      'destcidrlist',
      'type',
      'fordisplay',
    ]),
    createEgressFirewallRule,
  ),
  updateCommand(
    'updateEgressFirewallRule',
    'egress',
    refParams('updateEgressFirewallRule', ['id', 'customid', 'fordisplay']),
  ),
  deleteCommand('deleteEgressFirewallRule', 'egress'),
  listCommand('listEgressFirewallRules', 'egress'),
];
