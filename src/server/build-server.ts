/**
 * The one composition root: opens and migrates the store, bootstraps the admin, builds the command registry,
 * the API and the job runner. It never listens: the CLI's `server` command does (tests use `inject()`).
 */
import type { FastifyInstance } from 'fastify';
import { openMigratedStore, openStore } from '../store/db.js';
import type { Store } from '../store/db.js';
import { bootstrapAdmin } from '../accounts/bootstrap.js';
import type { BootstrapResult } from '../accounts/bootstrap.js';
import { buildRegistry } from '../api/registry.js';
import { finishedJobs } from '../api/jobs/finished.js';
import type { CommandRegistry } from '../api/registry.js';
import { buildHttpApp } from '../api/http.js';
import { serveUi } from '../ui/static-files.js';
import { JobRunner } from '../api/jobs/runner.js';
import { ApiThrottle } from '../api/throttle.js';
import { getSetting } from '../configuration/repository.js';
import { defaultRootAdmin } from '../accounts/repository.js';
import { internalError } from '../errors/catalogue.js';
import { startVmSubsystem } from '../vms/subsystem.js';
import { serverKeyPath } from '../config/server-key.js';
import { prepareServerKey } from './secrets-at-rest.js';
import { AlertWorker } from '../alerts/worker.js';
import { serveDiagnosticsArchives } from '../diagnostics/archives.js';
import { serveHostChannel } from '../hosts/channel.js';
import { HostWorker } from '../hosts/worker.js';
import { startEventBus } from '../events/bus.js';
import type { EventBus } from '../events/bus.js';
import { ServerMetrics } from '../metrics/server-metrics.js';
import { logHook } from '../logging/logger.js';
import type { Logger } from '../logging/logger.js';
import { observeRequests, observeJobs } from './observe.js';
import { applyProcessSettings, processSettingsOf } from './process-settings.js';

export type DriverName = 'simulator' | 'netns' | 'hosts';

export interface ServerConfig {
  port: number;
  host: string;
  dataDir: string;
  dbUrl: string;
  driver: DriverName;
  adminPassword?: string;
  adminApiKey?: string;
  adminSecretKey?: string;
  /** The server key file (config/server-key.ts); default STACKNET_SERVER_KEY_FILE or `<dataDir>/server.key`. */
  serverKeyFile?: string;
  /** A built CloudStack UI to serve at /client/ (ui/static-files.ts). */
  uiDir?: string;
  /** How often the job runner looks for jobs queued by other servers (ms). */
  jobPollMs?: number;
  /**
   * Jobs this server runs at once (the job runner's slots; STACKNET_JOB_SLOTS in the CLI). Default 128: a job
   * mostly waits (its router's pass, the driver's batch), and with 16 a 200-VM deploy burst spent 62% of its
   * per-VM time queued for a slot (docs/benchmarks.md "Deploy bursts").
   */
  jobSlots?: number;
  /**
   * How long a job stays leased to the server running it without a renewal (ms; STACKNET_JOB_LEASE_SECONDS in the
   * CLI; default 60 s): a server that dies holding jobs has them taken over by another server this long after its
   * last renewal. The runner renews every third of it.
   */
  jobLeaseMs?: number;
  /** Database pool size (PostgreSQL / MariaDB). */
  poolSize?: number;
  /** Events on a message bus (src/events/README.md): default STACKNET_AMQP_URL / STACKNET_AMQP_EXCHANGE. */
  amqpUrl?: string;
  amqpExchange?: string;
  /** The modules' free-text log; default: `info` lines of `logger`. */
  log?: (msg: string) => void;
  /** Structured logs (src/logging): one line per API request and per finished job, and the `log` lines. */
  logger?: Logger;
  /** GET /metrics on the API port (default true; STACKNET_METRICS=off in the CLI). */
  metrics?: boolean;
}

export interface BuiltServer {
  config: ServerConfig;
  store: Store;
  registry: CommandRegistry;
  app: FastifyInstance;
  runner: JobRunner;
  /** The runner's store: its own pool on PostgreSQL/MariaDB, `store` itself on SQLite. */
  jobStore: Store;
  /** Absent when metrics are off. */
  metrics?: ServerMetrics;
  bootstrap: BootstrapResult;
  /**
   * The unauthenticated integration API (`integration.api.port` > 0, read at start as in CloudStack): listen on
   * 127.0.0.1 only.
   */
  integration?: { port: number; app: FastifyInstance };
  /** The event bus's publisher, when an AMQP URL is configured (src/events). */
  eventBus?: EventBus;
  /** Stops the workers, the HTTP server (if listening) and the store; waits for running jobs. */
  close(): Promise<void>;
}

/**
 * Connections in a server's job pool on PostgreSQL/MariaDB, at most. A job holds one only while it runs a
 * statement or a transaction, and mostly waits (its router's pass, the driver's batch): 128 slots share them.
 */
const JOB_POOL_MAX = 16;

