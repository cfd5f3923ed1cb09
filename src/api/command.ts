/**
 * One definition per command: it drives parameter parsing and validation (params.ts), the handler's
 * TypeScript parameter types (Params<P>), and the listApis entry (list-apis.ts). Parameter types and docs come
 * from CloudStack's own listApis dump (reference/) wherever the command exists in CloudStack 4.18.
 */
import type { Store, Tx } from '../store/db.js';
import type { CallerCheck } from './caller-check.js';
import { referenceParamTypes } from './reference/cloudstack-4.18.generated.js';
import type { ReferenceField } from './reference/reference-types.js';

export type ParamType =
  'string' | 'uuid' | 'integer' | 'long' | 'short' | 'boolean' | 'date' | 'list' | 'map' | 'object';

export interface ParamSpec {
  readonly type: ParamType;
  readonly required?: boolean;
  /** Defaults to CloudStack's description when the command and parameter exist there. */
  readonly description?: string;
  /** Maximum length of the raw value (CloudStack's `length`, default 255; userdata and the like are longer). */
  readonly length?: number;
  /** The type listApis shows, when stacknet accepts more than CloudStack's type (login's domainId: a uuid too). */
  readonly listedType?: ParamType;
  /** Item type of a `list` parameter (comma-separated on the wire); default string. */
  readonly items?: 'string' | 'uuid' | 'integer' | 'long';
  /**
   * Set by the registry for CloudStack's UUID parameters that predate UUIDs (no `since`): the table whose
   * internal numeric ids the parameter also accepts (params.ts resolveInternalIds).
   */
  readonly internalIdTable?: string;
}

export type ParamSpecs = Readonly<Record<string, ParamSpec>>;

type ListItem<S extends ParamSpec> = S['items'] extends 'integer' | 'long' ? number : string;

/** The TypeScript type a parameter arrives as in the handler. */
export type ParamValue<S extends ParamSpec> = S['type'] extends 'string' | 'uuid'
  ? string
  : S['type'] extends 'integer' | 'long' | 'short'
    ? number
    : S['type'] extends 'boolean'
      ? boolean
      : S['type'] extends 'date'
        ? Date
        : S['type'] extends 'list'
          ? ListItem<S>[]
          : S['type'] extends 'map'
            ? Record<string, string>[]
            : unknown;

type RequiredKeys<P extends ParamSpecs> = {
  [K in keyof P]: P[K]['required'] extends true ? K : never;
}[keyof P];
type OptionalKeys<P extends ParamSpecs> = Exclude<keyof P, RequiredKeys<P>>;

export type Params<P extends ParamSpecs> = { [K in RequiredKeys<P>]: ParamValue<P[K]> } & {
  [K in OptionalKeys<P>]?: ParamValue<P[K]>;
};

/** CloudStack's role types. Account type 1 = Admin, 2 = DomainAdmin, 0 = User. */
export type RoleType = 'Admin' | 'DomainAdmin' | 'User';
export const allRoles: readonly RoleType[] = ['Admin', 'DomainAdmin', 'User'];
export const adminRoles: readonly RoleType[] = ['Admin', 'DomainAdmin'];
export const rootAdminOnly: readonly RoleType[] = ['Admin'];

/** Who is calling: resolved once per request from the API key or the session. */
export interface Caller {
  userId: number;
  userUuid: string;
  username: string;
  accountId: number;
  accountUuid: string;
  accountName: string;
  /** 0 user, 1 root admin, 2 domain admin (CloudStack's account types). */
  accountType: 0 | 1 | 2;
  role: RoleType;
  domainId: number;
  domainUuid: string;
  /** CloudStack's domain path: `/` for ROOT, `/sub/`, `/sub/child/`; subtree = paths starting with this. */
  domainPath: string;
  /**
   * The domain's name, where the caller was read from the database for this request (signed requests, sessions):
   * a command acting for the caller itself then needs no second read of its account and domain.
   */
  domainName?: string;
}

/** Who an unauthenticated (`public`) command runs as: nobody, with no rights. */
export const anonymousCaller: Caller = Object.freeze({
  userId: -1,
  userUuid: '',
  username: '',
  accountId: -1,
  accountUuid: '',
  accountName: '',
  accountType: 0,
  role: 'User',
  domainId: -1,
  domainUuid: '',
  domainPath: '',
});

export interface CommandContext {
  readonly store: Store;
  readonly caller: Caller;
  /** The async job's uuid when the handler runs as a job. */
  readonly jobId?: string;
  /** For BaseAsyncCreateCmd-style commands: what `prepare` returned before the job was queued. */
  readonly prepared?: PreparedObject;
  now(): number;
  /**
   * The store's transaction helper. In an async job every transaction also checks that this server still
   * holds the job's lease, so a job taken over by another server after a stall can never commit twice.
   */
  transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T>;
  /**
   * The handler's last transaction, whose value the handler returns as its result (and nothing after it can
   * fail). In an async job the runner writes that result into the job row in the same transaction: one commit
   * per job less, and a crash leaves both or neither (the job is run again only when its work did not commit).
   * The conditional UPDATE of the job row (lease still ours, job still pending) is then the lease check, at
   * the end of the transaction, where it also holds the row against a take-over until the commit. Call it at
   * most once. Absent outside a job: use `transaction`.
   */
  resultTransaction?<T extends CommandResult>(fn: (tx: Tx) => Promise<T>): Promise<T>;
  /**
   * Set for a command that declares `foldsCallerCheck` when its caller comes from this server's memory
   * (caller-check.ts): its first statement may carry the check (`callerChecked`, then `confirm`); whatever it
   * does not carry, the request confirms with a read of its own before it commits or answers.
   */
  readonly callerCheck?: CallerCheck;
  /**
   * Set for `prepare` when its job's handler runs next in the same transaction (`completesInline`): what the
   * prepare writes, the handler may find already done.
   */
  readonly inline?: boolean;
}

