/**
 * The management server's Prometheus metrics, one registry per server instance (tests build several servers in
 * one process; prom-client's default registry is never used). Hot paths only increment counters and observe
 * histograms; everything that needs the database (job queue depth, pool utilisation, routers) is read at scrape
 * time by `scrape()`, a handful of queries whatever the size of the pools.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Store } from '../store/db.js';
import { nowMs } from '../store/db.js';
import { poolUtilisation } from '../capacity/utilisation.js';
import { observeAddresses } from '../addresses/observers.js';
import type { AddressEvent } from '../addresses/observers.js';

/** Seconds: from a cached read (~1 ms) to a job that waits on a router (~10 s). */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

const zoneLabel = (e: AddressEvent): string => (e.zoneId == null ? '' : String(e.zoneId));

export class ServerMetrics {
  readonly registry = new Registry();
  readonly apiRequests = new Counter({
    name: 'stacknet_api_requests_total',
    help: 'API requests by command and errorcode (0 = success)',
    labelNames: ['command', 'errorcode'] as const,
    registers: [this.registry],
  });
  readonly apiDuration = new Histogram({
    name: 'stacknet_api_request_duration_seconds',
    help: 'API request latency by command (an async command: until its job id is answered)',
    labelNames: ['command'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly jobs = new Counter({
    name: 'stacknet_jobs_total',
    help: 'Async jobs finished by this server, by command and result (succeeded/failed)',
    labelNames: ['command', 'result'] as const,
    registers: [this.registry],
  });
  readonly jobDuration = new Histogram({
    name: 'stacknet_job_duration_seconds',
    help: 'Async job run time on this server, by command and result',
    labelNames: ['command', 'result'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly jobQueue = new Gauge({
    name: 'stacknet_jobs_pending',
    help: 'Async jobs not finished, in the shared database: queued (no live lease) or running (leased)',
    labelNames: ['state'] as const,
    registers: [this.registry],
  });
  readonly allocations = new Counter({
    name: 'stacknet_address_allocations_total',
    help: 'Addresses handed out (allocated or reserved) by zone id and scope kind (pub, net, pod, portable)',
    labelNames: ['zone', 'kind'] as const,
    registers: [this.registry],
  });
  readonly allocationFailures = new Counter({
    name: 'stacknet_address_allocation_failures_total',
    help: 'Allocations refused, by zone id, scope kind and CloudStack error (InsufficientAddressCapacity, ...)',
    labelNames: ['zone', 'kind', 'reason'] as const,
    registers: [this.registry],
  });
  readonly releases = new Counter({
    name: 'stacknet_address_releases_total',
    help: 'Addresses freed through the address service (releaseAddress), by scope kind',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly poolSize = new Gauge({
    name: 'stacknet_pool_addresses',
    help: 'Addresses of a public range or a guest network (usable: less network, broadcast, gateway)',
    labelNames: ['pool', 'id', 'zone', 'name'] as const,
    registers: [this.registry],
  });
  readonly poolUsed = new Gauge({
    name: 'stacknet_pool_addresses_used',
    help: 'Addresses of a public range or a guest network that are not Free',
    labelNames: ['pool', 'id', 'zone', 'name'] as const,
    registers: [this.registry],
  });
  readonly routerLag = new Gauge({
    name: 'stacknet_router_generation_lag',
    help: 'Desired minus applied generation of a router (0 = converged)',
    labelNames: ['router', 'zone'] as const,
    registers: [this.registry],
  });
  readonly routerDegraded = new Gauge({
    name: 'stacknet_router_degraded',
    help: 'Whether the router agent last reported Degraded (1) or not (0)',
    labelNames: ['router', 'zone', 'reason'] as const,
    registers: [this.registry],
  });
  readonly routerRestarts = new Gauge({
    name: 'stacknet_router_dnsmasq_crash_restarts',
    help: 'dnsmasq restarts after a crash (by the agent supervisor) the router agent last reported, since it started',
    labelNames: ['router', 'zone'] as const,
    registers: [this.registry],
  });
  readonly routersDegraded = new Gauge({
    name: 'stacknet_routers_degraded',
    help: 'Routers whose agent last reported Degraded',
    registers: [this.registry],
  });
  readonly reconcilePasses = new Histogram({
    name: 'stacknet_router_reconcile_duration_seconds',
    help: 'Router reconcile passes of this server (read, push, record) by outcome (pushed, converged, failed, ...)',
    labelNames: ['outcome'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  private readonly statementSources: { pool: string; store: Store }[] = [];
  readonly dbStatements = new Counter({
    name: 'stacknet_db_statements_total',
    help: 'Statements this server sent to the database, by pool (api: requests; jobs: the job runner, on PostgreSQL/MariaDB)',
    labelNames: ['pool'] as const,
    registers: [this.registry],
    collect: () => {
      this.dbStatements.reset();
      for (const { pool, store } of this.statementSources)
        this.dbStatements.inc({ pool }, store.statements.count);
    },
  });
  private readonly unsubscribe: () => void;

  constructor(private readonly store: Store) {
    this.unsubscribe = observeAddresses({
      allocated: (e) => this.allocations.inc({ zone: zoneLabel(e), kind: e.kind }),
      failed: (e, reason) => this.allocationFailures.inc({ zone: zoneLabel(e), kind: e.kind, reason }),
      released: (e) => this.releases.inc({ kind: e.kind }),
    });
  }

  /** Exports `store.statements` as the `pool` series of stacknet_db_statements_total. */
  countStatements(pool: string, store: Store): void {
    this.statementSources.push({ pool, store });
  }

  /** One API request, as the pipeline saw it. `command` must be a known command's name (bounded labels). */
  request(command: string, errorcode: number, seconds: number): void {
    this.apiRequests.inc({ command, errorcode: String(errorcode) });
    this.apiDuration.observe({ command }, seconds);
  }

  job(command: string, ok: boolean, seconds: number): void {
    const result = ok ? 'succeeded' : 'failed';
    this.jobs.inc({ command, result });
    this.jobDuration.observe({ command, result }, seconds);
  }

  /** Reads what lives in the database and answers the exposition text. */
  async scrape(): Promise<string> {
    const db = this.store.db;
    const now = nowMs();
    const [jobs, pools, routers] = await Promise.all([
      // The (status, lease_until) index answers this.
      db
        .selectFrom('async_jobs')
        .select([
          (eb) => eb.fn.countAll<number>().as('total'),
          (eb) =>
            eb.fn.sum<number>(eb.case().when('lease_until', '>', now).then(1).else(0).end()).as('running'),
        ])
        .where('status', '=', 0)
        .executeTakeFirstOrThrow(),
      poolUtilisation(db),
      db
        .selectFrom('routers')
        .innerJoin('zones', 'zones.id', 'routers.zone_id')
        .select([
          'routers.name',
          'zones.name as zone',
          'routers.desired_generation',
          'routers.applied_generation',
          'routers.health',
        ])
        .where('routers.removed', 'is', null)
        .where('routers.state', 'in', ['Starting', 'Running'])
        .execute(),
    ]);
    const total = Number(jobs.total);
    const running = Number(jobs.running ?? 0);
    this.jobQueue.set({ state: 'queued' }, total - running);
    this.jobQueue.set({ state: 'running' }, running);
    this.poolSize.reset();
    this.poolUsed.reset();
    for (const p of pools) {
      const labels = { pool: p.kind, id: p.id, zone: p.zone, name: p.name };
      this.poolSize.set(labels, Number(p.total));
      this.poolUsed.set(labels, p.used);
    }
    this.routerLag.reset();
    this.routerDegraded.reset();
    this.routerRestarts.reset();
    let degraded = 0;
    for (const r of routers) {
      const labels = { router: r.name, zone: r.zone };
      this.routerLag.set(labels, Number(r.desired_generation) - Number(r.applied_generation ?? 0));
      const h = parseHealth(r.health);
      const d = h?.conditions?.find((c) => c.type === 'Degraded');
      if (d?.status) degraded++;
      this.routerDegraded.set({ ...labels, reason: d?.status ? d.reason : '' }, d?.status ? 1 : 0);
      if (h?.dnsmasq?.restarts !== undefined) this.routerRestarts.set(labels, h.dnsmasq.restarts);
    }
    this.routersDegraded.set(degraded);
    return this.registry.metrics();
  }

  close(): void {
    this.unsubscribe();
  }
}

interface ReportedHealth {
  conditions?: { type: string; status: boolean; reason: string }[];
  dnsmasq?: { restarts?: number };
}

function parseHealth(text: string | null): ReportedHealth | null {
  if (!text) return null;
  try {
    return JSON.parse(text) as ReportedHealth;
  } catch {
    return null;
  }
}
