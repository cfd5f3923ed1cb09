import { openMigratedStore } from '../../store/db.js';
import { serverKeyPath } from '../../config/server-key.js';
import { prepareServerKey } from '../../server/secrets-at-rest.js';
import type { Store } from '../../store/db.js';
import { bootstrapAdmin } from '../../accounts/bootstrap.js';
import { callerByUserId } from '../../accounts/repository.js';
import type { CliCommand } from '../main.js';
import { buildDemo } from './build-demo.js';
import { flag, storeFlags } from '../server-command.js';
import { installRouterHooks } from '../../routers/service.js';

const HELP = `usage: stacknet demo [--data-dir DIR] [--db-url URL] [--server-key-file PATH]

Builds a sample zone in the database stacknet server uses (same defaults and flags): zone "demo-zone" with a pod,
a physical network (VLANs 100-199; Guest, Public and Management traffic), a public range 203.0.113.10-100 on
VLAN 10, and an implemented isolated network "demo-network" (10.1.1.0/24, a VLAN and a source-NAT IP) owned by
admin. Run it once, then start (or keep running) stacknet server and look:
  stacknet api listZones
  stacknet api listNetworks listall=true
  stacknet api listPublicIpAddresses listall=true
  stacknet api listCapacity`;

export const demoCommand: CliCommand = {
  summary: 'build a sample zone, physical network, public range and isolated network',
  async run(args) {
    if (args.includes('--help')) {
      console.log(HELP);
      return 0;
    }
    const { dataDir, dbUrl } = storeFlags(args);
    const store = await openMigratedStore(dbUrl, { poolSize: 2 });
    try {
      // The bootstrap seals the admin's secret key, and the demo's routers their control secrets.
      await prepareServerKey(store, serverKeyPath(dataDir, flag(args, '--server-key-file')), (m) =>
        console.error(m),
      );
      const boot = await bootstrapAdmin(store, {
        adminPassword: process.env.STACKNET_ADMIN_PASSWORD || undefined,
        adminApiKey: process.env.STACKNET_ADMIN_API_KEY || undefined,
        adminSecretKey: process.env.STACKNET_ADMIN_SECRET_KEY || undefined,
      });
      if (boot.generatedPassword) {
        console.log(
          `Created the admin account (user "admin", domain "/") with password: ${boot.generatedPassword}`,
        );
      }
      for (const line of await runDemo(store)) console.log(line);
      console.log('Next: stacknet server, then e.g. stacknet api listNetworks listall=true');
      return 0;
    } finally {
      await store.close();
    }
  },
};

/**
 * Builds the demo zone and network as the admin (through the same services the API uses) and says what it
 * built. Shared by `stacknet demo` and `stacknet server --demo`.
 */
export async function runDemo(store: Store): Promise<string[]> {
  const adminUser = await store.db
    .selectFrom('users')
    .innerJoin('domains', 'domains.id', 'users.domain_id')
    .select('users.id')
    .where('users.username', '=', 'admin')
    .where('domains.path', '=', '/')
    .executeTakeFirstOrThrow();
  const admin = (await callerByUserId(store.db, Number(adminUser.id)))!.caller;
  // The demo network is implemented here, so its router row is created here too; the server's reconciler
  // starts it.
  installRouterHooks();
  const s = await buildDemo(store, admin);
  if (!s.created) return [`The demo zone already exists: ${s.zone.name} (${s.zone.id})`];
  const lines = [`Built zone ${s.zone.name} (${s.zone.id})`];
  if (s.network) {
    lines.push(
      `Network ${s.network.name} (${s.network.id}): ${s.network.cidr}, VLAN ${s.network.vlan}, source NAT ${s.network.sourceNatIp}`,
    );
  }
  return lines;
}
