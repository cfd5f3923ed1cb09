/**
 * The one error catalogue. Every error stacknet reports to a caller is one of these, with CloudStack's
 * HTTP status (`errorcode`) and `cserrorcode` (CSExceptionErrorCode.java). docs/errors.md lists them; a test
 * keeps that page in sync with this table.
 */
export const errorKinds = {
  InvalidParameterValue: {
    httpCode: 431,
    csErrorCode: 4350,
    summary: 'a parameter is missing, malformed or conflicts with existing state',
  },
  Unauthorized: {
    httpCode: 401,
    csErrorCode: 0,
    summary: 'the request is not authenticated (bad key, signature, session or expired request)',
  },
  InternalError: {
    httpCode: 530,
    csErrorCode: 4250,
    summary: 'an unexpected server-side failure; the message says what was being done',
  },
  PermissionDenied: {
    httpCode: 531,
    csErrorCode: 4365,
    summary: 'the caller may not see or change this resource',
  },
  AccountLimitExceeded: {
    httpCode: 532,
    csErrorCode: 4280,
    summary: "an account's resource limit would be exceeded",
  },
  InsufficientAddressCapacity: {
    httpCode: 533,
    csErrorCode: 4320,
    summary: 'no free address (or VLAN, MAC) is left in the pool',
  },
  InsufficientVirtualNetworkCapacity: {
    httpCode: 533,
    csErrorCode: 4331,
    summary: 'no free guest address is left in the network',
  },
  ResourceUnavailable: {
    httpCode: 534,
    csErrorCode: 4380,
    summary: 'a resource needed for the operation is not available now',
  },
  ResourceAllocation: { httpCode: 535, csErrorCode: 4370, summary: 'a resource could not be allocated' },
  ConcurrentOperation: {
    httpCode: 530,
    csErrorCode: 4300,
    summary: 'another operation holds the resource; retry',
  },
  NetworkRuleConflict: {
    httpCode: 537,
    csErrorCode: 4360,
    summary: 'a new rule overlaps one already on the same public IP (or, for egress, the same network)',
  },
  UnsupportedService: { httpCode: 530, csErrorCode: 4390, summary: 'the operation is not supported here' },
  UnsupportedAction: {
    httpCode: 432,
    csErrorCode: 9999,
    summary: 'the command does not exist, or the caller may not use it (or no command was sent)',
  },
  ApiLimitExceeded: {
    httpCode: 429,
    csErrorCode: 4545,
    summary:
      'the account made more API calls than api.throttling.max within api.throttling.interval; retry later',
  },
} as const;

export type ErrorKind = keyof typeof errorKinds;

export class CloudStackError extends Error {
  readonly kind: ErrorKind;
  readonly httpCode: number;
  readonly csErrorCode: number;
  /** UUIDs of the objects the error concerns (CloudStack's `uuidList`), e.g. the zone that ran out. */
  readonly uuidList: string[];

