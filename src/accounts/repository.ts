/** Queries on domains, accounts, users and sessions. Every function takes the db or transaction first. */
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { RawBuilder } from 'kysely';
import type { Executor, Tx } from '../store/db.js';
import { isUniqueViolation, nowMs } from '../store/db.js';
import { preparedQuery } from '../store/prepared.js';
import { invalidParameter } from '../errors/catalogue.js';
import type { Caller } from '../api/command.js';
import { roleForAccountType } from './roles.js';
import { hashPassword } from './credentials.js';
import { insertReturningId } from '../api/insert-id.js';
import { mapByIds } from '../api/list.js';
import { currentServerKey, isSealed, seal, unseal } from '../config/server-key.js';
import type { ServerKey } from '../config/server-key.js';

/** CloudStack shows domain paths as `ROOT/a/b`; stored paths are `/a/b/`. */
export function displayPath(path: string): string {
  return path === '/' ? 'ROOT' : `ROOT${path.replace(/\/$/, '')}`;
}

/** API secret keys are stored sealed with the server key (config/server-key.ts): HMAC needs them back. */
export function sealSecretKey(secretKey: string): string {
  return seal(currentServerKey(), secretKey);
}

/** A value written before secret keys were sealed is read as is (the next start seals it). */
export function openSecretKey(stored: string): string {
  if (!isSealed(stored)) return stored;
  // Every signed request opens its user's key: remembered by the sealed text itself (unique per sealing: its own
  // IV and tag, and the server key's id), so a regenerated, re-sealed or removed key is simply not found here.
  // The user is still read on every request; only the AES-GCM decryption is saved.
  // Opened with the server key installed now: a text remembered under another key is opened again (and refused).
  const key = currentServerKey();
  const hit = opened.get(stored);
  if (hit && hit.key === key) return hit.open;
  const open = unseal(key, stored);
  if (opened.size >= OPENED_MAX) opened.clear();
  opened.set(stored, { key, open });
  return open;
}

const OPENED_MAX = 10_000;
const opened = new Map<string, { key: ServerKey; open: string }>();

/**
 * Re-seals every API secret key with `to`: the ones stored as issued (before sealing) and, on rotation, the
 * ones sealed with `from`. Returns how many changed; runs in the caller's transaction.
 */
export async function resealUserSecretKeys(tx: Tx, to: ServerKey, from?: ServerKey): Promise<number> {
  const rows = await tx
    .selectFrom('users')
    .select(['id', 'secret_key'])
    .where('secret_key', 'is not', null)
    .execute();
  let changed = 0;
  for (const r of rows) {
    const stored = r.secret_key!;
    let plain: string;
    if (!isSealed(stored)) plain = stored;
    else if (from && from.id !== to.id) plain = unseal(from, stored);
    else continue;
    await tx
      .updateTable('users')
      .set({ secret_key: seal(to, plain) })
      .where('id', '=', Number(r.id))
      .execute();
    changed++;
  }
  return changed;
}

export interface CallerRecord {
  caller: Caller;
  secretKey: string | null;
  passwordHash: string;
  enabled: boolean;
}

function callerQuery(ex: Executor) {
  return ex
    .selectFrom('users as u')
    .innerJoin('accounts as a', 'a.id', 'u.account_id')
    .innerJoin('domains as d', 'd.id', 'a.domain_id')
    .select([
      'u.id as user_id',
      'u.uuid as user_uuid',
      'u.username',
      'u.secret_key',
      'u.password_hash',
      'u.state as user_state',
      'a.id as account_id',
      'a.uuid as account_uuid',
      'a.name as account_name',
      'a.type as account_type',
      'a.state as account_state',
      'd.id as domain_id',
      'd.uuid as domain_uuid',
      'd.name as domain_name',
      'd.path as domain_path',
    ]);
}

type CallerRow = Awaited<ReturnType<ReturnType<typeof callerQuery>['executeTakeFirstOrThrow']>>;

function toCallerRecord(r: CallerRow): CallerRecord {
  const type = (Number(r.account_type) as 0 | 1 | 2) ?? 0;
  return {
    caller: {
      userId: Number(r.user_id),
      userUuid: r.user_uuid,
      username: r.username,
      accountId: Number(r.account_id),
      accountUuid: r.account_uuid,
      accountName: r.account_name,
      accountType: type,
      role: roleForAccountType(type).type,
      domainId: Number(r.domain_id),
      domainUuid: r.domain_uuid,
      domainName: r.domain_name,
      domainPath: r.domain_path,
    },
    secretKey: r.secret_key === null ? null : openSecretKey(r.secret_key),
    passwordHash: r.password_hash,
    enabled: r.user_state === 'enabled' && r.account_state === 'enabled',
  };
}

// Prepared (src/store/prepared.ts): every signed request looks its key up.
const callerOfApiKey = preparedQuery((ex: Executor, apiKey: string) =>
  callerQuery(ex).where('u.api_key', '=', apiKey),
);

