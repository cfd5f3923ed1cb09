/**
 * What listNetworks/listVPCs (and every command answering a network or VPC) show: rows in, CloudStack's response
 * objects out, with the related zones, offerings, owners and tags read in one query each.
 */
import { aclListNames } from '../network-acls/repository.js';
import { displayPath } from '../accounts/repository.js';
import { tagsFor } from '../tags/service.js';
import { parseCidr, prefixToNetmask } from '../ipam/cidr.js';
import { domainsByIds, ownerFields, ownerNames } from '../infrastructure/owners.js';
import { decodeServices, servicesResponse } from '../offerings/defaults.js';
import { reservedIpRange } from './guest-cidr.js';
import type { NetworkOfferingRow, NetworkRow, VpcRow } from './repository.js';
import type { NetExecutor as Executor } from './tables.js';

const csDate = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, '+0000');

export async function networkResponses(
  db: Executor,
  rows: readonly NetworkRow[],
): Promise<Record<string, unknown>[]> {
  if (rows.length === 0) return [];
  const ids = <T>(f: (r: NetworkRow) => T | null) => [
    ...new Set(rows.map(f).filter((x): x is T => x !== null)),
  ];
  const zones = new Map(
    (
      await db
        .selectFrom('zones')
        .select(['id', 'uuid', 'name'])
        .where(
          'id',
          'in',
          ids((r) => r.zone_id),
        )
        .execute()
    ).map((z) => [z.id, z]),
  );
  const offIds = ids((r) => r.offering_id);
  const offerings = new Map(
    offIds.length
      ? (await db.selectFrom('network_offerings').selectAll().where('id', 'in', offIds).execute()).map(
          (o) => [o.id, o],
        )
      : [],
  );
  const vpcIds = ids((r) => r.vpc_id);
  const vpcs = new Map(
    vpcIds.length
      ? (await db.selectFrom('vpcs').select(['id', 'uuid', 'name']).where('id', 'in', vpcIds).execute()).map(
          (v) => [v.id, v],
        )
      : [],
  );
  const acls = await aclListNames(
    db,
    rows.map((r) => r.network_acl_id),
  );
  const pnIds = ids((r) => r.physical_network_id);
  const pns = new Map(
    pnIds.length
      ? (
          await db
            .selectFrom('physical_networks')
            .select(['id', 'uuid', 'isolation'])
            .where('id', 'in', pnIds)
            .execute()
        ).map((x) => [x.id, x])
      : [],
  );
  const owners = await ownerNames(
    db,
    rows.map((r) => r.account_id),
  );
  const tags = await tagsFor(
    db,
    'Network',
    rows.map((r) => r.id),
  );
  const doms = await domainsByIds(
    db,
    rows.map((r) => (r.account_id === null ? r.domain_id : null)),
  );
  return rows.map((n) => {
    const zone = zones.get(n.zone_id);
    const off: NetworkOfferingRow | undefined =
      n.offering_id !== null ? offerings.get(n.offering_id) : undefined;
    const vpc = n.vpc_id !== null ? vpcs.get(n.vpc_id) : undefined;
    const pn = n.physical_network_id !== null ? pns.get(n.physical_network_id) : undefined;
    const prefix = pn?.isolation === 'VXLAN' ? 'vxlan' : 'vlan';
    const dom = n.account_id === null && n.domain_id !== null ? doms.get(n.domain_id) : undefined;
    const reservation = n.cidr
      ? reservedIpRange({
          cidr: parseCidr(n.cidr),
          networkCidr: n.network_cidr ? parseCidr(n.network_cidr) : undefined,
        })
      : undefined;
    return {
      id: n.uuid,
      name: n.name,
      displaytext: n.display_text ?? n.name,
      broadcastdomaintype: pn?.isolation === 'VXLAN' ? 'Vxlan' : 'Vlan',
      traffictype: 'Guest',
      gateway: n.gateway ?? undefined,
      cidr: n.cidr ?? undefined,
      netmask: n.cidr ? prefixToNetmask(parseCidr(n.cidr).prefix) : (n.netmask ?? undefined),
      networkcidr: n.network_cidr ?? undefined,
      reservediprange: reservation || undefined,
      zoneid: zone?.uuid,
      zonename: zone?.name,
      networkofferingid: off?.uuid,
      networkofferingname: off?.name,
      networkofferingdisplaytext: off?.display_text,
      networkofferingconservemode: off ? off.conserve_mode === 1 : undefined,
      networkofferingavailability: off?.availability,
      issystem: false,
      state: n.state,
      related: n.uuid,
      broadcasturi: n.vnet !== null ? `${prefix}://${n.vnet}` : undefined,
      vlan: n.vnet !== null ? String(n.vnet) : undefined,
      dns1: n.dns1 ?? undefined,
      dns2: n.dns2 ?? undefined,
      type: n.type,
      acltype: n.acl_type ?? (n.account_id === null ? 'Domain' : 'Account'),
      ...ownerFields(n.account_id !== null ? owners.get(n.account_id) : undefined),
      ...(dom ? { domainid: dom.uuid, domain: dom.name, domainpath: displayPath(dom.path) } : {}),
      subdomainaccess: n.account_id === null ? true : undefined,
      service: off ? servicesResponse(decodeServices(off.services)) : [],
      networkdomain: n.network_domain ?? undefined,
      physicalnetworkid: pn?.uuid,
      restartrequired: n.restart_required === 1,
      specifyipranges: off ? off.specify_ip_ranges === 1 : false,
      vpcid: vpc?.uuid,
      vpcname: vpc?.name,
      // A tier answers its list once it has one (CloudStack leaves aclid out while network_acl_id is NULL).
      aclid: n.network_acl_id !== null ? acls.get(n.network_acl_id)?.uuid : undefined,
      aclname: n.network_acl_id !== null ? acls.get(n.network_acl_id)?.name : undefined,
      canusefordeploy: n.state !== 'Destroy',
      ispersistent: off ? off.is_persistent === 1 : false,
      egressdefaultpolicy: off ? off.egress_default_policy === 1 : false,
      ip6cidr: n.ip6_cidr ?? undefined,
      ip6gateway: n.ip6_gateway ?? undefined,
      displaynetwork: true,
      isdefault: false,
      // CloudStack's default VR interface MTUs (vr.public/private.interface.mtu): the public side exists on
      // isolated networks and VPC tiers only; an L2 network has no router interface at all.
      publicmtu: n.type === 'Isolated' ? 1500 : undefined,
      privatemtu: n.type === 'L2' ? undefined : 1500,
      redundantrouter: false,
      strechedl2subnet: false,
      hasannotations: false,
      supportsvmautoscaling: false,
      tags: tags.get(n.id) ?? [],
      created: csDate(n.created),
    };
  });
}

