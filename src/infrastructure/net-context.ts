/** Builds a NetCtx from the API's command context (or from a system caller, for the demo and workers). */
import type { Caller, CommandContext, CommandResult } from '../api/command.js';
import { effectiveRawValue } from '../configuration/repository.js';
import { findSetting } from '../configuration/settings-catalogue.js';
import { recordEvent, recordUsage } from '../events/record.js';
import type { Tx } from '../store/db.js';
import { netDb } from '../networks/tables.js';
import type { NetCtx, NetRecorder } from './context.js';

const recorderFor = (caller: Caller): NetRecorder => ({
  async event(tx, e) {
    await recordEvent(tx as unknown as Tx, {
      type: e.type,
      description: e.description,
      actor: caller,
      owner: e.owner,
      resourceType: e.resourceType,
      resourceId: e.resourceId,
      resourceName: e.resourceName,
    });
  },
  async usage(tx, u) {
    await recordUsage(tx as unknown as Tx, {
      type: u.type,
      accountId: u.accountId,
      domainId: u.domainId,
      zoneId: u.zoneId ?? undefined,
      resourceId: u.resourceId,
      resourceUuid: u.resourceUuid,
      resourceName: u.resourceName,
      resourceType: u.resourceType,
      size: u.size,
    });
  },
});

export function makeNetCtx(tx: Tx, caller: Caller, now: number): NetCtx {
  return {
    tx: netDb(tx),
    caller,
    now,
    recorder: recorderFor(caller),
    async setting(name, scope) {
      const raw = await effectiveRawValue(tx, name, scope ?? {});
      return raw ?? findSetting(name)?.defaultValue;
    },
  };
}

/** Runs a networking service in one transaction of the command (a job's transactions re-check its lease). */
export function withNet<T>(ctx: CommandContext, fn: (n: NetCtx) => Promise<T>): Promise<T> {
  return ctx.transaction((tx) => fn(makeNetCtx(tx, ctx.caller, ctx.now())));
}

/**
 * withNet for a handler's last transaction, whose value is the handler's result: in an async job the result is
 * stored with it (CommandContext.resultTransaction), outside one it is withNet.
 */
export function withNetResult<T extends CommandResult>(
  ctx: CommandContext,
  fn: (n: NetCtx) => Promise<T>,
): Promise<T> {
  const run = (tx: Tx) => fn(makeNetCtx(tx, ctx.caller, ctx.now()));
  return ctx.resultTransaction ? ctx.resultTransaction(run) : ctx.transaction(run);
}

/**
 * Runs a read-only networking service outside any transaction: list commands must not take SQLite's write lock
 * (BEGIN IMMEDIATE) just to read, and on PostgreSQL/MariaDB a plain read needs no transaction either.
 */
export function readNet<T>(ctx: CommandContext, fn: (n: NetCtx) => Promise<T>): Promise<T> {
  return fn(makeNetCtx(ctx.store.db as unknown as Tx, ctx.caller, ctx.now()));
}
