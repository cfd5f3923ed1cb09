/** What every `npm run bench:<area>` shares: JSON lines on stdout, progress on stderr, flags, quantiles. */
import { readFileSync } from 'node:fs';
import { callApi, waitForJob } from '../src/api/client.js';
import type { ClientOptions } from '../src/api/client.js';

export function benchOutput(bench: string): {
  log: (m: string) => void;
  emit: (o: Record<string, unknown>) => void;
} {
  return {
    log: (m) => process.stderr.write(`[bench:${bench}] ${m}\n`),
    emit: (o) => process.stdout.write(JSON.stringify({ bench, ...o }) + '\n'),
  };
}

/**
 * Walks argv: `on(flag, value)` takes a flag it knows (calling `value()` for its argument) and returns true;
 * `--help` prints `usage` and exits; any other flag throws.
 */
export function parseArgs(
  argv: string[],
  usage: string,
  on: (flag: string, value: () => string) => boolean,
): void {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${a} needs a value`);
      return x;
    };
    if (a === '--help') {
      console.log(usage);
      process.exit(0);
    }
    if (!on(a, value)) throw new Error(`unknown flag ${a}`);
  }
}

/**
 * A command line of files and `--flag value` pairs (the profile summarisers): the files, in order; the flags go to
 * parseArgs with `usage` and `on`.
 */
export function filesAndFlags(
  argv: string[],
  usage: string,
  on: (flag: string, value: () => string) => boolean,
): string[] {
  const files: string[] = [];
  const flags: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith('--')) flags.push(a, ...(a === '--help' ? [] : [argv[++i] ?? '']));
    else files.push(a);
  }
  parseArgs(flags, usage, on);
  return files;
}

/** A V8 CPU profile (`.cpuprofile`, from --cpu-prof or node:inspector's Profiler.stop). */
export interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
    children?: number[];
  }[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** A comma list of numbers, `_` allowed as a digit separator (`0,1_000,10_000`). */
export const numberList = (s: string): number[] => s.split(',').map((x) => Number(x.replace(/_/g, '')));

export function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
}

/** The first 1-minute load average (/proc/loadavg): what every figure taken on a shared machine should carry. */
export const loadavg = (): number => Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One API call that must answer 200; its body. */
export async function benchApi(o: ClientOptions, command: string, params: Record<string, string> = {}) {
  const r = await callApi(o, command, params);
  if (r.status !== 200) throw new Error(`${command}: HTTP ${r.status} ${r.text}`);
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return r.body as any;
}

/** An async command run to its end (polled every 50 ms); its job result, or an error saying what it was. */
export async function benchJob(
  o: ClientOptions,
  command: string,
  params: Record<string, string>,
  timeoutMs?: number,
) {
  const r = await benchApi(o, command, params);
  const j = await waitForJob(o, r.jobid, { intervalMs: 50, ...(timeoutMs ? { timeoutMs } : {}) });
  if (j.jobstatus !== 1) throw new Error(`${command}: ${JSON.stringify(j.jobresult)}`);
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return j.jobresult as any;
}
