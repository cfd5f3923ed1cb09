import { randomBytes } from 'node:crypto';
import { openMigratedStore } from '../store/db.js';
import { getSetting, setValue } from '../configuration/repository.js';
import { findSetting } from '../configuration/settings-catalogue.js';
import type { CliCommand } from './main.js';
// Flags as `stacknet server` reads them (its module loads the server only when it runs).
import { storeFlags } from './server-command.js';

const HELP = `usage: stacknet host token [--new] [--data-dir DIR] [--db-url URL]

Prints the registration token host agents join this management server with (the host.registration.token
setting), creating one first when there is none; --new replaces it (hosts already registered keep working: each
has its own secret since it registered). Give it to \`stacknet host-agent\` on each hypervisor. Defaults as for
stacknet server.`;

export const hostCommand: CliCommand = {
  summary: 'the registration token host agents join with (stacknet host token)',
  async run(args) {
    if (args.includes('--help') || args[0] !== 'token') {
      console.log(HELP);
      return args.includes('--help') ? 0 : 2;
    }
    const { dbUrl } = storeFlags(args);
    const store = await openMigratedStore(dbUrl, { poolSize: 2 });
    try {
      let token = String(await getSetting(store.db, 'host.registration.token'));
      if (token === '' || args.includes('--new')) {
        token = randomBytes(24).toString('base64url');
        await setValue(store.db, findSetting('host.registration.token')!, 'global', 0, token);
      }
      console.log(token);
      return 0;
    } catch (e) {
      console.error(`stacknet host token: ${e instanceof Error ? e.message : String(e)}`);
      return 1;
    } finally {
      await store.close();
    }
  },
};
