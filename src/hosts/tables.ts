/**
 * Tables of hosts and clusters (migration 0021-hosts). Conventions from store/migrations/helpers.ts: ids
 * numbers, times epoch ms.
 */
import type { ColumnType, Generated } from 'kysely';

type Defaulted<T> = ColumnType<T, T | undefined, T>;

/** CloudStack's Status (the agent's connection): what the heartbeats say. */
export type HostState = 'Connecting' | 'Up' | 'Disconnected' | 'Down';
/** CloudStack's ResourceState: what the operator asked. */
export type HostResourceState =
  'Enabled' | 'Disabled' | 'PrepareForMaintenance' | 'Maintenance' | 'ErrorInMaintenance';

export interface ClustersTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  zone_id: number;
  pod_id: number;
  /** Always `KVM`. */
  hypervisor: string;
  /** CloudStack's `CloudManaged`. */
  cluster_type: string;
  allocation_state: string;
  managed_state: string;
  created: number;
  removed: number | null;
}

export interface HostsTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  zone_id: number;
  pod_id: number;
  cluster_id: number;
  /** The underlay address the agent listens on (its relay, VXLAN tunnel ends). */
  address: string;
  port: number;
  /** The host's channel secret sealed with the server key; NULL until the agent registered. */
  secret_sealed: string | null;
  /** JSON of protocol.ts HostCapabilities as the agent registered them. */
  capabilities: string | null;
  cpus: Defaulted<number>;
  cpu_speed: Defaulted<number>;
  memory_mib: Defaulted<number>;
  version: string | null;
  host_tags: string | null;
  state: HostState;
  resource_state: HostResourceState;
  last_pinged: number | null;
  desired_generation: Defaulted<number>;
  desired_hash: string | null;
  applied_generation: number | null;
  /** JSON of the last HostStatus the agent reported. */
  status: string | null;
  created: number;
  removed: number | null;
}

export interface HostTables {
  clusters: ClustersTable;
  hosts: HostsTable;
}
