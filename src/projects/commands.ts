/**
 * Projects: stacknet has none. listProjects answers an empty list, and a list command given CloudStack's
 * `projectid=-1` ("resources of every project the caller belongs to", which Terraform's provider retries with when
 * an object is missing from its account) finds nothing, as CloudStack would with no projects. Any other project
 * id names no project.
 */
import { allRoles, defineCommand, listResult, refParams } from '../api/command.js';
import type { AnyCommand, ParamSpecs } from '../api/command.js';
import { pageOf } from '../api/list.js';
import { invalidParameter } from '../errors/catalogue.js';

/** 'none' when a list asked for every project's resources; throws for any other project id. */
export function projectScope(
  command: string,
  params: ParamSpecs,
  raw: ReadonlyMap<string, string>,
): 'none' | undefined {
  const v = raw.get('projectid')?.trim();
  if (v === undefined || v === '' || !params.projectid) return undefined;
  if (v === '-1' && command.startsWith('list')) return 'none';
  throw invalidParameter('projectid', v, 'stacknet has no projects');
}

const listProjectsCmd = defineCommand({
  name: 'listProjects',
  roles: allRoles,
  params: refParams('listProjects', [
    'id',
    'name',
    'displaytext',
    'state',
    'account',
    'domainid',
    'isrecursive',
    'listall',
    'keyword',
    'page',
    'pagesize',
  ]),
  async handler(p, ctx) {
    await pageOf(ctx.store.db, p);
    return listResult('project', [], 0);
  },
});

export const commands: AnyCommand[] = [listProjectsCmd];
