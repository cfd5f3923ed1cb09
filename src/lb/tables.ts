/** Load balancer rules (migration 0018-load-balancers); the rule itself is a firewall_rules row (src/rules). */
import type { ColumnType, Generated } from 'kysely';

type Defaulted<T> = ColumnType<T, T | undefined, T>;

export type LbAlgorithm = 'roundrobin' | 'leastconn' | 'source';

export interface LoadBalancingRulesTable {
  /** firewall_rules.id of the rule (purpose LoadBalancing). */
  rule_id: number;
  name: string;
  description: string | null;
  algorithm: LbAlgorithm;
  private_port: number;
  /** The `protocol` answered (CloudStack's lb_protocol): tcp on the virtual router. */
  lb_protocol: string;
  /** CloudStack's scheme: Public (a public IP on the router) or Internal (a VPC tier's address, migration 0019). */
  scheme: Defaulted<'Public' | 'Internal'>;
  /** Internal: the source address in the tier (`sourceipaddress`), held by the appliance `lb_vm_id`. */
  source_ip: string | null;
  /** Internal: routers.id of the internal LB appliance (role `internallb`) serving the rule. */
  lb_vm_id: number | null;
}

export interface LoadBalancerVmMapTable {
  id: Generated<number>;
  rule_id: number;
  vm_id: number;
  /** The guest address balanced to: the NIC's primary address, or a secondary one given in vmidipmap. */
  vm_ip: string;
  created: number;
}

export interface LoadBalancerPoliciesTable {
  id: Generated<number>;
  uuid: string;
  rule_id: number;
  kind: 'Stickiness' | 'HealthCheck';
  name: string | null;
  description: string | null;
  /** Stickiness: LbCookie, AppCookie or SourceBased; its params as JSON ({name: value}). */
  method: string | null;
  params: string | null;
  /** Health check. */
  ping_path: string | null;
  interval_time: number | null;
  response_timeout: number | null;
  healthy_threshold: number | null;
  unhealthy_threshold: number | null;
  for_display: Defaulted<number>;
  created: number;
}

export interface LbTables {
  load_balancing_rules: LoadBalancingRulesTable;
  load_balancer_vm_map: LoadBalancerVmMapTable;
  load_balancer_policies: LoadBalancerPoliciesTable;
}
