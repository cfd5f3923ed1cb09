import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { dataDir as defaultDataDir } from '../config/settings.js';
import type { CliCommand } from './main.js';

const HELP = `usage: stacknet server [--port N] [--host ADDR] [--data-dir DIR] [--db-url URL] [--driver simulator|netns|hosts] [--demo]
                      [--server-key-file PATH] [--ui-dir DIR] [--log-level LEVEL] [--log-format json|text]

  --port      STACKNET_PORT       HTTP port (default 8080)
  --host      STACKNET_HOST       listen address (default 0.0.0.0)
  --data-dir  STACKNET_DATA_DIR   data directory (default ./data)
  --db-url    STACKNET_DB_URL     sqlite:<path> | postgres://... | mysql://... (default SQLite in the data dir)
  --driver    STACKNET_DRIVER     simulator (default) | netns | hosts (routers and VMs on hosts running
                  stacknet host-agent; see stacknet host --help)
  --server-key-file  STACKNET_SERVER_KEY_FILE  the key that seals secrets in the database (default
                  <data dir>/server.key, created 0600 on first start; the same file on every server)
  --ui-dir    STACKNET_UI_DIR     serve a built CloudStack UI (its dist/ folder) at /client/, beside the API
  --log-level  STACKNET_LOG_LEVEL   fatal|error|warn|info (default)|debug|trace|silent
  --log-format STACKNET_LOG_FORMAT  json (default: one JSON object per line on stderr) | text (for people)
               STACKNET_METRICS     on (default): Prometheus metrics at GET /metrics on the API port, without
                  authentication (as Prometheus scrapes); off: no /metrics
               STACKNET_JOB_SLOTS   async jobs run at once (default 128)
               STACKNET_JOB_LEASE_SECONDS  how long a running job stays with a server that stops renewing it
                  before another server (or this one, restarted) takes it over (default 60, at least 5)
  --demo                          build a sample zone, public range and isolated network if there is none yet
First start: STACKNET_ADMIN_PASSWORD sets the admin password (else one is generated and printed once);
STACKNET_ADMIN_API_KEY + STACKNET_ADMIN_SECRET_KEY give the admin user those API keys.`;

export function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i >= 0) return args[i + 1];
  const eq = args.find((a) => a.startsWith(`${name}=`));
  return eq?.slice(name.length + 1);
}

/** The data directory and database URL every command on a server's store takes, resolved as the server does. */
export function storeFlags(args: string[]): { dataDir: string; dbUrl: string } {
  const dataDir = flag(args, '--data-dir') ?? defaultDataDir();
  const dbUrl =
    flag(args, '--db-url') ?? process.env.STACKNET_DB_URL ?? `sqlite:${join(dataDir, 'stacknet.db')}`;
  return { dataDir, dbUrl };
}