  constructor(kind: ErrorKind, message: string, options: { uuidList?: string[]; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = kind;
    // The caller sees only `message`; the server log prints the stack, so the cause's detail (driver text,
    // SQL, its stack) goes there and nowhere else.
    const cause = options.cause;
    if (cause instanceof Error && this.stack)
      this.stack = `${this.stack}\nCaused by: ${cause.stack ?? `${cause.name}: ${cause.message}`}`;
    this.kind = kind;
    this.httpCode = errorKinds[kind].httpCode;
    this.csErrorCode = errorKinds[kind].csErrorCode;
    this.uuidList = options.uuidList ?? [];
  }
}

export const isCloudStackError = (e: unknown): e is CloudStackError => e instanceof CloudStackError;

const SHOWN_MAX = 100;

/**
 * A caller's value as an error message shows it: control characters as `?`, and cut at 100 characters
 * (never inside a surrogate pair) so that a megabyte of input is not echoed back.
 */
export function shownValue(value: unknown): string {
  const s = typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
  // eslint-disable-next-line no-control-regex
  const printable = (t: string) => t.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
  if (s.length <= SHOWN_MAX) return printable(s);
  let cut = s.slice(0, SHOWN_MAX);
  if (/[\ud800-\udbff]$/.test(cut)) cut = cut.slice(0, -1);
  return `${printable(cut)}... (${s.length} characters)`;
}

/** A bad value: the message always names the parameter and the value, and says why. */
export function invalidParameter(param: string, value: unknown, why: string): CloudStackError {
  return new CloudStackError(
    'InvalidParameterValue',
    `Invalid value for parameter ${shownValue(param)}: '${shownValue(value)}': ${why}`,
  );
}

export function missingParameter(param: string): CloudStackError {
  return new CloudStackError(
    'InvalidParameterValue',
    `Unable to execute API command due to missing parameter ${param}`,
  );
}

export function insufficientAddressCapacity(what: string, uuidList: string[] = []): CloudStackError {
  return new CloudStackError('InsufficientAddressCapacity', `Insufficient address capacity: ${what}`, {
    uuidList,
  });
}

export function permissionDenied(message: string): CloudStackError {
  return new CloudStackError('PermissionDenied', message);
}

/** Error codes of the three drivers and of Node's sockets, by what a caller can do about them. */
const CONNECTION_LOST = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'PROTOCOL_CONNECTION_LOST',
  'ER_SERVER_SHUTDOWN',
  'ER_CON_COUNT_ERROR',
  '57P01',
  '57P02',
  '57P03',
  '53300',
]);
const BUSY = new Set([
  'SQLITE_BUSY',
  'SQLITE_LOCKED',
  '40001',
  '40P01',
  '55P03',
  'ER_LOCK_DEADLOCK',
  'ER_LOCK_WAIT_TIMEOUT',
]);

/**
 * What a caller is told about an unexpected failure. Never the driver's own text: it can carry SQL, table
 * names and values (CloudStack likewise answers a generic message and logs the exception).
 */
function causeHint(cause: unknown): string {
  if (cause instanceof CloudStackError) return `: ${cause.message}`;
  const code = (cause as { code?: unknown } | null)?.code;
  const c = typeof code === 'string' ? code : '';
  if (CONNECTION_LOST.has(c) || /^08/.test(c))
    return ': the database connection failed; retry, and if it persists check that the database is up';
  if (BUSY.has(c)) return ': the database was busy with conflicting changes; retry';
  return ' (the server log has the details)';
}

/**
 * A value longer than the column that stores it (PostgreSQL 22001, MariaDB ER_DATA_TOO_LONG; SQLite stores any
 * length): the caller's input, not the server, is at fault, so it is a 431 naming the limit, not an InternalError.
 * Parameters are checked against their columns before this; this is the backstop for one that was missed.
 */
export function valueTooLong(cause: unknown): CloudStackError | undefined {
  for (
    let d = cause as { code?: unknown; errno?: unknown; message?: unknown } | null, depth = 0;
    depth < 5;
    depth++
  ) {
    if (!d || typeof d !== 'object') return undefined;
    const text = typeof d.message === 'string' ? d.message : '';
    if (d.code === '22001' || d.errno === 1406 || d.code === 'ER_DATA_TOO_LONG') {
      const column = /column '([^']+)'/.exec(text)?.[1];
      const limit = /varying\((\d+)\)/.exec(text)?.[1];
      const what = column ? ` for ${column}` : '';
      const max = limit ? ` (at most ${limit} characters)` : '';
      return new CloudStackError(
        'InvalidParameterValue',
        `A value is longer than stacknet stores${what}${max}: shorten it and retry`,
        { cause },
      );
    }
    if (!(d instanceof CloudStackError)) return undefined;
    d = d.cause as typeof d;
  }
  return undefined;
}

export function internalError(doing: string, cause?: unknown): CloudStackError {
  return new CloudStackError('InternalError', `Internal error while ${doing}${causeHint(cause)}`, {
    cause,
  });
}

/** Anything thrown that is not already a CloudStackError becomes an InternalError saying what was being done. */
export function toCloudStackError(e: unknown, doing: string): CloudStackError {
  return isCloudStackError(e) ? e : (valueTooLong(e) ?? internalError(doing, e));
}
