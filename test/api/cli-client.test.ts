/** `stacknet api` against a running server: the README's examples, signed with keys from the environment. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startServer } from './harness.js';
import type { ServerProcess } from './harness.js';

const run = promisify(execFile);
const root = process.env.STACKNET_ROOT ?? new URL('../..', import.meta.url).pathname;
let server: ServerProcess;
let dir: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'stacknet-cli-'));
  server = await startServer(`sqlite:${join(dir, 'db.sqlite')}`);
});
after(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function cli(args: string[], env: Record<string, string>) {
  try {
    const r = await run(process.execPath, [join(root, 'bin/stacknet.js'), 'api', ...args], {
      env: { ...process.env, STACKNET_API_KEY: '', STACKNET_SECRET_KEY: '', STACKNET_URL: '', ...env },
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

test('stacknet api: env keys, profile file, async commands waited for, errors on stderr', async () => {
  const env = {
    STACKNET_URL: server.url,
    STACKNET_API_KEY: server.apiKey,
    STACKNET_SECRET_KEY: server.secretKey,
  };
  const created = await cli(['createDomain', 'name=engineering'], env);
  assert.equal(created.code, 0, created.stderr);
  const id = JSON.parse(created.stdout).domain.id as string;
  const profile = join(dir, 'config.json');
  writeFileSync(
    profile,
    JSON.stringify({ url: server.url, apiKey: server.apiKey, secretKey: server.secretKey }),
  );
  const listed = await cli(['listDomains', 'listall=true'], { STACKNET_CONFIG: profile });
  assert.equal(listed.code, 0, listed.stderr);
  assert.equal(JSON.parse(listed.stdout).count, 2);
  const queued = await cli(['deleteDomain', `id=${id}`, '--no-wait'], env);
  assert.match(JSON.parse(queued.stdout).jobid, /^[0-9a-f-]{36}$/);
  const again = await cli(['deleteDomain', `id=${id}`], env);
  assert.equal(again.code, 1);
  assert.equal(JSON.parse(again.stderr).errorcode, 431);
  const bad = await cli(['listDomains', 'level=x'], env);
  assert.equal(bad.code, 1);
  assert.match(JSON.parse(bad.stderr).errortext, /level/);
});
