/**
 * Client for the router agent's control API: what the server's router reconciler and the tests use. Imports only
 * types from the agent, so it can be loaded by the management server.
 */
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import type { AgentStatus } from './agent.js';
import type { DesiredState, DesiredStateDelta } from './desired-state.js';
import { DIAGNOSTICS_RUN_TIMEOUT_SECONDS } from './diagnostics-argv.js';
import type {
  DiagnosticsDataRequest,
  DiagnosticsDataResult,
  DiagnosticsRunRequest,
  DiagnosticsRunResult,
} from './diagnostics-argv.js';
import type { InspectQuery, Inspection } from './inspect.js';

export type { AgentStatus } from './agent.js';

export interface ControlError {
  error: string;
  message: string;
  field?: string;
  /** The router's current generation (on StaleGeneration / BaseGenerationMismatch / apply failures). */
  generation?: number | null;
  /** True when the server must send the full desired state (a delta's base did not match). */
  sendFull?: boolean;
  status?: AgentStatus;
}

/** The agent did not answer (not running, wrong address, timeout): retry later, it says nothing about the state. */
export class AgentUnreachableError extends Error {
  readonly addr: string;
  constructor(addr: AgentAddress, cause: unknown) {
    const c = cause as { message?: string; cause?: { code?: string; message?: string } };
    const shown = shownAddr(addr);
    super(
      `router agent at ${shown} is unreachable: ${c?.cause?.code ?? c?.cause?.message ?? c?.message ?? String(cause)}`,
    );
    this.addr = shown;
    this.name = 'AgentUnreachableError';
  }
}

export type PushResult =
  { ok: true; httpStatus: number; status: AgentStatus } | ({ ok: false; httpStatus: number } & ControlError);

export interface PushOptions {
  /** Wait until the state is applied (default) or return 202 once accepted. */
  wait?: boolean;
  timeoutMs?: number;
}

/**
 * Where an agent answers: `host:port`, a full `http://host:port` URL (with a base path: a host agent's relay,
 * `http://host:port/v1/routers/<name>`), or such a URL with headers every call adds (the relay's own
 * authorization, src/drivers/hosts.ts).
 */
export type AgentAddress = string | { base: string; headers: Record<string, string> };

const shownAddr = (addr: AgentAddress): string => (typeof addr === 'string' ? addr : addr.base);

function baseUrl(addr: AgentAddress): string {
  const a = typeof addr === 'string' ? addr : addr.base;
  return a.startsWith('http') ? a.replace(/\/$/, '') : `http://${a}`;
}

// node:http rather than fetch: fetch refuses the "bad ports" of the Fetch standard (e.g. 6000, 2049), which a
// control port may well be, and a keep-alive agent keeps reconcile round trips cheap.
const keepAlive = new HttpAgent({ keepAlive: true });

function request(
  url: URL,
  method: string,
  headers: Record<string, string>,
  payload: string | undefined,
  timeoutMs: number,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers, agent: keepAlive, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

async function call(
  addr: AgentAddress,
  secret: string,
  method: string,
  path: string,
  body: unknown,
  timeoutMs = 60_000,
): Promise<{ httpStatus: number; json: unknown }> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const headers: Record<string, string> = {
    ...(typeof addr === 'string' ? {} : addr.headers),
    authorization: `Bearer ${secret}`,
  };
  if (payload !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(Buffer.byteLength(payload));
  }
  let res: { status: number; text: string };
  try {
    res = await request(new URL(`${baseUrl(addr)}${path}`), method, headers, payload, timeoutMs);
  } catch (e) {
    throw new AgentUnreachableError(addr, e);
  }
  const text = res.text;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = { error: 'BadResponse', message: text };
  }
  return { httpStatus: res.status, json };
}

function toResult(r: { httpStatus: number; json: unknown }): PushResult {
  if (r.httpStatus >= 200 && r.httpStatus < 300)
    return { ok: true, httpStatus: r.httpStatus, status: r.json as AgentStatus };
  return { ok: false, httpStatus: r.httpStatus, ...(r.json as ControlError) };
}

export async function pushFull(
  addr: AgentAddress,
  secret: string,
  state: DesiredState,
  o: PushOptions = {},
): Promise<PushResult> {
  const q = o.wait === false ? '?wait=0' : '';
  return toResult(await call(addr, secret, 'PUT', `/v1/desired-state${q}`, state, o.timeoutMs));
}

