/** The answers of the network ACL commands: CloudStack's NetworkACLResponse and NetworkACLItemResponse. */
import type { ResponseObject } from '../api/command.js';
import type { Executor } from '../store/db.js';
import { tagsFor } from '../tags/service.js';
import { aclDb } from './tables.js';
import type { AclItemRow, AclListRow } from './tables.js';

export async function aclListResponses(db: unknown, rows: readonly AclListRow[]): Promise<ResponseObject[]> {
  const vpcIds = [...new Set(rows.map((r) => r.vpc_id).filter((v): v is number => v !== null))];
  const vpcs = new Map(
    vpcIds.length
      ? (
          await aclDb(db)
            .selectFrom('vpcs')
            .select(['id', 'uuid', 'name'])
            .where('id', 'in', vpcIds)
            .execute()
        ).map((v) => [Number(v.id), v] as const)
      : [],
  );
  return rows.map((r) => {
    const vpc = r.vpc_id !== null ? vpcs.get(Number(r.vpc_id)) : undefined;
    return {
      id: r.uuid,
      name: r.name,
      description: r.description ?? undefined,
      // The built-ins answer an empty vpcid, as CloudStack's (vpc_id 0).
      vpcid: vpc?.uuid ?? '',
      vpcname: vpc?.name,
      fordisplay: r.for_display === 1,
    } as ResponseObject;
  });
}

export async function aclItemResponses(db: unknown, rows: readonly AclItemRow[]): Promise<ResponseObject[]> {
  const listIds = [...new Set(rows.map((r) => Number(r.acl_id)))];
  const lists = new Map(
    listIds.length
      ? (
          await aclDb(db)
            .selectFrom('network_acl_lists')
            .select(['id', 'uuid', 'name'])
            .where('id', 'in', listIds)
            .execute()
        ).map((l) => [Number(l.id), l] as const)
      : [],
  );
  const tags = await tagsFor(
    db as Executor,
    'NetworkACL',
    rows.map((r) => Number(r.id)),
  );
  return rows.map((r) => {
    const list = lists.get(Number(r.acl_id));
    return {
      id: r.uuid,
      aclid: list?.uuid,
      aclname: list?.name,
      number: r.number,
      action: r.action,
      traffictype: r.traffic_type,
      protocol: r.protocol,
      // CloudStack answers the ports as strings.
      startport: r.start_port !== null ? String(r.start_port) : undefined,
      endport: r.end_port !== null ? String(r.end_port) : undefined,
      icmptype: r.icmp_type ?? undefined,
      icmpcode: r.icmp_code ?? undefined,
      cidrlist: r.cidrs,
      reason: r.reason ?? undefined,
      state: r.state,
      fordisplay: r.for_display === 1,
      tags: tags.get(Number(r.id)) ?? [],
    } as ResponseObject;
  });
}
