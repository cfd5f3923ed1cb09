/**
 * The public side's NAT and forwarding filter (render.ts says what, and why a service of its own). Same anatomy as
 * the guest-side firewall: `nft --check` first, then one `nft -f`; a refused ruleset leaves the last good one
 * loaded and the router Degraded (NatRejected). Loaded only when the state has a public side or a VPC, the agent
 * may load rulesets, and it runs provably outside the machine's own namespace.
 *
 * At 10,000 forwards and 10,000 firewall rules a full replace costs ~0.65 s in `nft -f` (and as much again in
 * `nft --check`), so the applier keeps what the kernel holds (every set's elements, and the ruleset without them:
 * its "skeleton"). A change that leaves the skeleton as it is (rules added, removed or changed: elements only) is
 * one transaction of `delete element` / `add element`; anything else (a chain, a layer, the public side) is the
 * full replace. A delta that only adds rules goes further (`ahead`): their elements are added as the delta
 * arrives, before the agent's O(N) work on the whole document.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, writeAtomic } from '../../system.js';
import type { DesiredState, DesiredStateDelta } from '../../desired-state.js';
import type { Applier, ApplierContext, ServiceStatus, Step } from '../applier.js';
import { ApplyFailure } from '../applier.js';
import { inInitialNetNamespace, nftApply, nftCheckText, nftDeleteTables } from '../nftables/nft.js';
import { natTableName, netfilterRenderer, publicTableName, ruleElements, type Element } from './render.js';

/** A ruleset as the kernel holds it: element lines by `table set`, and the text without them. */
export interface Loaded {
  skeleton: string;
  sets: Map<string, Set<string>>;
}

