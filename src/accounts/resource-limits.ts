/**
 * The resource-limit fields of domain and account responses (CloudStack's `vmlimit`/`vmtotal`/`vmavailable`,
 * `iplimit`/..., twelve resource types). Limits are what stacknet enforces: only the public-IP limit of an account
 * (`max.account.public.ips`, root admin accounts exempt); everything else is "Unlimited", as CloudStack writes -1.
 * Totals are counted from what exists (a domain's over its whole subtree, as CloudStack's domain resource counts
 * are); a VM counts one volume, its ROOT disk (src/vms/volumes.ts), released with the VM at destroy as CloudStack
 * releases it; resources stacknet does not have (data disks, snapshots, templates of accounts, projects, storage)
 * are 0.
 */
import { sql } from 'kysely';
import type { ResponseObject } from '../api/command.js';
import { invalidParameter } from '../errors/catalogue.js';
import { getSetting } from '../configuration/repository.js';
import { netDb } from '../networks/tables.js';
import type { Executor } from '../store/db.js';

/** CloudStack's resource types, in the order its responses list them. */
const RESOURCES = [
  'vm',
  'ip',
  'volume',
  'snapshot',
  'template',
  'project',
  'network',
  'vpc',
  'cpu',
  'memory',
  'primarystorage',
  'secondarystorage',
] as const;
type Resource = (typeof RESOURCES)[number];

export interface Totals {
  vm: number;
  vmRunning: number;
  vmStopped: number;
  volume: number;
  ip: number;
  network: number;
  vpc: number;
  cpu: number;
  memory: number;
}

export const zeroTotals = (): Totals => ({
  vm: 0,
  vmRunning: 0,
  vmStopped: 0,
  volume: 0,
  ip: 0,
  network: 0,
  vpc: 0,
  cpu: 0,
  memory: 0,
});

/** -1 is CloudStack's "no limit". */
export type Limits = Partial<Record<Resource, number>>;

/**
 * `details` of listDomains/listAccounts: `all` (default) and `resource` include the limit fields, `min` leaves
 * them out; anything else is refused as CloudStack refuses it.
 */
export function wantsResourceFields(details: readonly string[] | undefined): boolean {
  if (details === undefined || details.length === 0) return true;
  const allowed = ['all', 'resource', 'min'];
  for (const d of details) {
    if (!allowed.includes(d.toLowerCase()))
      throw invalidParameter('details', details.join(','), `allowed values are ${allowed.join(', ')}`);
  }
  return details.some((d) => d.toLowerCase() !== 'min');
}

export function limitFields(limits: Limits, t: Totals, withVmStates = false): ResponseObject {
  const total: Partial<Record<Resource, number>> = {
    vm: t.vm,
    volume: t.volume,
    ip: t.ip,
    network: t.network,
    vpc: t.vpc,
    cpu: t.cpu,
    memory: t.memory,
  };
  const out: ResponseObject = {};
  for (const r of RESOURCES) {
    const limit = limits[r] ?? -1;
    const used = total[r] ?? 0;
    out[`${r}limit`] = limit < 0 ? 'Unlimited' : String(limit);
    out[`${r}total`] = used;
    out[`${r}available`] = limit < 0 ? 'Unlimited' : String(Math.max(0, limit - used));
  }
  if (withVmStates) {
    out.vmrunning = t.vmRunning;
    out.vmstopped = t.vmStopped;
  }
  return out;
}

type Key = 'account_id' | 'domain_id';

