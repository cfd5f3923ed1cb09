/**
 * What every networking service function receives: the transaction it runs in, who is calling, and the
 * clock. The API layer builds it from its own caller context (see commands.ts adapters).
 */
import { CloudStackError, permissionDenied } from '../errors/catalogue.js';
import type { NetTx as Tx } from '../networks/tables.js';
import type { Caller } from '../api/command.js';
import type { EventType } from '../events/event-types.js';
import { NO_LIMIT, pageFrom } from '../api/list.js';

export type { RoleType } from '../api/command.js';
export type NetCaller = Caller;

/** Whose resource an event is about (CloudStack shows it in the owner's listEvents). */
export interface EventOwnerRef {
  accountId: number;
  accountName: string;
  domainId: number;
  domainPath: string;
}

/** Records events/usage in the same transaction (wired to src/events by the command layer). */
export interface NetRecorder {
  event(
    tx: Tx,
    e: {
      type: EventType;
      description: string;
      resourceType?: string;
      resourceId?: string | undefined;
      resourceName?: string;
      owner: EventOwnerRef;
    },
  ): Promise<void>;
  usage(
    tx: Tx,
    u: {
      type: EventType;
      accountId: number;
      domainId: number;
      zoneId: number | null;
      resourceId: number;
      resourceUuid?: string;
      resourceName: string;
      resourceType?: string;
      size?: number;
    },
  ): Promise<void>;
}

export interface NetCtx {
  tx: Tx;
  caller: NetCaller;
  now: number;
  recorder: NetRecorder;
  /** CloudStack global/zone/account settings by name (getSetting); undefined falls back to the default. */
  setting(name: string, scope?: { zoneId?: number; accountId?: number }): Promise<string | undefined>;
}

export const isRootAdmin = (c: NetCaller): boolean => c.role === 'Admin';

export function requireRootAdmin(c: NetCaller, command: string): void {
  if (!isRootAdmin(c)) throw permissionDenied(`The API ${command} is only available to root admins`);
}

export const bool = (v: number | null | undefined): boolean => v === 1;
export const flag = (v: boolean | undefined, dflt = false): number => ((v ?? dflt) ? 1 : 0);

/**
 * An id that names nothing, in the words CloudStack uses when it cannot translate an id parameter; clients match
 * them (Terraform's provider takes a delete answered so as already done). `why` says what stacknet found.
 */
export function noSuchEntity(param: string, value: string, why: string): CloudStackError {
  return new CloudStackError(
    'InvalidParameterValue',
    `Invalid parameter ${param} value=${value} due to incorrect long value format, or entity does not exist (${why})`,
  );
}

export function notFound(param: string, value: string, what: string): CloudStackError {
  return noSuchEntity(param, value, `no ${what} has this id`);
}

/**
 * page/pagesize as BaseListCmd (api/list.ts validates), as a window whose limit is always set: the queries
 * here always carry an OFFSET, which SQLite accepts only after a LIMIT (pagesize=-1 was a syntax error).
 */
export function pageWindow(
  p: { page?: number | undefined; pagesize?: number | undefined },
  defaultPageSize = 500,
): { limit: number | undefined; offset: number } {
  const page = pageFrom(p, defaultPageSize);
  return { limit: page.limit ?? NO_LIMIT, offset: page.offset };
}

export interface Listed<T> {
  count: number;
  items: T[];
}
