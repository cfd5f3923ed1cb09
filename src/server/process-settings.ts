/**
 * How the management server's process keeps its memory (issue 16: ≤ 300 MB RSS on a zone of 1,000,000 allocated
 * addresses, with Node's default heap).
 *
 * What such a server holds once its routers are converged (docs/benchmarks.md "1,000,000 addresses measured to the
 * end"): ~145 MB of live V8 heap and ~20 MB of array buffers, ~70 MB and ~29 MB since the reconciler's delta
 * bases are packed ("1,000,000 addresses under 300 MB"). What made its RSS 540–740 MB was garbage: after
 * each full GC V8 lets the old generation grow by a factor it picks from the GC's speed (up to 4× the live set
 * on a heap limit of 4 GB), so a server that builds router states of several MB at a time collects only when
 * hundreds of MB of dead states have piled up, and keeps those pages. `--heap-growing-percent` fixes that factor:
 * the next GC comes when the heap has grown by that percentage over what the last one left. It is a growth
 * factor, not a limit: a server that needs more heap still gets it (no out-of-memory at a cap), it collects
 * more often.
 *
 * V8 reads this flag at every GC, so the server sets it for itself at start (`v8.setFlagsFromString`); flags
 * that size the heap at its creation (`--max-old-space-size`, `--max-semi-space-size`) cannot be set that way
 * and stay the operator's (`NODE_OPTIONS`). STACKNET_HEAP_GROWING_PERCENT chooses the percentage, `0` leaves
 * V8's own factor; a `--heap-growing-percent` in NODE_OPTIONS or on node's command line wins over both.
 */
import { setFlagsFromString } from 'node:v8';

/**
 * The default: measured at 1,000,000 addresses (docs/benchmarks.md) against V8's own factor, then 10 against 20
 * ("SQLite's flush off the event loop, and the session's quiet A/B"): the start-up pass's peak under 300 MB with
 * 10 in every start measured, over it with 20 in most, and no cost seen in the API's CPU per job.
 */
export const DEFAULT_HEAP_GROWING_PERCENT = 10;

export interface ProcessSettings {
  /** The percentage set, or undefined when V8 keeps its own factor (or node's flags chose it). */
  heapGrowingPercent: number | undefined;
  /** Where it came from: the default, STACKNET_HEAP_GROWING_PERCENT, or node's own flags. */
  source: 'default' | 'env' | 'node flags';
}

/** The settings `env` and node's flags ask for; throws on a malformed STACKNET_HEAP_GROWING_PERCENT. */
export function processSettingsOf(
  env: NodeJS.ProcessEnv = process.env,
  execArgv: readonly string[] = process.execArgv,
): ProcessSettings {
  const nodeFlags = [...execArgv, ...(env.NODE_OPTIONS ?? '').split(/\s+/)];
  if (nodeFlags.some((f) => /^--heap[-_]growing[-_]percent(=|$)/.test(f)))
    return { heapGrowingPercent: undefined, source: 'node flags' };
  const given = env.STACKNET_HEAP_GROWING_PERCENT;
  if (given === undefined || given === '')
    return { heapGrowingPercent: DEFAULT_HEAP_GROWING_PERCENT, source: 'default' };
  const n = Number(given);
  if (!Number.isInteger(n) || n < 0 || n > 1000)
    throw new Error(`STACKNET_HEAP_GROWING_PERCENT must be a whole number from 0 to 1000, got '${given}'`);
  return { heapGrowingPercent: n === 0 ? undefined : n, source: 'env' };
}

/** Applies `settings` to this process (V8's flags are process-wide). */
export function applyProcessSettings(settings: ProcessSettings): void {
  if (settings.heapGrowingPercent !== undefined)
    setFlagsFromString(`--heap-growing-percent=${settings.heapGrowingPercent}`);
}
