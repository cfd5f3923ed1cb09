/**
 * The VM lists: listVirtualMachines, listVirtualMachinesMetrics (the CloudStack UI's Instances page) and
 * listVolumes (each VM's ROOT volume, derived from the VM; Terraform's cloudstack_instance reads it).
 */
import { allRoles, defineCommand, listResult, refParams } from '../api/command.js';
import type { ResponseObject } from '../api/command.js';
import { sql } from 'kysely';
import type { SqlBool } from 'kysely';
import { likeContains, pageOf } from '../api/list.js';
import type { Executor } from '../store/db.js';
import { vmResponses } from './responses.js';
import type { VmRow } from './service.js';
import { vmListQuery, vmPageOf } from './vm-list.js';
import { rootVolumeResponses, vmUuidOfRootVolume } from './volumes.js';

const vmListParams = [
  'id',
  'ids',
  'name',
  'state',
  'zoneid',
  'networkid',
  'keyword',
  'listall',
  'tags',
  'account',
  'domainid',
  'isrecursive',
  'page',
  'pagesize',
] as const;

async function vmPage(ex: Executor, rows: VmRow[], extra: (vm: VmRow, r: ResponseObject) => ResponseObject) {
  const base = await vmResponses(ex, rows);
  return rows.map((r, i) => ({ ...base[i]!, ...extra(r, base[i]!) }));
}

const listVirtualMachines = defineCommand({
  name: 'listVirtualMachines',
  roles: allRoles,
  params: refParams('listVirtualMachines', vmListParams),
  async handler(p, ctx) {
    const ex = ctx.store.db;
    const page = await pageOf(ex, p);
    const q = await vmListQuery(ex, ctx.caller, p);
    const { rows, total } = await vmPageOf(ex, q, page);
    return listResult('virtualmachine', await vmPage(ex, rows, () => ({})), total);
  },
});

/** `%.2f`-style text as CloudStack's metrics formats it (Java's String.format with a unit). */
const fixed = (v: number, digits: number, unit: string) => `${v.toFixed(digits)} ${unit}`;

const listVirtualMachinesMetrics = defineCommand({
  name: 'listVirtualMachinesMetrics',
  roles: allRoles,
  params: refParams('listVirtualMachinesMetrics', vmListParams),
  async handler(p, ctx) {
    const ex = ctx.store.db;
    const page = await pageOf(ex, p);
    const q = await vmListQuery(ex, ctx.caller, p);
    const { rows, total } = await vmPageOf(ex, q, page);
    // The simulator and netns drivers measure no guest usage: every counter is an honest zero, the totals are
    // the VM's size, in the units and number formats CloudStack's metrics plugin answers with.
    const items = await vmPage(ex, rows, (_vm, r) => {
      const cpus = Number(r.cpunumber ?? 0);
      const speed = Number(r.cpuspeed ?? 0);
      const memory = Number(r.memory ?? 0);
      return {
        cputotal: fixed((cpus * speed) / 1000, 1, 'Ghz'),
        cpuused: '0%',
        memorytotal: fixed(memory / 1024, 2, 'GiB'),
        memorykbs: memory * 1024,
        memoryintfreekbs: 0,
        memorytargetkbs: 0,
        networkkbsread: 0,
        networkkbswrite: 0,
        networkread: fixed(0, 2, 'MiB'),
        networkwrite: fixed(0, 2, 'MiB'),
        diskkbsread: 0,
        diskkbswrite: 0,
        diskioread: 0,
        diskiowrite: 0,
        diskread: fixed(0, 2, 'MiB'),
        diskwrite: fixed(0, 2, 'MiB'),
        diskiopstotal: 0,
      };
    });
    return listResult('virtualmachine', items, total);
  },
});

const listVolumes = defineCommand({
  name: 'listVolumes',
  roles: allRoles,
  params: refParams('listVolumes', [
    'id',
    'ids',
    'virtualmachineid',
    'type',
    'name',
    'zoneid',
    'keyword',
    'listall',
    'account',
    'domainid',
    'isrecursive',
    'projectid',
    'tags',
    'page',
    'pagesize',
  ]),
  async handler(p, ctx) {
    const ex = ctx.store.db;
    const page = await pageOf(ex, p);
    // stacknet attaches no data disks: the only volumes are the VMs' ROOT disks, which carry no tags.
    const none = listResult('volume', [], 0);
    if (p.type !== undefined && p.type.toUpperCase() !== 'ROOT') return none;
    if (p.tags?.length) return none;
    const byId = [p.id, ...(p.ids ?? [])].filter((x): x is string => x !== undefined);
    const vmIds = byId.map(vmUuidOfRootVolume);
    if (p.virtualmachineid !== undefined) vmIds.push(p.virtualmachineid);
    // ROOT-<the VM's internal id>, CloudStack's name for a VM's first disk.
    let internalId: number | undefined;
    if (p.name !== undefined) {
      const m = /^ROOT-(\d+)$/.exec(p.name);
      if (!m) return none;
      internalId = Number(m[1]);
    }
    let q = await vmListQuery(ex, ctx.caller, {
      zoneid: p.zoneid,
      listall: p.listall,
      account: p.account,
      domainid: p.domainid,
      isrecursive: p.isrecursive,
      // Naming the volume or its VM finds it in any account the caller may see, as naming a VM does.
      ids: vmIds,
    });
    if (p.virtualmachineid !== undefined) q = q.where('vms.uuid', '=', p.virtualmachineid);
    if (byId.length) q = q.where('vms.uuid', 'in', byId.map(vmUuidOfRootVolume));
    if (internalId !== undefined) q = q.where('vms.id', '=', internalId);
    // The keyword matches the volume's name, ROOT-<the VM's id>: derived, so matched on the same expression in SQL.
    if (p.keyword !== undefined)
      q = q.where(
        sql<SqlBool>`lower(concat('ROOT-', ${sql.ref('vms.id')})) like ${likeContains(p.keyword.toLowerCase())} escape '!'`,
      );
    const { rows, total } = await vmPageOf(ex, q, page);
    return listResult('volume', await rootVolumeResponses(ex, rows), total);
  },
});

export const commands = [listVirtualMachines, listVirtualMachinesMetrics, listVolumes];
