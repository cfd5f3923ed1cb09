/**
 * Keeps one daemon (dnsmasq or keepalived) running for this router: adopts an instance a previous agent left
 * running (so restarting the agent does not restart the data plane), restarts it on crash with backoff, and never
 * runs two — instances are recognised by their own config path in /proc/<pid>/cmdline.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, readdirSync } from 'node:fs';

export interface SupervisorOptions {
  name: string;
  binary: string;
  args: string[];
  pidFile: string;
  /** A string that appears in the daemon's command line only for this router (its config path). */
  identity: string;
  /** stdout/stderr of the daemon go here (dnsmasq reports start-up errors on stderr). */
  outputFile: string;
  /** Called before each (re)start, e.g. to pre-seed the lease file. */
  beforeStart?: () => Promise<void> | void;
  onEvent?: (event: SupervisorEvent) => void;
}

export type SupervisorEvent =
  | { type: 'started'; pid: number; adopted: boolean }
  | { type: 'exited'; pid: number; expected: boolean }
  | { type: 'start-failed'; message: string };

function readCmdline(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return null;
  }
}

function isZombieOrGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' || state === 'X';
  } catch {
    return true;
  }
}

function parentOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return 0;
  }
}

/** Every process's command line (pid → cmdline), read from /proc. */
function processTable(): Map<number, string> {
  const table = new Map<number, string>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    const cmd = readCmdline(pid);
    if (cmd) table.set(pid, cmd);
  }
  return table;
}

const snapshot = new AsyncLocalStorage<{ table: Map<number, string>; live: boolean }>();

/**
 * Runs `f` with one reading of /proc for every leftover search inside it (each start of a daemon looks for
 * leftovers of its own instance). Starting 64 DHCP shards otherwise read every process's command line 64 times
 * (20–40 ms each on a loaded machine, on the agent's one thread). Sound for leftovers: a process missing from
 * the snapshot was started after it, i.e. by `f` itself, not left by an earlier agent.
 */
export async function withProcessSnapshot<T>(f: () => Promise<T>): Promise<T> {
  const s = { table: processTable(), live: true };
  try {
    return await snapshot.run(s, f);
  } finally {
    // Timers and child handles made inside `f` keep its context: a crash restart much later scans afresh.
    s.live = false;
  }
}

/**
 * Instances of `binaryName` whose command line carries `identity`, top-level only: keepalived forks a VRRP child
 * with the same command line, and treating that child as a second instance (and killing it) drops the VIP.
 */
