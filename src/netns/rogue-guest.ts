import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { eventually } from './eventually.js';
import { runIn, type SpawnedProcess } from './exec.js';

/*
 * A guest acting as a rogue server (rogue-guest.py, run with Debian's python3 inside the guest's namespace): it
 * builds its frames by hand on a packet socket, so a test picks what a hostile guest controls — UDP source port,
 * VLAN tags, source addresses — and checks that the port rules stop it. Node has no packet sockets.
 */

const here = dirname(fileURLToPath(import.meta.url));
/** Beside this file in src/netns; from dist/netns, back in the source tree (tsc does not copy it). */
const SCRIPT = [
  join(here, 'rogue-guest.py'),
  resolve(here, '..', '..', 'src', 'netns', 'rogue-guest.py'),
].find((p) => existsSync(p));

export type RogueMode = 'dhcp4' | 'ra' | 'udp6' | 'icmp';

/** One line the rogue printed per frame sent (`{"sent": "offer", ...}`). */
export type RogueSent = { sent: string } & Record<string, unknown>;

export class RogueGuest {
  constructor(readonly process: SpawnedProcess) {}

  /** What it sent so far, one entry per frame. */
  sent(): RogueSent[] {
    return this.process
      .output()
      .split('\n')
      .flatMap((l) => {
        try {
          const o = JSON.parse(l) as Partial<RogueSent>;
          return typeof o.sent === 'string' ? [o as RogueSent] : [];
        } catch {
          return [];
        }
      });
  }

  stop(): Promise<void> {
    return this.process.stop(1000);
  }
}

/**
 * Starts the rogue in `ns` with `mode` and its options (`--mac`, `--ip`, `--offer`, `--sport`, `--tags 0,0`, ...;
 * see rogue-guest.py) and waits until it listens (dhcp4) or starts sending. `spawn` is a TestNet's `spawnIn`,
 * so cleanup() stops it.
 */
export async function startRogueGuest(
  spawn: (ns: string, argv: string[]) => SpawnedProcess,
  ns: string,
  mode: RogueMode,
  args: string[],
): Promise<RogueGuest> {
  if (!SCRIPT) throw new Error(`rogue-guest.py not found beside ${here}`);
  const proc = spawn(ns, ['/usr/bin/python3', '-u', SCRIPT, mode, ...args]);
  await eventually(
    () => {
      if (proc.output().includes('"ready": true')) return;
      if (proc.hasExited()) throw new Error(`rogue guest exited: ${proc.output()}`);
      throw new Error('not ready');
    },
    { timeoutMs: 10_000, what: `rogue ${mode} in ${ns}` },
  );
  return new RogueGuest(proc);
}

/**
 * Packets counted by the rules of one bridge-family chain, summed per rule comment (rules without a comment or
 * counter are left out). The netns driver's port chains name what each drop stops.
 */
export async function chainCounters(ns: string, table: string, chain: string): Promise<Map<string, number>> {
  const r = await runIn(ns, ['nft', '-j', 'list', 'chain', 'bridge', table, chain]);
  const doc = JSON.parse(r.stdout) as {
    nftables: { rule?: { comment?: string; expr?: { counter?: { packets: number } }[] } }[];
  };
  const out = new Map<string, number>();
  for (const item of doc.nftables) {
    const rule = item.rule;
    if (!rule?.comment) continue;
    const c = rule.expr?.find((e) => e.counter)?.counter;
    if (c) out.set(rule.comment, (out.get(rule.comment) ?? 0) + c.packets);
  }
  return out;
}
