/**
 * A router's `stacknet router-agent` as a detached process inside the router's namespace: started by the netns
 * driver (src/drivers/netns.ts) and by the host agent (src/hostagent/), adopted again by its pid file.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getStatus } from '../agent/control-client.js';
import { pidAlive } from '../netns/index.js';

const here = dirname(fileURLToPath(import.meta.url));
/** bin/stacknet.js from src/drivers or dist/drivers. */
const STACKNET_BIN = resolve(here, '..', '..', 'bin', 'stacknet.js');

export interface RouterProcessSpec {
  name: string;
  /** The router's namespace. */
  ns: string;
  /** Its directory: secret, agent.pid, agent.log and the agent's data/. */
  dir: string;
  controlIp: string;
  controlPort: number;
  secret: string;
  appliance?: 'internalLb';
}

/** The router agent's pid from `<dir>/agent.pid` while it runs, else null. */
export async function routerAgentPid(dir: string): Promise<number | null> {
  try {
    const pid = Number(readFileSync(join(dir, 'agent.pid'), 'utf8'));
    return pid > 1 && (await pidAlive(pid)) ? pid : null;
  } catch {
    return null;
  }
}

/** Starts the router agent in `ns` and waits (20 s at most) until its control API answers. */
export async function startRouterAgent(r: RouterProcessSpec): Promise<void> {
  const dir = r.dir;
  mkdirSync(dir, { recursive: true });
  const secretFile = join(dir, 'secret');
  writeFileSync(secretFile, r.secret, { mode: 0o600 });
  const out = openSync(join(dir, 'agent.log'), 'a');
  const bin = existsSync(STACKNET_BIN) ? STACKNET_BIN : resolve('bin/stacknet.js');
  const child = spawn(
    'ip',
    [
      'netns',
      'exec',
      r.ns,
      process.execPath,
      bin,
      'router-agent',
      '--control-address',
      `${r.controlIp}:${r.controlPort}`,
      '--data-dir',
      join(dir, 'data'),
      '--secret-file',
      secretFile,
      '--guest-interface',
      'eth0',
      ...(r.appliance ? ['--appliance', 'internal-lb'] : []),
    ],
    // Detached in its own session: the router keeps serving when the server stops (and a new server adopts
    // it by its pid file and control address).
    { detached: true, stdio: ['ignore', out, out] },
  );
  child.unref();
  writeFileSync(join(dir, 'agent.pid'), String(child.pid));
  const addr = `${r.controlIp}:${r.controlPort}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      await getStatus(addr, r.secret, { leases: false });
      break;
    } catch (e) {
      if (Date.now() > deadline || !(await pidAlive(child.pid!)))
        throw new Error(
          `router agent ${r.name} did not come up: ${(e as Error).message}; see ${join(dir, 'agent.log')}`,
          { cause: e },
        );
      await new Promise((res) => setTimeout(res, 50));
    }
  }
}
