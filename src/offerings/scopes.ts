/**
 * The domains and zones an offering is limited to (CloudStack keeps them as `domainid`/`zoneid` offering
 * details). No domain rows: public, every account may use it; otherwise accounts of those domains and of their
 * subdomains. No zone rows: every zone. Lists filter by these in the query itself.
 */
import { sql } from 'kysely';
import type { Expression, SqlBool } from 'kysely';
import type { Caller } from '../api/command.js';
import { invalidParameter } from '../errors/catalogue.js';
import { offeringDb } from './tables.js';
import type { OfferingExecutor, OfferingKind } from './tables.js';

export interface Scopes {
  /** Internal ids; empty = public / all zones. */
  domainIds: number[];
  zoneIds: number[];
}

/** `/`, `/a/`, `/a/b/` for `/a/b/`: the paths of a domain and of its ancestors. */
export function ancestorPaths(path: string): string[] {
  const parts = path.split('/').filter((s) => s !== '');
  const out = ['/'];
  for (let i = 1; i <= parts.length; i++) out.push(`/${parts.slice(0, i).join('/')}/`);
  return out;
}

/**
 * Domain uuids (createXOffering's `domainid` list, or update's comma string where `public` clears them) to ids.
 * A domain listed together with one of its ancestors is dropped: the ancestor covers it already.
 */
export async function resolveDomainList(
  ex: unknown,
  raw: readonly string[] | string | undefined,
  param = 'domainid',
): Promise<number[] | undefined> {
  if (raw === undefined) return undefined;
  const items = (typeof raw === 'string' ? raw.split(',') : raw).map((s) => s.trim()).filter(Boolean);
  if (items.length === 1 && items[0]!.toLowerCase() === 'public') return [];
  const db = offeringDb(ex);
  const found: { id: number; path: string }[] = [];
  for (const uuid of items) {
    const d = await db
      .selectFrom('domains')
      .select(['id', 'path'])
      .where('uuid', '=', uuid)
      .executeTakeFirst();
    if (!d) throw invalidParameter(param, uuid, 'no domain has this id');
    found.push({ id: Number(d.id), path: d.path });
  }
  return [
    ...new Set(
      found
        .filter((d) => !found.some((o) => o.id !== d.id && o.path !== d.path && d.path.startsWith(o.path)))
        .map((d) => d.id),
    ),
  ];
}

/** Zone uuids to ids; `all` (update commands) clears the limit. */
export async function resolveZoneList(
  ex: unknown,
  raw: readonly string[] | string | undefined,
  param = 'zoneid',
): Promise<number[] | undefined> {
  if (raw === undefined) return undefined;
  const items = (typeof raw === 'string' ? raw.split(',') : raw).map((s) => s.trim()).filter(Boolean);
  if (items.length === 1 && items[0]!.toLowerCase() === 'all') return [];
  const db = offeringDb(ex);
  const ids: number[] = [];
  for (const uuid of items) {
    const z = await db
      .selectFrom('zones')
      .select('id')
      .where('uuid', '=', uuid)
      .where('removed', 'is', null)
      .executeTakeFirst();
    if (!z) throw invalidParameter(param, uuid, 'no zone has this id');
    ids.push(Number(z.id));
  }
  return [...new Set(ids)];
}

/** Replaces the offering's domain (or zone) limits with `ids`. */
export async function setScopes(
  ex: unknown,
  kind: OfferingKind,
  offeringId: number,
  scope: 'domain' | 'zone',
  ids: readonly number[],
): Promise<void> {
  const db = offeringDb(ex);
  await db
    .deleteFrom('offering_scopes')
    .where('offering_kind', '=', kind)
    .where('offering_id', '=', offeringId)
    .where('scope_kind', '=', scope)
    .execute();
  for (const ref of ids) {
    await db
      .insertInto('offering_scopes')
      .values({ offering_kind: kind, offering_id: offeringId, scope_kind: scope, ref_id: ref })
      .execute();
  }
}

