import { openMigratedStore } from '../store/db.js';
import { defaultDbUrl } from '../config/settings.js';
import type { CliCommand } from './main.js';

export const migrateCommand: CliCommand = {
  summary: 'bring the database schema up to date',
  async run(args) {
    if (args.includes('--help')) {
      console.log(
        'usage: stacknet migrate [--db-url URL]   (default: STACKNET_DB_URL or SQLite in STACKNET_DATA_DIR)',
      );
      return 0;
    }
    const i = args.indexOf('--db-url');
    const url = i >= 0 ? args[i + 1] : undefined;
    const store = await openMigratedStore(url ?? defaultDbUrl());
    await store.close();
    console.log(`schema up to date (${store.kind})`);
    return 0;
  },
};