export async function buildServer(given: ServerConfig): Promise<BuiltServer> {
  const config: ServerConfig = {
    ...given,
    log: given.log ?? (given.logger ? logHook(given.logger) : undefined),
  };
  // V8's heap growing factor (process-settings.ts): STACKNET_HEAP_GROWING_PERCENT, default 10.
  const settings = processSettingsOf();
  applyProcessSettings(settings);
  config.log?.(`heap growing percent: ${settings.heapGrowingPercent ?? "V8's own"} (${settings.source})`);
  const store = await openMigratedStore(config.dbUrl, { poolSize: config.poolSize ?? 20 });
  let jobStore: Store | undefined;
  try {
    // Before anything seals or opens a secret (the bootstrap seals the admin's secret key).
    await prepareServerKey(store, serverKeyPath(config.dataDir, config.serverKeyFile), config.log);
    const bootstrap = await bootstrapAdmin(store, {
      adminPassword: config.adminPassword,
      adminApiKey: config.adminApiKey,
      adminSecretKey: config.adminSecretKey,
    });
    const registry = buildRegistry();
    // Jobs get their own small pool on PostgreSQL/MariaDB, so a flood of API reads (clients polling
    // queryAsyncJobResult) cannot starve the jobs they are waiting for; one connection per runner slot up to
    // JOB_POOL_MAX. SQLite has one connection either way.
    const jobSlots = config.jobSlots ?? 128;
    jobStore =
      store.kind === 'sqlite'
        ? store
        : await openStore(config.dbUrl, { poolSize: Math.min(jobSlots, JOB_POOL_MAX) });
    const metrics = config.metrics === false ? undefined : new ServerMetrics(store);
    metrics?.countStatements('api', store);
    if (jobStore !== store) metrics?.countStatements('jobs', jobStore);
    const runner = new JobRunner({
      store: jobStore,
      registry,
      pollMs: config.jobPollMs,
      leaseMs: config.jobLeaseMs,
      concurrency: jobSlots,
      log: config.log,
      onFinished: observeJobs(metrics, config.logger),
      finished: finishedJobs(store),
    });
    const observe = observeRequests(metrics, config.logger);
    // Routers, VMs, their reconciler and GC (STACKNET_NETNS_PREFIX / STACKNET_CONTROL_CIDR: see src/vms/README.md).
    const vms = await startVmSubsystem(store, {
      driver: config.driver,
      dataDir: config.dataDir,
      netnsPrefix: process.env.STACKNET_NETNS_PREFIX,
      controlCidr: process.env.STACKNET_CONTROL_CIDR,
      log: config.log,
    });
    if (metrics)
      vms.reconciler.onPass = (outcome, seconds) => metrics.reconcilePasses.observe({ outcome }, seconds);
    const throttle = (await getSetting(store.db, 'api.throttling.enabled'))
      ? new ApiThrottle({
          intervalSeconds: await getSetting(store.db, 'api.throttling.interval'),
          max: await getSetting(store.db, 'api.throttling.max'),
          cacheSize: await getSetting(store.db, 'api.throttling.cachesize'),
        })
      : undefined;
    const app = buildHttpApp(
      {
        store,
        registry,
        onJobQueued: () => runner.wake(),
        jobSlots: () => runner.reserveSlot(),
        log: config.log,
        throttle,
        observe,
      },
      { metrics: metrics && { contentType: metrics.registry.contentType, scrape: () => metrics.scrape() } },
    );
    if (config.uiDir) serveUi(app, config.uiDir);
    serveDiagnosticsArchives(app, store, config.dataDir);
    // Host agents register, heartbeat and long-poll their desired state here (src/hosts/channel.ts).
    serveHostChannel(app, store, config.log);
    const integrationPort = await getSetting(store.db, 'integration.api.port');
    const integration =
      integrationPort > 0
        ? {
            port: integrationPort,
            app: buildHttpApp({
              store,
              registry,
              onJobQueued: () => runner.wake(),
              jobSlots: () => runner.reserveSlot(),
              log: config.log,
              observe,
              trustedCaller: async () => {
                const admin = await defaultRootAdmin(store.db);
                if (!admin) throw internalError('finding the default root admin for the integration port');
                return admin.caller;
              },
            }),
          }
        : undefined;
    runner.start();
    // Capacity thresholds and router health, raised as alerts (src/alerts).
    const alerts = new AlertWorker({ store, log: config.log });
    alerts.start();
    // Hosts that stop heartbeating: Disconnected, then Down (src/hosts/worker.ts). Only where hosts run routers
    // and VMs: the other drivers have none, and its pass every 500 ms would cost statements for nothing.
    const hosts = config.driver === 'hosts' ? new HostWorker({ store, log: config.log }) : undefined;
    hosts?.start();
    // Events on a message bus (src/events): the outbox and its publisher, when an AMQP URL is configured.
    const bus = startEventBus(store, {
      url: config.amqpUrl ?? process.env.STACKNET_AMQP_URL,
      exchange: config.amqpExchange ?? process.env.STACKNET_AMQP_EXCHANGE,
      log: config.log,
    });
    let closed = false;
    return {
      config,
      store,
      registry,
      app,
      runner,
      jobStore,
      metrics,
      bootstrap,
      integration,
      eventBus: bus,
      async close() {
        if (closed) return;
        closed = true;
        await app.close();
        await integration?.app.close();
        await runner.stop();
        await alerts.stop();
        await hosts?.stop();
        await bus?.stop();
        await vms.close();
        metrics?.close();
        if (jobStore && jobStore !== store) await jobStore.close();
        await store.close();
      },
    };
  } catch (e) {
    if (jobStore && jobStore !== store) await jobStore.close();
    await store.close();
    throw e;
  }
}
