/**
 * `stacknet host token` (the built CLI, `npm run build` first): prints the registration token, creating it once;
 * `--new` replaces it; the server's `host.registration.token` is what it printed. SQLite (the command only reads
 * and writes one setting).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { openMigratedStore } from '../../src/store/db.js';
import { getSetting } from '../../src/configuration/repository.js';

const run = promisify(execFile);
const root = process.env.STACKNET_ROOT ?? new URL('../..', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'stacknet-host-token-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('stacknet host token: created once, the same after, replaced by --new', async () => {
  const dbUrl = `sqlite:${join(dir, 'db.sqlite')}`;
  const token = async (...extra: string[]) =>
    (
      await run(process.execPath, [
        join(root, 'bin/stacknet.js'),
        'host',
        'token',
        '--db-url',
        dbUrl,
        ...extra,
      ])
    ).stdout.trim();
  const first = await token();
  assert.match(first, /^[A-Za-z0-9_-]{32}$/);
  assert.equal(await token(), first);
  const second = await token('--new');
  assert.notEqual(second, first);
  const store = await openMigratedStore(dbUrl, { poolSize: 1 });
  try {
    assert.equal(await getSetting(store.db, 'host.registration.token'), second);
  } finally {
    await store.close();
  }
});
