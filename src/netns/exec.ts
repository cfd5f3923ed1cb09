import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';

/** What a finished command produced. `code` is null when it was killed (see `signal`, `timedOut`). */
export interface ExecResult {
  argv: string[];
  stdout: string;
  stderr: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
}

export interface ExecOptions {
  /** Kill the command (SIGKILL) after this many ms. Default 10 s: nothing here should hang a test. */
  timeoutMs?: number;
  /** Written to the command's stdin, then stdin is closed. */
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** A command that failed; carries what a person needs to see why (argv, exit code, stderr). */
export class NetnsCommandError extends Error {
  constructor(readonly result: ExecResult) {
    const how = result.timedOut
      ? 'timed out'
      : result.code === null
        ? `was killed by ${result.signal}`
        : `exited with ${result.code}`;
    const err = result.stderr.trim() || result.stdout.trim();
    super(`\`${result.argv.join(' ')}\` ${how}${err ? `: ${err.slice(0, 2000)}` : ''}`);
    this.name = 'NetnsCommandError';
  }
}

/** After the process exits, how long its output pipes may stay open (held by a child it left behind). */
const PIPES_AFTER_EXIT_MS = 1_000;
/** After the timeout's SIGKILL, how long to wait for an exit that may never come (a process stuck in the kernel). */
const EXIT_AFTER_KILL_MS = 2_000;

/**
 * Runs argv (never through a shell) and resolves with its output, whatever the exit code.
 * Rejects only when the program cannot be started at all. Always settles: a command that exits while a child it
 * started keeps its output open resolves a second after its exit, and one that does not die of the timeout's
 * SIGKILL (stuck in the kernel) resolves as timed out two seconds after it, abandoned.
 */
export function exec(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const [file, ...args] = argv;
  if (!file) throw new Error('exec: empty argv');
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
      cwd: opts.cwd,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    let settled = false;
    let late: NodeJS.Timeout | undefined;
    const finish = (code: number | null, signal: NodeJS.Signals | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(late);
      // Whoever still holds the pipes is not ours to wait for.
      child.stdout.destroy();
      child.stderr.destroy();
      resolve({
        argv,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
        code,
        signal,
        timedOut,
      });
    };
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
      late = setTimeout(() => finish(null, 'SIGKILL'), EXIT_AFTER_KILL_MS);
    }, opts.timeoutMs ?? 10_000);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      clearTimeout(timer);
      clearTimeout(late);
      settled = true;
      reject(e);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(late);
      late = setTimeout(() => finish(code, signal), PIPES_AFTER_EXIT_MS);
    });
    child.on('close', (code, signal) => finish(code, signal));
    child.stdin.on('error', () => {
      /* the program may exit without reading its input */
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** Like `exec`, but a non-zero exit, a signal or a timeout rejects with NetnsCommandError. */
export async function run(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const r = await exec(argv, opts);
  if (r.code !== 0) throw new NetnsCommandError(r);
  return r;
}

/** argv that runs `argv` inside network namespace `ns` (`ip netns exec` execs it: the PID stays the program's). */
export function inNamespace(ns: string, argv: string[]): string[] {
  return ['ip', 'netns', 'exec', ns, ...argv];
}

/** Runs argv inside namespace `ns`; resolves with stdout, stderr and exit code (never throws on exit code). */
export function execIn(ns: string, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return exec(inNamespace(ns, argv), opts);
}

/** Like `execIn`, but a non-zero exit rejects with NetnsCommandError. */
export function runIn(ns: string, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return run(inNamespace(ns, argv), opts);
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Keep this many bytes of the combined stdout/stderr for diagnostics (default 64 KiB). */
  keepOutputBytes?: number;
  /** Called with each chunk of stdout (e.g. to follow a line protocol). */
  onStdout?: (chunk: Buffer) => void;
  /** Leave stdin open as a pipe (`proc.child.stdin`). Default: closed. */
  stdinPipe?: boolean;
}

/** A long-running process we started, tracked by PID. */
export interface SpawnedProcess {
  readonly argv: string[];
  readonly pid: number;
  readonly child: ChildProcess;
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** True once it has exited. */
  hasExited(): boolean;
  /** The tail of its stdout and stderr. */
  output(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it is gone. */
  stop(graceMs?: number): Promise<void>;
}

/** Starts argv directly (no shell) and tracks it by PID. */
export function spawnTracked(argv: string[], opts: SpawnOptions = {}): SpawnedProcess {
  const [file, ...args] = argv;
  if (!file) throw new Error('spawn: empty argv');
  const child = spawn(file, args, {
    stdio: [opts.stdinPipe ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    env: opts.env ?? process.env,
    cwd: opts.cwd,
  });
  const keep = opts.keepOutputBytes ?? 64 * 1024;
  let tail = '';
  const append = (b: Buffer) => {
    tail += b.toString();
    if (tail.length > keep) tail = tail.slice(tail.length - keep);
  };
  child.stdout?.on('data', (b: Buffer) => {
    append(b);
    opts.onStdout?.(b);
  });
  child.stderr?.on('data', append);
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => {
      done = true;
      resolve({ code, signal });
    });
    child.on('error', (e) => {
      append(Buffer.from(`spawn error: ${e.message}\n`));
      done = true;
      resolve({ code: null, signal: null });
    });
  });
  if (child.pid === undefined) {
    // spawn failed synchronously (ENOENT arrives as an 'error' event); keep a consistent shape.
    done = true;
  }
  return {
    argv,
    pid: child.pid ?? -1,
    child,
    exited,
    hasExited: () => done,
    output: () => tail,
    async stop(graceMs = 2000) {
      if (done) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Starts argv inside namespace `ns`, tracked by PID (the PID is the program's own: `ip netns exec` execs). */
export function spawnIn(ns: string, argv: string[], opts: SpawnOptions = {}): SpawnedProcess {
  return spawnTracked(inNamespace(ns, argv), opts);
}

/** True while a process with this PID exists (and is not a zombie). */
export async function pidAlive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // field 3 is the state; Z = zombie, X = dead
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Signals a PID we know we started (not our child, e.g. a daemon) and waits until it is gone. */
export async function killPid(pid: number, graceMs = 2000): Promise<void> {
  if (pid <= 1) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!(await pidAlive(pid))) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
  const hard = Date.now() + 2000;
  while (Date.now() < hard && (await pidAlive(pid))) await new Promise((r) => setTimeout(r, 20));
}