export async function vpcResponses(
  db: Executor,
  rows: readonly VpcRow[],
): Promise<Record<string, unknown>[]> {
  if (rows.length === 0) return [];
  const out: Record<string, unknown>[] = [];
  const owners = await ownerNames(
    db,
    rows.map((r) => r.account_id),
  );
  const tags = await tagsFor(
    db,
    'Vpc',
    rows.map((r) => r.id),
  );
  for (const v of rows) {
    const zone = await db
      .selectFrom('zones')
      .select(['uuid', 'name'])
      .where('id', '=', v.zone_id)
      .executeTakeFirstOrThrow();
    const off = await db
      .selectFrom('vpc_offerings')
      .selectAll()
      .where('id', '=', v.vpc_offering_id)
      .executeTakeFirstOrThrow();
    const tiers = await db
      .selectFrom('networks')
      .selectAll()
      .where('vpc_id', '=', v.id)
      .where('removed', 'is', null)
      .orderBy('id')
      .execute();
    out.push({
      id: v.uuid,
      name: v.name,
      displaytext: v.display_text ?? v.name,
      state: v.state,
      zoneid: zone.uuid,
      zonename: zone.name,
      cidr: v.cidr,
      vpcofferingid: off.uuid,
      vpcofferingname: off.name,
      ...ownerFields(owners.get(v.account_id)),
      network: await networkResponses(db, tiers),
      networkdomain: v.network_domain ?? undefined,
      restartrequired: v.restart_required === 1,
      service: servicesResponse(decodeServices(off.services)),
      dns1: v.dns1 ?? undefined,
      dns2: v.dns2 ?? undefined,
      redundantvpcrouter: false,
      regionlevelvpc: false,
      distributedvpcrouter: false,
      fordisplay: true,
      hasannotations: false,
      tags: tags.get(v.id) ?? [],
      created: csDate(v.created),
    });
  }
  return out;
}
