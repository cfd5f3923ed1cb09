/** Rows for router tests without the API: a zone, an implemented network, routers and VMs with NICs. */
import { randomUUID } from 'node:crypto';
import type { Executor, Store } from '../../store/db.js';
import type { Caller } from '../../api/command.js';
import { sealSecret } from '../secrets.js';
import { defaultRootAdmin } from '../../accounts/repository.js';
import { addressKey, parseIp } from '../../ipam/address.js';
import { netDb } from '../../networks/tables.js';
import { portableScope, publicScope } from '../../infrastructure/scopes.js';

export async function insertZoneAndNetwork(
  ex: Executor,
  o: { cidr?: string; gateway?: string; domain?: string } = {},
): Promise<{ zoneId: number; networkId: number }> {
  const zoneId = await insertZone(ex);
  const networkId = await insertNetwork(ex, zoneId, o);
  return { zoneId, networkId };
}

/** A zone (DNS 192.0.2.53, nothing else set); its id. */
export async function insertZone(ex: Executor, name = 'zone1'): Promise<number> {
  const zu = randomUUID();
  await ex
    .insertInto('zones')
    .values({
      uuid: zu,
      name,
      description: null,
      dns1: '192.0.2.53',
      dns2: null,
      internaldns1: null,
      internaldns2: null,
      ip6dns1: null,
      ip6dns2: null,
      guest_cidr: null,
      domain: null,
      created: Date.now(),
      removed: null,
    })
    .execute();
  const zone = await ex.selectFrom('zones').select('id').where('uuid', '=', zu).executeTakeFirstOrThrow();
  return Number(zone.id);
}

/** An implemented isolated network (a VPC tier with `vpcId`) in an existing zone. */
export async function insertNetwork(
  ex: Executor,
  zoneId: number,
  o: { cidr?: string; gateway?: string; domain?: string; vpcId?: number; vnet?: number } = {},
): Promise<number> {
  const nu = randomUUID();
  await ex
    .insertInto('networks')
    .values({
      uuid: nu,
      zone_id: zoneId,
      physical_network_id: null,
      account_id: null,
      domain_id: null,
      name: 'net1',
      display_text: null,
      type: 'Isolated',
      state: 'Implemented',
      cidr: o.cidr ?? '10.1.1.0/24',
      gateway: o.gateway ?? '10.1.1.1',
      netmask: '255.255.255.0',
      network_cidr: null,
      ip6_cidr: null,
      ip6_gateway: null,
      network_domain: o.domain ?? 'cs1cloud.internal',
      vnet: o.vnet ?? 100,
      vpc_id: o.vpcId ?? null,
      offering_id: null,
      created: Date.now(),
      removed: null,
    })
    .execute();
  const net = await ex.selectFrom('networks').select('id').where('uuid', '=', nu).executeTakeFirstOrThrow();
  return Number(net.id);
}

export async function insertRouter(
  ex: Executor,
  zoneId: number,
  networkId: number,
  o: { secret?: string; controlIp?: string } = {},
): Promise<number> {
  const uuid = randomUUID();
  await ex
    .insertInto('routers')
    .values({
      uuid,
      name: 'r-x-VM',
      network_id: networkId,
      zone_id: zoneId,
      account_id: null,
      domain_id: null,
      state: 'Starting',
      role: 'standalone',
      guest_ip: '10.1.1.1',
      guest_mac: '02:00:00:00:ff:01',
      control_ip: o.controlIp ?? '169.254.3.3',
      control_port: 3922,
      secret_sealed: await sealSecret(ex, o.secret ?? 'test-secret'),
      public_ip: null,
      desired_generation: 1,
      applied_generation: null,
      applied_hash: null,
      health: null,
      health_checked: null,
      last_error: null,
      lease_owner: null,
      lease_until: null,
      version: '4.18.0',
      created: Date.now(),
      removed: null,
    })
    .execute();
  const r = await ex.selectFrom('routers').select('id').where('uuid', '=', uuid).executeTakeFirstOrThrow();
  await ex
    .updateTable('routers')
    .set({ name: `r-${r.id}-VM` })
    .where('id', '=', r.id)
    .execute();
  return Number(r.id);
}

export async function insertVmWithNic(
  ex: Executor,
  zoneId: number,
  networkId: number,
  o: { name: string; ip: string; mac: string; userData?: string },
): Promise<number> {
  const uuid = randomUUID();
  await ex
    .insertInto('vms')
    .values({
      uuid,
      instance_name: 'i-x',
      name: o.name,
      display_name: o.name,
      state: 'Running',
      zone_id: zoneId,
      account_id: 2,
      domain_id: 1,
      user_id: null,
      service_offering_id: null,
      template_id: null,
      user_data: o.userData ?? null,
      keypairs: null,
      ssh_public_keys: null,
      password: null,
      destroyed: null,
      created: Date.now(),
      removed: null,
    })
    .execute();
  const vm = await ex.selectFrom('vms').select('id').where('uuid', '=', uuid).executeTakeFirstOrThrow();
  await ex
    .insertInto('nics')
    .values({
      uuid: randomUUID(),
      vm_id: vm.id,
      network_id: networkId,
      zone_id: zoneId,
      mac: o.mac,
      ipv4: o.ip,
      ipv6: null,
      ip_allocation_id: null,
      is_default: 1,
      device_id: 0,
      created: Date.now(),
    })
    .execute();
  return Number(vm.id);
}

