/**
 * The database's TypeScript shape: each concern declares its own tables beside its repository and they are
 * joined here. Columns follow store/migrations/helpers.ts conventions (ids numbers, times epoch ms,
 * booleans 0/1).
 */
import type { IpamTables } from '../addresses/tables.js';
import type { NetworkingTables } from '../networks/tables.js';
import type { ApiServerTables } from '../api/tables.js';
import type { VmTables } from '../vms/tables.js';
import type { TagTables } from '../tags/tables.js';
import type { AlertTables } from '../alerts/tables.js';
import type { RuleTables } from '../rules/tables.js';
import type { LbTables } from '../lb/tables.js';
import type { HostTables } from '../hosts/tables.js';

export interface Database
  extends
    IpamTables,
    ApiServerTables,
    NetworkingTables,
    VmTables,
    TagTables,
    AlertTables,
    RuleTables,
    LbTables,
    HostTables {}
