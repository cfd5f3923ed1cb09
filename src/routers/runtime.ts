/** A router row → what a driver needs to run it (network bridge, addresses, the unsealed control secret). */
import type { Executor } from '../store/db.js';
import { netDb } from '../networks/tables.js';
import type { GuestNetworkRuntime, RouterRuntime } from '../drivers/types.js';
import type { RouterRow } from './repository.js';
import { APPLIANCE_ROLE } from './repository.js';
import { unsealSecret } from './secrets.js';
import { routerPublicNics } from './public-inputs.js';

export async function guestNetworkRuntime(ex: Executor, networkId: number): Promise<GuestNetworkRuntime> {
  const { vpcId: _vpcId, ...network } = await loadNetwork(ex, networkId);
  return network;
}

async function loadNetwork(
  ex: Executor,
  networkId: number,
): Promise<GuestNetworkRuntime & { vpcId: number | null }> {
  const n = await netDb(ex)
    .selectFrom('networks')
    .leftJoin('physical_networks', 'physical_networks.id', 'networks.physical_network_id')
    .select([
      'networks.id',
      'networks.vnet',
      'networks.cidr',
      'networks.network_cidr',
      'networks.gateway',
      'networks.vpc_id',
      'physical_networks.isolation',
    ])
    .where('networks.id', '=', networkId)
    .executeTakeFirstOrThrow();
  return {
    id: Number(n.id),
    vnet: n.vnet === null ? null : Number(n.vnet),
    isolation: n.isolation === 'VXLAN' ? 'VXLAN' : 'VLAN',
    cidr: n.network_cidr ?? n.cidr ?? '',
    gateway: n.gateway ?? '',
    vpcId: n.vpc_id === null ? null : Number(n.vpc_id),
  };
}

const secrets = new Map<string, string>();

export async function routerRuntime(ex: Executor, r: RouterRow): Promise<RouterRuntime> {
  let secret = secrets.get(r.secret_sealed);
  if (secret === undefined) {
    secret = await unsealSecret(ex, r.secret_sealed);
    secrets.set(r.secret_sealed, secret);
  }
  const { vpcId, ...network } = await loadNetwork(ex, Number(r.network_id));
  // An internal LB appliance sits on its tier's bridge only: no VPC transit, no public side.
  const appliance = r.role === APPLIANCE_ROLE;
  return {
    id: Number(r.id),
    uuid: r.uuid,
    name: r.name,
    zoneId: Number(r.zone_id),
    network,
    guestIp: r.guest_ip ?? network.gateway,
    guestMac: r.guest_mac,
    redundant: r.role === 'primary' || r.role === 'backup',
    vpcId: appliance ? null : vpcId,
    ...(appliance ? { appliance: 'internalLb' as const } : {}),
    controlIp: r.control_ip ?? '',
    controlPort: Number(r.control_port ?? 3922),
    secret,
    publicNics: (appliance ? [] : await routerPublicNics(ex, Number(r.network_id))).map((g) => ({
      interface: g.interface,
      vlan: g.vlan,
      gateway: g.gateway,
      prefix: g.prefix,
    })),
  };
}
