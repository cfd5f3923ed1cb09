/**
 * registerSSHKeyPair, createSSHKeyPair, listSSHKeyPairs, deleteSSHKeyPair: keys deployVirtualMachine's keypair(s)
 * refer to; resetSSHKeyForVirtualMachine gives a stopped VM other keys.
 */
import { randomUUID } from 'node:crypto';
import {
  allRoles,
  defineCommand,
  listResult,
  objectResult,
  refParams,
  successResult,
} from '../api/command.js';
import type { AnyCommand, ResponseObject } from '../api/command.js';
import { scopeToCaller } from '../accounts/scope.js';
import { keywordMatch, pageOf, pageOfQuery } from '../api/list.js';
import { invalidParameter } from '../errors/catalogue.js';
import { withNet } from '../infrastructure/net-context.js';
import { resolveOwner } from '../infrastructure/owners.js';
import type { Executor } from '../store/db.js';
import { generateRsaKeyPair, keyFingerprint, keyPairNames, publicKeysOf, storeKeyPair } from './keypairs.js';
import { bumpVmRouters, networksOfVm, recordVmEvent, vmForCaller } from './service.js';
import { convergeNetworks } from './operations.js';
import { vmResponse } from './responses.js';

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
    await withNet(ctx, async (n) =>
      storeKeyPair(n, await resolveOwner(n.tx, n.caller, p), {
        uuid,
        name: p.name,
        publicKey: p.publickey,
        fingerprint,
      }),
    );
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

const createSSHKeyPair = defineCommand({
  name: 'createSSHKeyPair',
  roles: allRoles,
  params: refParams('createSSHKeyPair', ['name', 'account', 'domainid']),
  async handler(p, ctx) {
    const uuid = randomUUID();
    // The private key is answered once and never stored: stacknet keeps only the public half, as CloudStack.
    const pair = generateRsaKeyPair(p.name);
    const fingerprint = keyFingerprint(pair.publicKey);
    await withNet(ctx, async (n) =>
      storeKeyPair(n, await resolveOwner(n.tx, n.caller, p), {
        uuid,
        name: p.name,
        publicKey: pair.publicKey,
        fingerprint,
      }),
    );
    const row = await ctx.store.db
      .selectFrom('ssh_keypairs')
      .selectAll()
      .where('uuid', '=', uuid)
      .executeTakeFirstOrThrow();
    return objectResult('keypair', {
      ...(await keyResponse(ctx.store.db, row)),
      privatekey: pair.privateKey,
    });
  },
});

const resetSSHKeyForVirtualMachine = defineCommand({
  name: 'resetSSHKeyForVirtualMachine',
  roles: allRoles,
  params: refParams('resetSSHKeyForVirtualMachine', ['id', 'keypair', 'keypairs', 'account', 'domainid']),
  jobInstance: (p) => ({ type: 'VirtualMachine', id: p.id }),
  async handler(p, ctx) {
    const names = keyPairNames(p);
    if (!names.length) throw invalidParameter('keypair', '', 'name the key pair(s) with keypair or keypairs');
    const vm = await withNet(ctx, async (n) => {
      const v = await vmForCaller(n, p.id);
      // The guest reads its keys at boot, so CloudStack changes them only while the VM is stopped.
      if (v.state !== 'Stopped')
        throw invalidParameter(
          'id',
          p.id,
          `VM ${v.name} is ${v.state}; stop it before resetting its SSH keys`,
        );
      // The keys are the VM owner's; account/domainid, when given, must name that owner.
      const acct = await n.tx
        .selectFrom('accounts')
        .select('name')
        .where('id', '=', v.account_id)
        .executeTakeFirstOrThrow();
      const owner = {
        accountId: Number(v.account_id),
        accountName: acct.name,
        domainId: Number(v.domain_id),
      };
      if (p.account !== undefined || p.domainid !== undefined) {
        const named = await resolveOwner(n.tx, n.caller, p);
        if (named.accountId !== owner.accountId)
          throw invalidParameter(
            'account',
            named.accountName,
            `VM ${v.name} belongs to account ${owner.accountName}`,
          );
      }
      const publicKeys = await publicKeysOf(n.tx as never, owner, names);
      await n.tx
        .updateTable('vms')
        .set({ keypairs: names.join(','), ssh_public_keys: publicKeys })
        .where('id', '=', v.id)
        .execute();
      // The keys are served by the routers' metadata (public-keys): their desired state changed.
      await bumpVmRouters(n, Number(v.id));
      await recordVmEvent(n, v, 'VM.RESETSSHKEY', 'SSH keys reset');
      return v;
    });
    await convergeNetworks(ctx.store, await networksOfVm(ctx.store.db, Number(vm.id)));
    const fresh = await ctx.store.db
      .selectFrom('vms')
      .selectAll()
      .where('id', '=', vm.id)
      .executeTakeFirstOrThrow();
    return objectResult('virtualmachine', await vmResponse(ctx.store.db, fresh));
  },
});

export const commands: AnyCommand[] = [
  registerSSHKeyPair,
  createSSHKeyPair,
  listSSHKeyPairs,
  deleteSSHKeyPair,
  resetSSHKeyForVirtualMachine,
];
