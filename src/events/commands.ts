/** listEvents and listEventTypes. */
import { allRoles, defineCommand, listResult, refParams } from '../api/command.js';
import type { AnyCommand, ResponseObject } from '../api/command.js';
import { csDate } from '../api/envelope.js';
import { keywordMatch, pageArray, pageOf, pageOfQuery } from '../api/list.js';
import { applyListScope, resolveListScope } from '../accounts/scope.js';
import { displayPath } from '../accounts/repository.js';
import type { Executor } from '../store/db.js';
import { eventTypes } from './event-types.js';

const EVENT_COLS = { accountColumn: 'e.account_id', domainColumn: 'e.domain_id' };

function eventQuery(ex: Executor) {
  return ex
    .selectFrom('events as e')
    .leftJoin('domains as d', 'd.id', 'e.domain_id')
    .select([
      'e.id',
      'e.uuid',
      'e.type',
      'e.level',
      'e.state',
      'e.description',
      'e.username',
      'e.account_name',
      'e.domain_path',
      'e.resource_type',
      'e.resource_id',
      'e.resource_name',
      'e.created',
      'd.uuid as domain_uuid',
      'd.name as domain_name',
    ]);
}
type EventRow = Awaited<ReturnType<ReturnType<typeof eventQuery>['executeTakeFirstOrThrow']>>;

function eventResponse(r: EventRow): ResponseObject {
  return {
    id: r.uuid,
    type: r.type,
    level: r.level,
    state: r.state,
    description: r.description,
    username: r.username ?? undefined,
    account: r.account_name,
    domainid: r.domain_uuid ?? undefined,
    domain: r.domain_name ?? undefined,
    domainpath: displayPath(r.domain_path),
    resourcetype: r.resource_type ?? undefined,
    resourceid: r.resource_id ?? undefined,
    resourcename: r.resource_name ?? undefined,
    created: csDate(Number(r.created)),
    archived: false,
  };
}

const listEvents = defineCommand({
  name: 'listEvents',
  roles: allRoles,
  params: refParams('listEvents', [
    'id',
    'type',
    'level',
    'keyword',
    'account',
    'domainid',
    'isrecursive',
    'listall',
    'startdate',
    'enddate',
    'resourceid',
    'resourcetype',
    'page',
    'pagesize',
  ]),
  async handler(p, ctx) {
    const ex = ctx.store.db;
    const page = await pageOf(ex, p);
    const scope = await resolveListScope(ex, ctx.caller, p);
    let q = applyListScope(eventQuery(ex), ctx.caller, scope, EVENT_COLS);
    if (p.id !== undefined) q = q.where('e.uuid', '=', p.id);
    if (p.type !== undefined) q = q.where('e.type', '=', p.type);
    if (p.level !== undefined) q = q.where('e.level', '=', p.level.toUpperCase());
    if (p.resourceid !== undefined) q = q.where('e.resource_id', '=', p.resourceid);
    if (p.resourcetype !== undefined) q = q.where('e.resource_type', '=', p.resourcetype);
    if (p.startdate !== undefined) q = q.where('e.created', '>=', p.startdate.getTime());
    if (p.enddate !== undefined) q = q.where('e.created', '<=', p.enddate.getTime());
    if (p.keyword !== undefined) q = q.where(keywordMatch(['e.type', 'e.description'], p.keyword));
    const { rows, total } = await pageOfQuery(q, page, (x) => x.orderBy('e.id', 'desc'));
    return listResult('event', rows.map(eventResponse), total);
  },
});

const listEventTypes = defineCommand({
  name: 'listEventTypes',
  roles: allRoles,
  params: {},
  async handler(_p, ctx) {
    const page = await pageOf(ctx.store.db, {});
    const all = [...eventTypes].sort();
    return listResult(
      'eventtype',
      pageArray(all, page).map((name) => ({ name })),
      all.length,
    );
  },
});

export const commands: AnyCommand[] = [listEvents, listEventTypes];
