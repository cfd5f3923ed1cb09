/** The HTTP face of the API: `/client/api` (GET and form POST) and `/healthz`, on Fastify (the API's GETs beside it). */
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { sql } from 'kysely';
import { handleApiRequest } from './api-server.js';
import type { ApiServerDeps } from './api-server.js';
import { requestArrivals } from './reply.js';
import type { ApiResponse } from './reply.js';
import { CloudStackError } from '../errors/catalogue.js';
import { errorBody, responseFormat, serialize } from './envelope.js';

// 8 MB: userdata may be 1 MB of base64 and travels URL-encoded in a form body.
const BODY_LIMIT = 8 * 1024 * 1024;

function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!header) return out;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i <= 0) continue;
    const k = part.slice(0, i).trim();
    if (k in out) continue;
    const v = part.slice(i + 1).trim();
    try {
      out[k] = decodeURIComponent(v);
    } catch {
      // A malformed escape is kept as sent: it then simply matches no session.
      out[k] = v;
    }
  }
  return out;
}

/** Servlet semantics: `+` is a space, and of repeated names only the first value counts. */
function addParams(into: Map<string, string>, encoded: string): void {
  for (const [k, v] of new URLSearchParams(encoded)) if (!into.has(k)) into.set(k, v);
}

export interface HttpOptions {
  /**
   * GET /metrics: the Prometheus exposition text (src/metrics). Unauthenticated, as Prometheus scrapes; the
   * server leaves it out when STACKNET_METRICS=off.
   */
  metrics?: { contentType: string; scrape(): Promise<string> };
}

/** A /client/api request as both paths below see it. */
interface ApiHttpRequest {
  url: string;
  /** The body as read (a form POST's); undefined for a GET. */
  body: unknown;
  headers: IncomingHttpHeaders;
  ip: string | undefined;
  /** ApiRequest.arrived. */
  arrived?: number;
}

function answerApi(deps: ApiServerDeps, req: ApiHttpRequest): Promise<ApiResponse> {
  const params = new Map<string, string>();
  const url = req.url;
  const q = url.indexOf('?');
  if (q >= 0) addParams(params, url.slice(q + 1));
  const ct = String(req.headers['content-type'] ?? '');
  if (typeof req.body === 'string' && req.body !== '' && ct.startsWith('application/x-www-form-urlencoded')) {
    addParams(params, req.body);
  }
  const cookieHeader = req.headers.cookie;
  return handleApiRequest(deps, {
    params,
    cookies: parseCookies(Array.isArray(cookieHeader) ? cookieHeader.join(';') : cookieHeader),
    remoteAddress: req.ip,
    arrived: req.arrived,
  });
}

/** A request Fastify refused before the API (body over the limit, unreadable): a CloudStack error still. */
function refusal(
  deps: ApiServerDeps,
  e: { statusCode?: number; message?: string },
  method: string,
  url: string,
) {
  const q = url.indexOf('?');
  const format = responseFormat(
    new URLSearchParams(q >= 0 ? url.slice(q + 1) : '').get('response') ?? undefined,
  );
  const why =
    e.statusCode === 413
      ? `the request body is larger than ${BODY_LIMIT / 1024 / 1024} MB`
      : 'the request could not be read';
  deps.log?.(`HTTP ${method} refused before the API: ${e.message ?? String(e)}`);
  const err = new CloudStackError('InvalidParameterValue', `Unable to execute the request: ${why}`);
  return { status: err.httpCode, ...serialize('errorresponse', errorBody(err), format) };
}

/**
 * The headers Fastify's reply writes for an answer, in its order: the answer's own (lower-cased, as
 * reply.header keeps them), its cookies, then reply.type's and the Content-Length of the bytes sent.
 */
function replyHeaders(r: ApiResponse, length: number): OutgoingHttpHeaders {
  const h: OutgoingHttpHeaders = {};
  for (const k in r.headers) h[k.toLowerCase()] = r.headers[k];
  if (r.setCookies.length > 0) h['set-cookie'] = r.setCookies.slice();
  h['content-type'] = r.contentType;
  h['content-length'] = String(length);
  return h;
}

/** A GET of /client/api, as the fast path takes it: the path exactly, with or without a query. */
function isApiGet(req: IncomingMessage): boolean {
  if (req.method !== 'GET') return false;
  const url = req.url ?? '';
  const end = url.indexOf('?');
  const path = end < 0 ? url : url.slice(0, end);
  return path === '/client/api' || path === '/client/api/';
}