export function findProcesses(binaryName: string, identity: string): number[] {
  const out: number[] = [];
  const s = snapshot.getStore();
  for (const [pid, seen] of s?.live ? s.table : processTable()) {
    // A snapshot's match is read again: its pid may have gone (and been reused) since.
    const cmd = seen.includes(identity) && s?.live ? readCmdline(pid) : seen;
    if (!cmd) continue;
    const argv0 = cmd.split(' ')[0] ?? '';
    if (argv0.endsWith(binaryName) && cmd.includes(identity) && !isZombieOrGone(pid)) out.push(pid);
  }
  const found = new Set(out);
  return out.filter((pid) => !found.has(parentOf(pid))).sort((a, b) => a - b);
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class ProcessSupervisor {
  pid: number | null = null;
  restarts = 0;
  lastError: string | null = null;
  /** When it died unexpectedly (ms since the epoch), newest last; for crash-loop reporting. */
  readonly crashes: number[] = [];
  private wanted = false;
  private timer: NodeJS.Timeout | null = null;
  private starting: Promise<void> | null = null;
  private backoffMs = 100;
  private readonly binaryName: string;

  constructor(private readonly o: SupervisorOptions) {
    this.binaryName = o.binary.split('/').pop() ?? o.binary;
  }

  get running(): boolean {
    return this.pid !== null && !isZombieOrGone(this.pid);
  }

  /** Adopt a running instance (killing any extra ones), or start one. */
  async ensureRunning(): Promise<void> {
    this.wanted = true;
    this.watch();
    if (this.running) return;
    if (!this.starting) {
      this.starting = this.start().finally(() => {
        this.starting = null;
      });
    }
    return this.starting;
  }

  /** Adopt an instance left by a previous agent, without starting one. Returns whether one was found. */
  adopt(): boolean {
    const found = findProcesses(this.binaryName, this.o.identity);
    if (found.length === 0) return false;
    const [keep, ...extra] = found;
    for (const pid of extra) safeKill(pid, 'SIGTERM');
    this.pid = keep!;
    this.wanted = true;
    this.watch();
    this.o.onEvent?.({ type: 'started', pid: keep!, adopted: true });
    return true;
  }

  private async start(): Promise<void> {
    for (const pid of findProcesses(this.binaryName, this.o.identity)) {
      // A leftover instance (an agent that died mid-restart): never run two.
      safeKill(pid, 'SIGTERM');
      await waitGone(pid, 2000);
    }
    await this.o.beforeStart?.();
    const out = openSync(this.o.outputFile, 'w');
    const child = spawn(this.o.binary, this.o.args, { detached: true, stdio: ['ignore', out, out] });
    closeSync(out);
    const pid = child.pid;
    if (pid === undefined) {
      const message = `${this.o.name}: could not spawn ${this.o.binary}`;
      this.lastError = message;
      this.o.onEvent?.({ type: 'start-failed', message });
      throw new Error(message);
    }
    let exited = false;
    child.on('exit', () => {
      exited = true;
      if (this.pid === pid) this.onExit(pid);
    });
    child.on('error', () => undefined);
    child.unref();
    // Ready when the daemon has written its pid file (dnsmasq does so after binding its sockets).
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      if (exited) break;
      if (readPid(this.o.pidFile) === pid) {
        this.pid = pid;
        this.backoffMs = 100;
        this.lastError = null;
        this.o.onEvent?.({ type: 'started', pid, adopted: false });
        return;
      }
      await delay(5);
    }
    if (!exited) safeKill(pid, 'SIGKILL');
    let detail = '';
    try {
      detail = readFileSync(this.o.outputFile, 'utf8').trim();
    } catch {
      /* no output */
    }
    const message = `${this.o.name} did not start${detail ? `: ${detail}` : ''}`;
    this.lastError = message;
    this.o.onEvent?.({ type: 'start-failed', message });
    throw new Error(message);
  }

  private onExit(pid: number): void {
    if (this.pid !== pid) return;
    this.pid = null;
    this.o.onEvent?.({ type: 'exited', pid, expected: !this.wanted });
    if (!this.wanted) return;
    this.restarts++;
    this.crashes.push(Date.now());
    if (this.crashes.length > 20) this.crashes.shift();
    const wait = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, 5000);
    setTimeout(() => {
      if (this.wanted && !this.running) this.ensureRunning().catch(() => undefined);
    }, wait).unref();
  }

  private watch(): void {
    if (this.timer) return;
    // An adopted daemon is not our child, so its death only shows by polling.
    this.timer = setInterval(() => {
      if (this.pid !== null && isZombieOrGone(this.pid)) this.onExit(this.pid);
    }, 200);
    this.timer.unref();
  }

  signal(sig: NodeJS.Signals): boolean {
    if (!this.running) return false;
    return safeKill(this.pid!, sig);
  }

  async stop(): Promise<void> {
    this.wanted = false;
    if (this.starting) await this.starting.catch(() => undefined);
    const pid = this.pid;
    this.pid = null;
    if (pid !== null) {
      safeKill(pid, 'SIGTERM');
      if (!(await waitGone(pid, 3000))) safeKill(pid, 'SIGKILL');
      await waitGone(pid, 1000);
    }
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.ensureRunning();
  }

  /** Stop watching without touching the daemon (agent exiting but leaving the data plane up). */
  detach(): void {
    this.wanted = false;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}

export function readPid(file: string): number | null {
  try {
    const n = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

function safeKill(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (isZombieOrGone(pid)) return true;
    await delay(10);
  }
  return isZombieOrGone(pid);
}
