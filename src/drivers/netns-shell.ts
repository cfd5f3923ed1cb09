/**
 * A long-lived shell that runs the netns driver's commands for it, so that a burst of VM starts costs the server
 * no fork. A fork of the server blocks its event loop for the time the kernel takes to copy its page tables:
 * measured 20–80 ms (median) at 60–470 MB RSS on these 2-vCPU machines under load, while the API calls and the
 * jobs of the same burst wait. This shell is small: its forks cost about a millisecond.
 *
 * Each request is a file holding one simple command with its redirections (`cmd args <in >out 2>err`); the server
 * writes one line per request to the shell's stdin, the shell runs it in a background subshell (requests run side
 * by side, as separate `exec` calls would) and answers `done <id> <exit code>` on its stdout. A request past its
 * timeout kills the shell's whole process group (every request in flight fails and the next request starts a new
 * shell). Whatever fails here, the caller sees a failed command and takes its slower path.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NetnsCommandError, type ExecResult } from '../netns/index.js';

/** One shell word. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

interface Refable {
  ref?: () => void;
  unref?: () => void;
}

interface Pending {
  resolve: (r: ExecResult) => void;
  argv: string[];
  base: string;
  timer: NodeJS.Timeout;
}

export class NetnsShell {
  private child: ChildProcess | null = null;
  private next = 0;
  private readonly pending = new Map<number, Pending>();

  /** `dir`: where request files go (the driver's data dir). */
  constructor(private readonly dir: string) {}

  private start(): ChildProcess {
    // Its own session (setsid): a process group to kill on a timeout, and no signal from the server's terminal.
    const child = spawn('setsid', ['bash', '--noprofile', '--norc', '-c', SHELL_LOOP], {
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    // The shell keeps the process alive only while a request waits for it (refs below), never when idle.
    child.unref();
    const { stdin, stdout } = child;
    (stdout as unknown as Refable).unref?.();
    (stdin as unknown as Refable).unref?.();
    stdin!.on('error', () => undefined);
    stdout!.setEncoding('utf8');
    let buf = '';
    stdout!.on('data', (d: string) => {
      buf += d;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const m = /^done (\d+) (\d+)$/.exec(line);
        if (m) this.finish(Number(m[1]), Number(m[2]), false);
      }
    });
    child.on('exit', () => this.gone(child));
    child.on('error', () => this.gone(child));
    stdout!.on('close', () => this.gone(child));
    this.child = child;
    return child;
  }

  /** The shell is gone (or given up): every request it had fails; the next request starts a new one. */
  private gone(child: ChildProcess, timedOutId?: number): void {
    if (this.child !== child) return;
    this.child = null;
    for (const id of [...this.pending.keys()]) this.finish(id, null, id === timedOutId);
  }

  private finish(id: number, code: number | null, timedOut: boolean): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    const read = (ext: string) => {
      try {
        return readFileSync(`${p.base}.${ext}`, 'utf8');
      } catch {
        return '';
      }
    };
    const r: ExecResult = {
      argv: p.argv,
      stdout: read('out'),
      stderr: code === null && !timedOut ? 'the driver shell exited' : read('err'),
      code,
      signal: code === null ? 'SIGKILL' : null,
      timedOut,
    };
    for (const ext of ['sh', 'in', 'out', 'err']) rmSync(`${p.base}.${ext}`, { force: true });
    if (this.pending.size === 0) (this.child?.stdout as unknown as Refable | undefined)?.unref?.();
    p.resolve(r);
  }

  /** Runs argv in the shell (like `exec` in src/netns/exec.ts: resolves whatever the exit code). */
  exec(argv: string[], o: { input?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
    return new Promise<ExecResult>((resolve) => {
      const child = this.child ?? this.start();
      const id = this.next++;
      const base = join(this.dir, `sh-${process.pid}-${id}`);
      writeFileSync(`${base}.in`, o.input ?? '');
      writeFileSync(
        `${base}.sh`,
        `${argv.map(shq).join(' ')} <${shq(`${base}.in`)} >${shq(`${base}.out`)} 2>${shq(`${base}.err`)}\n`,
      );
      const timer = setTimeout(() => {
        // The request's command cannot be told from the others: the group goes, the next request starts anew.
        if (this.child === child && child.pid) {
          try {
            process.kill(-child.pid, 'SIGKILL');
          } catch {
            /* gone already */
          }
        }
        this.gone(child, id);
        this.finish(id, null, true);
      }, o.timeoutMs ?? 10_000);
      timer.unref();
      this.pending.set(id, { resolve, argv, base, timer });
      (child.stdout as unknown as Refable).ref?.();
      child.stdin!.write(`${id} ${base}.sh\n`);
    });
  }

  /** Like `exec`, but a non-zero exit, a kill or a timeout rejects with NetnsCommandError. */
  async run(argv: string[], o: { input?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
    const r = await this.exec(argv, o);
    if (r.code !== 0) throw new NetnsCommandError(r);
    return r;
  }

  /** Ends the shell (EOF on its stdin): requests in flight still answer, nothing new is read. */
  close(): void {
    this.child?.stdin?.end();
  }
}

/**
 * The shell's loop: one request per line (`<id> <file>`), each in a background subshell that sources the file
 * (one simple command, so one fork and exec) and reports its exit code in one write (atomic: under PIPE_BUF).
 */
const SHELL_LOOP = `
while read -r id file; do
  ( . "$file"; echo "done $id $?" ) &
done
wait
`;
