/**
 * Templates: listTemplates (the built-in ones and those registered), each naming its OS type from the catalogue
 * (os-types.ts); registerTemplate.
 */
import { randomUUID } from 'node:crypto';
import type { Selectable } from 'kysely';
import { invalidParameter } from '../errors/catalogue.js';
import type { Listed, NetCtx } from '../infrastructure/context.js';
import { pageWindow } from '../infrastructure/context.js';
import type { NetDatabase } from '../networks/tables.js';
import { csDate } from './common.js';
import { templateSizeBytes } from './defaults.js';
import { osTypeByDescription, osTypes } from './os-types.js';

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

/**
 * CloudStack's formats a KVM host boots: QCOW2 a disk image; TAR (stacknet's kernel-initrd template) a tar of
 * `vmlinuz` and `initrd.img`, or a directory of them, booted directly (src/hostagent/libvirt/templates.ts).
 */
const KVM_TEMPLATE_FORMATS = ['QCOW2', 'TAR'];

/**
 * registerTemplate (root admin: templates have no owner in stacknet's schema yet): a public template whose URL
 * (file:// or http(s)://) the hosts read themselves and cache by checksum; no secondary storage, so it is ready
 * at once in every zone (CloudStack's `directdownload`).
 */
export async function registerTemplate(
  ctx: NetCtx,
  p: {
    name: string;
    displaytext: string;
    url: string;
    format: string;
    hypervisor: string;
    checksum?: string | undefined;
    ostypeid?: string | undefined;
    passwordenabled?: boolean | undefined;
    ispublic?: boolean | undefined;
    isfeatured?: boolean | undefined;
    zoneid?: string | undefined;
  },
): Promise<TemplateRow> {
  if (p.hypervisor.toUpperCase() !== 'KVM')
    throw invalidParameter('hypervisor', p.hypervisor, 'stacknet hosts run KVM (or QEMU) only');
  const format = p.format.toUpperCase();
  if (!KVM_TEMPLATE_FORMATS.includes(format))
    throw invalidParameter('format', p.format, `must be one of ${KVM_TEMPLATE_FORMATS.join(', ')}`);
  if (!/^(file|https?):\/\/./.test(p.url))
    throw invalidParameter('url', p.url, 'must be a file://, http:// or https:// URL the hosts can read');
  if (p.checksum !== undefined && !/^(\{[A-Za-z0-9-]+\})?[0-9a-fA-F]{32,128}$/.test(p.checksum))
    throw invalidParameter('checksum', p.checksum, 'must be hex, optionally prefixed with {algorithm}');
  const os = p.ostypeid
    ? osTypes.find((t) => t.id === p.ostypeid)
    : osTypeByDescription('Other Linux (64-bit)');
  if (!os) throw invalidParameter('ostypeid', p.ostypeid, 'no OS type has this id');
  if (p.zoneid) {
    const z = await ctx.tx.selectFrom('zones').select('id').where('uuid', '=', p.zoneid).executeTakeFirst();
    if (!z) throw invalidParameter('zoneid', p.zoneid, 'no zone has this id');
  }
  const uuid = randomUUID();
  await ctx.tx
    .insertInto('templates')
    .values({
      uuid,
      name: p.name,
      display_text: p.displaytext,
      os_type_name: os.description,
      format,
      hypervisor: 'KVM',
      template_type: 'USER',
      password_enabled: p.passwordenabled ? 1 : 0,
      is_public: p.ispublic === false ? 0 : 1,
      is_featured: p.isfeatured ? 1 : 0,
      created: Date.now(),
      url: p.url,
      checksum: p.checksum ?? null,
    })
    .execute();
  return ctx.tx.selectFrom('templates').selectAll().where('uuid', '=', uuid).executeTakeFirstOrThrow();
}
