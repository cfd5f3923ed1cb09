/**
 * A sample zone for a first look: zone, pod, physical network with its traffic types, a public range and an
 * implemented isolated network (VLAN + source-NAT IP), built through the same services the API uses, in one
 * transaction. Idempotent: an existing demo zone is reported, not rebuilt.
 */
import type { Caller } from '../../api/command.js';
import type { Store } from '../../store/db.js';
import { nowMs, transaction } from '../../store/db.js';
import { makeNetCtx } from '../../infrastructure/net-context.js';
import {
  addTrafficType,
  createPhysicalNetwork,
  updatePhysicalNetwork,
} from '../../infrastructure/physical-networks.js';
import { createVlanIpRange } from '../../infrastructure/vlan-ip-ranges.js';
import { createPod, createZone } from '../../infrastructure/zones.js';
import { offeringIdByName } from './offering-lookup.js';
import { createNetwork } from '../../networks/service.js';
import { implementNetwork } from '../../networks/lifecycle.js';
import { DEFAULT_ISOLATED_OFFERING } from '../../offerings/defaults.js';
import { formatIp } from '../../ipam/address.js';
import { addressFromKey } from '../../ipam/address.js';

export const DEMO_ZONE = 'demo-zone';

export interface DemoSummary {
  created: boolean;
  zone: { id: string; name: string };
  network?: { id: string; name: string; cidr: string | null; vlan: number | null; sourceNatIp?: string };
}

export async function buildDemo(store: Store, admin: Caller): Promise<DemoSummary> {
  return transaction(store, async (tx) => {
    const ctx = makeNetCtx(tx, admin, nowMs());
    const existing = await ctx.tx
      .selectFrom('zones')
      .select(['uuid', 'name'])
      .where('name', '=', DEMO_ZONE)
      .where('removed', 'is', null)
      .executeTakeFirst();
    if (existing) return { created: false, zone: { id: existing.uuid, name: existing.name } };
    const zone = await createZone(ctx, {
      name: DEMO_ZONE,
      networktype: 'Advanced',
      dns1: '8.8.8.8',
      dns2: '1.1.1.1',
      internaldns1: '10.0.0.2',
      guestcidraddress: '10.1.1.0/24',
    });
    await createPod(ctx, {
      zoneid: zone.uuid,
      name: 'demo-pod',
      gateway: '192.168.100.1',
      netmask: '255.255.255.0',
      startip: '192.168.100.10',
      endip: '192.168.100.50',
    });
    const pn = await createPhysicalNetwork(ctx, {
      zoneid: zone.uuid,
      name: 'demo-physnet',
      isolationmethods: 'VLAN',
      vlan: '100-199',
    });
    for (const [traffictype, label] of [
      ['Guest', 'cloudbr1'],
      ['Public', 'cloudbr0'],
      ['Management', 'cloudbr0'],
    ] as const) {
      await addTrafficType(ctx, { physicalnetworkid: pn.uuid, traffictype, kvmnetworklabel: label });
    }
    await updatePhysicalNetwork(ctx, { id: pn.uuid, state: 'Enabled' });
    await createVlanIpRange(ctx, {
      zoneid: zone.uuid,
      vlan: '10',
      gateway: '203.0.113.1',
      netmask: '255.255.255.0',
      startip: '203.0.113.10',
      endip: '203.0.113.100',
      forvirtualnetwork: true,
    });
    const network = await createNetwork(ctx, {
      zoneid: zone.uuid,
      name: 'demo-network',
      displaytext: 'demo isolated network',
      networkofferingid: await offeringIdByName(ctx, DEFAULT_ISOLATED_OFFERING),
    });
    const implemented = await implementNetwork(ctx, network.id);
    const snat = await ctx.tx
      .selectFrom('ip_allocations')
      .select(['address', 'family'])
      .where('network_id', '=', network.id)
      .where('source_nat', '=', 1)
      .executeTakeFirst();
    return {
      created: true,
      zone: { id: zone.uuid, name: zone.name },
      network: {
        id: implemented.uuid,
        name: implemented.name,
        cidr: implemented.cidr,
        vlan: implemented.vnet,
        sourceNatIp: snat ? formatIp(addressFromKey(4, snat.address)) : undefined,
      },
    };
  });
}