/** Totals per account or per domain (not per subtree), for the given ids. */
async function totalsBy(ex: Executor, key: Key, ids: readonly number[]): Promise<Map<number, Totals>> {
  const out = new Map<number, Totals>();
  if (ids.length === 0) return out;
  const db = netDb(ex);
  const get = (id: number) => {
    let t = out.get(id);
    if (!t) out.set(id, (t = zeroTotals()));
    return t;
  };
  // Destroyed VMs no longer count (CloudStack releases their resource counts at destroy).
  const vms = await db
    .selectFrom('vms as v')
    .leftJoin('service_offerings as so', 'so.id', 'v.service_offering_id')
    .select([
      `v.${key} as owner`,
      'v.state',
      sql<number>`count(*)`.as('n'),
      sql<number>`coalesce(sum(so.cpu_number), 0)`.as('cpu'),
      sql<number>`coalesce(sum(so.memory), 0)`.as('memory'),
    ])
    .where(`v.${key}`, 'in', ids)
    .where('v.removed', 'is', null)
    .where('v.state', 'not in', ['Destroyed', 'Expunging'])
    .groupBy([`v.${key}`, 'v.state'])
    .execute();
  for (const r of vms) {
    const t = get(Number(r.owner));
    const n = Number(r.n);
    t.vm += n;
    t.volume += n;
    if (r.state === 'Running') t.vmRunning += n;
    if (r.state === 'Stopped') t.vmStopped += n;
    t.cpu += Number(r.cpu);
    t.memory += Number(r.memory);
  }
  // Public IPs as the account limit counts them (public-ips/service.ts checkPublicIpLimit).
  const ips = await db
    .selectFrom('ip_allocations')
    .select([`${key} as owner`, sql<number>`count(*)`.as('n')])
    .where(key, 'in', ids)
    .where('owner_kind', '=', 'publicip')
    .groupBy(key)
    .execute();
  for (const r of ips) get(Number(r.owner)).ip += Number(r.n);
  // Networks an account owns (CloudStack counts account-scoped guest networks, VPC tiers included).
  const nets = await db
    .selectFrom('networks')
    .select([`${key} as owner`, sql<number>`count(*)`.as('n')])
    .where(key, 'in', ids)
    .where('account_id', 'is not', null)
    .where('acl_type', '=', 'Account')
    .where('removed', 'is', null)
    .groupBy(key)
    .execute();
  for (const r of nets) get(Number(r.owner)).network += Number(r.n);
  const vpcs = await db
    .selectFrom('vpcs')
    .select([`${key} as owner`, sql<number>`count(*)`.as('n')])
    .where(key, 'in', ids)
    .where('removed', 'is', null)
    .groupBy(key)
    .execute();
  for (const r of vpcs) get(Number(r.owner)).vpc += Number(r.n);
  return out;
}

export async function accountTotals(
  ex: Executor,
  accountIds: readonly number[],
): Promise<Map<number, Totals>> {
  return totalsBy(ex, 'account_id', accountIds);
}

/** Each listed domain's totals over its whole subtree. */
export async function domainTotals(
  ex: Executor,
  domains: readonly { id: number; path: string }[],
): Promise<Map<number, Totals>> {
  const out = new Map<number, Totals>();
  if (domains.length === 0) return out;
  const all = await ex.selectFrom('domains').select(['id', 'path']).execute();
  const below = new Map<number, number[]>();
  for (const d of domains) {
    below.set(
      d.id,
      all.filter((x) => x.path.startsWith(d.path)).map((x) => Number(x.id)),
    );
  }
  const ids = [...new Set([...below.values()].flat())];
  const per = await totalsBy(ex, 'domain_id', ids);
  for (const d of domains) {
    const t = zeroTotals();
    for (const id of below.get(d.id) ?? []) {
      const x = per.get(id);
      if (!x) continue;
      for (const k of Object.keys(t) as (keyof Totals)[]) t[k] += x[k];
    }
    out.set(d.id, t);
  }
  return out;
}

/** An account's limits: the public-IP limit stacknet enforces; root admin accounts have none. */
export async function accountLimits(ex: Executor, account: { id: number; type: number }): Promise<Limits> {
  if (account.type === 1) return {};
  const ip = Number(await getSetting(ex, 'max.account.public.ips', { accountId: account.id }));
  return { ip: Number.isFinite(ip) ? ip : -1 };
}