/** Splits a rendered ruleset into its skeleton and its elements (render.ts writes one element per line). */
export function parseRuleset(text: string): Loaded {
  const sets = new Map<string, Set<string>>();
  const skeleton: string[] = [];
  let table = '';
  let set = '';
  let inElements: Set<string> | null = null;
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (inElements) {
      if (t === '}') inElements = null;
      else inElements.add(t.replace(/,$/, ''));
      continue;
    }
    let m = /^table (\S+ \S+) \{$/.exec(t);
    if (m) table = m[1]!;
    m = /^(?:set|map) (\S+) \{$/.exec(t);
    if (m) {
      set = `${table} ${m[1]}`;
      sets.set(set, new Set());
    }
    if (t === 'elements = {') {
      inElements = sets.get(set)!;
      continue;
    }
    skeleton.push(line);
  }
  return { skeleton: skeleton.join('\n'), sets };
}

const mapKey = (e: string) => e.split(' : ')[0]!;

/** The element transaction that turns `from`'s sets into `to`'s (same skeleton). '' when nothing changes. */
export function elementChanges(from: Map<string, Set<string>>, to: Map<string, Set<string>>): string {
  const dels: string[] = [];
  const adds: string[] = [];
  for (const [set, want] of to) {
    const have = from.get(set) ?? new Set<string>();
    const gone = [...have].filter((e) => !want.has(e));
    const come = [...want].filter((e) => !have.has(e));
    if (gone.length) dels.push(`delete element ${set} { ${gone.map(mapKey).join(', ')} }`);
    if (come.length) adds.push(`add element ${set} { ${come.join(', ')} }`);
  }
  return [...dels, ...adds].map((l) => `${l}\n`).join('');
}

function ensureForwarding(): void {
  const f = '/proc/sys/net/ipv4/ip_forward';
  if (readFileSync(f, 'utf8').trim() !== '1') writeFileSync(f, '1\n');
}

export class NetfilterApplier implements Applier<string> {
  readonly renderer = netfilterRenderer;
  readonly servesGuests = false;
  private loaded: Loaded | null = null;
  /** A short-path transaction still running (`ahead`): check and apply wait for it. */
  private early: Promise<void> = Promise.resolve();
  private readonly file: string;

  constructor(private readonly ctx: ApplierContext) {
    this.file = join(ctx.dataDir, 'netfilter.nft');
  }

  async start(): Promise<void> {}

  private wanted(next: Step<string>): boolean {
    return next.out !== '' && this.ctx.firewall && !inInitialNetNamespace();
  }

  /** The element transaction taking the kernel to `next`, or null when it needs the full replace. */
  private plan(next: Step<string>, force: boolean): { text: string; parsed: Loaded } | null {
    const parsed = parseRuleset(next.out);
    if (force || !this.loaded || this.loaded.skeleton !== parsed.skeleton) return null;
    return { text: elementChanges(this.loaded.sets, parsed.sets), parsed };
  }

  async check(next: Step<string>, _prev: Step<string> | null, force: boolean): Promise<void> {
    await this.early;
    if (!this.wanted(next)) return;
    const plan = this.plan(next, force);
    if (plan && plan.text === '') return;
    const err = await nftCheckText(this.ctx.dataDir, plan ? plan.text : next.out);
    if (err) {
      // Refused: what is loaded keeps serving. An element transaction refused means the kernel does not hold
      // what we think (tables edited behind our back): the next push replaces everything.
      if (plan && this.loaded) this.loaded.skeleton = '';
      throw new ApplyFailure('NatRejected', err);
    }
  }

  async apply(next: Step<string>, _prev: Step<string> | null, force: boolean): Promise<void> {
    await this.early;
    if (this.wanted(next)) {
      const plan = this.plan(next, force);
      if (plan) {
        if (plan.text === '') return;
        const r = await run('nft', ['-f', '-'], plan.text);
        if (r.code !== 0) {
          // The kernel does not hold what we think (tables edited behind our back): the next push replaces all.
          if (this.loaded) this.loaded.skeleton = '';
          throw new ApplyFailure('NatFailed', (r.stderr || r.stdout).trim());
        }
        this.loaded = plan.parsed;
        return;
      }
      writeAtomic(this.file, next.out);
      const err = await nftApply(this.file, false);
      if (err) throw new ApplyFailure('NatFailed', err);
      this.loaded = parseRuleset(next.out);
      // Routing between the guest and public sides, turned on only once the filter is in place.
      ensureForwarding();
    } else if (this.loaded) {
      await nftDeleteTables(this.ctx.dataDir, [`ip ${natTableName}`, `inet ${publicTableName}`]);
      this.loaded = null;
    }
  }

  /**
   * A delta that only adds rules (new ids, no other section of the public side): their elements go in at once, in
   * the first layer of each set. nft refuses an element overlapping one there, and then nothing changed: the full
   * path that follows puts it in another layer. The state must still hold every added rule (none quarantined).
   */
  ahead(base: Step<string>, delta: DesiredStateDelta): ((next: DesiredState) => boolean) | null {
    const loaded = this.loaded;
    const upsert = delta.rules?.upsert ?? [];
    if (!loaded || !upsert.length || delta.rules?.remove?.length) return null;
    if (delta.public !== undefined || delta.vpc !== undefined || delta.network || delta.router) return null;
    const known = new Set((base.state.rules ?? []).map((r) => r.id));
    const elements: Element[] = [];
    for (const r of upsert) {
      const e = known.has(r.id) ? null : ruleElements(base.state, r);
      // No elements of its own (an LB rule, which haproxy serves): taking the delta here would keep it from
      // the appliers after this one; the full path gives it to all.
      if (!e?.length) return null;
      elements.push(...e);
    }
    const bySet = new Map<string, string[]>();
    for (const e of elements) {
      const key = `${e.table} ${e.set}`;
      if (!loaded.sets.has(key)) return null;
      if (!loaded.sets.get(key)!.has(e.text)) bySet.set(key, [...(bySet.get(key) ?? []), e.text]);
    }
    if (bySet.size) {
      const text = [...bySet].map(([set, es]) => `add element ${set} { ${es.join(', ')} }\n`).join('');
      const t0 = performance.now();
      // From a file, not stdin: the agent's O(N) work on the delta follows at once and holds the event loop, and
      // nft must not wait for it to be fed.
      const file = join(this.ctx.dataDir, '.netfilter-ahead.nft');
      writeFileSync(file, text);
      this.early = run('nft', ['-f', file]).then((r) => {
        // For bench:nft-rules --agent, which measures when a new rule is in force.
        if (process.env.STACKNET_DEBUG_AHEAD)
          this.ctx.log(`netfilter ahead: ${r.code} in ${Math.round(performance.now() - t0)} ms`);
        if (r.code !== 0)
          return this.ctx.log(`rules added ahead refused (the full path follows): ${r.stderr.trim()}`);
        // The kernel holds them now, whatever the state in force says: the next plan diffs against this.
        for (const [set, es] of bySet) for (const e of es) loaded.sets.get(set)!.add(e);
      });
    }
    return (next) => {
      const ids = new Set((next.rules ?? []).map((r) => r.id));
      return upsert.every((r) => ids.has(r.id));
    };
  }

  status(): ServiceStatus {
    return { report: {} };
  }

  async stop(): Promise<void> {}
}
