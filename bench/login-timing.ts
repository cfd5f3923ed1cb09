/**
 * Login timing as an attacker measures it: how long a wrong password for an existing user takes next to a login
 * as a user that does not exist (they must not differ, or usernames can be enumerated), and how many wrong
 * passwords in a row are answered before the user is locked. In process (Fastify inject), SQLite in a temp dir.
 * Prints one JSON object.
 *   npm run bench:login -- [--rounds 40]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildServer } from '../src/server/build-server.js';
import { signedQuery } from '../src/api/client.js';

const i = process.argv.indexOf('--rounds');
const rounds = i >= 0 ? Number(process.argv[i + 1]) : 40;
const keys = { url: '', apiKey: 'bench-key', secretKey: 'bench-secret' };

const dir = mkdtempSync(join(tmpdir(), 'stacknet-login-bench-'));
const s = await buildServer({
  port: 0,
  host: '127.0.0.1',
  dataDir: dir,
  dbUrl: `sqlite:${join(dir, 'db.sqlite')}`,
  driver: 'simulator',
  adminPassword: 'right-password',
  adminApiKey: keys.apiKey,
  adminSecretKey: keys.secretKey,
});
try {
  const login = (user: string, password: string, n: number) =>
    s.app.inject({
      url: `/client/api?command=login&response=json&username=${user}&password=${password}&domain=%2F`,
      remoteAddress: `10.0.${n >> 8}.${n & 255}`,
    });
  // Lockout first: wrong passwords for admin, each from its own address, until one is refused as locked.
  let answered = 0;
  for (let n = 1; n <= 100; n++) {
    const r = await login('admin', 'wrong', n);
    if (/locked/.test(r.body)) break;
    answered++;
  }
  const right = await login('admin', 'right-password', 1000);
  // Then timing, with the throttle off so that every attempt is checked.
  for (const [name, value] of [
    ['incorrect.login.attempts.allowed', '0'],
    ['incorrect.login.attempts.allowed.per.address', '0'],
  ] as const)
    await s.app.inject({ url: `/client/api?${signedQuery(keys, 'updateConfiguration', { name, value })}` });
  // Interleaved, so that load from other processes falls on both alike.
  const times: Record<'admin' | 'nobody', number[]> = { admin: [], nobody: [] };
  for (let n = 0; n < rounds; n++) {
    for (const user of ['admin', 'nobody'] as const) {
      const t = performance.now();
      await login(user, 'wrong', 2000 + n);
      if (n > 0) times[user].push(performance.now() - t); // the first round warms up
    }
  }
  const median = (xs: number[]) => {
    const v = [...xs].sort((a, b) => a - b);
    return Math.round(v[Math.floor(v.length / 2)]! * 10) / 10;
  };
  console.log(
    JSON.stringify({
      bench: 'login-timing',
      rounds,
      wrongPasswordMedianMs: median(times.admin),
      unknownUserMedianMs: median(times.nobody),
      wrongPasswordsAnsweredBeforeLock: answered,
      rightPasswordWhileLocked: right.statusCode,
    }),
  );
} finally {
  await s.close();
  rmSync(dir, { recursive: true, force: true });
}
