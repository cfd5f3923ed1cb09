/** `stacknet server` refuses a bad numeric setting before it opens anything, naming the variable and its floor. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = process.env.STACKNET_ROOT ?? new URL('../..', import.meta.url).pathname;

async function server(env: Record<string, string>, dataDir: string) {
  try {
    await run(process.execPath, [join(root, 'bin/stacknet.js'), 'server', '--data-dir', dataDir], {
      env: { ...process.env, STACKNET_PORT: '0', ...env },
      timeout: 30_000,
    });
    return { code: 0, stderr: '' };
  } catch (e) {
    const x = e as { code: number; stderr: string };
    return { code: x.code, stderr: x.stderr };
  }
}

test('STACKNET_JOB_SLOTS and STACKNET_JOB_LEASE_SECONDS: refused with exit 2 when not a whole number ≥ the floor', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'stacknet-server-env-'));
  try {
    for (const [name, value, floor] of [
      ['STACKNET_JOB_LEASE_SECONDS', '2', 5],
      ['STACKNET_JOB_LEASE_SECONDS', '7.5', 5],
      ['STACKNET_JOB_SLOTS', '0', 1],
    ] as const) {
      const r = await server({ [name]: value }, dir);
      assert.equal(r.code, 2, `${name}=${value}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`${name} must be a whole number ≥ ${floor}, got '${value}'`));
    }
    assert.deepEqual(readdirSync(dir), [], 'nothing created before the refusal');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
