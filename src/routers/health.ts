/**
 * A router's health as the API shows it: the checks derived from what its agent last reported
 * (getRouterHealthCheckResults, `healthchecksfailed`), and its redundant state. Shared by listRouters and the
 * alert check (src/alerts), which raises an alert for a router whose checks fail.
 */
import type { ResponseObject } from '../api/command.js';
import type { QuarantinedEntry } from '../agent/validate-desired-state.js';
import { describeQuarantine } from '../agent/validate-desired-state.js';
import type { RouterRow } from './repository.js';

interface Health {
  conditions?: {
    type: string;
    status: boolean;
    reason: string;
    message: string;
    lastTransitionTime: string;
  }[];
  role?: string;
  dnsmasq?: { running: boolean; lastError: string | null };
  dns?: { running: boolean; lastError: string | null } | null;
  dhcpShards?: number;
  firewall?: { loaded: boolean; message: string | null };
  lastFailure?: { generation: number; reason: string; message: string } | null;
  quarantined?: QuarantinedEntry[];
}

export function healthChecks(r: RouterRow): ResponseObject[] {
  const h = r.health ? (JSON.parse(r.health) as Health | null) : null;
  if (!h) return [];
  const at = r.health_checked ? new Date(Number(r.health_checked)).toISOString() : undefined;
  const checks: ResponseObject[] = (h.conditions ?? []).map((c) => ({
    checkname: c.type,
    checktype: 'basic',
    // Degraded=true is a failure; Available/… true are successes.
    success: c.type === 'Degraded' ? !c.status : c.type === 'Progressing' ? true : c.status,
    lastupdated: at,
    details: `${c.reason}${c.message ? `: ${c.message}` : ''}`,
  }));
  checks.push({
    checkname: 'dnsmasq',
    checktype: 'basic',
    success: h.dnsmasq?.running ?? false,
    lastupdated: at,
    details: h.dnsmasq?.lastError ?? (h.dnsmasq?.running ? 'running' : 'not running') + dhcpBackendNote(h),
  });
  // The DNS dnsmasq (reported by agents since issue 15; null while the router answers no DNS: useExternalDns,
  // a pair's backup).
  if (h.dns)
    checks.push({
      checkname: 'dns',
      checktype: 'basic',
      success: h.dns.running,
      lastupdated: at,
      details: h.dns.lastError ?? (h.dns.running ? 'running' : 'not running'),
    });
  // Entries the router set aside (a row it cannot serve, e.g. a MAC that is no MAC): everything else is served.
  const q = h.quarantined ?? [];
  checks.push({
    checkname: 'quarantine',
    checktype: 'basic',
    success: q.length === 0,
    lastupdated: at,
    details: q.length === 0 ? 'no entries set aside' : `${q.length} set aside: ${describeQuarantine(q, 10)}`,
  });
  checks.push({
    checkname: 'generation',
    checktype: 'basic',
    success: r.applied_generation !== null && Number(r.applied_generation) === Number(r.desired_generation),
    lastupdated: at,
    details: `desired ${r.desired_generation}, applied ${r.applied_generation ?? 'none'}${r.last_error ? `; last error: ${r.last_error}` : ''}`,
  });
  return checks;
}

function dhcpBackendNote(h: Health): string {
  return (h.dhcpShards ?? 1) > 1 ? ` (DHCP in ${h.dhcpShards} shards)` : '';
}

/**
 * stacknet's `dhcpbackend` of listRouters: what serves the router's DHCP, as its agent last reported —
 * `dnsmasq` (one process), `dnsmasq-shards:<K>` (a big network, src/agent/appliers/dnsmasq/shards.ts).
 */
export function dhcpBackend(r: RouterRow): string | undefined {
  const h = r.health ? (JSON.parse(r.health) as Health | null) : null;
  if (!h?.dnsmasq) return undefined;
  return (h.dhcpShards ?? 1) > 1 ? `dnsmasq-shards:${h.dhcpShards}` : 'dnsmasq';
}

export function redundantState(r: RouterRow): string {
  if (r.role === 'standalone') return 'UNKNOWN';
  const h = (r.health ? (JSON.parse(r.health) as Health | null) : null) ?? {};
  if (h.role === 'primary') return 'PRIMARY';
  if (h.role === 'backup') return 'BACKUP';
  return 'UNKNOWN';
}
