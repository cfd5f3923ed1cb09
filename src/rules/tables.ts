/** Port forwarding, firewall and egress rules (migration 0016-firewall-rules). */
import type { ColumnType, Generated } from 'kysely';

type Defaulted<T> = ColumnType<T, T | undefined, T>;

/** LoadBalancing rows are src/lb's (its own columns in load_balancing_rules), kept here as CloudStack does. */
export type RulePurpose = 'Firewall' | 'PortForwarding' | 'LoadBalancing';
export type RuleTraffic = 'Ingress' | 'Egress';

export interface FirewallRulesTable {
  id: Generated<number>;
  uuid: string;
  purpose: RulePurpose;
  traffic_type: RuleTraffic;
  /** The public IP (ip_allocations.id); null for egress rules. */
  ip_allocation_id: number | null;
  /** Egress: the guest network. PF: the VM's network. Firewall: the IP's network (VPC: its edge tier). */
  network_id: number;
  account_id: number;
  domain_id: number;
  /** tcp, udp, icmp or all (PF: tcp or udp). */
  protocol: string;
  start_port: number | null;
  end_port: number | null;
  icmp_type: number | null;
  icmp_code: number | null;
  /** 'Add' while the rule lives (shown Active once its routers applied `generation`), 'Revoke' once deleted. */
  state: 'Add' | 'Revoke';
  /** The firewall rule `openfirewall=true` made for a port forward (on the PF row); deleted with it. */
  related_rule_id: number | null;
  for_display: Defaulted<number>;
  /** Every enforcing router has applied this generation or a later one → Active. */
  generation: Defaulted<number>;
  /** Port forwarding: the guest side. */
  dest_ip: string | null;
  private_start_port: number | null;
  private_end_port: number | null;
  vm_id: number | null;
  created: number;
  removed: number | null;
}

export interface FirewallRuleCidrsTable {
  id: Generated<number>;
  rule_id: number;
  cidr: string;
  /** source = cidrlist, dest = destcidrlist (egress). */
  kind: 'source' | 'dest';
}

export interface RuleTables {
  firewall_rules: FirewallRulesTable;
  firewall_rule_cidrs: FirewallRuleCidrsTable;
}
