/**
 * The login throttle. CloudStack counts a user's incorrect logins and disables the user after
 * `incorrect.login.attempts.allowed` (5); stacknet counts the same way but locks for
 * `incorrect.login.lock.seconds` instead of for good (a guesser must not be able to lock the admin out until
 * someone edits the database), and also counts per source address, whatever the username, so that one client
 * cannot spray guesses over many users. Unknown usernames are counted and locked exactly like known ones: the
 * answer must not tell them apart.
 *
 * An attempt is counted before its password is checked, so N concurrent guesses cannot all get past a limit of
 * 5; a correct password then takes its count back. Counts live in the database (login_failures) so that every
 * management server sharing it enforces one limit.
 */
import type { Executor, Store, Tx } from '../store/db.js';
import { isUniqueViolation, transaction } from '../store/db.js';
import { getSetting } from '../configuration/repository.js';
import { sha256Hex } from './credentials.js';

export interface LoginThrottleSettings {
  /** Per user; 0 or less turns the user lock off. */
  userAttempts: number;
  /** Per source address; 0 or less turns it off. */
  addressAttempts: number;
  lockMs: number;
}

export async function loginThrottleSettings(ex: Executor): Promise<LoginThrottleSettings> {
  return {
    userAttempts: await getSetting(ex, 'incorrect.login.attempts.allowed'),
    addressAttempts: await getSetting(ex, 'incorrect.login.attempts.allowed.per.address'),
    lockMs: (await getSetting(ex, 'incorrect.login.lock.seconds')) * 1000,
  };
}

/** One counted thing: a user (or a username that matches nobody) or a source address. */
export interface ThrottleKey {
  kind: 'user' | 'address';
  /** Hashed before it is stored. */
  name: string;
  limit: number;
}

export function throttleKeys(
  s: LoginThrottleSettings,
  user: string,
  address: string | undefined,
): ThrottleKey[] {
  const keys: ThrottleKey[] = [];
  if (s.userAttempts > 0) keys.push({ kind: 'user', name: `user ${user}`, limit: s.userAttempts });
  if (s.addressAttempts > 0 && address)
    keys.push({ kind: 'address', name: `address ${address}`, limit: s.addressAttempts });
  return keys;
}

export type AttemptVerdict = { allowed: true } | { allowed: false; key: ThrottleKey; until: number };

/** Makes sure the key's row exists, outside any transaction (a unique violation aborts one on PostgreSQL). */
async function ensureRow(store: Store, hash: string): Promise<void> {
  const row = await store.db
    .selectFrom('login_failures')
    .select('id')
    .where('key_hash', '=', hash)
    .executeTakeFirst();
  if (row) return;
  try {
    await store.db
      .insertInto('login_failures')
      .values({ key_hash: hash, failures: 0, last_failure: 0, locked_until: 0 })
      .execute();
  } catch (e) {
    if (!isUniqueViolation(e)) throw e;
  }
}

/**
 * The key's row, locked until the transaction ends, so that counting, locking and unlocking one key happen one
 * at a time (SQLite's transactions hold the whole database already).
 */
async function lockedRow(store: Store, tx: Tx, hash: string) {
  const q = tx
    .selectFrom('login_failures')
    .select(['failures', 'last_failure', 'locked_until'])
    .where('key_hash', '=', hash);
  const row = await (store.kind === 'sqlite' ? q : q.forUpdate()).executeTakeFirstOrThrow();
  return {
    failures: Number(row.failures),
    lastFailure: Number(row.last_failure),
    lockedUntil: Number(row.locked_until),
  };
}

async function countOne(
  store: Store,
  tx: Tx,
  k: ThrottleKey,
  now: number,
  lockMs: number,
): Promise<number | undefined> {
  const hash = sha256Hex(k.name);
  const row = await lockedRow(store, tx, hash);
  if (row.lockedUntil > now) return row.lockedUntil;
  // Failures older than the lock time are forgotten (a typo a week ago does not count towards today's limit).
  const failures = now - row.lastFailure > lockMs ? 1 : row.failures + 1;
  // More attempts in flight than the limit allows (each was counted before any was checked): lock now.
  const lock = failures > k.limit;
  const until = now + lockMs;
  await tx
    .updateTable('login_failures')
    .set(lock ? { failures: 0, locked_until: until } : { failures, last_failure: now })
    .where('key_hash', '=', hash)
    .execute();
  return lock ? until : undefined;
}

/** Counts an attempt on every key before its password is checked; refused while any key is locked. */
export async function beginLoginAttempt(
  store: Store,
  keys: ThrottleKey[],
  now: number,
  lockMs: number,
): Promise<AttemptVerdict> {
  if (keys.length === 0) return { allowed: true };
  for (const k of keys) await ensureRow(store, sha256Hex(k.name));
  return transaction(store, async (tx) => {
    for (const k of keys) {
      const until = await countOne(store, tx, k, now, lockMs);
      if (until !== undefined) return { allowed: false, key: k, until };
    }
    return { allowed: true };
  });
}

/**
 * After a wrong password: a key that reached its limit is locked now (the Nth failure locks, as CloudStack's
 * does). Returns when the lock ends, if one started.
 */
export async function loginFailed(
  store: Store,
  keys: ThrottleKey[],
  now: number,
  lockMs: number,
): Promise<{ key: ThrottleKey; until: number } | undefined> {
  if (keys.length === 0) return undefined;
  return transaction(store, async (tx) => {
    let locked: { key: ThrottleKey; until: number } | undefined;
    for (const k of keys) {
      const hash = sha256Hex(k.name);
      const row = await lockedRow(store, tx, hash);
      if (row.lockedUntil > now || row.failures < k.limit) continue;
      const until = now + lockMs;
      await tx
        .updateTable('login_failures')
        .set({ failures: 0, locked_until: until })
        .where('key_hash', '=', hash)
        .execute();
      locked ??= { key: k, until };
    }
    return locked;
  });
}

/**
 * After a correct password: the user's count starts again (CloudStack resets it on success); the address gives
 * back only this attempt, so logging in to one's own account between guesses does not clear the address.
 */
export async function loginSucceeded(store: Store, keys: ThrottleKey[]): Promise<void> {
  if (keys.length === 0) return;
  await transaction(store, async (tx) => {
    for (const k of keys) {
      const q = tx.updateTable('login_failures').where('key_hash', '=', sha256Hex(k.name));
      if (k.kind === 'user') await q.set({ failures: 0 }).execute();
      else
        await q
          .set((eb) => ({ failures: eb('failures', '-', 1) }))
          .where('failures', '>', 0)
          .execute();
    }
  });
}
