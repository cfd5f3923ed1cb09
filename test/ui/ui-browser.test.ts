/**
 * A real browser on the same-origin session path (issue 14): Debian's chromium, headless, loads the project's
 * small console page from `stacknet server --ui-dir`, which logs in the way CloudStack's UI does (form POST
 * login, the HttpOnly sessionkey cookie, then calls carrying the session key as a parameter) and writes what it
 * saw into the page; the test reads the page's DOM once chromium has run its scripts.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../api/harness.js';
import type { ServerProcess } from '../api/harness.js';
import { createTestDatabase } from '../../src/store/testing/test-databases.js';
import type { TestDatabase } from '../../src/store/testing/test-databases.js';
import { consoleDir } from './harness.js';

let tdb: TestDatabase;
let server: ServerProcess;
let profile: string;

before(async () => {
  tdb = await createTestDatabase('sqlite');
  server = await startServer(tdb.url, {}, ['--ui-dir', consoleDir]);
  profile = mkdtempSync(join(tmpdir(), 'stacknet-chromium-'));
});

after(async () => {
  const code = await server?.stop();
  assert.equal(code, 0, `server exit code\n${server?.output()}`);
  await tdb?.drop();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

/** The page's DOM after its scripts ran: chromium's virtual time waits for the page's fetches. */
function dumpDom(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      '/usr/bin/chromium',
      [
        '--headless',
        '--no-sandbox', // as root, chromium refuses to start with its sandbox
        '--disable-gpu',
        '--no-first-run',
        `--user-data-dir=${profile}`,
        '--virtual-time-budget=15000',
        '--dump-dom',
        url,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += String(d)));
    child.stderr.on('data', (d) => (err += String(d)));
    const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(killer);
      if (code === 0) resolve(out);
      else reject(new Error(`chromium exited ${code}: ${err.slice(-2000)}`));
    });
  });
}

test('chromium logs in through /client/api from the same origin and uses the session', async () => {
  const url = `http://127.0.0.1:${server.port}/client/?username=admin&password=admin-test-password`;
  const dom = await dumpDom(url);
  const text = /<pre id="out">([\s\S]*?)<\/pre>/.exec(dom)?.[1] ?? dom;
  assert.match(text, /DONE$/, text);
  const lines = text.split('\n');
  assert.ok(lines.includes('login 200 timezoneoffset=0.0'), text);
  // The session cookie is HttpOnly: the page's scripts cannot read it, only send it.
  assert.ok(lines.includes('cookie-readable false'), text);
  assert.ok(
    lines.some((l) => l.startsWith('listCapabilities 200 {"listcapabilitiesresponse"')),
    text,
  );
  assert.ok(lines.includes('listLdapConfigurations 200 {"ldapconfigurationresponse":{}}'), text);
  assert.ok(
    lines.some((l) => l.startsWith('listZones 200 ')),
    text,
  );
  // The cookie alone is not a session (CSRF): the key must travel as a parameter too.
  assert.ok(lines.includes('without-sessionkey 401'), text);
  assert.ok(lines.includes('logout 200'), text);
  assert.ok(lines.includes('after-logout 401'), text);
});
