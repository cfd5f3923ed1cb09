/**
 * page/pagesize on every list command the server serves, on every database, as CloudStack's BaseListCmd
 * validates them: pagesize=-1 alone lists everything; anything else invalid is a 431 naming the parameter,
 * never a driver error (SQLite had no OFFSET without LIMIT: `near "offset": syntax error`, SQL in the answer).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildTestServer } from '../../src/server/testing/test-server.js';
import type { BuiltServer } from '../../src/server/build-server.js';
import { signedQuery } from '../../src/api/client.js';
import { createTestDatabase, testDbKinds } from '../../src/store/testing/test-databases.js';
import type { TestDatabase } from '../../src/store/testing/test-databases.js';

const keys = { url: '', apiKey: 'paging-key', secretKey: 'paging-secret' };

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

for (const kind of testDbKinds()) {
  describe(`page and pagesize on every list command (${kind})`, () => {
    let dir: string;
    let tdb: TestDatabase;
    let s: BuiltServer;
    const call = async (command: string, params: Record<string, string>): Promise<Answer> => {
      const r = await s.app.inject({ url: `/client/api?${signedQuery(keys, command, params)}` });
      return {
        status: r.statusCode,
        body: Object.values(r.json() as Record<string, unknown>)[0] as Answer['body'],
      };
    };

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'stacknet-paging-'));
      tdb = await createTestDatabase(kind);
      s = await buildTestServer({
        dataDir: dir,
        dbUrl: tdb.url,
        adminPassword: 'paging-password',
        keys,
      });
    });

    after(async () => {
      await s?.close();
      await tdb?.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    test('pagesize=-1 lists all; invalid page or pagesize is a 431 naming it', async () => {
      const apis = (await call('listApis', {})).body.api as {
        name: string;
        params: { name: string; required: boolean }[];
      }[];
      // CloudStack's policy lists need one of two ids (neither is marked required): without either they answer
      // 431 "load balancer rule ID and ... policy ID can't be null", whatever the paging.
      const oneOfTwoIds = new Set(['listLBStickinessPolicies', 'listLBHealthCheckPolicies']);
      const lists = apis.filter(
        (a) =>
          a.params.some((p) => p.name === 'pagesize') &&
          a.params.some((p) => p.name === 'page') &&
          !a.params.some((p) => p.required) &&
          !oneOfTwoIds.has(a.name),
      );
      assert.ok(lists.length >= 20, `list commands with paging: ${lists.map((a) => a.name).join(', ')}`);
      const wrong: string[] = [];
      const expect = async (
        command: string,
        params: Record<string, string>,
        status: number,
        names?: string,
      ) => {
        const a = await call(command, params);
        const text = String(a.body.errortext ?? '');
        if (a.status !== status || (names !== undefined && !text.includes(`parameter ${names}`)))
          wrong.push(`${command} ${JSON.stringify(params)}: ${a.status} ${text}`);
      };
      for (const { name } of lists) {
        await expect(name, { pagesize: '-1' }, 200);
        await expect(name, { page: '1', pagesize: '-1' }, 431, 'page');
        await expect(name, { page: '1', pagesize: '0' }, 431, 'pagesize');
        await expect(name, { page: '1', pagesize: '-2' }, 431, 'pagesize');
        await expect(name, { page: '1', pagesize: '501' }, 431, 'pagesize');
        await expect(name, { page: '0', pagesize: '10' }, 431, 'page');
        await expect(name, { page: '-1', pagesize: '10' }, 431, 'page');
        await expect(name, { page: '2147483647', pagesize: '500' }, 200);
        await expect(name, { pagesize: 'abc' }, 431, 'pagesize');
        await expect(name, { page: '2' }, 431);
      }
      assert.deepEqual(wrong, []);
    });
  });
}
