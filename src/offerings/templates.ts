/** Templates: listTemplates (the built-in ones), each naming its OS type from the catalogue (os-types.ts). */
import type { Selectable } from 'kysely';
import { invalidParameter } from '../errors/catalogue.js';
import type { Listed, NetCtx } from '../infrastructure/context.js';
import { pageWindow } from '../infrastructure/context.js';
import type { NetDatabase } from '../networks/tables.js';
import { csDate } from './common.js';
import { templateSizeBytes } from './defaults.js';
import { osTypeByDescription } from './os-types.js';

export type TemplateRow = Selectable<NetDatabase['templates']>;

const TEMPLATE_FILTERS = [
  'featured',
  'self',
  'selfexecutable',
  'sharedexecutable',
  'executable',
  'community',
  'all',
];

export async function listTemplates(
  ctx: NetCtx,
  p: {
    templatefilter: string;
    id?: string | undefined;
    name?: string | undefined;
    keyword?: string | undefined;
    zoneid?: string | undefined;
    hypervisor?: string | undefined;
    page?: number | undefined;
    pagesize?: number | undefined;
  },
): Promise<Listed<TemplateRow>> {
  if (!TEMPLATE_FILTERS.includes(p.templatefilter)) {
    throw invalidParameter(
      'templatefilter',
      p.templatefilter,
      `must be one of ${TEMPLATE_FILTERS.join(', ')}`,
    );
  }
  if (p.templatefilter === 'all' && ctx.caller.role !== 'Admin')
    throw invalidParameter('templatefilter', 'all', 'only admins may list all templates');
  // The built-in templates are the system's: public and featured, never "self" of a user account.
  if (p.templatefilter === 'self' || p.templatefilter === 'sharedexecutable') return { count: 0, items: [] };
  let q = ctx.tx.selectFrom('templates').selectAll();
  if (p.id) q = q.where('uuid', '=', p.id);
  if (p.name) q = q.where('name', '=', p.name);
  if (p.keyword) q = q.where('name', 'like', `%${p.keyword}%`);
  if (p.hypervisor) q = q.where('hypervisor', '=', p.hypervisor);
  if (p.templatefilter === 'featured') q = q.where('is_featured', '=', 1);
  const rows = await q.orderBy('id').execute();
  const { limit, offset } = pageWindow(p);
  return { count: rows.length, items: rows.slice(offset, limit === undefined ? undefined : offset + limit) };
}

export async function templateResponses(
  ctx: NetCtx,
  rows: readonly TemplateRow[],
  zoneUuid?: string,
): Promise<Record<string, unknown>[]> {
  const zones = zoneUuid
    ? await ctx.tx.selectFrom('zones').select(['uuid', 'name']).where('uuid', '=', zoneUuid).execute()
    : await ctx.tx.selectFrom('zones').select(['uuid', 'name']).where('removed', 'is', null).execute();
  const out: Record<string, unknown>[] = [];
  // CloudStack lists a template once per zone it is ready in; with no zone yet, once without a zone.
  for (const t of rows) {
    const base = {
      id: t.uuid,
      name: t.name,
      displaytext: t.display_text,
      ostypeid: osTypeByDescription(t.os_type_name)?.id,
      ostypename: t.os_type_name,
      format: t.format,
      size: templateSizeBytes(t.name),
      hypervisor: t.hypervisor,
      templatetype: t.template_type,
      passwordenabled: t.password_enabled === 1,
      ispublic: t.is_public === 1,
      isfeatured: t.is_featured === 1,
      isready: true,
      isextractable: false,
      bootable: true,
      crossZones: true,
      sshkeyenabled: false,
      isdynamicallyscalable: false,
      directdownload: false,
      deployasis: false,
      requireshvm: true,
      account: 'system',
      status: 'Download Complete',
      hasannotations: false,
      tags: [],
      created: csDate(t.created),
    };
    if (zones.length === 0) out.push(base);
    for (const z of zones) out.push({ ...base, zoneid: z.uuid, zonename: z.name });
  }
  return out;
}
