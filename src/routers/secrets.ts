/**
 * Router control secrets: issued when a router is created, stored sealed (AES-256-GCM) so a database dump alone
 * does not hand out the keys to every router's control API, and never returned by the API. The sealing key
 * comes from STACKNET_SECRET_KEY (64 hex digits) or, failing that, is generated once and kept in stacknet_meta
 * (which only protects against leaks of the routers table, not of the whole database; say so to operators).
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { Executor } from '../store/db.js';
import { isUniqueViolation } from '../store/db.js';

const META_KEY = 'router.secret.key';

/** A fresh router secret (what the agent checks as `Authorization: Bearer <secret>`). */
export function issueSecret(): string {
  return randomBytes(24).toString('base64url');
}

async function sealingKey(ex: Executor): Promise<Buffer> {
  const env = process.env.STACKNET_SECRET_KEY;
  if (env && /^[0-9a-fA-F]{64}$/.test(env)) return Buffer.from(env, 'hex');
  const read = () =>
    ex.selectFrom('stacknet_meta').select('value').where('name', '=', META_KEY).executeTakeFirst();
  let row = await read();
  if (!row) {
    try {
      await ex
        .insertInto('stacknet_meta')
        .values({ name: META_KEY, value: randomBytes(32).toString('hex') })
        .execute();
    } catch (e) {
      if (!isUniqueViolation(e)) throw e;
    }
    row = await read();
  }
  return Buffer.from(row!.value, 'hex');
}

export async function sealSecret(ex: Executor, secret: string): Promise<string> {
  const key = await sealingKey(ex);
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  const body = Buffer.concat([c.update(secret, 'utf8'), c.final()]);
  return `v1:${iv.toString('base64url')}:${c.getAuthTag().toString('base64url')}:${body.toString('base64url')}`;
}

export async function unsealSecret(ex: Executor, sealed: string): Promise<string> {
  const [v, iv, tag, body] = sealed.split(':');
  if (v !== 'v1' || !iv || !tag || body === undefined)
    throw new Error('router secret is not in a known format');
  const key = await sealingKey(ex);
  const d = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
  d.setAuthTag(Buffer.from(tag, 'base64url'));
  return Buffer.concat([d.update(Buffer.from(body, 'base64url')), d.final()]).toString('utf8');
}
