/**
 * listConfigurations, updateConfiguration, resetConfiguration, listConfigurationGroups (root admin only, as in
 * CloudStack).
 */
import { defineCommand, listResult, objectResult, refParams, rootAdminOnly } from '../api/command.js';
import type { AnyCommand, Caller, ResponseObject } from '../api/command.js';
import { pageArray, pageOf } from '../api/list.js';
import { invalidParameter } from '../errors/catalogue.js';
import type { Executor } from '../store/db.js';
import { recordEvent } from '../events/record.js';
import { checkSettingValue, findSetting, settingDefinitions } from './settings-catalogue.js';
import type { SettingDefinition, SettingScope } from './settings-catalogue.js';
import { configGroups, displayTextOfSetting, groupOfSetting, parentOfSetting } from './groups.js';
import { deleteValue, effectiveRawValue, setValue, storedValue } from './repository.js';

interface ScopeArgs {
  zoneid?: string;
  accountid?: string;
  domainid?: string;
}

interface ResolvedScope {
  scope: SettingScope;
  scopeId: number;
  uuid?: string;
}

async function resolveScope(ex: Executor, a: ScopeArgs): Promise<ResolvedScope> {
  const given = (['zoneid', 'accountid', 'domainid'] as const).filter((k) => a[k] !== undefined);
  if (given.length > 1)
    throw invalidParameter(given[1]!, a[given[1]!], `give only one of zoneid, accountid, domainid`);
  if (a.zoneid !== undefined) {
    const z = await ex.selectFrom('zones').select('id').where('uuid', '=', a.zoneid).executeTakeFirst();
    if (!z) throw invalidParameter('zoneid', a.zoneid, 'no zone with this id');
    return { scope: 'zone', scopeId: Number(z.id), uuid: a.zoneid };
  }
  if (a.accountid !== undefined) {
    const acc = await ex
      .selectFrom('accounts')
      .select('id')
      .where('uuid', '=', a.accountid)
      .executeTakeFirst();
    if (!acc) throw invalidParameter('accountid', a.accountid, 'no account with this id');
    return { scope: 'account', scopeId: Number(acc.id), uuid: a.accountid };
  }
  if (a.domainid !== undefined) {
    const d = await ex.selectFrom('domains').select('id').where('uuid', '=', a.domainid).executeTakeFirst();
    if (!d) throw invalidParameter('domainid', a.domainid, 'no domain with this id');
    return { scope: 'domain', scopeId: Number(d.id), uuid: a.domainid };
  }
  return { scope: 'global', scopeId: 0 };
}

/** CloudStack's answer to a name it does not know (ConfigurationManagerImpl.updateConfiguration). */
function knownSetting(name: string): SettingDefinition {
  const def = findSetting(name);
  if (!def) throw invalidParameter('name', name, `Config parameter with name ${name} doesn't exist`);
  return def;
}

function checkScope(def: SettingDefinition, scope: ResolvedScope): void {
  if (scope.scope !== 'global' && def.scope !== scope.scope) {
    throw invalidParameter(
      `${scope.scope}id`,
      scope.uuid,
      `setting ${def.name} has ${def.scope} scope; it cannot be set per ${scope.scope}`,
    );
  }
}

const cap = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);

/** CloudStack's Configuration.ValueType as listConfigurations reports it; a String setting reports its kind. */
function valueType(def: SettingDefinition): string {
  switch (def.type) {
    case 'Integer':
    case 'Long':
      return 'Number';
    case 'Float':
      return 'Decimal';
    case 'Boolean':
      return 'Boolean';
    case 'String':
      return def.kind ?? 'String';
  }
}

function configurationResponse(def: SettingDefinition, value: string, scope: ResolvedScope): ResponseObject {
  const { group, subgroup } = groupOfSetting(def.name);
  return {
    name: def.name,
    category: def.category,
    component: def.component,
    description: def.description,
    defaultvalue: def.defaultValue,
    value,
    type: valueType(def),
    options: def.options,
    displaytext: displayTextOfSetting(def.name),
    group,
    subgroup,
    parent: parentOfSetting(def.name),
    isdynamic: def.isDynamic,
    // CloudStack's ListCfgsByCmd reports the scope asked for (`zone`, `account`) when listing per scope, and the
    // setting's own scope otherwise.
    scope: scope.scope === 'global' ? cap(def.scope) : scope.scope,
    id: scope.uuid,
  };
}

async function effectiveForScope(ex: Executor, def: SettingDefinition, s: ResolvedScope): Promise<string> {
  const ids =
    s.scope === 'zone'
      ? { zoneId: s.scopeId }
      : s.scope === 'account'
        ? { accountId: s.scopeId }
        : s.scope === 'domain'
          ? { domainId: s.scopeId }
          : {};
  return (await effectiveRawValue(ex, def.name, ids)) ?? def.defaultValue;
}

const configParams = refParams('listConfigurations', [
  'name',
  'category',
  'keyword',
  'group',
  'subgroup',
  'parent',
  'zoneid',
  'accountid',
  'domainid',
  'page',
  'pagesize',
]);