const lengthAndText = (c: string) => sql`char_length(${sql.ref(c)}), ${sql.ref(c)}`;
/** callerFingerprint's text, of the user `cu` of `fingerprintTables`. */
const fingerprintText = sql<string>`concat_ws(':', cu.id, cu.state, ca.id, ca.type, ca.state, cd.id,
    ${lengthAndText('cu.uuid')}, ${lengthAndText('cu.username')}, ${lengthAndText('ca.uuid')},
    ${lengthAndText('ca.name')}, ${lengthAndText('cd.uuid')}, ${lengthAndText('cd.name')}, ${lengthAndText('cd.path')},
    char_length(coalesce(cu.secret_key, '')), coalesce(cu.secret_key, ''))`;
const fingerprintTables = sql`users cu inner join accounts ca on ca.id = cu.account_id
    inner join domains cd on cd.id = ca.domain_id`;

/**
 * What a caller by API key is, as one text computed by the database (PostgreSQL, MariaDB: `concat_ws` and
 * `char_length`): every column callerQuery reads for it (its ids, names, path, states and its sealed secret),
 * each text preceded by its length so that no two callers' texts are equal. NULL when no user has the key.
 * api-server.ts keeps the text read with a caller and compares it with this read again, carried by a
 * statement the request sends anyway (caller-check.ts): a change to the user, its key, its account or its
 * domain since then is a different text.
 */
export function callerFingerprint(apiKey: string): RawBuilder<string | null> {
  return sql<
    string | null
  >`(select ${fingerprintText} from ${fingerprintTables} where cu.api_key = ${apiKey})`;
}

interface FingerprintRow {
  api_key: string;
  caller_fp: string;
}
/** The fingerprints of the users `where` picks, with their API keys. */
const fingerprintRows = (where: RawBuilder<unknown>) =>
  sql<FingerprintRow>`select cu.api_key, ${fingerprintText} as caller_fp from ${fingerprintTables} where ${where}`;
const fingerprintOfKey = preparedQuery((ex: Executor, apiKey: string) =>
  fingerprintRows(sql`cu.api_key = ${apiKey}`),
);
// PostgreSQL takes the keys as one array parameter: one statement text (named, planned once) for any number.
const fingerprintsOfKeysPg = preparedQuery((ex: Executor, apiKeys: string[]) =>
  fingerprintRows(sql`cu.api_key = any(${apiKeys})`),
);

/**
 * The fingerprints (callerFingerprint) of several API keys in one statement, by key; a key no user has is absent.
 * `arrays`: the database takes an array parameter (PostgreSQL); otherwise the keys are an `in` list.
 */
export async function callerFingerprints(
  ex: Executor,
  apiKeys: readonly string[],
  arrays: boolean,
): Promise<Map<string, string>> {
  const rows =
    apiKeys.length === 1
      ? await fingerprintOfKey.rows(ex, apiKeys[0]!)
      : arrays
        ? await fingerprintsOfKeysPg.rows(ex, [...apiKeys])
        : (await fingerprintRows(sql`cu.api_key in (${sql.join(apiKeys)})`).execute(ex)).rows;
  return new Map(rows.map((r) => [r.api_key, r.caller_fp]));
}

const callerOfApiKeyChecked = preparedQuery((ex: Executor, apiKey: string) =>
  callerQuery(ex).select(callerFingerprint(apiKey).as('caller_fp')).where('u.api_key', '=', apiKey),
);

/** callerByApiKey with the caller's fingerprint (callerFingerprint), read in the same statement. */
export async function callerByApiKeyChecked(
  ex: Executor,
  apiKey: string,
): Promise<{ record: CallerRecord; fingerprint: string | null } | undefined> {
  const r = await callerOfApiKeyChecked.first(ex, apiKey);
  return r && { record: toCallerRecord(r), fingerprint: r.caller_fp };
}
const callerOfUser = preparedQuery((ex: Executor, userId: number) =>
  callerQuery(ex).where('u.id', '=', userId),
);

export async function callerByApiKey(ex: Executor, apiKey: string): Promise<CallerRecord | undefined> {
  const r = await callerOfApiKey.first(ex, apiKey);
  return r && toCallerRecord(r);
}

export async function callerByUserId(ex: Executor, userId: number): Promise<CallerRecord | undefined> {
  const r = await callerOfUser.first(ex, userId);
  return r && toCallerRecord(r);
}

export async function callerByLogin(
  ex: Executor,
  username: string,
  domain: { path?: string; id?: number },
): Promise<CallerRecord | undefined> {
  let q = callerQuery(ex).where('u.username', '=', username);
  if (domain.id !== undefined) q = q.where('d.id', '=', domain.id);
  else q = q.where('d.path', '=', domain.path ?? '/');
  const r = await q.executeTakeFirst();
  return r && toCallerRecord(r);
}

