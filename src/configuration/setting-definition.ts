/**
 * The shape of one catalogue entry and the `s(...)` helper the settings-*.ts files declare them with. Names,
 * defaults, types, scopes, categories and components are CloudStack 4.18's (its Config.java enum and the
 * ConfigKey declarations of its managers); the descriptions are ours.
 */
export type SettingType = 'Integer' | 'Long' | 'Float' | 'Boolean' | 'String';
/** `cluster` settings exist in CloudStack; stacknet has no clusters, so only their global value can be set. */
export type SettingScope = 'global' | 'zone' | 'cluster' | 'account' | 'domain';
/** CloudStack's ConfigKey.Kind for String settings: what the UI offers as the value's editor. */
export type SettingKind = 'CSV' | 'Select' | 'Order';

export interface SettingDefinition {
  readonly name: string;
  readonly type: SettingType;
  readonly defaultValue: string;
  readonly scope: SettingScope;
  readonly category: string;
  readonly component: string;
  /** Ours; ends with NOT_ACTED_ON for settings stacknet only stores. */
  readonly description: string;
  /** False when a change needs a server restart (CloudStack's `isdynamic`). */
  readonly isDynamic: boolean;
  readonly kind?: SettingKind;
  /** The values a Select/Order setting offers (CloudStack's `options`). */
  readonly options?: string;
  /** Extra check beyond the type, e.g. a range; returns why the value is wrong. */
  readonly check?: (value: string) => string | undefined;
}

export const NOT_ACTED_ON = '(stored; stacknet does not act on it)';

export const positive = (v: string): string | undefined =>
  Number(v) > 0 ? undefined : 'must be greater than 0';
export const nonNegative = (v: string): string | undefined =>
  Number(v) >= 0 ? undefined : 'must be 0 or more';
export const fraction = (v: string): string | undefined =>
  Number(v) >= 0 && Number(v) <= 1 ? undefined : 'must be between 0 and 1';
export const oneOf =
  (...values: string[]) =>
  (v: string): string | undefined =>
    values.includes(v) ? undefined : `must be one of ${values.join(', ')}`;

export interface SettingExtras {
  /** CloudStack's category; default Advanced. */
  category?: string;
  isDynamic?: boolean;
  check?: (value: string) => string | undefined;
  kind?: SettingKind;
  options?: string;
  /** True when stacknet reads the setting and behaves by it; otherwise the description says it only stores it. */
  acted?: boolean;
}

export function s<const N extends string, const T extends SettingType>(
  name: N,
  type: T,
  defaultValue: string,
  scope: SettingScope,
  component: string,
  description: string,
  extra: SettingExtras = {},
): SettingDefinition & { readonly name: N; readonly type: T } {
  return {
    name,
    type,
    defaultValue,
    scope,
    category: extra.category ?? 'Advanced',
    component,
    description: extra.acted ? description : `${description} ${NOT_ACTED_ON}`,
    isDynamic: extra.isDynamic ?? true,
    kind: extra.kind,
    options: extra.options,
    check:
      extra.check ??
      (extra.kind === 'Select' && extra.options ? oneOf(...extra.options.split(',')) : undefined),
  };
}
