/**
 * What runDiagnostics may run inside a router, as an argv (never a shell line): the request's checks and the
 * command they build. Pure (no I/O); the server checks a request with it before it queues anything and the
 * agent checks it again before it runs anything (`diagnostics.ts`).
 */
import { isIPv4, isIPv6 } from 'node:net';

export const diagnosticsTypes = ['ping', 'traceroute', 'arping'] as const;
export type DiagnosticsType = (typeof diagnosticsTypes)[number];

/** The body of `POST /v1/diagnostics/run`. */
export interface DiagnosticsRunRequest {
  type: DiagnosticsType;
  /** An IPv4 or IPv6 address (no names: the router would resolve them with the guests' DNS). */
  ipaddress: string;
  /** Extra options, CloudStack's allowed characters only (`paramsProblem`). */
  params?: string;
  /** Kill the tool after this many seconds (default and ceiling `DIAGNOSTICS_RUN_TIMEOUT_SECONDS`). */
  timeoutSeconds?: number;
}

/** The agent's answer: CloudStack's three fields (exitcode is a string there). */
export interface DiagnosticsRunResult {
  stdout: string;
  stderr: string;
  exitcode: string;
}

/** CloudStack runs diagnostics.py on the VR with a 60 s timeout (no setting); stacknet kills the tool then. */
export const DIAGNOSTICS_RUN_TIMEOUT_SECONDS = 60;
/** Each of stdout and stderr is cut here, with a line saying so. */
export const DIAGNOSTICS_OUTPUT_CAP = 64 * 1024;

/**
 * CloudStack's rule for `params` (DiagnosticsServiceImpl.hasValidChars): word characters, `-`, `.` and
 * whitespace only. That leaves no shell syntax, no paths (`/`) and no `=`, so no option can name a file to write.
 */
const PARAMS_CHARS = /^[\w\-\s.]+$/;

/** Why `params` is refused, or undefined. */
export function paramsProblem(params: string | undefined): string | undefined {
  if (params === undefined || params.trim() === '') return undefined;
  if (!PARAMS_CHARS.test(params))
    return 'Optional parameters contain unwanted characters: only letters, digits, _, -, . and spaces are allowed';
  if (params.length > 255) return 'Optional parameters are longer than 255 characters';
  return undefined;
}

/** Why the address is refused for `type`, or undefined. */
export function addressProblem(type: DiagnosticsType, ipaddress: string): string | undefined {
  const v4 = isIPv4(ipaddress);
  if (!v4 && !isIPv6(ipaddress)) return 'not an IPv4 or IPv6 address';
  if (type === 'arping' && !v4) return 'arping works on IPv4 only (ARP); use ping for an IPv6 address';
  return undefined;
}

export function isDiagnosticsType(t: string): t is DiagnosticsType {
  return (diagnosticsTypes as readonly string[]).includes(t);
}

/**
 * The argv for a checked request. Bounded defaults go first (CloudStack's diagnostics.py also counts its
 * pings), so a caller's own `-c`/`-w` given in `params` wins: the tools take the last of a repeated option.
 */
export function diagnosticsArgv(r: DiagnosticsRunRequest): string[] {
  const extra = (r.params ?? '').split(/\s+/).filter((x) => x !== '');
  const v6 = isIPv6(r.ipaddress);
  switch (r.type) {
    case 'ping':
      return ['ping', ...(v6 ? ['-6'] : []), '-c', '4', '-W', '2', ...extra, r.ipaddress];
    case 'traceroute':
      return ['traceroute', ...(v6 ? ['-6'] : []), '-m', '16', '-w', '2', '-q', '1', ...extra, r.ipaddress];
    case 'arping':
      return ['arping', '-c', '4', '-w', '5', ...extra, r.ipaddress];
  }
}

/** The request checked field by field: `{ok: true}` or the field and why (the agent's 400, the server's 431). */
export function checkRunRequest(
  body: unknown,
): { ok: true; value: DiagnosticsRunRequest } | { ok: false; field: string; message: string } {
  const b = (body ?? {}) as Record<string, unknown>;
  if (typeof b.type !== 'string' || !isDiagnosticsType(b.type))
    return {
      ok: false,
      field: 'type',
      message: `${String(b.type)} Is not a valid diagnostics command type (ping, traceroute, arping)`,
    };
  if (typeof b.ipaddress !== 'string')
    return { ok: false, field: 'ipaddress', message: 'an IP address is required' };
  const a = addressProblem(b.type, b.ipaddress);
  if (a) return { ok: false, field: 'ipaddress', message: a };
  if (b.params !== undefined && typeof b.params !== 'string')
    return { ok: false, field: 'params', message: 'params must be a string' };
  const p = paramsProblem(b.params);
  if (p) return { ok: false, field: 'params', message: p };
  const t = b.timeoutSeconds;
  if (t !== undefined && (typeof t !== 'number' || !Number.isInteger(t) || t <= 0))
    return { ok: false, field: 'timeoutSeconds', message: 'timeoutSeconds must be a positive integer' };
  return {
    ok: true,
    value: {
      type: b.type,
      ipaddress: b.ipaddress,
      params: b.params,
      timeoutSeconds: Math.min(t ?? DIAGNOSTICS_RUN_TIMEOUT_SECONDS, DIAGNOSTICS_RUN_TIMEOUT_SECONDS),
    },
  };
}

/** The body of `POST /v1/diagnostics/data`. */
export interface DiagnosticsDataRequest {
  /** Extra files, relative to the router's data directory (or absolute inside it). */
  files?: string[];
  /** Per collected command (CloudStack's `diagnostics.data.retrieval.timeout`, seconds). */
  timeoutSeconds?: number;
}

/** The archive, base64 (the control channel speaks JSON), and what could not be collected. */
export interface DiagnosticsDataResult {
  archive: string;
  bytes: number;
  entries: string[];
  missing: string[];
}

/** Cut a tool's output at the cap, saying so. */
export function capOutput(text: string, cap = DIAGNOSTICS_OUTPUT_CAP): string {
  if (text.length <= cap) return text;
  return `${text.slice(0, cap)}\n[stacknet: output cut at ${cap} characters of ${text.length}]\n`;
}