export interface PreparedObject {
  /** The uuid of the object the job will create, returned at once beside `jobid`. */
  id: string;
  instanceType?: string;
  [k: string]: unknown;
}

// -------------------------------------------------------------------------------------------------------
// What a handler returns; api/envelope.ts serializes it for JSON or XML, sync or as a job result.

export type ResponseValue = string | number | boolean | null | undefined | ResponseObject | ResponseValue[];
export interface ResponseObject {
  [key: string]: ResponseValue;
}

export type CommandResult =
  /** `{"<cmd>response": {"<name>": {...}}}` */
  | { kind: 'object'; name: string; value: ResponseObject }
  /** `{"<cmd>response": {"count": N, "<name>": [...]}}`, or `{}` when empty; count is the total. */
  | { kind: 'list'; name: string; items: ResponseObject[]; count: number }
  /** `{"<cmd>response": {...value}}`: success responses, login, queryAsyncJobResult. */
  | { kind: 'raw'; value: ResponseObject };

export const objectResult = (name: string, value: ResponseObject): CommandResult => ({
  kind: 'object',
  name,
  value,
});
export const listResult = (name: string, items: ResponseObject[], count: number): CommandResult => ({
  kind: 'list',
  name,
  items,
  count,
});
export const rawResult = (value: ResponseObject): CommandResult => ({ kind: 'raw', value });
/** CloudStack's SuccessResponse (`{"success": true}`), what async deletes put in `jobresult`. */
export const successResult = (displaytext?: string): CommandResult => ({
  kind: 'raw',
  value: displaytext === undefined ? { success: true } : { success: true, displaytext },
});

export interface CommandDefinition<P extends ParamSpecs = ParamSpecs> {
  /** CloudStack's command name, case as CloudStack spells it (`listAccounts`). */
  readonly name: string;
  /** Roles that may call it; for anybody else the command does not exist (432, like CloudStack). */
  readonly roles: readonly RoleType[];
  readonly params: P;
  /** Default: CloudStack's `isasync` for this command (false when it is not a CloudStack command). */
  readonly isAsync?: boolean;
  /** Default: CloudStack's description. Required for commands CloudStack does not have. */
  readonly description?: string;
  /** Response fields for listApis. Default: CloudStack's response fields for this command. */
  readonly response?: readonly ReferenceField[];
  /**
   * Answered before authentication (CloudStack's APIAuthenticator commands: login, logout, listIdps, ...). Their
   * handler runs as `anonymousCaller` and must not depend on who calls.
   */
  readonly public?: boolean;
  /** The envelope's name when CloudStack does not use `<command>response` (listLdapConfigurations). */
  readonly responseName?: string;
  /**
   * Async create commands (BaseAsyncCreateCmd): runs at request time, before the job is queued; its `id` is
   * returned at once beside `jobid` and handed to the handler as `ctx.prepared`. It runs inside the transaction
   * that queues the job: `ctx.transaction` hands it that transaction, and it must not use `ctx.store` directly
   * (on SQLite that waits for the connection the transaction holds).
   */
  prepare?(params: Params<P>, ctx: CommandContext): Promise<PreparedObject>;
  /**
   * The request may start from the caller this server remembers for the API key, and confirm it with the
   * command's first statement (CommandContext.callerCheck). Only for a command that commits nothing of its own
   * before its request's end: a read, or an async create command (`prepare` runs in the request's transaction).
   */
  readonly foldsCallerCheck?: boolean;
  /**
   * An async command whose handler does only database work, all of it through `ctx.transaction` and
   * `ctx.resultTransaction` (nothing through `ctx.store`, nothing after them: no router, no driver, no waiting):
   * while this server runs jobs, its job is run in the transaction that queues it and inserted finished, one
   * transaction and one job row write per job (api-server.ts). The client sees what it sees of any job that ran
   * quickly: `jobid` at once, the job done at its first poll. A handler that fails there is rolled back with the
   * request, which is then queued the usual way (the job fails as it always did).
   */
  readonly completesInline?: boolean;
  /** Which object a job acts on (`jobinstancetype`/`jobinstanceid` in queryAsyncJobResult). */
  jobInstance?(params: Params<P>): { type: string; id?: string } | undefined;
  handler(params: Params<P>, ctx: CommandContext): Promise<CommandResult>;
}

/** Any command definition, as the registry holds them. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyCommand = CommandDefinition<any>;

/** Declares a command with its parameter types inferred literally (`required: true` stays `true`). */
export function defineCommand<const P extends ParamSpecs>(def: CommandDefinition<P>): CommandDefinition<P> {
  return def;
}

type RefTypes = typeof referenceParamTypes;
export type ReferenceCommand = keyof RefTypes;

/**
 * CloudStack's parameters `keys` of command `cmd`, with their CloudStack types and required flags:
 * `params: { ...refParams('listAccounts', ['id', 'name', 'page', 'pagesize']) }`.
 */
export function refParams<C extends ReferenceCommand, const K extends readonly (keyof RefTypes[C])[]>(
  cmd: C,
  keys: K,
): Pick<RefTypes[C], K[number]> {
  const all = referenceParamTypes[cmd] as Record<string, ParamSpec>;
  const out: Record<string, ParamSpec> = {};
  for (const k of keys) {
    const spec = all[k as string];
    if (!spec) throw new Error(`${String(cmd)} has no CloudStack parameter ${String(k)}`);
    out[k as string] = spec;
  }
  return out as Pick<RefTypes[C], K[number]>;
}
