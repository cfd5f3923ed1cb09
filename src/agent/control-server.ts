/**
 * The control API on the router's control address (see src/agent/README.md for the contract). Every request but
 * /healthz needs `Authorization: Bearer <router secret>` (GET /metrics included: the control network is shared by
 * the routers of a host, and one router must not read another's figures).
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { RouterAgent, SubmitResult } from './agent.js';
import { diagnosticsEndpoint } from './diagnostics.js';
import { inspect, inspectQuery } from './inspect.js';

const maxBody = 256 * 1024 * 1024;

function send(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > maxBody) {
        reject(new Error('request body too large'));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export function authorized(header: string | undefined, secret: string): boolean {
  if (!header?.startsWith('Bearer ')) return false;
  // Compare digests so the comparison takes the same time whatever the length of what was sent.
  return timingSafeEqual(digest(header.slice(7)), digest(secret));
}

export interface ControlServerOptions {
  /**
   * GET /metrics: the agent's Prometheus text (src/metrics/agent-metrics.ts, wired by the router-agent command).
   * Behind the router secret like every control request (Prometheus: `authorization: {credentials_file: ...}`).
   */
  metrics?: { contentType: string; scrape(): Promise<string> };
}

export function createControlServer(
  agent: RouterAgent,
  secret: string,
  options: ControlServerOptions = {},
): Server {
  return createServer((req, res) => {
    handle(agent, secret, req, res, options).catch((e: Error) => {
      if (!res.headersSent) send(res, 500, { error: 'InternalError', message: e.message });
    });
  });
}

async function handle(
  agent: RouterAgent,
  secret: string,
  req: IncomingMessage,
  res: ServerResponse,
  options: ControlServerOptions,
): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://agent');
  if (url.pathname === '/healthz') return send(res, 200, { ok: true });
  if (!authorized(req.headers.authorization, secret)) {
    res.setHeader('www-authenticate', 'Bearer');
    return send(res, 401, {
      error: 'Unauthorized',
      message: 'missing or wrong router secret (Authorization: Bearer)',
    });
  }
  if (url.pathname === '/metrics' && req.method === 'GET' && options.metrics) {
    const text = await options.metrics.scrape();
    res.writeHead(200, {
      'content-type': options.metrics.contentType,
      'content-length': Buffer.byteLength(text),
    });
    return void res.end(text);
  }
  const wait = url.searchParams.get('wait') !== '0' && url.searchParams.get('wait') !== 'false';
  if (url.pathname === '/v1/status' && req.method === 'GET') {
    const leases = url.searchParams.get('leases') !== '0' && url.searchParams.get('leases') !== 'false';
    return send(res, 200, agent.status(leases));
  }
  if (url.pathname.startsWith('/v1/diagnostics/')) {
    const text = req.method === 'POST' ? await readBody(req) : '';
    let body: unknown;
    try {
      body = text === '' ? {} : JSON.parse(text);
    } catch (e) {
      return send(res, 400, {
        error: 'InvalidJson',
        message: `request body is not JSON: ${(e as Error).message}`,
      });
    }
    const r = await diagnosticsEndpoint(agent, req.method, url.pathname, body);
    return send(res, r.code, r.body);
  }
  if (url.pathname === '/v1/inspect' && req.method === 'GET')
    return send(res, 200, await inspect(agent, inspectQuery(url.searchParams)));
  if (url.pathname === '/v1/desired-state') {
    if (req.method === 'GET') {
      const applied = agent.appliedState;
      if (!applied)
        return send(res, 404, { error: 'NoDesiredState', message: 'no desired state applied yet' });
      return send(res, 200, applied);
    }
    if (req.method === 'PUT' || req.method === 'PATCH') {
      // Counted while the body is read, so an apply starting now waits for pushes still arriving (coalescing).
      agent.receiving(1);
      let pending: Promise<SubmitResult>;
      try {
        let doc: unknown;
        try {
          doc = JSON.parse(await readBody(req));
        } catch (e) {
          return send(res, 400, {
            error: 'InvalidJson',
            message: `request body is not JSON: ${(e as Error).message}`,
          });
        }
        pending = req.method === 'PUT' ? agent.submitFull(doc, wait) : agent.submitDelta(doc, wait);
      } finally {
        agent.receiving(-1);
      }
      const r = await pending;
      if (r.ok) return send(res, wait ? 200 : 202, r.status);
      const { ok: _ok, httpStatus, ...body } = r;
      return send(res, httpStatus, { ...body, status: httpStatus === 422 ? agent.status(false) : undefined });
    }
    return send(res, 405, {
      error: 'MethodNotAllowed',
      message: 'use GET, PUT (full state) or PATCH (delta)',
    });
  }
  return send(res, 404, { error: 'NotFound', message: `no such endpoint ${req.method} ${url.pathname}` });
}