/** The default root admin (`admin` in ROOT): who the integration port acts as. */
export async function defaultRootAdmin(ex: Executor): Promise<CallerRecord | undefined> {
  const r = await callerQuery(ex)
    .where('d.path', '=', '/')
    .where('a.type', '=', 1)
    .where('u.is_default', '=', 1)
    .orderBy('u.id')
    .executeTakeFirst();
  return r && toCallerRecord(r);
}

export interface NewDomain {
  name: string;
  parent: { id: number; path: string; level: number };
  networkDomain?: string;
}

export async function insertDomain(
  tx: Tx,
  d: NewDomain,
): Promise<{ id: number; uuid: string; path: string }> {
  const uuid = randomUUID();
  const path = `${d.parent.path}${d.name}/`;
  try {
    const id = await insertReturningId(
      tx,
      tx.insertInto('domains').values({
        uuid,
        name: d.name,
        path,
        parent_id: d.parent.id,
        level: d.parent.level + 1,
        network_domain: d.networkDomain ?? null,
        state: 'Active',
        created: nowMs(),
      }),
    );
    return { id, uuid, path };
  } catch (e) {
    if (isUniqueViolation(e)) {
      throw invalidParameter(
        'name',
        d.name,
        `a domain with this name already exists under ${displayPath(d.parent.path)}`,
      );
    }
    throw e;
  }
}

export interface NewAccount {
  name: string;
  domainId: number;
  type: 0 | 1 | 2;
  networkDomain?: string;
  isDefault?: boolean;
}

export async function insertAccount(tx: Tx, a: NewAccount): Promise<{ id: number; uuid: string }> {
  const uuid = randomUUID();
  try {
    const id = await insertReturningId(
      tx,
      tx.insertInto('accounts').values({
        uuid,
        name: a.name,
        domain_id: a.domainId,
        type: a.type,
        state: 'enabled',
        network_domain: a.networkDomain ?? null,
        is_default: a.isDefault ? 1 : 0,
        created: nowMs(),
      }),
    );
    return { id, uuid };
  } catch (e) {
    if (isUniqueViolation(e))
      throw invalidParameter('account', a.name, 'an account with this name already exists in the domain');
    throw e;
  }
}

export interface NewUser {
  accountId: number;
  domainId: number;
  username: string;
  password: string;
  firstname: string;
  lastname: string;
  email?: string;
  timezone?: string;
  isDefault?: boolean;
  apiKey?: string;
  secretKey?: string;
}

/** Hash the password before opening the transaction (scrypt is slow): see hashPassword. */
export async function insertUser(
  tx: Tx,
  u: NewUser,
  passwordHash: string,
): Promise<{ id: number; uuid: string }> {
  const uuid = randomUUID();
  try {
    const id = await insertReturningId(
      tx,
      tx.insertInto('users').values({
        uuid,
        account_id: u.accountId,
        domain_id: u.domainId,
        username: u.username,
        password_hash: passwordHash,
        firstname: u.firstname,
        lastname: u.lastname,
        email: u.email ?? null,
        timezone: u.timezone ?? null,
        api_key: u.apiKey ?? null,
        secret_key: u.secretKey === undefined ? null : sealSecretKey(u.secretKey),
        state: 'enabled',
        is_default: u.isDefault ? 1 : 0,
        created: nowMs(),
      }),
    );
    return { id, uuid };
  } catch (e) {
    if (isUniqueViolation(e))
      throw invalidParameter('username', u.username, 'a user with this name already exists in the domain');
    throw e;
  }
}

export { hashPassword };

/**
 * Other concerns register what must go when an account is deleted (its networks, IPs, VMs), run inside
 * deleteAccount's transaction before the account row goes.
 */
export type AccountCleanup = (
  tx: Tx,
  account: { id: number; uuid: string; domainId: number },
) => Promise<void>;
const accountCleanups: AccountCleanup[] = [];
export function registerAccountCleanup(fn: AccountCleanup): void {
  accountCleanups.push(fn);
}

export async function deleteAccountRows(
  tx: Tx,
  account: { id: number; uuid: string; domainId: number },
): Promise<void> {
  for (const fn of accountCleanups) await fn(tx, account);
  const userIds = tx.selectFrom('users').select('id').where('account_id', '=', account.id);
  await tx.deleteFrom('sessions').where('user_id', 'in', userIds).execute();
  await tx.deleteFrom('users').where('account_id', '=', account.id).execute();
  await tx.deleteFrom('accounts').where('id', '=', account.id).execute();
}

/** The owners (account and domain) of a page of rows, each account read once: for list answers. */
export function ownersByIds(ex: Executor, accountIds: readonly number[]) {
  return mapByIds(accountIds, (chunk) =>
    ex
      .selectFrom('accounts')
      .innerJoin('domains', 'domains.id', 'accounts.domain_id')
      .select([
        'accounts.id as id',
        'accounts.name as account',
        'domains.uuid as domainid',
        'domains.name as domain',
        'domains.path as domainpath',
      ])
      .where('accounts.id', 'in', chunk)
      .execute(),
  );
}
