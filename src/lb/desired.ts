/**
 * The load balancer rules a network's router serves, as LoadBalancerRuleSpecs: the live LB rules on every public
 * IP the router holds (routers/public-inputs.ts), members = the assigned VMs' guest addresses (vmidipmap's when
 * given) sorted by address, the rule's cidrlist, and its stickiness and health check policies.
 */
import type { LoadBalancerRuleSpec } from '../agent/desired-state.js';
import { netDb } from '../networks/tables.js';
import { routerPublicIps } from '../routers/public-inputs.js';
import { cidrsOf } from '../rules/repository.js';
import type { Executor } from '../store/db.js';
import { ipOrder } from './members.js';
import { lbDb, lbRowsOf, membersOf, policiesOf } from './repository.js';
import type { LbRow } from './repository.js';
import type { StickinessMethod } from './validate.js';

const ANY = '0.0.0.0/0';

export async function lbSpecsForNetwork(ex: Executor, networkId: number): Promise<LoadBalancerRuleSpec[]> {
  const db = netDb(ex);
  const ips = await routerPublicIps(ex, networkId);
  if (ips.length === 0) return [];
  const ipById = new Map(ips.map((i) => [i.id, i.address]));
  const rules = await lbRowsOf(
    db,
    await db
      .selectFrom('firewall_rules')
      .selectAll()
      .where('ip_allocation_id', 'in', [...ipById.keys()])
      .where('purpose', '=', 'LoadBalancing')
      .where('removed', 'is', null)
      .execute(),
  );
  return specsOf(db, rules, (r) => ipById.get(Number(r.ip_allocation_id))!);
}

/**
 * The internal LB rules an internal LB appliance (routers row `routerId`, role internallb) serves: the live
 * Internal rules whose `lb_vm_id` is it, from their source address and port to the members on `instanceport`.
 */
export async function internalLbSpecsForAppliance(
  ex: Executor,
  routerId: number,
): Promise<LoadBalancerRuleSpec[]> {
  const db = netDb(ex);
  const ids = await lbDb(ex)
    .selectFrom('load_balancing_rules')
    .select('rule_id')
    .where('lb_vm_id', '=', routerId)
    .where('scheme', '=', 'Internal')
    .execute();
  if (ids.length === 0) return [];
  const rows = await db
    .selectFrom('firewall_rules')
    .selectAll()
    .where(
      'id',
      'in',
      ids.map((i) => Number(i.rule_id)),
    )
    .where('removed', 'is', null)
    .execute();
  return specsOf(db, await lbRowsOf(db, rows), (r) => r.source_ip ?? '');
}

async function specsOf(
  db: ReturnType<typeof netDb>,
  rules: readonly LbRow[],
  sourceOf: (r: LbRow) => string,
): Promise<LoadBalancerRuleSpec[]> {
  if (rules.length === 0) return [];
  const ids = rules.map((r) => Number(r.id));
  const cidrs = await cidrsOf(db, ids);
  const members = await membersOf(db, ids);
  const vmIds = [...new Set(members.map((m) => Number(m.vm_id)))];
  const vms = vmIds.length
    ? await db.selectFrom('vms').select(['id', 'uuid']).where('id', 'in', vmIds).execute()
    : [];
  const sticky = await policiesOf(db, ids, 'Stickiness');
  const checks = await policiesOf(db, ids, 'HealthCheck');
  const out = rules.map((r): LoadBalancerRuleSpec => {
    const s = sticky.find((p) => Number(p.rule_id) === Number(r.id));
    const h = checks.find((p) => Number(p.rule_id) === Number(r.id));
    const c = cidrs.get(Number(r.id))!.source;
    return {
      kind: 'loadBalancer',
      id: r.uuid,
      publicIp: sourceOf(r),
      publicPort: r.start_port!,
      privatePort: r.private_port,
      algorithm: r.algorithm,
      members: members
        .filter((m) => Number(m.rule_id) === Number(r.id))
        .map((m) => ({
          vmId: vms.find((v) => Number(v.id) === Number(m.vm_id))?.uuid ?? '',
          guestIp: m.vm_ip,
        }))
        .sort((a, b) => ipOrder(a.guestIp, b.guestIp) || (a.vmId < b.vmId ? -1 : a.vmId > b.vmId ? 1 : 0)),
      sourceCidrs: c.length ? c : [ANY],
      ...(s
        ? {
            stickiness: {
              method: s.method as StickinessMethod,
              params: JSON.parse(s.params ?? '{}') as Record<string, string>,
            },
          }
        : {}),
      ...(h
        ? {
            healthCheck: {
              pingPath: h.ping_path ?? '/',
              intervalSeconds: Number(h.interval_time),
              timeoutSeconds: Number(h.response_timeout),
              healthyThreshold: Number(h.healthy_threshold),
              unhealthyThreshold: Number(h.unhealthy_threshold),
            },
          }
        : {}),
    };
  });
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}
