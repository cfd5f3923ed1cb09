import { execIn, type ExecResult } from './exec.js';

export interface DigResult {
  /** NOERROR, NXDOMAIN, SERVFAIL, REFUSED ... or TIMEOUT when no answer came. */
  status: string;
  /** Answer records' data (for A: the addresses), in order. */
  answers: string[];
  /** True when the answer had the `aa` flag (answered from the server's own data). */
  authoritative: boolean;
  raw: string;
}

export interface DigOptions {
  type?: string;
  /** Seconds per try (default 1). */
  timeoutSec?: number;
  /** Tries (default 1: a lost query shows as TIMEOUT instead of being retried away). */
  tries?: number;
  tcp?: boolean;
}

/** `dig @server name type` from inside `ns`. `server` undefined = the namespace's resolv.conf. */
export async function dig(
  ns: string,
  name: string,
  server?: string,
  opts: DigOptions = {},
): Promise<DigResult> {
  const argv = ['dig', `+time=${opts.timeoutSec ?? 1}`, `+tries=${opts.tries ?? 1}`, '+nocookie'];
  if (opts.tcp) argv.push('+tcp');
  if (server) argv.push(`@${server}`);
  argv.push('-q', name, '-t', opts.type ?? 'A');
  const r = await execIn(ns, argv, { timeoutMs: ((opts.timeoutSec ?? 1) * (opts.tries ?? 1) + 5) * 1000 });
  return parseDig(r);
}

export function parseDig(r: ExecResult): DigResult {
  const raw = r.stdout;
  const status =
    /status: ([A-Z]+)/.exec(raw)?.[1] ??
    (/timed out|no servers could be reached/.test(raw) ? 'TIMEOUT' : 'ERROR');
  const flags = /;; flags: ([a-z ]+);/.exec(raw)?.[1] ?? '';
  const answers: string[] = [];
  const section = /;; ANSWER SECTION:\n([\s\S]*?)(\n\n|$)/.exec(raw)?.[1] ?? '';
  for (const line of section.split('\n')) {
    const parts = line.trim().split(/\s+/);
    if (parts.length >= 5) answers.push(parts.slice(4).join(' '));
  }
  return { status, answers, authoritative: flags.split(' ').includes('aa'), raw };
}

export interface HttpResult {
  /** HTTP status, or 0 when no response came (refused, timeout). */
  status: number;
  body: string;
  /** curl's exit code (0 on any HTTP response). */
  curlExit: number | null;
  stderr: string;
}

export interface HttpOptions {
  headers?: Record<string, string>;
  method?: string;
  /** Form fields (sent as application/x-www-form-urlencoded). */
  form?: Record<string, string>;
  timeoutSec?: number;
}

const STATUS_MARK = '\n__stacknet_http_status__';

/** An HTTP request made with curl from inside `ns` (the source address is the guest's own). */
export async function httpGet(ns: string, url: string, opts: HttpOptions = {}): Promise<HttpResult> {
  const argv = ['curl', '-sS', '--noproxy', '*', '--max-time', String(opts.timeoutSec ?? 3)];
  argv.push('-w', `${STATUS_MARK}%{http_code}`);
  if (opts.method) argv.push('-X', opts.method);
  for (const [k, v] of Object.entries(opts.headers ?? {})) argv.push('-H', `${k}: ${v}`);
  for (const [k, v] of Object.entries(opts.form ?? {})) argv.push('--data-urlencode', `${k}=${v}`);
  argv.push('--', url);
  const r = await execIn(ns, argv, { timeoutMs: ((opts.timeoutSec ?? 3) + 5) * 1000 });
  const i = r.stdout.lastIndexOf(STATUS_MARK);
  const status = i >= 0 ? Number(r.stdout.slice(i + STATUS_MARK.length)) || 0 : 0;
  return { status, body: i >= 0 ? r.stdout.slice(0, i) : r.stdout, curlExit: r.code, stderr: r.stderr };
}

/**
 * argv of a TCP server (socat) that answers every connection with `<greeting> <peer address>` and closes: run it in a
 * namespace (TestNet.spawnIn) and `tcpProbe` it from another; the peer address shows whether the path NATed.
 */
export function tcpGreeterArgv(port: number, greeting: string): string[] {
  return [
    'socat',
    `TCP-LISTEN:${port},fork,reuseaddr`,
    `SYSTEM:echo ${greeting.replace(/[^\w.-]/g, '')} $SOCAT_PEERADDR`,
  ];
}

export interface TcpProbeResult {
  /** Connected and read a line. */
  ok: boolean;
  /** The line the server sent (trimmed), or ''. */
  reply: string;
  stderr: string;
}

/** Connects from inside `ns` to `host:port` and reads one line, giving up after `timeoutSec`. */
export async function tcpProbe(
  ns: string,
  host: string,
  port: number,
  timeoutSec = 2,
): Promise<TcpProbeResult> {
  const r = await execIn(
    ns,
    ['socat', `-T${timeoutSec}`, '-u', `TCP:${host}:${port},connect-timeout=${timeoutSec}`, 'STDOUT'],
    { timeoutMs: (timeoutSec + 5) * 1000 },
  );
  const reply = r.stdout.trim();
  return { ok: r.code === 0 && reply !== '', reply, stderr: r.stderr };
}
