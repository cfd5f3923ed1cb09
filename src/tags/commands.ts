/** createTags, deleteTags (async, as CloudStack) and listTags. */
import { allRoles, defineCommand, listResult, refParams, successResult } from '../api/command.js';
import type { AnyCommand } from '../api/command.js';
import { pageOf } from '../api/list.js';
import { createTags, deleteTags, listTags } from './service.js';

const createTagsCmd = defineCommand({
  name: 'createTags',
  roles: allRoles,
  params: refParams('createTags', ['resourcetype', 'resourceids', 'tags', 'customer']),
  async handler(p, ctx) {
    await ctx.transaction((tx) => createTags(tx, ctx.caller, p, ctx.now()));
    return successResult();
  },
});

const deleteTagsCmd = defineCommand({
  name: 'deleteTags',
  roles: allRoles,
  params: refParams('deleteTags', ['resourcetype', 'resourceids', 'tags']),
  async handler(p, ctx) {
    await ctx.transaction((tx) => deleteTags(tx, ctx.caller, p));
    return successResult();
  },
});

const listTagsCmd = defineCommand({
  name: 'listTags',
  roles: allRoles,
  params: refParams('listTags', [
    'resourcetype',
    'resourceid',
    'key',
    'value',
    'customer',
    'account',
    'domainid',
    'isrecursive',
    'listall',
    'keyword',
    'page',
    'pagesize',
  ]),
  async handler(p, ctx) {
    const db = ctx.store.db;
    const r = await listTags(db, ctx.caller, p, await pageOf(db, p));
    return listResult('tag', r.items, r.count);
  },
});

export const commands: AnyCommand[] = [createTagsCmd, deleteTagsCmd, listTagsCmd];
