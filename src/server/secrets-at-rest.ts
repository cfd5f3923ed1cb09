/**
 * Secrets at rest across concerns: at start, load (or create) the server key, check it is the key this database's
 * secrets are sealed with, and seal what older versions left readable (API secret keys stored as issued, router
 * secrets sealed with a key kept in the database); `stacknet rotate-server-key` re-seals everything with a new
 * key. Each runs in one transaction: a crash leaves the old state, never a mix.
 */
import { existsSync } from 'node:fs';
import type { Store, Tx } from '../store/db.js';
import { isUniqueViolation, transaction } from '../store/db.js';
import {
  generateServerKey,
  installServerKey,
  loadOrCreateServerKey,
  pendingKeyPath,
  promotePendingKey,
  readServerKey,
  writeServerKey,
} from '../config/server-key.js';
import type { ServerKey } from '../config/server-key.js';
import { resealUserSecretKeys } from '../accounts/repository.js';
import { resealRouterSecrets } from '../routers/secrets.js';
import { resealHostSecrets } from '../hosts/repository.js';

const META_KEY_ID = 'server.key.id';

async function storedKeyId(ex: Store['db'] | Tx): Promise<string | undefined> {
  const row = await ex
    .selectFrom('stacknet_meta')
    .select('value')
    .where('name', '=', META_KEY_ID)
    .executeTakeFirst();
  return row?.value;
}

function mismatch(path: string, have: string, want: string): Error {
  return new Error(
    `the server key in ${path} (id ${have}) is not the key this database's secrets are sealed with ` +
      `(id ${want}); every server sharing a database needs the same key file: copy it from a server that ` +
      'already uses this database (see README, "Server key")',
  );
}

/** Loads the server key for `store`, seals legacy secrets, installs the key for this process. */
export async function prepareServerKey(
  store: Store,
  path: string,
  log?: (m: string) => void,
): Promise<ServerKey> {
  let want = await storedKeyId(store.db);
  const loaded = loadOrCreateServerKey(path, log);
  let key = loaded.key;
  if (want !== undefined && key.id !== want) {
    // A rotation committed but was stopped before it renamed the new key file into place.
    const pending = pendingKeyPath(path);
    if (existsSync(pending) && readServerKey(pending).id === want) {
      promotePendingKey(path);
      key = readServerKey(path);
      log?.(`finished an interrupted server key rotation: ${path} is now key ${key.id}`);
    } else throw mismatch(path, key.id, want);
  }
  if (loaded.created)
    log?.(`created the server key ${path} (id ${key.id}); back it up and share it with every server`);
  const counts = await transaction(store, async (tx) => {
    if (want === undefined) {
      try {
        await tx.insertInto('stacknet_meta').values({ name: META_KEY_ID, value: key.id }).execute();
      } catch (e) {
        if (!isUniqueViolation(e)) throw e;
      }
      // Another server may have registered its key first (both started on a fresh database).
      want = await storedKeyId(tx);
      if (want !== key.id) throw mismatch(path, key.id, want ?? '?');
    }
    return { users: await resealUserSecretKeys(tx, key), routers: await resealRouterSecrets(tx, key) };
  });
  if (counts.users + counts.routers > 0)
    log?.(
      `sealed ${counts.users} API secret key(s) and ${counts.routers} router secret(s) with the server key ${key.id}`,
    );
  installServerKey(key);
  return key;
}

/**
 * Replaces the server key: the new key is written beside the old one (`<path>.new`), every secret is re-sealed
 * with it and the database's key id changed in one transaction, then the new file replaces the old. Every server
 * using the database must be stopped first (they hold the old key in memory).
 */
export async function rotateServerKey(
  store: Store,
  path: string,
): Promise<{ from: string; to: string; users: number; routers: number; hosts: number }> {
  if (!existsSync(path)) throw new Error(`no server key file at ${path}`);
  const from = readServerKey(path);
  const want = await storedKeyId(store.db);
  if (want !== undefined && want !== from.id) throw mismatch(path, from.id, want);
  const to = generateServerKey();
  // Not exclusive: a `.new` left by a rotation that failed before its commit holds a key nothing uses.
  writeServerKey(pendingKeyPath(path), to);
  const counts = await transaction(store, async (tx) => {
    const users = await resealUserSecretKeys(tx, to, from);
    const routers = await resealRouterSecrets(tx, to, from);
    const hosts = await resealHostSecrets(tx, to, from);
    const updated = await tx
      .updateTable('stacknet_meta')
      .set({ value: to.id })
      .where('name', '=', META_KEY_ID)
      .executeTakeFirst();
    if (Number(updated.numUpdatedRows) === 0)
      await tx.insertInto('stacknet_meta').values({ name: META_KEY_ID, value: to.id }).execute();
    return { users, routers, hosts };
  });
  promotePendingKey(path);
  return { from: from.id, to: to.id, ...counts };
}
