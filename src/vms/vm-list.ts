/**
 * Which VMs a list command shows: listVirtualMachines, listVirtualMachinesMetrics and listVolumes (a VM's ROOT
 * volume is derived from the VM) filter and scope the same rows.
 */
import type { Caller } from '../api/command.js';
import { domainForCaller, domainSubtreeCondition, scopeToCaller } from '../accounts/scope.js';
import { tagsCondition } from '../tags/service.js';
import type { Page } from '../api/list.js';
import { pageOfQuery, readByKeys } from '../api/list.js';
import type { Executor } from '../store/db.js';
import type { VmRow } from './service.js';

export interface VmListFilter {
  id?: string | undefined;
  ids?: string[] | undefined;
  name?: string | undefined;
  state?: string | undefined;
  keyword?: string | undefined;
  zoneid?: string | undefined;
  networkid?: string | undefined;
  tags?: Record<string, string>[] | undefined;
  listall?: boolean | undefined;
  account?: string | undefined;
  domainid?: string | undefined;
  isrecursive?: boolean | undefined;
}

const CS_VM_COLS = { accountColumn: 'vms.account_id', domainColumn: 'vms.domain_id' };

/** The VMs (not expunged) `p` selects that `caller` may see, as a query still to be ordered and paged. */
export async function vmListQuery(ex: Executor, caller: Caller, p: VmListFilter) {
  let q = scopeToCaller(
    ex.selectFrom('vms').selectAll('vms').where('vms.removed', 'is', null),
    caller,
    CS_VM_COLS,
  );
  if (p.id !== undefined) q = q.where('vms.uuid', '=', p.id);
  if (p.ids?.length) q = q.where('vms.uuid', 'in', p.ids);
  if (p.name !== undefined) q = q.where('vms.name', '=', p.name);
  if (p.state !== undefined) q = q.where('vms.state', '=', p.state as VmRow['state']);
  if (p.keyword !== undefined) q = q.where('vms.name', 'like', `%${p.keyword}%`);
  const tagged = tagsCondition('UserVm', 'vms.id', p.tags);
  if (tagged) q = q.where(tagged);
  if (p.zoneid !== undefined) {
    const z = await ex.selectFrom('zones').select('id').where('uuid', '=', p.zoneid).executeTakeFirst();
    q = q.where('vms.zone_id', '=', z ? z.id : -1);
  }
  if (p.networkid !== undefined) {
    const net = await ex
      .selectFrom('networks')
      .select('id')
      .where('uuid', '=', p.networkid)
      .executeTakeFirst();
    q = q.where(
      'vms.id',
      'in',
      ex
        .selectFrom('nics')
        .select('vm_id')
        .where('network_id', '=', net ? net.id : -1),
    );
  }
  if (p.domainid !== undefined) {
    // 431 for no such domain, 531 for one outside the caller's reach, as CloudStack's list scoping.
    const d = await domainForCaller(ex, caller, p.domainid);
    q = q.where(
      p.isrecursive
        ? domainSubtreeCondition('vms.domain_id', d.path)
        : (eb) => eb('vms.domain_id', '=', d.id),
    );
  }
  const narrowed =
    p.id !== undefined || !!p.ids?.length || p.account !== undefined || p.domainid !== undefined;
  if (caller.role !== 'User' && !p.listall && !narrowed) q = q.where('vms.account_id', '=', caller.accountId);
  if (p.account !== undefined) {
    const a = await ex.selectFrom('accounts').select('id').where('name', '=', p.account).execute();
    q = q.where('vms.account_id', 'in', a.length ? a.map((r) => r.id) : [-1]);
  }
  return q;
}

/**
 * One page of `vmListQuery`'s VMs in id order, with the total: the page's ids first, then their rows. The ids, a
 * deep OFFSET and the COUNT(*) walk `vms_zone_list_ix` (migration 0026) or the primary key alone, so page 1,000 of
 * a zone with 500,000 VMs reads 500 rows, not the 499,500 before them.
 */
export async function vmPageOf(
  ex: Executor,
  q: Awaited<ReturnType<typeof vmListQuery>>,
  page: Page,
): Promise<{ rows: VmRow[]; total: number }> {
  const { rows: ids, total } = await pageOfQuery(q.clearSelect().select('vms.id'), page, (x) =>
    x.orderBy('vms.id'),
  );
  const rows = await readByKeys(
    ids.map((r) => Number(r.id)),
    (chunk) => ex.selectFrom('vms').selectAll().where('id', 'in', chunk).execute(),
  );
  const byId = new Map(rows.map((r) => [Number(r.id), r]));
  return { rows: ids.flatMap((r) => byId.get(Number(r.id)) ?? []), total };
}
