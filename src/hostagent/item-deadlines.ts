/**
 * Items of a host agent's pass (a network, a router, a VM, a removal), each bounded by a deadline: past it the item
 * fails and the pass goes on, and the item is not started again until its stuck attempt ends (converge.ts).
 */

/**
 * How long one item of a pass may take (ms) before it is failed (an entry in `errors`, logged) and the pass goes
 * on: every process the agent runs has its own timeout (`exec`: 10 s, then SIGKILL), but a process is only done
 * when its output pipes close, and a grandchild holding them (or a process stuck in the kernel) never lets
 * that happen; the router agent's readiness wait is bounded too, but a pass must not depend on each of them.
 * A router's: its namespace, veths, public interfaces and its agent's start (which alone may take 20 s and more
 * on a loaded machine). `STACKNET_HOST_DEADLINES` (JSON, e.g. `{"router":5000}`) overrides them (tests).
 */
export interface ItemDeadlines {
  network: number;
  router: number;
  /** Removing a router, a network's bridge, a public bridge. */
  removal: number;
  /** A VM's backend `ensure` / `destroy` (libvirt may copy an image, define and start a domain). */
  vm: number;
}
export const DEFAULT_DEADLINES: ItemDeadlines = {
  network: 30_000,
  router: 90_000,
  removal: 60_000,
  vm: 600_000,
};

export function deadlinesFromEnv(): Partial<ItemDeadlines> {
  const text = process.env.STACKNET_HOST_DEADLINES;
  if (!text) return {};
  const v = JSON.parse(text) as Partial<ItemDeadlines>;
  for (const [k, ms] of Object.entries(v))
    if (!(k in DEFAULT_DEADLINES) || typeof ms !== 'number' || !(ms > 0))
      throw new Error(
        `STACKNET_HOST_DEADLINES: ${k} must be one of ${Object.keys(DEFAULT_DEADLINES).join(', ')} with a number of ms`,
      );
  return v;
}

/** An item that outlived its deadline. */
export class ItemDeadlineError extends Error {
  constructor(ms: number, at: string) {
    super(
      `no end after ${Math.round(ms / 100) / 10} s (at: ${at}); it is left running and not started again until it ends`,
    );
    this.name = 'ItemDeadlineError';
  }
}

/** Told which step an item is at (named in its deadline's error and in `doing()`). */
export type Step = (at: string) => void;

/** The items under way, and those whose attempt outlived its deadline and has not ended. */
export class BoundedItems {
  /** Items running now (by key: `router:<name>`, `vm:<name>`...): what, since when, at which step. */
  private readonly running = new Map<string, { what: string; since: number; at: string }>();
  /**
   * Items whose attempt outlived its deadline and has not ended: never started again (by a pass or
   * `ensureNewVms`) until it ends, so two attempts never work on one router, network or VM at once.
   */
  private readonly stuck = new Map<string, { since: number; at: () => string }>();

  constructor(private readonly log: (m: string) => void) {}

  /** What the items under way are doing, '' when none runs. */
  doing(): string {
    const now = Date.now();
    return [...this.running.values()]
      .map((r) => `${r.what} for ${Math.round((now - r.since) / 1000)} s at ${r.at}`)
      .join('; ');
  }

  /**
   * Runs `f` (the item `key`, described `what`) for at most `ms`: past that it rejects with ItemDeadlineError
   * naming the step `f` last told, and `f` is left to end by itself (it cannot be cancelled); until it does,
   * the item is not started again: a call for it rejects at once, saying so.
   */
  async run<T>(key: string, what: string, ms: number, f: (step: Step) => Promise<T>): Promise<T> {
    const prev = this.stuck.get(key);
    if (prev)
      throw new Error(
        `an earlier attempt is still running after ${Math.round((Date.now() - prev.since) / 1000)} s (at: ${prev.at()}); not started again until it ends`,
      );
    const mine = { what, since: Date.now(), at: 'start' };
    this.running.set(key, mine);
    const work = f((at) => (mine.at = at));
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, fail) => {
      timer = setTimeout(() => fail(new ItemDeadlineError(ms, mine.at)), ms);
    });
    try {
      return await Promise.race([work, late]);
    } catch (e) {
      if (e instanceof ItemDeadlineError) {
        this.stuck.set(key, { since: mine.since, at: () => mine.at });
        const ended = (how: string) => {
          this.stuck.delete(key);
          if (this.running.get(key) === mine) this.running.delete(key);
          this.log(
            `${what}: the attempt past its deadline ended after ${Math.round((Date.now() - mine.since) / 1000)} s (${how}); the next pass retries`,
          );
        };
        void work.then(
          () => ended('done'),
          (x: Error) => ended(x.message),
        );
      }
      throw e;
    } finally {
      clearTimeout(timer);
      if (!this.stuck.has(key) && this.running.get(key) === mine) this.running.delete(key);
    }
  }
}
