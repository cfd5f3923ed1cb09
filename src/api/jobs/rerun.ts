/**
 * What a job's handler needs to be idempotent. A job whose server dies (kill, crash, lost lease) is run again
 * by whichever server takes it over (runner.ts); whatever its earlier run committed is still there, so every
 * handler must find its own work and carry on from it (DESIGN: "a retry finds the work its first attempt
 * committed"), never refuse it as somebody else's, and treat a deletion already committed as done.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { CommandContext } from '../command.js';

const attempts = new WeakMap<CommandContext, number>();

/** Which run of its job a handler is in: 1 for the first (and for a synchronous call), more for a re-run. */
export function jobAttempt(ctx: CommandContext): number {
  return attempts.get(ctx) ?? 1;
}

/**
 * A uuid that is the same on every run of one job and different for each `purpose`: a job names what it creates
 * with it, so a re-run finds the row its earlier run committed (CloudStack's BaseAsyncCreateCmd gets the same by
 * creating the object before queuing the job). Outside a job it is random.
 */
export function jobScopedUuid(ctx: CommandContext, purpose: string): string {
  if (!ctx.jobId) return randomUUID();
  const h = createHash('sha256').update(`${ctx.jobId}\0${purpose}`).digest('hex');
  // Shaped as a version-4-style uuid (variant bits set) so it fits every uuid column and parser.
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** The runner says which run a context belongs to. */
export function setJobAttempt(ctx: CommandContext, attempt: number): void {
  attempts.set(ctx, attempt);
}

/**
 * A deletion's re-run: true when the row named by `uuid` is already marked removed, i.e. the earlier run's
 * transaction committed the deletion (or somebody else's did): either way the deletion is done, not missing.
 */
export async function removedBeforeRerun(
  ctx: CommandContext,
  table: 'networks' | 'vpcs',
  uuid: string,
): Promise<boolean> {
  if (jobAttempt(ctx) <= 1) return false;
  const row = await ctx.store.db
    .selectFrom(table)
    .select('removed')
    .where('uuid', '=', uuid)
    .executeTakeFirst();
  return row !== undefined && row.removed !== null;
}

/**
 * A deletion's re-run where the rows go away: true when the deletion's event for `resourceId` was written, which
 * happens in the deleting transaction, so the earlier run's deletion committed (an id that never existed does
 * not pass for deleted).
 */
export async function deletedBeforeRerun(
  ctx: CommandContext,
  types: readonly string[],
  resourceId: string,
): Promise<boolean> {
  if (jobAttempt(ctx) <= 1) return false;
  const e = await ctx.store.db
    .selectFrom('events')
    .select('id')
    .where('type', 'in', [...types])
    .where('resource_id', '=', resourceId)
    .executeTakeFirst();
  return e !== undefined;
}

/**
 * A change's re-run where the row does not say whose change it was (a flag turned off, an address moved): true
 * when an event of `types` for `resourceId` was written since this job was queued. The event is written in the
 * changing transaction, so the earlier run's change committed; without it the change is still to do.
 */
export async function changedBeforeRerun(
  ctx: CommandContext,
  types: readonly string[],
  resourceId: string,
): Promise<boolean> {
  if (jobAttempt(ctx) <= 1 || !ctx.jobId) return false;
  const job = await ctx.store.db
    .selectFrom('async_jobs')
    .select('created')
    .where('uuid', '=', ctx.jobId)
    .executeTakeFirst();
  if (!job) return false;
  const e = await ctx.store.db
    .selectFrom('events')
    .select('id')
    .where('type', 'in', [...types])
    .where('resource_id', '=', resourceId)
    .where('created', '>=', Number(job.created))
    .executeTakeFirst();
  return e !== undefined;
}
