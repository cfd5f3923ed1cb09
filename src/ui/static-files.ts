/**
 * `stacknet server --ui-dir <dir>`: a built CloudStack UI (or any static console) served from the same origin as
 * the API, at `/client/` as CloudStack serves its own, so the session cookie (Path=/client) and the
 * `sessionkey` parameter work without a proxy. Only files under the directory are served.
 */
import { readFile, stat } from 'node:fs/promises';
import { extname, join, resolve, sep } from 'node:path';
import type { FastifyInstance } from 'fastify';

const contentTypes: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
  '.eot': 'application/vnd.ms-fontobject',
};

/** The file a request path names inside `root`, or undefined when it would leave it. */
export function uiFilePath(root: string, urlPath: string): string | undefined {
  let rel: string;
  try {
    rel = decodeURIComponent(urlPath.replace(/^\/client\/?/, ''));
  } catch {
    return undefined;
  }
  if (rel.includes('\0')) return undefined;
  const base = resolve(root);
  const file = resolve(base, rel === '' ? 'index.html' : rel);
  if (file !== base && !file.startsWith(base + sep)) return undefined;
  return file;
}

export function serveUi(app: FastifyInstance, dir: string): void {
  const root = resolve(dir);
  app.get('/', (_req, res) => res.redirect('/client/'));
  app.get('/client', (_req, res) => res.redirect('/client/'));
  app.get('/client/*', async (req, res) => {
    const path = (req.raw.url ?? '/client/').split('?')[0]!;
    let file = uiFilePath(root, path);
    if (file && (await stat(file).catch(() => undefined))?.isDirectory()) file = join(file, 'index.html');
    const body = file ? await readFile(file).catch(() => undefined) : undefined;
    if (!file || !body) return res.code(404).type('text/plain; charset=utf-8').send('not found\n');
    return res
      .type(contentTypes[extname(file).toLowerCase()] ?? 'application/octet-stream')
      .header('cache-control', 'no-cache')
      .send(body);
  });
}
