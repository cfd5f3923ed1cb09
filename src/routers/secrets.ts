/**
 * Router control secrets: issued when a router is created, stored sealed with the server key
 * (config/server-key.ts, a file outside the database) so that a database dump alone does not hand out the keys
 * to every router's control API, and never returned by the API.
 *
 * Before the server key existed, secrets were sealed (`v1:` values) with STACKNET_SECRET_KEY or, failing that, a
 * key generated and kept in stacknet_meta, i.e. in the very database it was meant to protect.
 * `resealRouterSecrets` moves those to the server key at start and then deletes the kept key.
 */
import { createDecipheriv, randomBytes } from 'node:crypto';
import type { Executor, Tx } from '../store/db.js';
import { currentServerKey, isSealed, seal, unseal } from '../config/server-key.js';
import type { ServerKey } from '../config/server-key.js';

const LEGACY_META_KEY = 'router.secret.key';

/** A fresh router secret (what the agent checks as `Authorization: Bearer <secret>`). */
export function issueSecret(): string {
  return randomBytes(24).toString('base64url');
}

// `ex` stays in the signature: callers seal inside the transaction that writes the row, and sealing needed the
// database while the key lived there.
export async function sealSecret(_ex: Executor, secret: string): Promise<string> {
  return seal(currentServerKey(), secret);
}

export async function unsealSecret(_ex: Executor, sealed: string): Promise<string> {
  if (!isSealed(sealed))
    throw new Error('router secret is sealed in the pre-server-key format; restart the server to re-seal it');
  return unseal(currentServerKey(), sealed);
}

/** The keys a `v1:` value may have been sealed with: the old environment variable's, then the kept one. */
async function legacyKeys(ex: Executor): Promise<Buffer[]> {
  const keys: Buffer[] = [];
  const env = process.env.STACKNET_SECRET_KEY;
  if (env && /^[0-9a-fA-F]{64}$/.test(env)) keys.push(Buffer.from(env, 'hex'));
  const row = await ex
    .selectFrom('stacknet_meta')
    .select('value')
    .where('name', '=', LEGACY_META_KEY)
    .executeTakeFirst();
  if (row && /^[0-9a-fA-F]{64}$/.test(row.value)) keys.push(Buffer.from(row.value, 'hex'));
  return keys;
}

function openV1(keys: Buffer[], sealed: string): string {
  const [, iv, tag, body] = sealed.split(':');
  for (const key of keys) {
    try {
      const d = createDecipheriv('aes-256-gcm', key, Buffer.from(iv ?? '', 'base64url'));
      d.setAuthTag(Buffer.from(tag ?? '', 'base64url'));
      return Buffer.concat([d.update(Buffer.from(body ?? '', 'base64url')), d.final()]).toString('utf8');
    } catch {
      // Wrong key (the authentication tag does not match): try the next one.
    }
  }
  throw new Error(
    'a router secret sealed before the server key existed cannot be opened with STACKNET_SECRET_KEY nor ' +
      'with the key kept in the database; start once with the STACKNET_SECRET_KEY the server used before',
  );
}

/**
 * Re-seals every router secret with `to`: legacy `v1:` values with the old keys, others with `from` (rotation).
 * Returns how many changed. Runs inside the caller's transaction, which also deletes the kept legacy key.
 */
export async function resealRouterSecrets(tx: Tx, to: ServerKey, from?: ServerKey): Promise<number> {
  const rows = await tx.selectFrom('routers').select(['id', 'secret_sealed']).execute();
  let legacy: Buffer[] | undefined;
  let changed = 0;
  for (const r of rows) {
    let plain: string;
    if (r.secret_sealed.startsWith('v1:')) plain = openV1((legacy ??= await legacyKeys(tx)), r.secret_sealed);
    else if (from && from.id !== to.id) plain = unseal(from, r.secret_sealed);
    else continue;
    await tx
      .updateTable('routers')
      .set({ secret_sealed: seal(to, plain) })
      .where('id', '=', Number(r.id))
      .execute();
    changed++;
  }
  await tx.deleteFrom('stacknet_meta').where('name', '=', LEGACY_META_KEY).execute();
  return changed;
}
