/**
 * Black-box harness: a real `bin/stacknet.js server` process on a free port with a temporary data dir, and the
 * real python `cs` client driven over a line protocol (cs_rpc.py). Everything started is stopped by PID.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { createTestDatabase } from '../../src/store/testing/test-databases.js';
import type { TestDatabase } from '../../src/store/testing/test-databases.js';
import type { DbKind } from '../../src/store/db.js';

const root = process.env.STACKNET_ROOT ?? new URL('../..', import.meta.url).pathname;

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export async function eventually<T>(
  fn: () => Promise<T | undefined>,
  timeoutMs = 20_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface ServerProcess {
  url: string;
  /** The server process's PID (benchmarks read its memory and CPU time from /proc). */
  pid: number;
  port: number;
  apiKey: string;
  secretKey: string;
  /** The key file sealing the database's secrets: a second server on the same database must be given it. */
  serverKeyFile: string;
  output(): string;
  stop(): Promise<number | null>;
}

export async function startServer(
  dbUrl: string,
  env: Record<string, string> = {},
  args: readonly string[] = [],
  /** root: another checkout's built tree to run (a benchmark's baseline); healthzTimeoutMs: 30 s by default. */
  o: { root?: string; healthzTimeoutMs?: number } = {},
): Promise<ServerProcess> {
  const serverRoot = o.root ?? root;
  const dataDir = mkdtempSync(join(tmpdir(), 'stacknet-api-'));
  const port = await freePort();
  const apiKey = `test-admin-key-${port}`;
  const secretKey = `test-admin-secret-${port}`;
  const child: ChildProcess = spawn(
    process.execPath,
    [join(serverRoot, 'bin/stacknet.js'), 'server', ...args],
    {
      env: {
        ...process.env,
        STACKNET_PORT: String(port),
        STACKNET_HOST: '127.0.0.1',
        STACKNET_DATA_DIR: dataDir,
        STACKNET_DB_URL: dbUrl,
        STACKNET_ADMIN_API_KEY: apiKey,
        STACKNET_ADMIN_SECRET_KEY: secretKey,
        STACKNET_ADMIN_PASSWORD: 'admin-test-password',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout!.on('data', (d) => (out += String(d)));
  child.stderr!.on('data', (d) => (out += String(d)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}/client/api`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    // Never let a hung shutdown hang the suite: SIGKILL after 30 s (the exit code is then null, which the
    // tests that check a clean shutdown report as a failure).
    const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    const code = await exited;
    clearTimeout(killer);
    rmSync(dataDir, { recursive: true, force: true });
    return code;
  };
  try {
    await eventually(
      async () => {
        if (child.exitCode !== null) throw new Error(`server exited: ${out}`);
        const r = await fetch(`http://127.0.0.1:${port}/healthz`);
        return r.ok ? true : undefined;
      },
      o.healthzTimeoutMs ?? 30_000,
      'the server to answer /healthz',
    );
  } catch (e) {
    await stop();
    throw e;
  }
  const serverKeyFile = env.STACKNET_SERVER_KEY_FILE ?? join(dataDir, 'server.key');
  return { url, pid: child.pid!, port, apiKey, secretKey, serverKeyFile, output: () => out, stop };
}

export interface CsAnswer {
  ok: boolean;
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  data?: any;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  error?: any;
  text?: string;
}

/** The python `cs` library as a long-lived helper process. */
export class CsBridge {
  private readonly child: ChildProcess;
  private next = 1;
  private readonly waiting = new Map<number, (a: CsAnswer) => void>();

  constructor() {
    this.child = spawn('/usr/bin/python3', [join(root, 'test/api/cs_rpc.py')], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      const a = JSON.parse(line) as CsAnswer & { id: number };
      this.waiting.get(a.id)?.(a);
      this.waiting.delete(a.id);
    });
  }

  private send(req: Record<string, unknown>): Promise<CsAnswer> {
    const id = this.next++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.child.stdin!.write(`${JSON.stringify({ ...req, id })}\n`);
    });
  }

  client(endpoint: string, key: string, secret: string) {
    return (
      command: string,
      params: Record<string, unknown> = {},
      o: { json?: boolean; fetch_result?: boolean; method?: string } = {},
    ) => this.send({ op: 'call', endpoint, key, secret, command, params, ...o });
  }

  session(req: {
    endpoint: string;
    username: string;
    password: string;
    domain?: string;
    command: string;
    params?: Record<string, unknown>;
  }) {
    return this.send({ op: 'session', ...req });
  }

  async close(): Promise<void> {
    this.child.stdin!.end();
    if (this.child.exitCode === null) await new Promise((r) => this.child.once('exit', r));
  }
}

/** A `cs` client bound to one endpoint and key pair, as CsBridge.client returns it. */
export type CsClient = ReturnType<CsBridge['client']>;

/** Asserts the call succeeded and returns its data; `what` names the step in the failure message. */
export function ok(r: CsAnswer, what: string) {
  assert.ok(r.ok, `${what}: ${JSON.stringify(r.error ?? r.text)}`);
  return r.data;
}

/** A refused call: sync errors carry the HTTP status, async ones the jobresult's errorcode. */
export function refused(r: CsAnswer, code: number, text: RegExp, what: string) {
  assert.ok(!r.ok, `${what} should have been refused: ${JSON.stringify(r.data)}`);
  const e = r.error as { errorcode?: number; errortext?: string };
  assert.equal(e.errorcode, code, `${what}: ${JSON.stringify(e)}`);
  assert.match(e.errortext ?? '', text, what);
  return e;
}

/** What a black-box suite runs against: a new database of one kind, a server process on it, the `cs` bridge. */
export interface CsRig {
  tdb: TestDatabase;
  server: ServerProcess;
  bridge: CsBridge;
  /** The admin's signed `cs` client. */
  admin: CsClient;
}

/** `env`: the server's extra environment (e.g. the netns driver: STACKNET_DRIVER, STACKNET_DATA_DIR...). */
export async function startCsRig(kind: DbKind, env?: Record<string, string>): Promise<CsRig> {
  const tdb = await createTestDatabase(kind);
  const server = await startServer(tdb.url, env);
  const bridge = new CsBridge();
  return { tdb, server, bridge, admin: bridge.client(server.url, server.apiKey, server.secretKey) };
}

/** Stops what startCsRig started (any part may be missing when its `before` failed); the server must exit 0. */
export async function stopCsRig(r: Partial<Omit<CsRig, 'admin'>>): Promise<void> {
  await r.bridge?.close();
  const code = await r.server?.stop();
  assert.equal(code, 0, `server exit code\n${r.server?.output()}`);
  await r.tdb?.drop();
}
