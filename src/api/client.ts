/**
 * A small signed CloudStack API client (the CLI's `stacknet api`, tests and the bench use it). It signs as
 * CloudStack's own clients do: signatureversion=3 with an `expires` a few minutes ahead.
 */
import { request } from 'node:http';
import type { Agent } from 'node:http';
import { formatExpires, javaUrlEncode, signParams } from './signature.js';

export interface ClientOptions {
  url: string;
  apiKey: string;
  secretKey: string;
  /** Seconds the signature stays valid (default 600). */
  expiresIn?: number;
  /**
   * Send over node:http through this agent (an http:// URL; keep-alive agents reuse connections) rather than
   * `fetch`: the same requests for a fraction of the client's CPU (the WHATWG Request/Response and stream objects
   * fetch builds per call). The bench uses it, on the same cores as the server it measures.
   */
  agent?: Agent;
}

export interface ApiCallResult {
  status: number;
  /** The parsed body inside `<command>response` (JSON), or the raw text (XML). */
  body: unknown;
  text: string;
}

/**
 * `expires` `seconds` from now, to the second as sent: formatted once per second and expiry rather than per
 * request (the bench's 64 clients sign thousands a second on the cores of the server they measure).
 */
let lastExpires = { second: -1, seconds: -1, text: '' };
function expiresIn(seconds: number): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== lastExpires.second || seconds !== lastExpires.seconds)
    lastExpires = { second, seconds, text: formatExpires(second * 1000 + seconds * 1000) };
  return lastExpires.text;
}

/** The signed, URL-encoded parameter string for `command` and `params`. */
export function signedQuery(opts: ClientOptions, command: string, params: Record<string, string>): string {
  const all = new Map<string, string>(Object.entries(params));
  all.set('command', command);
  all.set('apiKey', opts.apiKey);
  if (!all.has('response')) all.set('response', 'json');
  all.set('signatureVersion', '3');
  if (!all.has('expires')) all.set('expires', expiresIn(opts.expiresIn ?? 600));
  const signature = signParams(all, opts.secretKey);
  all.set('signature', signature);
  return [...all].map(([k, v]) => `${encodeURIComponent(k)}=${javaUrlEncode(v)}`).join('&');
}

export async function callApi(
  opts: ClientOptions,
  command: string,
  params: Record<string, string> = {},
  init: { method?: 'GET' | 'POST'; signal?: AbortSignal } = {},
): Promise<ApiCallResult> {
  const query = signedQuery(opts, command, params);
  if (opts.agent) return viaAgent(opts.agent, opts.url, query, init);
  const res =
    init.method === 'POST'
      ? await fetch(opts.url, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: query,
          signal: init.signal,
        })
      : await fetch(`${opts.url}?${query}`, { signal: init.signal });
  const text = await res.text();
  let body: unknown = text;
  if ((res.headers.get('content-type') ?? '').startsWith('application/json')) {
    const parsed = JSON.parse(text) as Record<string, unknown>;
    body = Object.values(parsed)[0];
  }
  return { status: res.status, body, text };
}

/** The API URL's parts, parsed once per URL rather than per request. */
const urls = new Map<string, { hostname: string; port: string; path: string }>();
function parsedUrl(url: string): { hostname: string; port: string; path: string } {
  let u = urls.get(url);
  if (!u) {
    const p = new URL(url);
    if (p.protocol !== 'http:') throw new Error(`an agent sends over http:// only, not ${url}`);
    u = { hostname: p.hostname.replace(/^\[(.*)\]$/, '$1'), port: p.port, path: p.pathname + p.search };
    urls.set(url, u);
  }
  return u;
}

function viaAgent(
  agent: Agent,
  url: string,
  query: string,
  init: { method?: 'GET' | 'POST'; signal?: AbortSignal },
): Promise<ApiCallResult> {
  const post = init.method === 'POST';
  return new Promise((resolve, reject) => {
    const u = parsedUrl(url);
    const req = request(
      {
        hostname: u.hostname,
        port: u.port,
        path: post ? u.path : `${u.path}?${query}`,
        agent,
        method: post ? 'POST' : 'GET',
        signal: init.signal,
        headers: post ? { 'content-type': 'application/x-www-form-urlencoded' } : undefined,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('error', reject);
        res.on('end', () => {
          try {
            let body: unknown = text;
            if (String(res.headers['content-type'] ?? '').startsWith('application/json'))
              body = Object.values(JSON.parse(text) as Record<string, unknown>)[0];
            resolve({ status: res.statusCode ?? 0, body, text });
          } catch (e) {
            reject(e instanceof Error ? e : new Error(String(e)));
          }
        });
      },
    );
    req.on('error', reject);
    req.end(post ? query : undefined);
  });
}

export interface JobResult {
  jobstatus: number;
  jobresultcode: number;
  jobresult?: unknown;
  [k: string]: unknown;
}

/** Polls queryAsyncJobResult until the job is done (status 1 or 2). */
export async function waitForJob(
  opts: ClientOptions,
  jobid: string,
  {
    intervalMs = 200,
    timeoutMs = 120_000,
    onPoll,
  }: { intervalMs?: number; timeoutMs?: number; onPoll?: () => void } = {},
): Promise<JobResult> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    onPoll?.();
    const r = await callApi(opts, 'queryAsyncJobResult', { jobid });
    if (r.status !== 200) throw new Error(`queryAsyncJobResult ${jobid}: HTTP ${r.status} ${r.text}`);
    const job = r.body as JobResult;
    if (job.jobstatus !== 0) return job;
    if (Date.now() > deadline) throw new Error(`job ${jobid} still running after ${timeoutMs} ms`);
    await new Promise((res) => setTimeout(res, intervalMs));
  }
}
