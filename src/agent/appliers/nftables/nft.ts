/** The nft tool, and the one guard that keeps a drop-policy firewall out of the machine's own namespace. */
import { readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../system.js';

/**
 * True unless this process is provably in another network namespace than the machine's: loading a drop-policy
 * firewall in the machine's own namespace would cut it off. PID 1's namespace is often unreadable (containers,
 * microVMs), so a namespace also counts as "ours" when it is one of the named ones in /run/netns.
 */
export function inInitialNetNamespace(): boolean {
  let self: string;
  try {
    self = readlinkSync('/proc/self/ns/net');
  } catch {
    return true;
  }
  try {
    return self === readlinkSync('/proc/1/ns/net');
  } catch {
    /* not readable here: look for a named namespace */
  }
  try {
    const ino = statSync('/proc/self/ns/net').ino;
    return !readdirSync('/run/netns').some((n) => {
      try {
        return statSync(`/run/netns/${n}`).ino === ino;
      } catch {
        return false;
      }
    });
  } catch {
    return true;
  }
}

export async function nftApply(file: string, checkOnly: boolean): Promise<string | null> {
  const r = await run('nft', checkOnly ? ['--check', '-f', file] : ['-f', file]);
  return r.code === 0 ? null : (r.stderr || r.stdout).trim();
}

/** `nft --check` of a ruleset text (through a scratch file in `dir`): null, or nft's complaint. */
export async function nftCheckText(dir: string, text: string): Promise<string | null> {
  const tmp = join(dir, '.nft-check.nft');
  writeFileSync(tmp, text);
  try {
    return await nftApply(tmp, true);
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** Removes our tables (`family name` each), whether they exist or not, in one transaction. */
export async function nftDeleteTables(dir: string, tables: string[]): Promise<void> {
  const tmp = join(dir, '.nft-delete.nft');
  writeFileSync(tmp, tables.map((t) => `table ${t}\ndelete table ${t}\n`).join(''));
  try {
    await nftApply(tmp, false);
  } finally {
    rmSync(tmp, { force: true });
  }
}
