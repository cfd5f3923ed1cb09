/** Reading and writing configuration values. Defaults come from the catalogue; the table holds overrides. */
import type { Executor } from '../store/db.js';
import { isUniqueViolation, nowMs } from '../store/db.js';
import { CloudStackError } from '../errors/catalogue.js';
import { decodeSetting, findSetting } from './settings-catalogue.js';
import type { SettingDefinition, SettingName, SettingScope, SettingValue } from './settings-catalogue.js';

/** Which zone/account/domain a read is for; the most specific stored value wins, then global, then default. */
export interface SettingScopeIds {
  zoneId?: number;
  accountId?: number;
  domainId?: number;
}

const precedence: Record<SettingScope, number> = { account: 5, domain: 4, cluster: 3, zone: 2, global: 1 };

/** The raw stored value that applies, or undefined when the default applies. */
export async function effectiveRawValue(
  ex: Executor,
  name: string,
  scope: SettingScopeIds = {},
): Promise<string | undefined> {
  const rows = await ex
    .selectFrom('configurations')
    .select(['scope', 'scope_id', 'value'])
    .where('name', '=', name)
    .where((eb) => {
      const ors = [eb.and([eb('scope', '=', 'global'), eb('scope_id', '=', 0)])];
      if (scope.zoneId !== undefined)
        ors.push(eb.and([eb('scope', '=', 'zone'), eb('scope_id', '=', scope.zoneId)]));
      if (scope.accountId !== undefined)
        ors.push(eb.and([eb('scope', '=', 'account'), eb('scope_id', '=', scope.accountId)]));
      if (scope.domainId !== undefined)
        ors.push(eb.and([eb('scope', '=', 'domain'), eb('scope_id', '=', scope.domainId)]));
      return eb.or(ors);
    })
    .execute();
  let best: { p: number; value: string } | undefined;
  for (const r of rows) {
    const p = precedence[r.scope as SettingScope] ?? 0;
    if (!best || p > best.p) best = { p, value: r.value };
  }
  return best?.value;
}

/**
 * A setting's typed value for the given scope: `await getSetting(tx, 'network.gc.wait')` is a number,
 * `await getSetting(db, 'use.external.dns', { zoneId })` a boolean.
 */
export async function getSetting<N extends SettingName>(
  ex: Executor,
  name: N,
  scope: SettingScopeIds = {},
): Promise<SettingValue<N>> {
  const def = findSetting(name)!;
  const raw = (await effectiveRawValue(ex, name, scope)) ?? def.defaultValue;
  return decodeSetting(def, raw) as SettingValue<N>;
}

export async function storedValue(
  ex: Executor,
  name: string,
  scope: SettingScope,
  scopeId: number,
): Promise<string | undefined> {
  const row = await ex
    .selectFrom('configurations')
    .select('value')
    .where('name', '=', name)
    .where('scope', '=', scope)
    .where('scope_id', '=', scopeId)
    .executeTakeFirst();
  return row?.value;
}

export async function setValue(
  ex: Executor,
  def: SettingDefinition,
  scope: SettingScope,
  scopeId: number,
  value: string,
): Promise<void> {
  const r = await ex
    .updateTable('configurations')
    .set({ value, updated: nowMs() })
    .where('name', '=', def.name)
    .where('scope', '=', scope)
    .where('scope_id', '=', scopeId)
    .executeTakeFirst();
  if (Number(r.numUpdatedRows) > 0) return;
  try {
    await ex
      .insertInto('configurations')
      .values({ name: def.name, scope, scope_id: scopeId, value, updated: nowMs() })
      .execute();
  } catch (e) {
    // Another admin set the same setting at the same moment (PostgreSQL has aborted this transaction).
    if (isUniqueViolation(e)) {
      throw new CloudStackError('ConcurrentOperation', `Setting ${def.name} was changed concurrently; retry`);
    }
    throw e;
  }
}

export async function deleteValue(
  ex: Executor,
  name: string,
  scope: SettingScope,
  scopeId: number,
): Promise<void> {
  await ex
    .deleteFrom('configurations')
    .where('name', '=', name)
    .where('scope', '=', scope)
    .where('scope_id', '=', scopeId)
    .execute();
}