export async function pushDelta(
  addr: AgentAddress,
  secret: string,
  delta: DesiredStateDelta,
  o: PushOptions = {},
): Promise<PushResult> {
  const q = o.wait === false ? '?wait=0' : '';
  return toResult(await call(addr, secret, 'PATCH', `/v1/desired-state${q}`, delta, o.timeoutMs));
}

export async function getStatus(
  addr: AgentAddress,
  secret: string,
  o: { leases?: boolean; timeoutMs?: number } = {},
): Promise<AgentStatus> {
  const q = o.leases === false ? '?leases=0' : '';
  const r = await call(addr, secret, 'GET', `/v1/status${q}`, undefined, o.timeoutMs ?? 10_000);
  if (r.httpStatus !== 200) {
    const e = r.json as ControlError;
    throw new Error(`router agent at ${shownAddr(addr)}: ${r.httpStatus} ${e.error}: ${e.message}`);
  }
  return r.json as AgentStatus;
}

/** Push a delta; if the agent says its base differs, push the full state instead (the reconciler's usual move). */
export async function pushDeltaOrFull(
  addr: AgentAddress,
  secret: string,
  delta: DesiredStateDelta,
  full: DesiredState,
  o: PushOptions = {},
): Promise<PushResult> {
  const r = await pushDelta(addr, secret, delta, o);
  if (!r.ok && r.sendFull) return pushFull(addr, secret, full, o);
  return r;
}

/** The desired state the agent has in force, or null before its first. */
export async function getAppliedState(
  addr: AgentAddress,
  secret: string,
  o: { timeoutMs?: number } = {},
): Promise<DesiredState | null> {
  const r = await call(addr, secret, 'GET', '/v1/desired-state', undefined, o.timeoutMs ?? 10_000);
  if (r.httpStatus === 404) return null;
  if (r.httpStatus !== 200) {
    const e = r.json as ControlError;
    throw new Error(`router agent at ${shownAddr(addr)}: ${r.httpStatus} ${e.error}: ${e.message}`);
  }
  return r.json as DesiredState;
}

/**
 * runDiagnostics inside the router (`POST /v1/diagnostics/run`): the tool's stdout, stderr and exit code, or
 * the agent's refusal (`{ok: false, httpStatus, error, message, field}`).
 */
export async function runDiagnostics(
  addr: AgentAddress,
  secret: string,
  req: DiagnosticsRunRequest,
): Promise<({ ok: true } & DiagnosticsRunResult) | ({ ok: false; httpStatus: number } & ControlError)> {
  // The agent kills the tool at its timeout; the call waits a little longer than that.
  const timeoutMs = ((req.timeoutSeconds ?? DIAGNOSTICS_RUN_TIMEOUT_SECONDS) + 15) * 1000;
  const r = await call(addr, secret, 'POST', '/v1/diagnostics/run', req, timeoutMs);
  if (r.httpStatus === 200) return { ok: true, ...(r.json as DiagnosticsRunResult) };
  return { ok: false, httpStatus: r.httpStatus, ...(r.json as ControlError) };
}

/** getDiagnosticsData inside the router (`POST /v1/diagnostics/data`): the tar.gz, base64, or the refusal. */
export async function collectDiagnostics(
  addr: AgentAddress,
  secret: string,
  req: DiagnosticsDataRequest,
): Promise<({ ok: true } & DiagnosticsDataResult) | ({ ok: false; httpStatus: number } & ControlError)> {
  // Four commands and tar, each bounded by the request's timeout.
  const timeoutMs = ((req.timeoutSeconds ?? 60) * 5 + 30) * 1000;
  const r = await call(addr, secret, 'POST', '/v1/diagnostics/data', req, timeoutMs);
  if (r.httpStatus === 200) return { ok: true, ...(r.json as DiagnosticsDataResult) };
  return { ok: false, httpStatus: r.httpStatus, ...(r.json as ControlError) };
}

/** What the router really serves for a VM or the network (`GET /v1/inspect`, src/agent/inspect.ts). */
export async function getInspection(
  addr: AgentAddress,
  secret: string,
  q: InspectQuery,
  o: { timeoutMs?: number } = {},
): Promise<Inspection> {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(q))
    if (v !== undefined && v !== false) params.set(k, v === true ? '1' : v);
  const r = await call(addr, secret, 'GET', `/v1/inspect?${params}`, undefined, o.timeoutMs ?? 10_000);
  if (r.httpStatus !== 200) {
    const e = r.json as ControlError;
    throw new Error(`router agent at ${shownAddr(addr)}: ${r.httpStatus} ${e.error}: ${e.message}`);
  }
  return r.json as Inspection;
}
