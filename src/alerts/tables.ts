/** Alerts (migration 0015-alerts): CloudStack's `alert` table, with the condition that raised each one. */
import type { Generated } from 'kysely';

export interface AlertsTable {
  id: Generated<number>;
  uuid: string;
  /** CloudStack's AlertManager alert type (4 public IPs, 9 domain router, 24 direct-attached IPs, ...). */
  type: number;
  name: string;
  description: string;
  zone_id: number | null;
  /** The condition while it holds (e.g. `capacity:4:zone:7`); NULL once it cleared, so it may be raised again. */
  open_key: string | null;
  sent: number;
  cleared: number | null;
  /** 1 after archiveAlerts: kept, but no longer listed. */
  archived: Generated<number>;
}

export interface AlertTables {
  alerts: AlertsTable;
}
