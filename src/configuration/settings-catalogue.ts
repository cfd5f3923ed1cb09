/**
 * The catalogue of CloudStack 4.18 settings that bear on networking, accounts and the API (settings-*.ts, one
 * file per concern), with CloudStack's names, defaults, types, scopes and categories, plus stacknet's own
 * (`stacknet.*`, the login lock). Only values somebody changed are stored (configurations table). A setting
 * stacknet does not act on says so in its description.
 */
import type { SettingDefinition } from './setting-definition.js';
import { accountSettings } from './settings-accounts.js';
import { apiSettings } from './settings-api.js';
import { diagnosticsSettings } from './settings-diagnostics.js';
import { networkSettings } from './settings-network.js';
import { routerSettings } from './settings-routers.js';
import { hostSettings } from './settings-hosts.js';

export type { SettingDefinition, SettingScope, SettingType } from './setting-definition.js';

export const settingDefinitions = [
  ...networkSettings,
  ...routerSettings,
  ...accountSettings,
  ...apiSettings,
  ...diagnosticsSettings,
  ...hostSettings,
] as const satisfies readonly SettingDefinition[];

export type SettingName = (typeof settingDefinitions)[number]['name'];

type DefByName<N extends SettingName> = Extract<(typeof settingDefinitions)[number], { name: N }>;
/** The TypeScript type of a setting's value: numbers for Integer/Long/Float, booleans, strings. */
export type SettingValue<N extends SettingName> = DefByName<N>['type'] extends 'Boolean'
  ? boolean
  : DefByName<N>['type'] extends 'String'
    ? string
    : number;

const byName = new Map<string, SettingDefinition>(settingDefinitions.map((d) => [d.name, d]));
if (byName.size !== settingDefinitions.length)
  throw new Error('a setting is declared twice in the catalogue');

export function findSetting(name: string): SettingDefinition | undefined {
  return byName.get(name);
}

/** Why `value` is not acceptable for the setting, or undefined when it is. */
export function checkSettingValue(def: SettingDefinition, value: string): string | undefined {
  switch (def.type) {
    case 'Integer':
    case 'Long':
      if (!/^-?\d+$/.test(value.trim())) return `must be an integer (${def.type})`;
      break;
    case 'Float':
      if (value.trim() === '' || !Number.isFinite(Number(value))) return 'must be a number';
      break;
    case 'Boolean':
      if (!['true', 'false'].includes(value.trim().toLowerCase())) return 'must be true or false';
      break;
    case 'String':
      break;
  }
  return def.check?.(value.trim());
}

export function decodeSetting(def: SettingDefinition, value: string): number | boolean | string {
  if (def.type === 'Boolean') return value.trim().toLowerCase() === 'true';
  if (def.type === 'String') return value;
  return Number(value);
}
