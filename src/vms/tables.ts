/**
 * Tables of VMs, NICs, routers and SSH key pairs (migration 0004-vms). Conventions from
 * store/migrations/helpers.ts: ids numbers, times epoch ms, booleans SMALLINT 0/1.
 */
import type { ColumnType, Generated } from 'kysely';

/** A column added by a later migration (0009): inserts may leave it out (NULL). */
type Added<T> = ColumnType<T | null, T | null | undefined, T | null>;

/** CloudStack's VirtualMachine.State names (the ones stacknet reaches). */
export type VmState = 'Starting' | 'Running' | 'Stopping' | 'Stopped' | 'Destroyed' | 'Expunging' | 'Error';

export interface VmsTable {
  id: Generated<number>;
  uuid: string;
  /** CloudStack's instance name `i-<account id>-<vm id>-VM`, set right after the insert. */
  instance_name: string;
  /** The host name (DNS label) the VR hands out and resolves. */
  name: string;
  display_name: string;
  state: VmState;
  zone_id: number;
  account_id: number;
  domain_id: number;
  user_id: number | null;
  service_offering_id: number | null;
  template_id: number | null;
  /**
   * The VM's size (migration 0009): its service offering's, or for a custom offering the values given at deploy
   * (`details[0].cpuNumber` ...); changeServiceForVirtualMachine sets them anew.
   */
  cpu_number: Added<number>;
  cpu_speed: Added<number>;
  memory: Added<number>;
  /** Base64 as the caller sent it (CloudStack stores and serves it so). */
  user_data: string | null;
  /** Names of the key pairs (keypair / keypairs), comma separated. */
  keypairs: string | null;
  /** The public keys served as `public-keys` metadata. */
  ssh_public_keys: string | null;
  /**
   * A password waiting for the guest to fetch it from the VR's password server (CloudStack's one-shot
   * `vm_password.json`); cleared when the VM is expunged.
   */
  password: string | null;
  /** When destroyVirtualMachine ran; expunge happens `expunge.delay` seconds later. */
  destroyed: number | null;
  created: number;
  /** Set at expunge: the row stays for events/usage, the VM is gone. */
  removed: number | null;
  /** The `hosts` driver's placement (0021): the host the VM is defined on, and where it ran last. */
  host_id: Added<number>;
  last_host_id: Added<number>;
}

export interface NicsTable {
  id: Generated<number>;
  uuid: string;
  vm_id: number;
  network_id: number;
  zone_id: number;
  /** Lowercase colon form; UNIQUE(zone_id, mac). */
  mac: string;
  ipv4: string | null;
  ipv6: string | null;
  /** The ip_allocations row holding ipv4 (owner_kind 'nic', owner_id = this id). */
  ip_allocation_id: number | null;
  is_default: number;
  device_id: number;
  created: number;
}

export interface NicSecondaryIpsTable {
  id: Generated<number>;
  uuid: string;
  nic_id: number;
  vm_id: number;
  network_id: number;
  ipv4: string;
  ip_allocation_id: number | null;
  created: number;
}

/** 'Expunged': destroyed and its instance torn down (the reconciler stops watching it). */
export type RouterState =
  'Starting' | 'Running' | 'Stopping' | 'Stopped' | 'Destroyed' | 'Expunged' | 'Error';
/** Which member of a redundant pair; 'standalone' otherwise. */
/** `internallb`: CloudStack's internal LB VM (src/lb/internal.ts), an appliance in a VPC tier, not the tier's router. */
export type RouterRole = 'standalone' | 'primary' | 'backup' | 'internallb';

export interface RoutersTable {
  id: Generated<number>;
  uuid: string;
  /** `r-<id>-VM`, set right after the insert. */
  name: string;
  network_id: number;
  zone_id: number;
  account_id: number | null;
  domain_id: number | null;
  state: RouterState;
  role: RouterRole;
  guest_ip: string | null;
  guest_mac: string | null;
  /** Link-local control address and port of the agent (`169.254.x.y`, 3922). */
  control_ip: string | null;
  control_port: number | null;
  /** The agent's control secret, sealed with the server key (routers/secrets.ts); never returned by the API. */
  secret_sealed: string;
  public_ip: string | null;
  /** Bumped in the same transaction as every change that affects this router's desired state. */
  desired_generation: number;
  /** What the agent last reported as applied (generation + content hash). */
  applied_generation: number | null;
  applied_hash: string | null;
  /** JSON of the agent's conditions and checks (getRouterHealthCheckResults). */
  health: string | null;
  health_checked: number | null;
  /** When the agent last answered with its status (0020); health_checked also moves on a failed attempt. */
  status_reported: ColumnType<number | null, number | null | undefined, number | null>;
  /** Why the last reconcile failed, null when converged. */
  last_error: string | null;
  /** Which management server reconciles this router, until when (epoch ms). */
  lease_owner: string | null;
  lease_until: number | null;
  version: string;
  created: number;
  removed: number | null;
  /** The host the `hosts` driver placed it on (0021); NULL on the other drivers. */
  host_id: ColumnType<number | null, number | null | undefined, number | null>;
}

export interface SshKeyPairsTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  account_id: number;
  domain_id: number;
  public_key: string;
  fingerprint: string;
  created: number;
}

export interface VmTables {
  vms: VmsTable;
  nics: NicsTable;
  nic_secondary_ips: NicSecondaryIpsTable;
  routers: RoutersTable;
  ssh_keypairs: SshKeyPairsTable;
}
