/**
 * Structured logs: pino, JSON lines by default (one object per line: level, time, msg and the event's own
 * fields), or a short text line per event for people (`--log-format text`; pino-pretty is not a dependency, so
 * the formatter is here). The modules keep their `log?: (msg: string) => void` hooks; the composition roots
 * (server, router agent) turn those into `info` lines of a child logger with `logHook`.
 */
import { pino } from 'pino';
import type { DestinationStream, Level, Logger } from 'pino';

export type { Logger };
export type LogFormat = 'json' | 'text';
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LoggerOptions {
  level?: LogLevel;
  format?: LogFormat;
  /** Where lines go (default stderr, so that stdout keeps what a command prints for scripts). */
  destination?: { write(line: string): unknown };
  /**
   * Lines to stderr through a writer that coalesces them (pino.destination, asynchronous) rather than one
   * synchronous write(2) each: the server logs a line per API request and per job, and on a pipe each such write
   * was ~5 % of its CPU under load. Flushed on exit; a SIGKILL loses the lines of its last moment. Each line is
   * handed over as bytes (see bufferedStderr).
   */
  buffered?: boolean;
  /** Fields on every line (e.g. `{ service: 'router-agent', router: 'r-4-VM' }`). */
  base?: Record<string, unknown>;
}

export function parseLogLevel(text: string | undefined, dflt: LogLevel = 'info'): LogLevel {
  if (text === undefined || text === '') return dflt;
  const l = text.toLowerCase();
  if ((LOG_LEVELS as readonly string[]).includes(l)) return l as LogLevel;
  throw new Error(`unknown log level '${text}' (use ${LOG_LEVELS.join(', ')})`);
}

export function parseLogFormat(text: string | undefined): LogFormat {
  if (text === undefined || text === '' || text === 'json') return 'json';
  if (text === 'text') return 'text';
  throw new Error(`unknown log format '${text}' (use json or text)`);
}

/** One JSON line of pino as `2026-12-06T14:00:00.000Z INFO  message key=value ...`. */
export function formatTextLine(json: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const { level, time, msg, pid: _pid, hostname: _hostname, ...rest } = o;
  const when = typeof time === 'number' ? new Date(time).toISOString() : String(time ?? '');
  const lvl = String(level ?? '')
    .toUpperCase()
    .padEnd(5);
  const fields = Object.entries(rest)
    .map(([k, v]) => {
      const s = typeof v === 'string' ? v : JSON.stringify(v);
      return `${k}=${/[\s"=]/.test(s) ? JSON.stringify(s) : s}`;
    })
    .join(' ');
  return `${when} ${lvl} ${String(msg ?? '')}${fields ? ` ${fields}` : ''}\n`;
}

/**
 * stderr through sonic-boom, asynchronous, each line given as a Buffer. Given strings, sonic-boom measures the
 * UTF-8 length of the whole text waiting for the write in flight at every line (Buffer.byteLength flattens it), so
 * a busy loop's lines cost more the more of them wait: 1.9 % of the server's CPU per associateIpAddress job. In
 * its buffer mode it keeps the lengths and joins the lines once per write.
 */
function bufferedStderr(): DestinationStream {
  const sonic = pino.destination({ dest: 2, sync: false, contentMode: 'buffer' });
  // Its types know only strings; in buffer mode its write takes the bytes. Exit flushing stays sonic-boom's own.
  const writeBytes = sonic.write.bind(sonic) as unknown as (bytes: Buffer) => boolean;
  return { write: (line: string) => void writeBytes(Buffer.from(line)) };
}

export function createLogger(o: LoggerOptions = {}): Logger {
  const out = o.destination ?? (o.buffered ? bufferedStderr() : process.stderr);
  const dest: DestinationStream =
    o.format === 'text'
      ? { write: (line: string) => void out.write(formatTextLine(line)) }
      : (out as DestinationStream);
  return pino(
    {
      level: o.level ?? 'info',
      base: o.base ?? {},
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    dest,
  );
}

/** The modules' `log(msg)` hooks as lines of `logger` at `level`. */
export function logHook(logger: Logger, level: Level = 'info'): (msg: string) => void {
  return (msg) => logger[level](msg);
}
