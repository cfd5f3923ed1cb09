/**
 * Secrets at rest (issue 12 item 11), on each database: an install from before the server key (API secret key
 * stored as issued, router secret sealed with a key kept in stacknet_meta) is sealed with a key file on start and
 * keeps working; a server with another key file refuses to start; rotation re-seals everything.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createCipheriv, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildServer } from './build-server.js';
import type { ServerConfig } from './build-server.js';
import { readServerKey } from '../config/server-key.js';
import { createTestDatabase, testDbKinds } from '../store/testing/test-databases.js';
import { openStore } from '../store/db.js';
import { signedQuery } from '../api/client.js';
import { insertRouter, insertZoneAndNetwork } from '../routers/testing/fixtures.js';
import { unsealSecret } from '../routers/secrets.js';

const root = new URL('../..', import.meta.url).pathname;
const SECRET = 'legacy-plain-secret-key';
const ROUTER_SECRET = 'legacy-router-secret';

/** A router secret as the code before the server key sealed it (`v1:` with the key kept in the database). */
function legacySeal(key: Buffer, secret: string): string {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  const body = Buffer.concat([c.update(secret, 'utf8'), c.final()]);
  return `v1:${iv.toString('base64url')}:${c.getAuthTag().toString('base64url')}:${body.toString('base64url')}`;
}

for (const kind of testDbKinds()) {
  test(`secrets at rest on ${kind}: legacy values sealed on start, other keys refused, rotation`, async () => {
    const tdb = await createTestDatabase(kind);
    const dir = mkdtempSync(join(tmpdir(), 'stacknet-sk-'));
    const config: ServerConfig = {
      port: 0,
      host: '127.0.0.1',
      dataDir: dir,
      dbUrl: tdb.url,
      driver: 'simulator',
      adminPassword: 'pw',
      poolSize: 2,
    };
    try {
      // The database as an older stacknet left it.
      const legacyKey = randomBytes(32);
      const old = await openStore(tdb.url, { poolSize: 1 });
      try {
        await (await buildServer({ ...config, dataDir: join(dir, 'scratch') })).close();
        await old.db.deleteFrom('stacknet_meta').where('name', '=', 'server.key.id').execute();
        await old.db
          .updateTable('users')
          .set({ api_key: 'legacy-api-key', secret_key: SECRET })
          .where('username', '=', 'admin')
          .execute();
        const { zoneId, networkId } = await insertZoneAndNetwork(old.db);
        const routerId = await insertRouter(old.db, zoneId, networkId);
        await old.db
          .updateTable('routers')
          .set({ secret_sealed: legacySeal(legacyKey, ROUTER_SECRET) })
          .where('id', '=', routerId)
          .execute();
        await old.db
          .insertInto('stacknet_meta')
          .values({ name: 'router.secret.key', value: legacyKey.toString('hex') })
          .execute();
      } finally {
        await old.close();
      }

      const s = await buildServer(config);
      try {
        const keyFile = join(dir, 'server.key');
        assert.equal(statSync(keyFile).mode & 0o777, 0o600, 'the key file is readable by its owner only');
        const user = await s.store.db
          .selectFrom('users')
          .select('secret_key')
          .where('api_key', '=', 'legacy-api-key')
          .executeTakeFirstOrThrow();
        assert.match(user.secret_key!, /^sk1:/);
        assert.ok(!user.secret_key!.includes(SECRET));
        const router = await s.store.db
          .selectFrom('routers')
          .select('secret_sealed')
          .executeTakeFirstOrThrow();
        assert.match(router.secret_sealed, /^sk1:/);
        assert.equal(await unsealSecret(s.store.db, router.secret_sealed), ROUTER_SECRET);
        const meta = await s.store.db.selectFrom('stacknet_meta').select(['name', 'value']).execute();
        assert.ok(!meta.some((m) => m.name === 'router.secret.key'), 'the key kept in the database is gone');
        const fileKey = readFileSync(keyFile, 'utf8').trim();
        assert.ok(!meta.some((m) => m.value.includes(fileKey)), 'the server key is not in the database');
        const keys = { url: '', apiKey: 'legacy-api-key', secretKey: SECRET };
        const r = await s.app.inject({ url: `/client/api?${signedQuery(keys, 'listDomains', {})}` });
        assert.equal(r.statusCode, 200, r.body);
      } finally {
        await s.close();
      }

      // A server with another key file (its own data dir) on the same database.
      await assert.rejects(
        buildServer({ ...config, dataDir: join(dir, 'other') }),
        /is not the key this database/,
      );

      // The operator's command, as a process.
      const keyFile = join(dir, 'server.key');
      const from = readServerKey(keyFile).id;
      const cli = spawnSync(
        process.execPath,
        [join(root, 'bin/stacknet.js'), 'rotate-server-key', '--data-dir', dir, '--db-url', tdb.url],
        { encoding: 'utf8', env: { ...process.env, STACKNET_SERVER_KEY_FILE: '' } },
      );
      assert.equal(cli.status, 0, cli.stderr + cli.stdout);
      assert.match(cli.stdout, /re-sealed 1 API secret key\(s\) and 1 router secret\(s\)/);
      const rotated = { from, to: readServerKey(keyFile).id };
      assert.notEqual(rotated.from, rotated.to);
      assert.equal(statSync(keyFile).mode & 0o777, 0o600);
      const s2 = await buildServer(config);
      try {
        const keys = { url: '', apiKey: 'legacy-api-key', secretKey: SECRET };
        const r = await s2.app.inject({ url: `/client/api?${signedQuery(keys, 'listDomains', {})}` });
        assert.equal(r.statusCode, 200, r.body);
        const router = await s2.store.db
          .selectFrom('routers')
          .select('secret_sealed')
          .executeTakeFirstOrThrow();
        assert.ok(router.secret_sealed.startsWith(`sk1:${rotated.to}:`));
        assert.equal(await unsealSecret(s2.store.db, router.secret_sealed), ROUTER_SECRET);
      } finally {
        await s2.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await tdb.drop();
    }
  });
}
