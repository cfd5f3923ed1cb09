/**
 * First start: the ROOT domain and the `admin` root-admin account and user. The password comes from the
 * caller (STACKNET_ADMIN_PASSWORD) or is generated and returned once to be printed; there is no fixed default.
 * Safe when several servers start at once on one database (the unique domain path decides who creates).
 */
import { randomUUID } from 'node:crypto';
import type { Store } from '../store/db.js';
import { isUniqueViolation, nowMs, transaction } from '../store/db.js';
import { generatePassword, hashPassword } from './credentials.js';
import { insertReturningId } from '../api/insert-id.js';
import { sealSecretKey } from './repository.js';

export interface BootstrapOptions {
  adminPassword?: string;
  /** When both are set, the admin user gets exactly these keys (automation, tests). */
  adminApiKey?: string;
  adminSecretKey?: string;
}

export interface BootstrapResult {
  created: boolean;
  /** Set only when the admin was created now with a generated password. */
  generatedPassword?: string;
}

export async function bootstrapAdmin(store: Store, opts: BootstrapOptions = {}): Promise<BootstrapResult> {
  const generated = opts.adminPassword ? undefined : generatePassword();
  const password = opts.adminPassword ?? generated!;
  const existing = await store.db
    .selectFrom('domains')
    .select('id')
    .where('path', '=', '/')
    .executeTakeFirst();
  let created = false;
  if (!existing) {
    const hash = await hashPassword(password);
    try {
      await transaction(store, async (tx) => {
        const now = nowMs();
        const rootId = await insertReturningId(
          tx,
          tx.insertInto('domains').values({
            uuid: randomUUID(),
            name: 'ROOT',
            path: '/',
            parent_id: null,
            level: 0,
            network_domain: null,
            state: 'Active',
            created: now,
          }),
        );
        const acctId = await insertReturningId(
          tx,
          tx.insertInto('accounts').values({
            uuid: randomUUID(),
            name: 'admin',
            domain_id: rootId,
            type: 1,
            state: 'enabled',
            network_domain: null,
            is_default: 1,
            created: now,
          }),
        );
        await tx
          .insertInto('users')
          .values({
            uuid: randomUUID(),
            account_id: acctId,
            domain_id: rootId,
            username: 'admin',
            password_hash: hash,
            firstname: 'Admin',
            lastname: 'User',
            email: null,
            timezone: null,
            api_key: null,
            secret_key: null,
            state: 'enabled',
            is_default: 1,
            created: now,
          })
          .execute();
      });
      created = true;
    } catch (e) {
      // Another server bootstrapped the same database at the same moment.
      if (!isUniqueViolation(e) && !(e instanceof Error && isUniqueViolation(e.cause))) throw e;
    }
  }
  if (opts.adminApiKey && opts.adminSecretKey) {
    await transaction(store, (tx) =>
      tx
        .updateTable('users')
        .set({ api_key: opts.adminApiKey!, secret_key: sealSecretKey(opts.adminSecretKey!) })
        .where('username', '=', 'admin')
        .where('is_default', '=', 1)
        .where('domain_id', '=', tx.selectFrom('domains').select('id').where('path', '=', '/'))
        .execute(),
    );
  }
  return created && generated ? { created, generatedPassword: generated } : { created };
}
