/** BaseListCmd conventions (reference §5.5): page/pagesize bounded by `default.page.size`, keyword. */
import { sql } from 'kysely';
import type { Expression, SelectQueryBuilder, SqlBool } from 'kysely';
import { invalidParameter } from '../errors/catalogue.js';
import type { Executor } from '../store/db.js';
import { getSetting } from '../configuration/repository.js';

export interface Page {
  /** undefined = no limit (pagesize=-1, or default.page.size=-1). */
  limit?: number;
  offset: number;
}

export interface PageParams {
  page?: number;
  pagesize?: number;
}

export function pageFrom(params: PageParams, defaultPageSize: number): Page {
  const { page, pagesize } = params;
  const unlimitedAllowed = defaultPageSize === -1;
  // BaseListCmd: -1 is the one pagesize that means "all", and then there are no pages to ask for.
  if (pagesize === -1) {
    if (page !== undefined)
      throw invalidParameter('page', page, "Can't specify page parameter when pageSize is -1 (Unlimited)");
    return { offset: 0 };
  }
  if ((page === undefined) !== (pagesize === undefined)) {
    const missing = page === undefined ? 'page' : 'pagesize';
    const given = page === undefined ? 'pagesize' : 'page';
    throw invalidParameter(
      missing,
      '',
      `"page" and "pagesize" must be given together (only ${given} was given)`,
    );
  }
  if (page === undefined || pagesize === undefined) {
    return unlimitedAllowed ? { offset: 0 } : { limit: defaultPageSize, offset: 0 };
  }
  if (page < 1) throw invalidParameter('page', page, 'pages start at 1');
  if (pagesize < 1) throw invalidParameter('pagesize', pagesize, 'must be 1 or more, or -1 for all');
  if (!unlimitedAllowed && pagesize > defaultPageSize) {
    throw invalidParameter(
      'pagesize',
      pagesize,
      `Page size can't exceed max allowed page size value: ${defaultPageSize} (setting default.page.size)`,
    );
  }
  const offset = (page - 1) * pagesize;
  // Only reachable with default.page.size=-1: an offset past 2^53 would reach the driver as a float.
  if (!Number.isSafeInteger(offset))
    throw invalidParameter('page', page, 'this page is past the end of any list');
  return { limit: pagesize, offset };
}

/**
 * The LIMIT for "no limit" when the query has an OFFSET: SQLite's grammar has no OFFSET without LIMIT, and
 * every engine takes a limit this large as "all rows".
 */
export const NO_LIMIT = Number.MAX_SAFE_INTEGER;

/** The page for a list command, reading `default.page.size` from the database. */
export async function pageOf(ex: Executor, params: PageParams): Promise<Page> {
  return pageFrom(params, await getSetting(ex, 'default.page.size'));
}

/** Applies a page to a select query. */
export function paged<QB extends { limit(n: number): QB; offset(n: number): QB }>(qb: QB, page: Page): QB {
  if (page.limit === undefined) return page.offset > 0 ? qb.limit(NO_LIMIT).offset(page.offset) : qb;
  return qb.limit(page.limit).offset(page.offset);
}

/** Pages a list held in memory (small fixed catalogues: settings, event types, APIs). */
export function pageArray<T>(items: readonly T[], page: Page): T[] {
  return page.limit === undefined
    ? items.slice(page.offset)
    : items.slice(page.offset, page.offset + page.limit);
}

/** A `keyword` filter value for SQL LIKE, with the wildcards in the keyword itself escaped (escape char `!`). */
export function likeContains(keyword: string): string {
  return `%${keyword.replace(/[!%_]/g, (c) => `!${c}`)}%`;
}

/** Case-insensitive "contains" on any of `columns`, for `keyword=`. */
export function keywordMatch(columns: readonly string[], keyword: string): Expression<SqlBool> {
  const pattern = likeContains(keyword.toLowerCase());
  const parts = columns.map((c) => sql<SqlBool>`lower(${sql.ref(c)}) like ${pattern} escape '!'`);
  return sql<SqlBool>`(${sql.join(parts, sql` or `)})`;
}

/**
 * The page's rows and the total count (`count` is the total, not the page length). The COUNT(*) query runs only
 * when the page cannot tell: a first page that is not full is everything, a later page that is not full ends
 * the list.
 */
export async function pageWithTotal<R>(
  page: Page,
  rows: () => Promise<R[]>,
  count: () => Promise<number | string | bigint>,
): Promise<{ rows: R[]; total: number }> {
  const r = await rows();
  const full = page.limit !== undefined && r.length >= page.limit;
  if (!full && (r.length > 0 || page.offset === 0)) return { rows: r, total: page.offset + r.length };
  return { rows: r, total: Number(await count()) };
}

/**
 * One page of a list query with its total: `order` puts the page's rows in order, and the total is a count of
 * the same filtered query, run only when the page alone cannot tell it (pageWithTotal).
 */
export function pageOfQuery<DB, TB extends keyof DB, O>(
  q: SelectQueryBuilder<DB, TB, O>,
  page: Page,
  order: (q: SelectQueryBuilder<DB, TB, O>) => SelectQueryBuilder<DB, TB, O>,
): Promise<{ rows: O[]; total: number }> {
  return pageWithTotal(
    page,
    () => paged(order(q), page).execute(),
    async () => {
      // Kysely cannot resolve the selection's shape over a generic database type; it is `{ n }`.
      const r = await q
        .clearSelect()
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .executeTakeFirstOrThrow();
      return (r as { n: number | string | bigint }).n;
    },
  );
}

/**
 * Rows read `WHERE key IN (...)` for a page's keys, a chunk of keys per query: a page (at most
 * `default.page.size`) is one query, and an unlimited list (pagesize=-1) stays under the engines' bound-parameter
 * limits (SQLite 32,766, PostgreSQL 65,535). Duplicates are read once.
 */
export async function readByKeys<K, R>(
  keys: readonly K[],
  read: (chunk: K[]) => Promise<R[]>,
  chunkSize = 1000,
): Promise<R[]> {
  const uniq = [...new Set(keys)];
  const out: R[] = [];
  for (let i = 0; i < uniq.length; i += chunkSize) out.push(...(await read(uniq.slice(i, i + chunkSize))));
  return out;
}

/** The distinct ids of a column of rows, nulls left out. */
export const idsOf = (xs: readonly (number | string | bigint | null | undefined)[]): number[] => [
  ...new Set(xs.filter((x) => x !== null && x !== undefined).map(Number)),
];

/** readByKeys on ids, answered as a Map by each row's own id. */
export async function mapByIds<R extends { id: number | string | bigint }>(
  ids: readonly number[],
  read: (chunk: number[]) => Promise<R[]>,
): Promise<Map<number, R>> {
  return new Map((await readByKeys(ids, read)).map((x) => [Number(x.id), x]));
}
