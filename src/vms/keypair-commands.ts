/** registerSSHKeyPair, listSSHKeyPairs, deleteSSHKeyPair: keys deployVirtualMachine's keypair(s) refer to. */
import { createHash, randomUUID } from 'node:crypto';
import { allRoles, defineCommand, listResult, objectResult, successResult } from '../api/command.js';
import type { AnyCommand, ResponseObject } from '../api/command.js';
import { scopeToCaller } from '../accounts/scope.js';
import { keywordMatch, pageOf, pageOfQuery } from '../api/list.js';
import { invalidParameter } from '../errors/catalogue.js';
import { withNet } from '../infrastructure/net-context.js';
import { resolveOwner } from '../infrastructure/owners.js';
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

async function keyResponse(
  ex: Executor,
  r: { uuid: string; name: string; fingerprint: string; account_id: number },
) {
  const a = await ex
    .selectFrom('accounts')
    .innerJoin('domains', 'domains.id', 'accounts.domain_id')
    .select(['accounts.name as account', 'domains.uuid as domainid', 'domains.name as domain'])
    .where('accounts.id', '=', r.account_id)
    .executeTakeFirst();
  const out: ResponseObject = { id: r.uuid, name: r.name, fingerprint: r.fingerprint, ...a };
  return out;
}

const registerSSHKeyPair = defineCommand({
  name: 'registerSSHKeyPair',
  roles: allRoles,
  description: 'Register a public key in a keypair under a certain name',
  params: {
    name: { type: 'string', required: true, description: 'Name of the keypair' },
    publickey: {
      type: 'string',
      required: true,
      length: 16_384,
      description: 'Public key material of the keypair',
    },
    account: {
      type: 'string',
      description: 'an optional account for the ssh key. Must be used with domainId.',
    },
    domainid: {
      type: 'uuid',
      description:
        'an optional domainId for the ssh key. If the account parameter is used, domainId must also be used.',
    },
  },
  async handler(p, ctx) {
    const fingerprint = keyFingerprint(p.publickey);
    const uuid = randomUUID();
    await withNet(ctx, async (n) => {
      const owner = await resolveOwner(n.tx, n.caller, p);
      try {
        await n.tx
          .insertInto('ssh_keypairs')
          .values({
            uuid,
            name: p.name,
            account_id: owner.accountId,
            domain_id: owner.domainId,
            public_key: p.publickey.trim(),
            fingerprint,
            created: n.now,
          })
          .execute();
      } catch (e) {
        if (isUniqueViolation(e))
          throw invalidParameter(
            'name',
            p.name,
            `account ${owner.accountName} already has a key pair with this name`,
          );
        throw e;
      }
    });
    const row = await ctx.store.db
      .selectFrom('ssh_keypairs')
      .selectAll()
      .where('uuid', '=', uuid)
      .executeTakeFirstOrThrow();
    return objectResult('keypair', await keyResponse(ctx.store.db, row));
  },
});

const listSSHKeyPairs = defineCommand({
  name: 'listSSHKeyPairs',
  roles: allRoles,
  description: 'List registered keypairs',
  params: {
    id: { type: 'uuid', description: 'the ID of the ssh keypair' },
    name: { type: 'string', description: 'A key pair name to look for' },
    fingerprint: { type: 'string', description: 'A public key fingerprint to look for' },
    keyword: { type: 'string', description: 'List by keyword' },
    listall: { type: 'boolean', description: 'list resources of all accounts the caller may see' },
    page: { type: 'integer', description: 'page number' },
    pagesize: { type: 'integer', description: 'page size' },
  },
  async handler(p, ctx) {
    let q = scopeToCaller(ctx.store.db.selectFrom('ssh_keypairs').selectAll(), ctx.caller, {
      accountColumn: 'ssh_keypairs.account_id',
      domainColumn: 'ssh_keypairs.domain_id',
    });
    if (!p.listall && ctx.caller.role !== 'User') q = q.where('account_id', '=', ctx.caller.accountId);
    if (p.id) q = q.where('uuid', '=', p.id);
    if (p.name) q = q.where('name', '=', p.name);
    if (p.fingerprint) q = q.where('fingerprint', '=', p.fingerprint);
    if (p.keyword) q = q.where(keywordMatch(['name'], p.keyword));
    const page = await pageOf(ctx.store.db, p);
    const { rows, total } = await pageOfQuery(q, page, (x) => x.orderBy('id'));
    const items: ResponseObject[] = [];
    for (const r of rows) items.push(await keyResponse(ctx.store.db, r));
    return listResult('sshkeypair', items, total);
  },
});

const deleteSSHKeyPair = defineCommand({
  name: 'deleteSSHKeyPair',
  roles: allRoles,
  description: 'Deletes a keypair by name',
  params: {
    name: { type: 'string', required: true, description: 'Name of the keypair' },
    account: {
      type: 'string',
      description: 'the account associated with the keypair. Must be used with the domainId parameter.',
    },
    domainid: { type: 'uuid', description: 'the domain ID associated with the keypair' },
  },
  async handler(p, ctx) {
    await withNet(ctx, async (n) => {
      const owner = await resolveOwner(n.tx, n.caller, p);
      const r = await n.tx
        .deleteFrom('ssh_keypairs')
        .where('account_id', '=', owner.accountId)
        .where('name', '=', p.name)
        .executeTakeFirst();
      if (Number(r.numDeletedRows) === 0)
        throw invalidParameter('name', p.name, `account ${owner.accountName} has no key pair with this name`);
    });
    return successResult();
  },
});

export const commands: AnyCommand[] = [registerSSHKeyPair, listSSHKeyPairs, deleteSSHKeyPair];
