/**
 * Where getDiagnosticsData archives wait for their download: `<data dir>/diagnostics/<token>.tar.gz`, served
 * unauthenticated at `GET /client/diagnostics/<token>.tar.gz` (the token is 192 random bits, as CloudStack's
 * secondary-storage download URLs are random names), until `diagnostics.data.max.file.age` seconds after it was
 * written; after that the URL answers 404 and the file is removed (on the download, or when the next archive is
 * made).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Executor, Store } from '../store/db.js';
import { getSetting } from '../configuration/repository.js';

const NAME = /^[0-9a-f]{48}\.tar\.gz$/;

const dirByUrl = new Map<string, string>();

/** The archive directory of the server running on this database (a job's store shares the API's URL). */
export function archiveDirFor(store: Store): string {
  const d = dirByUrl.get(store.url);
  if (!d) throw new Error('diagnostics archives are not set up on this store (buildServer does it)');
  return d;
}

async function maxAgeMs(ex: Executor): Promise<number> {
  return Number(await getSetting(ex, 'diagnostics.data.max.file.age')) * 1000;
}

/** True when the file is past its age (and then removed). */
function expired(path: string, maxAge: number, now: number): boolean {
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) return true;
  if (st.mtimeMs + maxAge > now) return false;
  rmSync(path, { force: true });
  return true;
}

/** Removes every archive past its age. */
export async function sweepArchives(store: Store, now: number): Promise<void> {
  const dir = archiveDirFor(store);
  const maxAge = await maxAgeMs(store.db);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) if (NAME.test(n)) expired(join(dir, n), maxAge, now);
}

/**
 * Keeps an archive and answers its download URL, built on `endpoint.url` (CloudStack's "URL of the API as clients
 * reach it"): `http://host:8080/client/api` gives `http://host:8080/client/diagnostics/<token>.tar.gz`.
 */
export async function keepArchive(store: Store, archive: Buffer, now: number): Promise<string> {
  await sweepArchives(store, now);
  const dir = archiveDirFor(store);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const name = `${randomBytes(24).toString('hex')}.tar.gz`;
  writeFileSync(join(dir, name), archive, { mode: 0o600 });
  const endpoint = new URL(String(await getSetting(store.db, 'endpoint.url')));
  const base = endpoint.pathname.replace(/\/api\/?$/, '').replace(/\/$/, '');
  return `${endpoint.origin}${base}/diagnostics/${name}`;
}

/** The download route, on the API's HTTP app; the archives live under `<dataDir>/diagnostics`. */
export function serveDiagnosticsArchives(app: FastifyInstance, store: Store, dataDir: string): void {
  const dir = join(dataDir, 'diagnostics');
  dirByUrl.set(store.url, dir);
  app.get<{ Params: { name: string } }>('/client/diagnostics/:name', async (req, res) => {
    const name = req.params.name;
    const gone = () =>
      res.code(404).type('text/plain').send('no such diagnostics archive (never made, or expired)\n');
    if (!NAME.test(name)) return gone();
    const path = join(dir, name);
    if (expired(path, await maxAgeMs(store.db), Date.now())) return gone();
    return res
      .type('application/gzip')
      .header('content-disposition', `attachment; filename="${name}"`)
      .send(readFileSync(path));
  });
}
