/**
 * The rules a network's router enforces, as RuleSpecs: port forwards and firewall rules on every public IP the
 * router holds (routers/public-inputs.ts: in a VPC the edge tier's router holds them all) and the network's
 * egress rules. Deleted rules (state Revoke, `removed` set) are not sent.
 */
import type {
  EgressRuleSpec,
  FirewallRuleSpec,
  PortForwardRuleSpec,
  RuleSpec,
} from '../agent/desired-state.js';
import { netDb } from '../networks/tables.js';
import { routerPublicIps } from '../routers/public-inputs.js';
import type { Executor } from '../store/db.js';
import { cidrsOf } from './repository.js';
import type { RuleRow } from './repository.js';

const ANY = '0.0.0.0/0';

export async function ruleSpecsForNetwork(ex: Executor, networkId: number): Promise<RuleSpec[]> {
  const db = netDb(ex);
  const ips = await routerPublicIps(ex, networkId);
  const ipById = new Map(ips.map((i) => [i.id, i.address]));
  const onIps = ips.length
    ? await db
        .selectFrom('firewall_rules')
        .selectAll()
        .where('ip_allocation_id', 'in', [...ipById.keys()])
        .where('purpose', '!=', 'LoadBalancing')
        .where('removed', 'is', null)
        .execute()
    : [];
  const egress = await db
    .selectFrom('firewall_rules')
    .selectAll()
    .where('network_id', '=', networkId)
    .where('traffic_type', '=', 'Egress')
    .where('removed', 'is', null)
    .execute();
  const rows: RuleRow[] = [...onIps, ...egress];
  const cidrs = await cidrsOf(
    db,
    rows.map((r) => Number(r.id)),
  );
  const out: RuleSpec[] = [];
  for (const r of rows) {
    const c = cidrs.get(Number(r.id))!;
    const ports =
      r.start_port !== null ? { start: r.start_port, end: r.end_port ?? r.start_port } : undefined;
    const icmp =
      r.protocol === 'icmp'
        ? {
            ...(r.icmp_type !== null && r.icmp_type !== -1 ? { icmpType: r.icmp_type } : {}),
            ...(r.icmp_code !== null && r.icmp_code !== -1 ? { icmpCode: r.icmp_code } : {}),
          }
        : {};
    if (r.purpose === 'PortForwarding') {
      if (!r.dest_ip || !ports) continue;
      const pf: PortForwardRuleSpec = {
        kind: 'portForward',
        id: r.uuid,
        protocol: r.protocol as 'tcp' | 'udp',
        publicIp: ipById.get(Number(r.ip_allocation_id))!,
        publicPorts: ports,
        guestIp: r.dest_ip,
        privatePorts: { start: r.private_start_port!, end: r.private_end_port ?? r.private_start_port! },
        sourceCidrs: c.source.length ? c.source : [ANY],
      };
      out.push(pf);
    } else if (r.traffic_type === 'Ingress') {
      const fw: FirewallRuleSpec = {
        kind: 'firewall',
        id: r.uuid,
        protocol: r.protocol as FirewallRuleSpec['protocol'],
        ...(ports ? { ports } : {}),
        ...icmp,
        publicIp: ipById.get(Number(r.ip_allocation_id))!,
        sourceCidrs: c.source.length ? c.source : [ANY],
      };
      out.push(fw);
    } else {
      const eg: EgressRuleSpec = {
        kind: 'egress',
        id: r.uuid,
        protocol: r.protocol as EgressRuleSpec['protocol'],
        ...(ports ? { ports } : {}),
        ...icmp,
        sourceCidrs: c.source,
        destCidrs: c.dest,
      };
      out.push(eg);
    }
  }
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}
