/** What every `npm run bench:<area>` shares: JSON lines on stdout, progress on stderr, flags, quantiles. */

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

/** A comma list of numbers, `_` allowed as a digit separator (`0,1_000,10_000`). */
export const numberList = (s: string): number[] => s.split(',').map((x) => Number(x.replace(/_/g, '')));

export function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
}