export async function scopesOf(ex: unknown, kind: OfferingKind, offeringId: number): Promise<Scopes> {
  const rows = await offeringDb(ex)
    .selectFrom('offering_scopes')
    .select(['scope_kind', 'ref_id'])
    .where('offering_kind', '=', kind)
    .where('offering_id', '=', offeringId)
    .orderBy('id')
    .execute();
  return {
    domainIds: rows.filter((r) => r.scope_kind === 'domain').map((r) => Number(r.ref_id)),
    zoneIds: rows.filter((r) => r.scope_kind === 'zone').map((r) => Number(r.ref_id)),
  };
}

/** `domainid`/`domain`/`zoneid`/`zone` of a response: comma lists of uuids and names, absent when unlimited. */
export async function scopeFields(
  ex: unknown,
  kind: OfferingKind,
  offeringId: number,
): Promise<Record<string, string | undefined>> {
  const s = await scopesOf(ex, kind, offeringId);
  const db = offeringDb(ex);
  const domains = s.domainIds.length
    ? await db.selectFrom('domains').select(['id', 'uuid', 'name']).where('id', 'in', s.domainIds).execute()
    : [];
  const zones = s.zoneIds.length
    ? await db.selectFrom('zones').select(['id', 'uuid', 'name']).where('id', 'in', s.zoneIds).execute()
    : [];
  const inOrder = <T extends { id: number }>(rows: T[], ids: number[]) =>
    ids.map((id) => rows.find((r) => Number(r.id) === id)).filter((r): r is T => r !== undefined);
  const d = inOrder(domains, s.domainIds);
  const z = inOrder(zones, s.zoneIds);
  return {
    domainid: d.length ? d.map((r) => r.uuid).join(',') : undefined,
    domain: d.length ? d.map((r) => r.name).join(',') : undefined,
    zoneid: z.length ? z.map((r) => r.uuid).join(',') : undefined,
    zone: z.length ? z.map((r) => r.name).join(',') : undefined,
  };
}

/** The ids of the domain at `path` and of its ancestors. */
async function ancestorIds(ex: unknown, path: string): Promise<number[]> {
  const rows = await offeringDb(ex)
    .selectFrom('domains')
    .select('id')
    .where('path', 'in', ancestorPaths(path))
    .execute();
  return rows.map((r) => Number(r.id));
}

const limitedTo = (
  kind: OfferingKind,
  idColumn: string,
  scope: 'domain' | 'zone',
  refs: Expression<SqlBool>,
) =>
  sql<SqlBool>`exists (select 1 from offering_scopes os where os.offering_kind = ${kind}
    and os.offering_id = ${sql.ref(idColumn)} and os.scope_kind = ${scope} and ${refs})`;
const unlimited = (kind: OfferingKind, idColumn: string, scope: 'domain' | 'zone') =>
  sql<SqlBool>`not exists (select 1 from offering_scopes os where os.offering_kind = ${kind}
    and os.offering_id = ${sql.ref(idColumn)} and os.scope_kind = ${scope})`;

/**
 * The offerings an account of the domain at `domainPath` may use: public ones and those limited to its domain or
 * an ancestor. `alsoSubtree` (domain admins listing): also those limited to a domain below it, which it manages.
 */
export async function usableInDomain(
  ex: unknown,
  kind: OfferingKind,
  idColumn: string,
  domainPath: string,
  alsoSubtree = false,
): Promise<Expression<SqlBool>> {
  const ids = await ancestorIds(ex, domainPath);
  const inChain = sql<SqlBool>`os.ref_id in (${sql.join(ids)})`;
  const below = sql<SqlBool>`os.ref_id in (select sd.id from domains sd where substr(sd.path, 1, ${sql.lit(
    [...domainPath].length,
  )}) = ${domainPath})`;
  const refs = alsoSubtree ? sql<SqlBool>`(${inChain} or ${below})` : inChain;
  return sql<SqlBool>`(${unlimited(kind, idColumn, 'domain')} or ${limitedTo(kind, idColumn, 'domain', refs)})`;
}

/** Offerings available in the zone (no zone limit, or the zone among them). */
export function usableInZone(kind: OfferingKind, idColumn: string, zoneId: number): Expression<SqlBool> {
  return sql<SqlBool>`(${unlimited(kind, idColumn, 'zone')} or ${limitedTo(
    kind,
    idColumn,
    'zone',
    sql<SqlBool>`os.ref_id = ${zoneId}`,
  )})`;
}

