import { join } from 'node:path';
import { dataDir as defaultDataDir } from '../config/settings.js';
import type { CliCommand } from './main.js';

const HELP = `usage: stacknet netns cleanup [--data-dir DIR]

Removes what the netns driver of the server with this data directory created (router and VM namespaces and
their processes, the switch namespace, the control bridge and veths), as listed in DIR/netns/created.json,
and nothing else. Stopping the server leaves all of it running; this is how it goes away.`;

export const netnsCommand: CliCommand = {
  summary: 'netns driver maintenance (cleanup)',
  async run(args) {
    if (args[0] !== 'cleanup' || args.includes('--help') || args.includes('-h')) {
      console.log(HELP);
      return args[0] === 'cleanup' ? 0 : 2;
    }
    const i = args.indexOf('--data-dir');
    const dir = i >= 0 ? args[i + 1] : (process.env.STACKNET_DATA_DIR ?? defaultDataDir());
    if (!dir) {
      console.error('--data-dir needs a value');
      return 2;
    }
    const { NetnsDriver } = await import('../drivers/netns.js');
    await NetnsDriver.cleanup(join(dir, 'netns'), (m) => console.log(m));
    return 0;
  },
};
