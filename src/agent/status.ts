/**
 * The agent's observed status (GET /v1/status, and the body of every answered push): the wire contract the
 * server's reconciler and the simulator driver share. Types only.
 */
import type { Lease } from './appliers/dnsmasq/render.js';
import type { QuarantinedEntry } from './validate-desired-state.js';

export type ConditionType = 'Available' | 'Progressing' | 'Degraded';
export interface Condition {
  type: ConditionType;
  status: boolean;
  reason: string;
  message: string;
  lastTransitionTime: string;
}

export interface AgentStatus {
  routerName: string | null;
  /** Generation of the desired state in force (applied). */
  generation: number | null;
  /** Latest accepted generation (equal to `generation` unless an apply is in flight). */
  desiredGeneration: number | null;
  hash: string | null;
  conditions: Condition[];
  role: 'standalone' | 'primary' | 'backup';
  /** The DHCP dnsmasq (sharded: all of them — running if all run, shard 0's pid, restarts summed). */
  dnsmasq: { running: boolean; pid: number | null; restarts: number; lastError: string | null };
  /** The DNS dnsmasq (null: not wanted — `useExternalDns`, a pair's backup — and not running). */
  dns?: { running: boolean; pid: number | null; restarts: number; lastError: string | null } | null;
  keepalived: { running: boolean; pid: number | null } | null;
  firewall: { loaded: boolean; message: string | null };
  counters: {
    applies: number;
    hostsdirAdds: number;
    reloads: number;
    restarts: number;
    leasesReleased: number;
    /** The DNS dnsmasq: names files added by inotify, SIGHUPs (a removed or changed name), restarts. */
    dnsAdds?: number;
    dnsReloads?: number;
    dnsRestarts?: number;
  };
  lastFailure: { generation: number; reason: string; message: string } | null;
  /**
   * Guest addresses whose password in the state in force the guest acknowledged (`saved_password`). The server
   * drops those passwords from the desired state (as CloudStack's password server deletes an acknowledged one),
   * so the other router of a pair — or this one after a rebuild — never serves them again.
   */
  savedPasswords?: string[];
  /**
   * Entries of the state in force that are not served because they are invalid on their own or clash with
   * another (a bad MAC, an address two hosts claim, user data that is not base64); the rest of the state is.
   * `Degraded` is then true with reason `EntriesQuarantined`. At most `maxReportedQuarantine` are listed.
   */
  quarantined?: QuarantinedEntry[];
  /**
   * Load balancer members' health as haproxy sees it, by LB rule id then member guest IP (absent: no LB rule).
   * A member haproxy has not reported yet (just added, haproxy restarting) is DOWN.
   */
  lb?: Record<string, Record<string, 'UP' | 'DOWN'>>;
  leaseCount: number;
  leases?: Lease[];
  /** How many DHCP dnsmasq instances serve the network (appliers/dnsmasq/shards.ts; 1 up to 2,048 hosts). */
  dhcpShards?: number;
}

/** The three conditions, each keeping its lastTransitionTime while its status stays the same. */
export class Conditions {
  private readonly map = new Map<ConditionType, Condition>();

  set(type: ConditionType, status: boolean, reason: string, message: string): void {
    const old = this.map.get(type);
    if (old && old.status === status && old.reason === reason && old.message === message) return;
    const lastTransitionTime =
      old && old.status === status ? old.lastTransitionTime : new Date().toISOString();
    this.map.set(type, { type, status, reason, message, lastTransitionTime });
  }

  get(type: ConditionType): Condition | undefined {
    return this.map.get(type);
  }

  list(): Condition[] {
    return (['Available', 'Progressing', 'Degraded'] as const).map((t) => this.map.get(t)!);
  }
}