/** Offerings limited to exactly this domain (listXOfferings `domainid`), or to it or below it (`isrecursive`). */
export function limitedToDomain(
  kind: OfferingKind,
  idColumn: string,
  domain: { id: number; path: string },
  recursive: boolean,
): Expression<SqlBool> {
  const refs = recursive
    ? sql<SqlBool>`os.ref_id in (select sd.id from domains sd where substr(sd.path, 1, ${sql.lit(
        [...domain.path].length,
      )}) = ${domain.path})`
    : sql<SqlBool>`os.ref_id = ${domain.id}`;
  return limitedTo(kind, idColumn, 'domain', refs);
}

/** What a caller's list shows: root admins everything; others what their domain may use (admins: and below). */
export async function visibleToCaller(
  ex: unknown,
  kind: OfferingKind,
  idColumn: string,
  caller: Caller,
): Promise<Expression<SqlBool> | undefined> {
  if (caller.role === 'Admin') return undefined;
  return usableInDomain(ex, kind, idColumn, caller.domainPath, caller.role === 'DomainAdmin');
}

/** May an owner in `domainPath` use the offering in `zoneId`? (createNetwork, createVPC, deployVirtualMachine) */
export async function offeringUsable(
  ex: unknown,
  kind: OfferingKind,
  offeringId: number,
  domainPath: string,
  zoneId: number | undefined,
): Promise<{ domain: boolean; zone: boolean }> {
  const s = await scopesOf(ex, kind, offeringId);
  let domain = s.domainIds.length === 0;
  if (!domain) {
    const ids = await ancestorIds(ex, domainPath);
    domain = s.domainIds.some((d) => ids.includes(d));
  }
  const zone = zoneId === undefined || s.zoneIds.length === 0 || s.zoneIds.includes(zoneId);
  return { domain, zone };
}

export type { OfferingExecutor };

/**
 * Refuses (431) an offering the owner's domain may not use, or that is not available in the zone: the check
 * createNetwork, createVPC and deployVirtualMachine make before they create anything.
 */
export async function requireOfferingUsable(
  ex: unknown,
  kind: OfferingKind,
  offering: { id: number; name: string },
  owner: { domainId: number },
  zone: { id: number; name: string } | undefined,
  param: string,
  value: string,
): Promise<void> {
  const d = await offeringDb(ex)
    .selectFrom('domains')
    .select(['path', 'name'])
    .where('id', '=', owner.domainId)
    .executeTakeFirstOrThrow();
  const ok = await offeringUsable(ex, kind, offering.id, d.path, zone?.id);
  const what = { service: 'service offering', network: 'network offering', vpc: 'VPC offering' }[kind];
  if (!ok.domain)
    throw invalidParameter(param, value, `${what} '${offering.name}' is not available to domain ${d.name}`);
  if (!ok.zone)
    throw invalidParameter(param, value, `${what} '${offering.name}' is not available in zone ${zone!.name}`);
}

/**
 * The scope conditions of listNetworkOfferings/listVPCOfferings: what the caller may see, and with `domainid`
 * what that domain may use, with `zoneid` what is available in that zone.
 */
export async function listScopeConditions(
  ex: unknown,
  kind: OfferingKind,
  idColumn: string,
  caller: Caller,
  p: { domainid?: string | undefined; zoneid?: string | undefined },
): Promise<Expression<SqlBool>[]> {
  const db = offeringDb(ex);
  const out: Expression<SqlBool>[] = [];
  const visible = await visibleToCaller(ex, kind, idColumn, caller);
  if (visible) out.push(visible);
  if (p.domainid) {
    const d = await db.selectFrom('domains').select('path').where('uuid', '=', p.domainid).executeTakeFirst();
    if (!d) throw invalidParameter('domainid', p.domainid, 'no domain has this id');
    out.push(await usableInDomain(ex, kind, idColumn, d.path));
  }
  if (p.zoneid) {
    const z = await db.selectFrom('zones').select('id').where('uuid', '=', p.zoneid).executeTakeFirst();
    if (!z) throw invalidParameter('zoneid', p.zoneid, 'no zone has this id');
    out.push(usableInZone(kind, idColumn, Number(z.id)));
  }
  return out;
}
