/**
 * PURE: a router's public IPs → its public interfaces. The desired-state builder (which addresses go on which
 * interface) and the driver runtime (which interfaces to plug on which public bridge) both name the interfaces
 * here, so the server that plugs `eth3` and the agent that addresses it always mean the same VLAN.
 */
import { publicInterfaceName } from '../agent/desired-state.js';

export interface RouterPublicIp {
  /** ip_allocations id and the public IP's API id. */
  id: number;
  uuid: string | null;
  address: string;
  sourceNat: boolean;
  /** The guest address it is 1:1 NATed to (enableStaticNat), or null. */
  staticNatGuestIp: string | null;
  staticNatVmId: number | null;
  /** `untagged` or the VLAN id; the range's gateway and prefix length. */
  vlan: string;
  gateway: string;
  prefix: number;
}

export interface PublicNicGroup {
  /** `eth2`, `eth3`, ... (publicInterfaceName). */
  interface: string;
  vlan: string;
  gateway: string;
  prefix: number;
  /** The source-NAT address first when it is on this VLAN, then by address. */
  ips: RouterPublicIp[];
}

/**
 * One interface per public VLAN: the source-NAT address's VLAN is eth2 (CloudStack's public NIC), the other VLANs
 * follow in VLAN order (untagged first, then by number). With two ranges on one VLAN the interface takes the
 * gateway and prefix of its first address (the source NAT's, else the lowest).
 */
export function groupPublicNics(ips: readonly RouterPublicIp[]): PublicNicGroup[] {
  const byVlan = new Map<string, RouterPublicIp[]>();
  for (const ip of [...ips].sort(comparePublicIps)) {
    const list = byVlan.get(ip.vlan);
    if (list) list.push(ip);
    else byVlan.set(ip.vlan, [ip]);
  }
  const snatVlan = ips.find((i) => i.sourceNat)?.vlan;
  const vlans = [...byVlan.keys()].sort((a, b) =>
    a === snatVlan ? -1 : b === snatVlan ? 1 : compareVlans(a, b),
  );
  return vlans.map((vlan, i) => {
    const list = byVlan.get(vlan)!;
    return {
      interface: publicInterfaceName(i),
      vlan,
      gateway: list[0]!.gateway,
      prefix: list[0]!.prefix,
      ips: list,
    };
  });
}

/** Source NAT first, then by address. */
export function comparePublicIps(a: RouterPublicIp, b: RouterPublicIp): number {
  if (a.sourceNat !== b.sourceNat) return a.sourceNat ? -1 : 1;
  return ipv4Number(a.address) - ipv4Number(b.address);
}

function compareVlans(a: string, b: string): number {
  const na = a === 'untagged' ? -1 : Number(a);
  const nb = b === 'untagged' ? -1 : Number(b);
  if (Number.isFinite(na) && Number.isFinite(nb) && na !== nb) return na - nb;
  return a < b ? -1 : a > b ? 1 : 0;
}

export function ipv4Number(ip: string): number {
  return ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}
