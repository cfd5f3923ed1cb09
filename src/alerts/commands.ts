/** listAlerts, deleteAlerts, archiveAlerts (root admin): the alerts stacknet raised (service.ts). */
import { defineCommand, listResult, refParams, rootAdminOnly, successResult } from '../api/command.js';
import type { AnyCommand } from '../api/command.js';
import { pageOf } from '../api/list.js';
import { archiveAlerts, deleteAlerts, listAlerts } from './service.js';

const listAlertsCmd = defineCommand({
  name: 'listAlerts',
  roles: rootAdminOnly,
  params: refParams('listAlerts', ['id', 'type', 'name', 'keyword', 'page', 'pagesize']),
  async handler(p, ctx) {
    const db = ctx.store.db;
    const r = await listAlerts(db, p, await pageOf(db, p));
    return listResult('alert', r.items, r.count);
  },
});

const selection = ['ids', 'type', 'startdate', 'enddate'] as const;

const deleteAlertsCmd = defineCommand({
  name: 'deleteAlerts',
  roles: rootAdminOnly,
  params: refParams('deleteAlerts', selection),
  async handler(p, ctx) {
    await ctx.transaction((tx) => deleteAlerts(tx, p));
    return successResult();
  },
});

const archiveAlertsCmd = defineCommand({
  name: 'archiveAlerts',
  roles: rootAdminOnly,
  params: refParams('archiveAlerts', selection),
  async handler(p, ctx) {
    await ctx.transaction((tx) => archiveAlerts(tx, p));
    return successResult();
  },
});

export const commands: AnyCommand[] = [listAlertsCmd, deleteAlertsCmd, archiveAlertsCmd];
