/**
 * The one ordered list of migrations, shared by SQLite, PostgreSQL and MariaDB. Names sort in order of
 * application; never edit a migration that has landed, add a new one. On MariaDB a migration killed part-way is
 * run again from the top (store/resumable-mysql.ts skips the schema statements already done), so its data
 * statements (seeds, backfills) must be safe to run twice, as 0003's seeds are.
 */
import type { Migration } from 'kysely';
import * as m0001 from './0001-ipam.js';
import * as m0002 from './0002-api.js';
import * as m0003 from './0003-networking.js';
import * as m0004 from './0004-vms.js';
import * as m0005 from './0005-ip-allocations-partial-indexes.js';
import * as m0006 from './0006-login-failures.js';
import * as m0007 from './0007-one-source-nat-one-vnet.js';
import * as m0009 from './0009-offerings.js';
import * as m0010 from './0010-guest-vlans-ipv6-prefixes.js';
import * as m0012 from './0012-network-service-providers.js';
import * as m0013 from './0013-resource-tags.js';
import * as m0015 from './0015-alerts.js';
import * as m0016 from './0016-firewall-rules.js';
import * as m0017 from './0017-network-acls.js';
import * as m0018 from './0018-load-balancers.js';
import * as m0019 from './0019-internal-load-balancers.js';
import * as m0020 from './0020-event-outbox.js';
import * as m0021 from './0021-hosts.js';
import * as m0024 from './0024-public-ip-list-index.js';
import * as m0025 from './0025-default-system-offerings.js';
import * as m0026 from './0026-vm-list-index.js';
import * as m0027 from './0027-public-ip-count-index.js';
import * as m0030 from './0030-router-public-heads-index.js';
import * as m0031 from './0031-public-ip-zone-counts.js';
import * as m0032 from './0032-router-public-heads-mariadb.js';
import * as m0033 from './0033-drop-public-ip-count-index.js';

export const migrations: Record<string, Migration> = {
  '0001-ipam': m0001,
  '0002-api': m0002,
  '0003-networking': m0003,
  '0004-vms': m0004,
  '0005-ip-allocations-partial-indexes': m0005,
  '0006-login-failures': m0006,
  '0007-one-source-nat-one-vnet': m0007,
  '0009-offerings': m0009,
  '0010-guest-vlans-ipv6-prefixes': m0010,
  '0012-network-service-providers': m0012,
  '0013-resource-tags': m0013,
  '0015-alerts': m0015,
  '0016-firewall-rules': m0016,
  '0017-network-acls': m0017,
  '0018-load-balancers': m0018,
  '0019-internal-load-balancers': m0019,
  '0020-event-outbox': m0020,
  '0021-hosts': m0021,
  '0024-public-ip-list-index': m0024,
  '0025-default-system-offerings': m0025,
  '0026-vm-list-index': m0026,
  '0027-public-ip-count-index': m0027,
  '0030-router-public-heads-index': m0030,
  '0031-public-ip-zone-counts': m0031,
  '0032-router-public-heads-mariadb': m0032,
  '0033-drop-public-ip-count-index': m0033,
};
