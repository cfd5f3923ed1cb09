/** The API server's tables (accounts, jobs, settings, events), joined into store/schema.ts's Database. */
import type { AccountTables } from '../accounts/tables.js';
import type { ConfigurationTables } from '../configuration/tables.js';
import type { EventTables } from '../events/tables.js';
import type { JobTables } from './jobs/tables.js';

export interface ApiServerTables extends AccountTables, JobTables, ConfigurationTables, EventTables {}
