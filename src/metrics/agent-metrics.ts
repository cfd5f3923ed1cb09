/**
 * The router agent's Prometheus metrics (GET /metrics on its control address, behind the router secret like
 * every control request). Applies are counted as they happen (`applied`); the rest is read from the agent's
 * status at scrape time, without leases (the count is enough).
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { AgentStatus } from '../agent/status.js';
import type { ApplyReport } from '../agent/agent.js';

/** Seconds: an address or hostsdir change (~1 ms) to a dnsmasq restart with 40k hosts (~30 s). */
const APPLY_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class AgentMetrics {
  readonly registry = new Registry();
  readonly applies = new Counter({
    name: 'stacknet_agent_applies_total',
    help: 'Applies of a changed desired state, by result (ok/failed) and failure reason',
    labelNames: ['result', 'reason'] as const,
    registers: [this.registry],
  });
  readonly applyDuration = new Histogram({
    name: 'stacknet_agent_apply_duration_seconds',
    help: 'Time of a whole apply (every applier: check then apply), by result',
    labelNames: ['result'] as const,
    buckets: APPLY_BUCKETS,
    registers: [this.registry],
  });
  readonly applierRuns = new Counter({
    name: 'stacknet_agent_applier_runs_total',
    help: 'Appliers run by an apply (check + apply), by applier and result',
    labelNames: ['applier', 'result'] as const,
    registers: [this.registry],
  });
  readonly applierDuration = new Histogram({
    name: 'stacknet_agent_applier_duration_seconds',
    help: 'Check + apply time of one applier in one apply, by applier and result',
    labelNames: ['applier', 'result'] as const,
    buckets: APPLY_BUCKETS,
    registers: [this.registry],
  });
  private readonly degraded = new Gauge({
    name: 'stacknet_agent_degraded',
    help: 'The Degraded condition (1 true, 0 false) and its reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  /** The figures read from the status as they are, each a plain gauge. */
  private readonly plain = FROM_STATUS.map(
    ([name, help, read]) => [new Gauge({ name, help, registers: [this.registry] }), read] as const,
  );

  constructor(private readonly status: () => AgentStatus) {}

  applied(a: ApplyReport): void {
    const result = a.ok ? 'ok' : 'failed';
    this.applies.inc({ result, reason: a.reason ?? '' });
    this.applyDuration.observe({ result }, a.seconds);
    for (const x of a.appliers) {
      const labels = { applier: x.name, result: x.ok ? 'ok' : 'failed' };
      this.applierRuns.inc(labels);
      this.applierDuration.observe(labels, x.seconds);
    }
  }

  async scrape(): Promise<string> {
    const s = this.status();
    const d = s.conditions.find((c) => c.type === 'Degraded');
    this.degraded.reset();
    this.degraded.set({ reason: d?.status ? d.reason : '' }, d?.status ? 1 : 0);
    for (const [gauge, read] of this.plain) gauge.set(read(s));
    return this.registry.metrics();
  }
}

const FROM_STATUS: [string, string, (s: AgentStatus) => number][] = [
  [
    'stacknet_agent_generation',
    'Generation in force (applied); -1 before the first',
    (s) => s.generation ?? -1,
  ],
  [
    'stacknet_agent_desired_generation',
    'Latest accepted generation; -1 before the first',
    (s) => s.desiredGeneration ?? -1,
  ],
  [
    'stacknet_agent_available',
    'The Available condition (1 true, 0 false)',
    (s) => (s.conditions.find((c) => c.type === 'Available')?.status ? 1 : 0),
  ],
  [
    'stacknet_agent_dnsmasq_running',
    'dnsmasq is running (1) or not (0)',
    (s) => (s.dnsmasq?.running ? 1 : 0),
  ],
  [
    'stacknet_agent_dnsmasq_restarts',
    'dnsmasq restarts by an apply (a change SIGHUP cannot carry) since the agent started',
    (s) => s.counters?.restarts ?? 0,
  ],
  [
    'stacknet_agent_dnsmasq_crash_restarts',
    'dnsmasq restarted by the supervisor after it died, since the agent started',
    (s) => s.dnsmasq?.restarts ?? 0,
  ],
  [
    'stacknet_agent_dnsmasq_reloads',
    'dnsmasq SIGHUPs (reloads) since the agent started',
    (s) => s.counters?.reloads ?? 0,
  ],
  [
    'stacknet_agent_dnsmasq_hostsdir_adds',
    'Hosts added through --dhcp-hostsdir (no SIGHUP) since the agent started',
    (s) => s.counters?.hostsdirAdds ?? 0,
  ],
  [
    'stacknet_agent_dhcp_leases_released',
    'Leases released with dhcp_release (VM gone or its address changed) since the agent started',
    (s) => s.counters?.leasesReleased ?? 0,
  ],
  ['stacknet_agent_dhcp_leases', 'DHCP leases in the lease file', (s) => s.leaseCount ?? 0],
];
