/**
 * Starts `router-agent` from source (tsx, no build needed) inside a test namespace, the way the agent's process
 * tests all do; the TestNet stops it by PID on cleanup.
 */
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SpawnedProcess, TestNet } from '../../netns/index.js';

const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');

export interface AgentSpawnOptions {
  control: string;
  dataDir: string;
  secret: string;
  /** Omitted: the agent's own default. */
  guestInterface?: string;
}

export function spawnTestAgent(net: TestNet, ns: string, o: AgentSpawnOptions): SpawnedProcess {
  return net.spawnIn(
    ns,
    [
      process.execPath,
      '--import',
      'tsx',
      join(root, 'src/agent/testing/cli-entry.ts'),
      'router-agent',
      '--control-address',
      o.control,
      '--data-dir',
      o.dataDir,
      '--secret',
      o.secret,
      ...(o.guestInterface === undefined ? [] : ['--guest-interface', o.guestInterface]),
    ],
    { cwd: root },
  );
}
