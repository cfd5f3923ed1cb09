import { serverKeyPath } from '../config/server-key.js';
import { openMigratedStore } from '../store/db.js';
import { rotateServerKey } from '../server/secrets-at-rest.js';
import type { CliCommand } from './main.js';
// Flags as `stacknet server` reads them (its module loads the server only when it runs).
import { flag, storeFlags } from './server-command.js';

const HELP = `usage: stacknet rotate-server-key [--data-dir DIR] [--db-url URL] [--server-key-file PATH]

Generates a new server key, re-seals every API secret key, router secret and host secret in the database with it (one
transaction), then replaces the key file. Stop every server that uses the database first, and afterwards copy
the new key file to each of them before starting it. Database backups taken before the rotation need the old
key: keep a copy of the old key file with them. Defaults as for stacknet server.`;

export const rotateServerKeyCommand: CliCommand = {
  summary: 'replace the key that seals secrets in the database, re-sealing them all',
  async run(args) {
    if (args.includes('--help')) {
      console.log(HELP);
      return 0;
    }
    const { dataDir, dbUrl } = storeFlags(args);
    const path = serverKeyPath(dataDir, flag(args, '--server-key-file'));
    const store = await openMigratedStore(dbUrl, { poolSize: 2 });
    try {
      const r = await rotateServerKey(store, path);
      console.log(
        `server key ${path} rotated from ${r.from} to ${r.to}: re-sealed ${r.users} API secret key(s) and ` +
          `${r.routers} router secret(s) and ${r.hosts} host secret(s); copy this file to every server sharing the database before starting it`,
      );
      return 0;
    } catch (e) {
      console.error(`stacknet rotate-server-key: ${e instanceof Error ? e.message : String(e)}`);
      return 1;
    } finally {
      await store.close();
    }
  },
};