export async function insertVpc(ex: Executor, zoneId: number, cidr = '10.8.0.0/16'): Promise<number> {
  const db = netDb(ex);
  const offering = await db.selectFrom('vpc_offerings').select('id').orderBy('id').executeTakeFirstOrThrow();
  const uuid = randomUUID();
  await db
    .insertInto('vpcs')
    .values({
      uuid,
      zone_id: zoneId,
      account_id: 2,
      domain_id: 1,
      name: 'vpc1',
      display_text: 'vpc1',
      cidr,
      vpc_offering_id: offering.id,
      network_domain: 'vpc1.internal',
      state: 'Enabled',
      restart_required: 0,
      dns1: null,
      dns2: null,
      created: Date.now(),
      removed: null,
    })
    .execute();
  const v = await db.selectFrom('vpcs').select('id').where('uuid', '=', uuid).executeTakeFirstOrThrow();
  return Number(v.id);
}

/**
 * A public IP of the zone (or a portable one) on its own range `<gateway>/<prefix>` and VLAN, associated with a
 * network and/or VPC, as associateIpAddress and enableStaticNat leave it.
 */
export async function insertPublicIp(
  ex: Executor,
  zoneId: number,
  o: {
    address: string;
    gateway: string;
    netmask?: string;
    vlan: string;
    networkId?: number;
    vpcId?: number;
    sourceNat?: boolean;
    staticNat?: { vmId: number; guestIp: string };
    portable?: boolean;
    state?: 'Allocated' | 'Allocating';
  },
): Promise<number> {
  const db = netDb(ex);
  const key = addressKey(parseIp(o.address));
  const netmask = o.netmask ?? '255.255.255.0';
  let rangeId: number;
  if (o.portable) {
    const uuid = randomUUID();
    await db
      .insertInto('portable_ip_ranges')
      .values({
        uuid,
        region_id: 1,
        gateway: o.gateway,
        netmask,
        start_key: key,
        end_key: key,
        vlan_tag: o.vlan,
        created: Date.now(),
      })
      .execute();
    rangeId = Number(
      (
        await db
          .selectFrom('portable_ip_ranges')
          .select('id')
          .where('uuid', '=', uuid)
          .executeTakeFirstOrThrow()
      ).id,
    );
  } else {
    const uuid = randomUUID();
    await db
      .insertInto('public_ip_ranges')
      .values({
        uuid,
        zone_id: zoneId,
        physical_network_id: null,
        vlan_tag: o.vlan,
        gateway: o.gateway,
        netmask,
        family: 4,
        start_key: key,
        end_key: key,
        ip6_gateway: null,
        ip6_cidr: null,
        ip6_start_key: null,
        ip6_end_key: null,
        vlan_type: 'VirtualNetwork',
        network_id: null,
        account_id: null,
        domain_id: null,
        created: Date.now(),
        removed: null,
      })
      .execute();
    rangeId = Number(
      (
        await db
          .selectFrom('public_ip_ranges')
          .select('id')
          .where('uuid', '=', uuid)
          .executeTakeFirstOrThrow()
      ).id,
    );
  }
  const uuid = randomUUID();
  await db
    .insertInto('ip_allocations')
    .values({
      scope: o.portable ? portableScope(1) : publicScope(zoneId),
      family: 4,
      address: key,
      range_id: rangeId,
      state: o.state ?? 'Allocated',
      owner_kind: 'publicip',
      owner_id: null,
      zone_id: zoneId,
      account_id: 2,
      domain_id: 1,
      network_id: o.networkId ?? null,
      vpc_id: o.vpcId ?? null,
      vm_id: o.staticNat?.vmId ?? null,
      source_nat: o.sourceNat ? 1 : 0,
      is_system: 0,
      uuid,
      static_nat: o.staticNat ? 1 : 0,
      vm_ip: o.staticNat?.guestIp ?? null,
      for_display: 1,
      created: Date.now(),
      updated: Date.now(),
    })
    .execute();
  const a = await db
    .selectFrom('ip_allocations')
    .select('id')
    .where('uuid', '=', uuid)
    .executeTakeFirstOrThrow();
  return Number(a.id);
}

/** The bootstrapped admin as a caller, for tests that call services without the API. */
export async function adminCaller(store: Store): Promise<Caller> {
  const admin = await defaultRootAdmin(store.db);
  if (!admin) throw new Error('no bootstrapped admin in this store');
  return admin.caller;
}
