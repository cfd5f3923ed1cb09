import type { Generated } from 'kysely';

export interface ConfigurationTables {
  /** Only values somebody set: defaults live in configuration/settings-catalogue.ts. */
  configurations: {
    id: Generated<number>;
    name: string;
    /** `global`, `zone`, `account` or `domain`. */
    scope: string;
    /** The zone/account/domain id; 0 for global. */
    scope_id: number;
    value: string;
    updated: number;
  };
}