export function buildHttpApp(deps: ApiServerDeps, options: HttpOptions = {}): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: BODY_LIMIT });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => done(null, body));

  const handler = async (
    req: { raw: { url?: string }; body: unknown; headers: IncomingHttpHeaders; ip?: string },
    res: {
      code(n: number): unknown;
      header(k: string, v: string | string[]): unknown;
      type(t: string): unknown;
      send(b: Buffer): unknown;
    },
  ) => {
    const r = await answerApi(deps, {
      url: req.raw.url ?? '',
      body: req.body,
      headers: req.headers,
      ip: req.ip,
    });
    res.code(r.status);
    for (const [k, v] of Object.entries(r.headers)) res.header(k, v);
    if (r.setCookies.length > 0) res.header('set-cookie', r.setCookies);
    res.type(r.contentType);
    // Encoded to UTF-8 once, here: sent as a string, the answer was encoded twice (Fastify's Buffer.byteLength for
    // Content-Length, then the socket's write), ~7 ms of a 500-row page's ~35 (docs/benchmarks.md).
    return res.send(Buffer.from(r.body));
  };

  /**
   * Signed GETs of /client/api (what the API's clients send, a few thousand a second) skip Fastify's routing,
   * request and reply objects: the same answer, written with the same status and headers in the same order
   * (http.test.ts compares the bytes of both paths). Everything else — POST, other paths, a request while the
   * server closes (Fastify's 503) — goes to Fastify as before. inject() always takes the route.
   *
   * On SQLite the GETs that arrive in one turn of the event loop are answered together once its I/O is read
   * (setImmediate), in arrival order, each with its place in the arrivals: one read of `PRAGMA data_version`,
   * made after all of them were in, then tells each whether another process changed a caller
   * (caller-check.ts callerOfApiKey), where every request read it (a WAL read transaction each, 2–4 % of the server's
   * CPU per associateIpAddress job). A turn's requests reached the API one I/O callback apart before; now a few
   * microseconds apart, after the turn's last read.
   */
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  const server = app.server;
  const fastifyHandler = server.listeners('request')[0] as
    ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  if (fastifyHandler) {
    server.removeListener('request', fastifyHandler);
    const batched = deps.store.kind === 'sqlite';
    const waiting: { req: IncomingMessage; res: ServerResponse; arrived: number }[] = [];
    const answerWaiting = () => {
      for (const w of waiting.splice(0)) answerGet(w.req, w.res, w.arrived);
    };
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (closing || !isApiGet(req)) return fastifyHandler.call(server, req, res);
      const arrived = ++requestArrivals.count;
      if (!batched) return answerGet(req, res, arrived);
      if (waiting.push({ req, res, arrived }) === 1) setImmediate(answerWaiting);
    });
    const answerGet = (req: IncomingMessage, res: ServerResponse, arrived: number) => {
      const send = (
        status: number,
        r: { body: string },
        headers: (length: number) => OutgoingHttpHeaders,
      ) => {
        const bytes = Buffer.from(r.body);
        res.writeHead(status, headers(bytes.length));
        res.end(bytes);
      };
      answerApi(deps, {
        url: req.url ?? '',
        body: undefined,
        headers: req.headers,
        ip: req.socket.remoteAddress,
        arrived,
      })
        .then(
          (r) => send(r.status, r, (n) => replyHeaders(r, n)),
          (e: unknown) => {
            const out = refusal(deps, e as { statusCode?: number; message?: string }, 'GET', req.url ?? '');
            send(out.status, out, (n) => ({ 'content-type': out.contentType, 'content-length': String(n) }));
          },
        )
        .catch((e: unknown) => {
          // Nothing could be written (a header Node refuses): the connection goes, the server stays.
          deps.log?.(`HTTP GET answer not written: ${e instanceof Error ? e.message : String(e)}`);
          res.destroy();
        });
    };
  }

  // Fastify's own refusals (body over the limit, unreadable body) still answer as CloudStack errors.
  app.setErrorHandler((e: { statusCode?: number; message?: string }, req, res) => {
    const out = refusal(deps, e, req.method, req.raw.url ?? '');
    return res.code(out.status).type(out.contentType).send(out.body);
  });
  app.route({ method: ['GET', 'POST'], url: '/client/api', handler });
  app.route({ method: ['GET', 'POST'], url: '/client/api/', handler });

  const metrics = options.metrics;
  if (metrics) {
    app.get('/metrics', async (_req, res) => {
      try {
        return res.type(metrics.contentType).send(await metrics.scrape());
      } catch (e) {
        deps.log?.(`metrics: ${e instanceof Error ? e.message : String(e)}`);
        return res.code(503).type('text/plain').send('metrics unavailable: the database did not answer\n');
      }
    });
  }

  app.get('/healthz', async (_req, res) => {
    try {
      await sql`select 1`.execute(deps.store.db);
      return res.send({ status: 'ok', db: deps.store.kind });
    } catch (e) {
      return res.code(503).send({ status: 'unavailable', error: e instanceof Error ? e.message : String(e) });
    }
  });
  return app;
}
