/** `virsh` against one libvirt connection (the backend's own libvirtd, or an operator's system one). */
import { exec, type ExecResult } from '../../netns/exec.js';

export class VirshError extends Error {
  constructor(
    readonly result: ExecResult,
    readonly uri: string,
  ) {
    const err = (result.stderr.trim() || result.stdout.trim()).replace(/\s+/g, ' ');
    super(
      `virsh ${result.argv.slice(4).join(' ')} (${uri}) ${result.timedOut ? 'timed out' : `exited with ${result.code}`}: ${err}`,
    );
    this.name = 'VirshError';
  }

  /** libvirt's "no such domain" (VIR_ERR_NO_DOMAIN), as virsh words it. */
  get noDomain(): boolean {
    return /Domain not found|failed to get domain|no domain with matching/i.test(this.result.stderr);
  }
}

export class Virsh {
  constructor(readonly uri: string) {}

  /** Runs `virsh -c <uri> -q <args>`; resolves whatever the exit code. */
  exec(args: string[], timeoutMs = 60_000): Promise<ExecResult> {
    return exec(['virsh', '-c', this.uri, '-q', ...args], {
      timeoutMs,
      // Parsed output (`list`, `domstate`) must not be translated.
      env: { ...process.env, LC_ALL: 'C' },
    });
  }

  /** Like exec, but a failure rejects with VirshError; resolves with stdout. */
  async run(args: string[], timeoutMs?: number): Promise<string> {
    const r = await this.exec(args, timeoutMs);
    if (r.code !== 0) throw new VirshError(r, this.uri);
    return r.stdout;
  }

  /**
   * Runs several commands in one `virsh` (its command string, `a ; b`): one process and one connection instead of
   * one each, which on a busy host is tens of ms per command. virsh runs them all and exits with the last one's
   * status, so each must fail when one before it did (`define ; start`: no domain, no start). An argument holding
   * a single quote cannot be quoted for virsh's parser: then one `virsh` per command.
   */
  async runAll(cmds: string[][], timeoutMs?: number): Promise<string> {
    if (cmds.some((c) => c.some((a) => a.includes("'")))) {
      let out = '';
      for (const c of cmds) out += await this.run(c, timeoutMs);
      return out;
    }
    return this.run([commandString(cmds)], timeoutMs);
  }

  /**
   * Like runAll, but resolves whatever the exit code (the last command's, see runAll); with a single quote in an
   * argument, one `virsh` per command, stopping at the first that fails.
   */
  async execAll(cmds: string[][], timeoutMs?: number): Promise<ExecResult> {
    if (cmds.some((c) => c.some((a) => a.includes("'")))) {
      let r: ExecResult | undefined;
      for (const c of cmds) if ((r = await this.exec(c, timeoutMs)).code !== 0) break;
      return r!;
    }
    return this.exec([commandString(cmds)], timeoutMs);
  }

  /** Every domain with its state (`virsh list --all`): libvirt's state words, e.g. `running`, `shut off`. */
  async list(): Promise<{ name: string; state: string }[]> {
    const out = await this.run(['list', '--all']);
    const doms: { name: string; state: string }[] = [];
    for (const line of out.split('\n')) {
      const m = /^\s*(\d+|-)\s+(\S+)\s+(.+?)\s*$/.exec(line);
      if (m) doms.push({ name: m[2]!, state: m[3]! });
    }
    return doms;
  }

  /** A domain's state word, or null when there is no such domain. */
  async domstate(name: string): Promise<string | null> {
    const r = await this.exec(['domstate', name]);
    if (r.code === 0) return r.stdout.trim();
    const err = new VirshError(r, this.uri);
    if (err.noDomain) return null;
    throw err;
  }
}

/** Commands as one virsh command string, `'a' 'b' ; 'c'` (no argument may hold a single quote). */
const commandString = (cmds: string[][]) => cmds.map((c) => c.map((a) => `'${a}'`).join(' ')).join(' ; ');

/** libvirt states in which the guest is (still) up. */
export function isRunningState(state: string): boolean {
  return ['running', 'idle', 'paused', 'in shutdown', 'blocked', 'pmsuspended'].includes(state);
}
