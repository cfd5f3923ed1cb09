/** Reading public IP range rows (table public_ip_ranges): their IPv4/IPv6 bounds and VLAN tag text. */
import type { Selectable } from 'kysely';
import type { Family } from '../ipam/address.js';
import { addressFromKey } from '../ipam/address.js';
import type { IpRange } from '../ipam/range.js';
import type { NetDatabase, NetExecutor as Executor } from '../networks/tables.js';
import { notFound } from './context.js';

export type RangeRow = Selectable<NetDatabase['public_ip_ranges']>;

export const rangeOf = (r: Pick<RangeRow, 'family' | 'start_key' | 'end_key'>): IpRange | undefined =>
  r.start_key && r.end_key
    ? {
        family: r.family as Family,
        start: addressFromKey(r.family as Family, r.start_key).value,
        end: addressFromKey(r.family as Family, r.end_key).value,
      }
    : undefined;

export const ip6RangeOf = (r: Pick<RangeRow, 'ip6_start_key' | 'ip6_end_key'>): IpRange | undefined =>
  r.ip6_start_key && r.ip6_end_key
    ? {
        family: 6,
        start: addressFromKey(6, r.ip6_start_key).value,
        end: addressFromKey(6, r.ip6_end_key).value,
      }
    : undefined;

export async function rangeByUuid(db: Executor, uuid: string, param = 'id'): Promise<RangeRow> {
  const r = await db
    .selectFrom('public_ip_ranges')
    .selectAll()
    .where('uuid', '=', uuid)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!r) throw notFound(param, uuid, 'VLAN IP range');
  return r;
}

export const vlanTagText = (tag: number | 'untagged'): string =>
  tag === 'untagged' ? 'untagged' : `vlan://${tag}`;
