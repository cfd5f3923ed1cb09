/**
 * The server key: 32 random bytes that seal (AES-256-GCM) the secrets stacknet must be able to read back, API
 * secret keys (HMAC needs them) and router control secrets. It lives in a file outside the database
 * (`<data dir>/server.key`, created 0600 on first start, or the path in --server-key-file /
 * STACKNET_SERVER_KEY_FILE) so that a dump or a stolen replica of the database alone reveals no secret. Every
 * server sharing one database must use the same key file; the database keeps only the key's fingerprint
 * (`server.key.id` in stacknet_meta) so that a server started with another key refuses to start instead of
 * failing every signed request.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

export interface ServerKey {
  readonly key: Buffer;
  /** Fingerprint (HMAC of a constant under the key): safe to store and print, names the key in errors. */
  readonly id: string;
}

/** Not STACKNET_SECRET_KEY: the CLI already reads that as the user's API secret key. */
export const SERVER_KEY_FILE_ENV = 'STACKNET_SERVER_KEY_FILE';
const PREFIX = 'sk1';

export function serverKeyFromBytes(key: Buffer): ServerKey {
  if (key.length !== 32) throw new Error('a server key is 32 bytes (64 hex digits)');
  const id = createHmac('sha256', key).update('stacknet server key id').digest('hex').slice(0, 16);
  return { key, id };
}

export function generateServerKey(): ServerKey {
  return serverKeyFromBytes(randomBytes(32));
}

/** Flag, then environment, then `<dataDir>/server.key`. */
export function serverKeyPath(dataDir: string, flag?: string): string {
  return resolve(flag || process.env[SERVER_KEY_FILE_ENV] || join(dataDir, 'server.key'));
}

function parseKeyFile(path: string, text: string): ServerKey {
  const hex = text.trim();
  if (!/^[0-9a-fA-F]{64}$/.test(hex))
    throw new Error(`server key file ${path} must hold 64 hex digits (32 bytes); it does not`);
  return serverKeyFromBytes(Buffer.from(hex, 'hex'));
}

export function readServerKey(path: string): ServerKey {
  return parseKeyFile(path, readFileSync(path, 'utf8'));
}

/** Writes a key file readable by its owner only; `exclusive` refuses to replace an existing file. */
export function writeServerKey(path: string, key: ServerKey, exclusive = false): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${key.key.toString('hex')}\n`, { mode: 0o600, flag: exclusive ? 'wx' : 'w' });
  // The mode given to writeFileSync only applies when the file is created (and is masked by the umask).
  chmodSync(path, 0o600);
}

/**
 * Reads the key file, or creates it when there is none. `log` hears about a key file others may read (it is
 * used anyway: refusing to start would be worse than the warning, and the operator may mean it).
 */
export function loadOrCreateServerKey(
  path: string,
  log?: (m: string) => void,
): { key: ServerKey; created: boolean } {
  if (!existsSync(path)) {
    const key = generateServerKey();
    try {
      writeServerKey(path, key, true);
      return { key, created: true };
    } catch (e) {
      // Another process sharing the data dir created it first: use theirs.
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
  if ((statSync(path).mode & 0o077) !== 0)
    log?.(`server key file ${path} is readable by other users; chmod 600 it`);
  return { key: readServerKey(path), created: false };
}

/** Where `stacknet rotate-server-key` puts the new key until the database is re-sealed with it. */
export function pendingKeyPath(path: string): string {
  return `${path}.new`;
}

/** Promotes a pending key file (rotation committed, then interrupted before the rename). */
export function promotePendingKey(path: string): void {
  renameSync(pendingKeyPath(path), path);
}

export function isSealed(value: string): boolean {
  return value.startsWith(`${PREFIX}:`);
}

/** `sk1:<key id>:<iv>:<tag>:<ciphertext>`, base64url; the key id says which key can open it. */
export function seal(k: ServerKey, plaintext: string): string {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', k.key, iv);
  const body = Buffer.concat([c.update(plaintext, 'utf8'), c.final()]);
  const b = (x: Buffer) => x.toString('base64url');
  return `${PREFIX}:${k.id}:${b(iv)}:${b(c.getAuthTag())}:${b(body)}`;
}

export function unseal(k: ServerKey, sealed: string): string {
  const [prefix, id, iv, tag, body] = sealed.split(':');
  if (prefix !== PREFIX || !id || !iv || !tag || body === undefined)
    throw new Error('the value is not sealed with a server key');
  if (id !== k.id)
    throw new Error(`the value was sealed with server key ${id}, not with this server's key ${k.id}`);
  const d = createDecipheriv('aes-256-gcm', k.key, Buffer.from(iv, 'base64url'));
  d.setAuthTag(Buffer.from(tag, 'base64url'));
  return Buffer.concat([d.update(Buffer.from(body, 'base64url')), d.final()]).toString('utf8');
}

let installed: ServerKey | undefined;
let ephemeral: ServerKey | undefined;

/** The composition root (buildServer, the CLI commands that write secrets) installs the loaded key. */
export function installServerKey(k: ServerKey): void {
  installed = k;
}

/**
 * The installed key. A process that never installed one (unit tests that insert rows through the repositories
 * directly) gets a random key that lives as long as the process: nothing it seals outlives it.
 */
export function currentServerKey(): ServerKey {
  if (installed) return installed;
  ephemeral ??= generateServerKey();
  return ephemeral;
}