export const serverCommand: CliCommand = {
  summary: 'run the management server (CloudStack API on /client/api)',
  async run(args) {
    if (args.includes('--help')) {
      console.log(HELP);
      return 0;
    }
    const env = process.env;
    const { dataDir, dbUrl } = storeFlags(args);
    const port = Number(flag(args, '--port') ?? env.STACKNET_PORT ?? 8080);
    const host = flag(args, '--host') ?? env.STACKNET_HOST ?? '0.0.0.0';
    const driver = flag(args, '--driver') ?? env.STACKNET_DRIVER ?? 'simulator';
    if (driver !== 'simulator' && driver !== 'netns' && driver !== 'hosts') {
      console.error(`stacknet server: unknown driver '${driver}' (use simulator, netns or hosts)`);
      return 2;
    }
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      console.error(`stacknet server: invalid port '${port}'`);
      return 2;
    }
    const uiDir = flag(args, '--ui-dir') ?? (env.STACKNET_UI_DIR || undefined);
    if (uiDir !== undefined && !existsSync(join(uiDir, 'index.html'))) {
      console.error(
        `stacknet server: --ui-dir ${uiDir} has no index.html (give the UI's built dist/ folder)`,
      );
      return 2;
    }
    const { createLogger, parseLogFormat, parseLogLevel } = await import('../logging/logger.js');
    let logger;
    try {
      logger = createLogger({
        level: parseLogLevel(flag(args, '--log-level') ?? env.STACKNET_LOG_LEVEL),
        format: parseLogFormat(flag(args, '--log-format') ?? env.STACKNET_LOG_FORMAT),
        base: { service: 'stacknet-server' },
        buffered: true,
      });
    } catch (e) {
      console.error(`stacknet server: ${(e as Error).message}`);
      return 2;
    }
    const metricsSetting = (env.STACKNET_METRICS ?? 'on').toLowerCase();
    if (metricsSetting !== 'on' && metricsSetting !== 'off') {
      console.error(`stacknet server: STACKNET_METRICS must be on or off, got '${env.STACKNET_METRICS}'`);
      return 2;
    }
    let jobSlots: number | undefined;
    let jobLeaseSeconds: number | undefined;
    try {
      jobSlots = wholeNumber(env, 'STACKNET_JOB_SLOTS', 1);
      jobLeaseSeconds = wholeNumber(env, 'STACKNET_JOB_LEASE_SECONDS', 5);
    } catch (e) {
      console.error(`stacknet server: ${(e as Error).message}`);
      return 2;
    }
    const { buildServer } = await import('../server/build-server.js');
    const server = await buildServer({
      port,
      host,
      dataDir,
      dbUrl,
      driver,
      serverKeyFile: flag(args, '--server-key-file'),
      uiDir,
      adminPassword: env.STACKNET_ADMIN_PASSWORD || undefined,
      adminApiKey: env.STACKNET_ADMIN_API_KEY || undefined,
      adminSecretKey: env.STACKNET_ADMIN_SECRET_KEY || undefined,
      logger,
      metrics: metricsSetting === 'on',
      jobSlots,
      jobLeaseMs: jobLeaseSeconds === undefined ? undefined : jobLeaseSeconds * 1000,
    });
    if (server.bootstrap.generatedPassword) {
      console.log(
        `Created the ROOT domain and the admin account. Log in as user "admin" (domain "/") with password: ${server.bootstrap.generatedPassword}\n` +
          '(shown only this once; set STACKNET_ADMIN_PASSWORD on first start to choose it)',
      );
    }
    if (args.includes('--demo')) {
      const { runDemo } = await import('./demo/demo-command.js');
      for (const line of await runDemo(server.store)) console.log(line);
    }
    const address = await server.app.listen({ port, host });
    if (server.integration) {
      // Unauthenticated: never anything but loopback.
      await server.integration.app.listen({ port: server.integration.port, host: '127.0.0.1' });
      console.log(
        `integration API (no authentication, acts as admin) on http://127.0.0.1:${server.integration.port}/client/api`,
      );
    }
    console.log(
      `stacknet server listening on ${address}/client/api (database: ${server.store.kind}, driver: ${driver})`,
    );
    if (uiDir) console.log(`UI from ${uiDir} on ${address}/client/`);
    await new Promise<void>((resolve) => {
      const stop = (sig: string) => {
        console.log(`${sig}: shutting down (finishing running jobs)`);
        resolve();
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
    // A shutdown that hangs (a driver pool that never drains, a job that never returns) must not keep the
    // process alive forever: after the deadline, or on a second signal, say so and exit non-zero.
    const deadlineMs = Number(process.env.STACKNET_SHUTDOWN_TIMEOUT_MS ?? 20_000);
    let timer: NodeJS.Timeout | undefined;
    const forced = new Promise<number>((resolve) => {
      timer = setTimeout(() => {
        console.error(`shutdown did not finish within ${deadlineMs} ms; exiting anyway`);
        resolve(1);
      }, deadlineMs);
      timer.unref();
      const again = () => {
        console.error('second signal: exiting without waiting for shutdown to finish');
        resolve(1);
      };
      process.once('SIGTERM', again);
      process.once('SIGINT', again);
    });
    const code = await Promise.race([server.close().then(() => 0), forced]);
    clearTimeout(timer);
    if (code !== 0) process.exit(code);
    return 0;
  },
};

/** An optional whole-number setting of the environment: undefined when unset, an error naming it when not ≥ min. */
function wholeNumber(env: NodeJS.ProcessEnv, name: string, min: number): number | undefined {
  const text = env[name];
  if (!text) return undefined;
  const n = Number(text);
  if (!(Number.isInteger(n) && n >= min))
    throw new Error(`${name} must be a whole number ≥ ${min}, got '${text}'`);
  return n;
}
