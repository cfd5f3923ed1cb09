/**
 * SSH key pairs: fingerprints, generating an RSA pair in OpenSSH form, storing a public key, and finding an
 * account's keys by name (deployVirtualMachine and resetSSHKeyForVirtualMachine).
 */
import { createHash, generateKeyPairSync } from 'node:crypto';
import { invalidParameter } from '../errors/catalogue.js';
import type { NetCtx } from '../infrastructure/context.js';
import { isUniqueViolation } from '../store/db.js';
import type { Executor } from '../store/db.js';

/** CloudStack's fingerprint: MD5 of the decoded key blob, colon-separated hex. */
export function keyFingerprint(publicKey: string): string {
  const m =
    /^(ssh-(?:rsa|ed25519|dss)|ecdsa-sha2-nistp(?:256|384|521)|sk-[a-z0-9@.-]+)\s+([A-Za-z0-9+/]+={0,2})(\s.*)?$/.exec(
      publicKey.trim(),
    );
  if (!m) {
    throw invalidParameter(
      'publickey',
      `${publicKey.slice(0, 24)}…`,
      'is not an OpenSSH public key (expected "<type> <base64> [comment]", e.g. ssh-ed25519 AAAA…)',
    );
  }
  const blob = Buffer.from(m[2]!, 'base64');
  const len = blob.length >= 4 ? blob.readUInt32BE(0) : -1;
  const type = len > 0 && len <= blob.length - 4 ? blob.subarray(4, 4 + len).toString() : '';
  if (type !== m[1])
    throw invalidParameter('publickey', m[1], `the key data says it is a ${type || 'different'} key`);
  return createHash('md5')
    .update(blob)
    .digest('hex')
    .replace(/(..)(?!$)/g, '$1:');
}

/** An SSH wire-format string: 4-byte big-endian length, then the bytes. */
function sshString(b: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}

/** An SSH mpint from unsigned big-endian bytes: a leading zero byte keeps a set high bit from reading negative. */
function sshMpint(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  const v = b.subarray(i);
  return sshString(v[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), v]) : v);
}

/**
 * A new 2048-bit RSA pair, as CloudStack's createSSHKeyPair hands it out: the public key as an OpenSSH
 * `ssh-rsa` line, the private key as PKCS#1 PEM (`BEGIN RSA PRIVATE KEY`).
 */
export function generateRsaKeyPair(comment: string): { publicKey: string; privateKey: string } {
  const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = pair.publicKey.export({ format: 'jwk' });
  const blob = Buffer.concat([
    sshString(Buffer.from('ssh-rsa')),
    sshMpint(Buffer.from(jwk.e!, 'base64url')),
    sshMpint(Buffer.from(jwk.n!, 'base64url')),
  ]);
  return {
    publicKey: `ssh-rsa ${blob.toString('base64')} ${comment}`,
    privateKey: pair.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
  };
}

export interface KeyOwner {
  accountId: number;
  accountName: string;
  domainId: number;
}

/** Stores a public key under `name` for `owner`; a second key of one name in one account is a 431. */
export async function storeKeyPair(
  n: NetCtx,
  owner: KeyOwner,
  k: { uuid: string; name: string; publicKey: string; fingerprint: string },
): Promise<void> {
  try {
    await n.tx
      .insertInto('ssh_keypairs')
      .values({
        uuid: k.uuid,
        name: k.name,
        account_id: owner.accountId,
        domain_id: owner.domainId,
        public_key: k.publicKey.trim(),
        fingerprint: k.fingerprint,
        created: n.now,
      })
      .execute();
  } catch (e) {
    if (isUniqueViolation(e))
      throw invalidParameter(
        'name',
        k.name,
        `account ${owner.accountName} already has a key pair with this name`,
      );
    throw e;
  }
}

/** The key pair names of `keypair` and `keypairs` together, each once. */
export function keyPairNames(p: { keypair?: string | undefined; keypairs?: string[] | undefined }): string[] {
  return [...new Set([...(p.keypairs ?? []), ...(p.keypair ? [p.keypair] : [])])];
}

/** The public keys (one per line) of `owner`'s key pairs `names`; 431 naming the first that does not exist. */
export async function publicKeysOf(ex: Executor, owner: KeyOwner, names: string[]): Promise<string> {
  const keys = await ex
    .selectFrom('ssh_keypairs')
    .select(['name', 'public_key'])
    .where('account_id', '=', owner.accountId)
    .where('name', 'in', names)
    .execute();
  for (const k of names)
    if (!keys.find((r) => r.name === k))
      throw invalidParameter('keypair', k, `no SSH key pair with this name in account ${owner.accountName}`);
  return keys.map((k) => k.public_key).join('\n');
}