const listConfigurations = defineCommand({
  name: 'listConfigurations',
  roles: rootAdminOnly,
  params: configParams,
  async handler(p, ctx) {
    const ex = ctx.store.db;
    const page = await pageOf(ex, p);
    const scope = await resolveScope(ex, p);
    const kw = p.keyword?.toLowerCase();
    const same = (a: string | undefined, b: string | undefined) => a?.toLowerCase() === b?.toLowerCase();
    const defs = settingDefinitions.filter((d: SettingDefinition) => {
      const g = groupOfSetting(d.name);
      return (
        (scope.scope === 'global' || d.scope === scope.scope) &&
        (p.name === undefined || d.name.includes(p.name)) &&
        (p.category === undefined || same(d.category, p.category)) &&
        (p.group === undefined || same(g.group, p.group)) &&
        (p.subgroup === undefined || same(g.subgroup, p.subgroup)) &&
        (p.parent === undefined || parentOfSetting(d.name) === p.parent) &&
        (kw === undefined || d.name.toLowerCase().includes(kw) || d.description.toLowerCase().includes(kw))
      );
    });
    const shown = pageArray(defs, page);
    const items: ResponseObject[] = [];
    for (const d of shown) items.push(configurationResponse(d, await effectiveForScope(ex, d, scope), scope));
    return listResult('configuration', items, defs.length);
  },
});

async function editEvent(
  ctx: { caller: Caller },
  tx: Parameters<typeof recordEvent>[0],
  def: SettingDefinition,
  s: ResolvedScope,
  what: string,
) {
  await recordEvent(tx, {
    type: 'CONFIGURATION.VALUE.EDIT',
    actor: ctx.caller,
    description: `Setting ${def.name}${s.scope === 'global' ? '' : ` (${s.scope} ${s.uuid})`} ${what}`,
    resourceType: 'Configuration',
    resourceName: def.name,
  });
}

const updateConfiguration = defineCommand({
  name: 'updateConfiguration',
  roles: rootAdminOnly,
  params: refParams('updateConfiguration', ['name', 'value', 'zoneid', 'accountid', 'domainid']),
  async handler(p, ctx) {
    const def = knownSetting(p.name);
    const scope = await resolveScope(ctx.store.db, p);
    checkScope(def, scope);
    // CloudStack answers the setting as it is when no value is given.
    if (p.value === undefined)
      return objectResult(
        'configuration',
        configurationResponse(def, await effectiveForScope(ctx.store.db, def, scope), scope),
      );
    const value = p.value;
    const why = checkSettingValue(def, value);
    if (why) throw invalidParameter('value', value, `${why} for setting ${def.name}`);
    await ctx.transaction(async (tx) => {
      await setValue(tx, def, scope.scope, scope.scopeId, value.trim());
      await editEvent(ctx, tx, def, scope, `set to '${value.trim()}'`);
    });
    return objectResult('configuration', configurationResponse(def, value.trim(), scope));
  },
});

const resetConfiguration = defineCommand({
  name: 'resetConfiguration',
  roles: rootAdminOnly,
  params: refParams('resetConfiguration', ['name', 'zoneid', 'accountid', 'domainid']),
  async handler(p, ctx) {
    const def = knownSetting(p.name);
    const scope = await resolveScope(ctx.store.db, p);
    checkScope(def, scope);
    const value = await ctx.transaction(async (tx) => {
      const had = await storedValue(tx, def.name, scope.scope, scope.scopeId);
      await deleteValue(tx, def.name, scope.scope, scope.scopeId);
      if (had !== undefined) await editEvent(ctx, tx, def, scope, 'reset');
      return effectiveForScope(tx, def, scope);
    });
    return objectResult('configuration', configurationResponse(def, value, scope));
  },
});

/** CloudStack 4.18's fixed groups, by precedence, each with its subgroups by precedence. */
const listConfigurationGroups = defineCommand({
  name: 'listConfigurationGroups',
  roles: rootAdminOnly,
  params: refParams('listConfigurationGroups', ['group', 'keyword', 'page', 'pagesize']),
  async handler(p, ctx) {
    const page = await pageOf(ctx.store.db, p);
    const kw = p.keyword?.toLowerCase();
    const groups = [...configGroups]
      .sort((a, b) => a.precedence - b.precedence)
      .filter(
        (g) =>
          (p.group === undefined || g.name.toLowerCase() === p.group.toLowerCase()) &&
          (kw === undefined || g.name.toLowerCase().includes(kw)),
      );
    const items = pageArray(groups, page).map((g) => ({
      name: g.name,
      description: g.description,
      precedence: g.precedence,
      subgroup: [...g.subgroups]
        .sort((a, b) => a.precedence - b.precedence)
        .map((sg) => ({ name: sg.name, precedence: sg.precedence })),
    }));
    return listResult('configurationgroup', items, groups.length);
  },
});

export const commands: AnyCommand[] = [
  listConfigurations,
  updateConfiguration,
  resetConfiguration,
  listConfigurationGroups,
];
