/**
 * Router rows: generations, reads for the desired-state builder, and the reconciler's bookkeeping (lease,
 * applied generation/hash, health). Repositories take the executor they run in as first argument.
 */
import { randomUUID } from 'node:crypto';
import type { Selectable } from 'kysely';
import { sql } from 'kysely';
import type { Executor } from '../store/db.js';
import { isUniqueViolation, nowMs } from '../store/db.js';
import { netDb } from '../networks/tables.js';
import { getSetting, storedValue } from '../configuration/repository.js';
import type { RoutersTable } from '../vms/tables.js';
import type { BuildInput, VmRowInput, VpcRowInput } from './desired-state-builder.js';
import { publicSpecOf } from './desired-state-builder.js';
import { routerPublicIps, vpcEdgeNetworkId } from './public-inputs.js';
import { loadApplianceRules, loadRouterRules } from './rule-inputs.js';

export type RouterRow = Selectable<RoutersTable>;

/**
 * Every change that affects what a network's routers serve calls this in the SAME transaction as the change
 * (DESIGN.md guarantee 5): the reconciler only ever compares generations, it never acts on what changed.
 */
export async function bumpNetworkRouters(tx: Executor, networkId: number): Promise<void> {
  await tx
    .updateTable('routers')
    .set((eb) => ({ desired_generation: eb('desired_generation', '+', 1) }))
    .where('network_id', '=', networkId)
    .where('removed', 'is', null)
    .execute();
}

/** Every live router of every live tier of a VPC: a change to what the VPC's edge holds, or to which tier is it. */
export async function bumpVpcRouters(tx: Executor, vpcId: number): Promise<void> {
  const tiers = await netDb(tx).selectFrom('networks').select('id').where('vpc_id', '=', vpcId).execute();
  for (const t of tiers) await bumpNetworkRouters(tx, Number(t.id));
}

/**
 * What a public IP's routers hold changed (associated, released, static NAT on/off, moved): an isolated
 * network's routers, or in a VPC every tier's (routers/public-inputs.ts: the edge tier holds them, and it may be
 * any tier).
 */
export async function bumpPublicIpRouters(
  tx: Executor,
  ip: { network_id: number | null; vpc_id: number | null },
): Promise<void> {
  if (ip.vpc_id !== null) await bumpVpcRouters(tx, Number(ip.vpc_id));
  else if (ip.network_id !== null) await bumpNetworkRouters(tx, Number(ip.network_id));
}

export async function bumpRouter(tx: Executor, routerId: number, atLeast = 0): Promise<number> {
  const r = await tx
    .selectFrom('routers')
    .select('desired_generation')
    .where('id', '=', routerId)
    .executeTakeFirstOrThrow();
  const next = Math.max(Number(r.desired_generation) + 1, atLeast);
  await tx.updateTable('routers').set({ desired_generation: next }).where('id', '=', routerId).execute();
  return next;
}

export async function routerById(ex: Executor, id: number): Promise<RouterRow | undefined> {
  return ex.selectFrom('routers').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Role of CloudStack's internal LB VM: a routers row in a VPC tier that is not the tier's router (src/lb). */
export const APPLIANCE_ROLE = 'internallb' as const;

/** The network's live routers; with `appliances`, its internal LB appliances too. */
export async function liveRoutersOfNetwork(
  ex: Executor,
  networkId: number,
  opts: { appliances?: boolean } = {},
): Promise<RouterRow[]> {
  let q = ex
    .selectFrom('routers')
    .selectAll()
    .where('network_id', '=', networkId)
    .where('removed', 'is', null);
  if (!opts.appliances) q = q.where('role', '!=', APPLIANCE_ROLE);
  return q.orderBy('id').execute();
}

/** Routers whose instance may need work (everything not yet torn down after destroy), a page after `afterId`. */
export async function routersToWatchPage(ex: Executor, afterId: number, limit: number): Promise<RouterRow[]> {
  return ex
    .selectFrom('routers')
    .selectAll()
    .where('state', '!=', 'Expunged')
    .where('id', '>', afterId)
    .orderBy('id')
    .limit(limit)
    .execute();
}

/** Takes or renews this server's lease on a router. False when another live server holds it. */
export async function claimLease(
  ex: Executor,
  routerId: number,
  owner: string,
  now: number,
  leaseMs: number,
): Promise<boolean> {
  const r = await ex
    .updateTable('routers')
    .set({ lease_owner: owner, lease_until: now + leaseMs })
    .where('id', '=', routerId)
    .where((eb) =>
      eb.or([eb('lease_owner', 'is', null), eb('lease_owner', '=', owner), eb('lease_until', '<', now)]),
    )
    .executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}

export async function releaseLeases(ex: Executor, owner: string): Promise<void> {
  await ex
    .updateTable('routers')
    .set({ lease_owner: null, lease_until: null })
    .where('lease_owner', '=', owner)
    .execute();
}

export interface AppliedRecord {
  appliedGeneration: number | null;
  appliedHash: string | null;
  health: unknown;
  lastError: string | null;
  /**
   * The state the pass observed the router reach: Running (from Starting) or Stopped (from Stopping). Written only
   * if the row is still in the state the pass started from: a stop or start committed while the pass ran (it read
   * the row before) is not overwritten, and its own pass comes next.
   */
  state?: 'Running' | 'Stopped';
}

const OBSERVED_FROM: Record<'Running' | 'Stopped', RouterRow['state'][]> = {
  Running: ['Starting'],
  Stopped: ['Stopping', 'Stopped'],
};

/** Written only while holding the lease, so a server that lost it cannot overwrite the new owner's view. */
export async function recordObserved(
  ex: Executor,
  routerId: number,
  owner: string,
  now: number,
  r: AppliedRecord,
): Promise<void> {
  await ex
    .updateTable('routers')
    .set({
      applied_generation: r.appliedGeneration,
      applied_hash: r.appliedHash,
      health: r.health === undefined || r.health === null ? null : JSON.stringify(r.health),
      health_checked: now,
      // The agent answered (the "agent stopped reporting" alert, src/alerts).
      status_reported: now,
      last_error: r.lastError === null ? null : r.lastError.slice(0, 2000),
      ...(r.state
        ? {
            state: sql<
              RouterRow['state']
            >`CASE WHEN state IN (${sql.join(OBSERVED_FROM[r.state])}) THEN ${r.state} ELSE state END`,
          }
        : {}),
    })
    .where('id', '=', routerId)
    .where('lease_owner', '=', owner)
    .execute();
}

export async function recordError(
  ex: Executor,
  routerId: number,
  owner: string,
  now: number,
  message: string,
): Promise<void> {
  await ex
    .updateTable('routers')
    .set({ last_error: message.slice(0, 2000), health_checked: now })
    .where('id', '=', routerId)
    .where('lease_owner', '=', owner)
    .execute();
}

export async function setRouterState(
  ex: Executor,
  routerId: number,
  state: RouterRow['state'],
  from?: RouterRow['state'][],
): Promise<boolean> {
  let q = ex.updateTable('routers').set({ state }).where('id', '=', routerId);
  if (from) q = q.where('state', 'in', from);
  const r = await q.executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}

/**
 * Everything the builder needs for one router, read AFTER the router's desired_generation (the caller passes
 * it in): any change is committed with its bump, so rows read later are at least as new as that generation.
 */
export async function loadBuildInput(
  ex: Executor,
  router: RouterRow,
  generation: number,
): Promise<BuildInput> {
  const db = netDb(ex);
  const network = await db
    .selectFrom('networks')
    .selectAll()
    .where('id', '=', router.network_id)
    .executeTakeFirstOrThrow();
  const zone = await ex
    .selectFrom('zones')
    .selectAll()
    .where('id', '=', network.zone_id)
    .executeTakeFirstOrThrow();
  if (router.role === APPLIANCE_ROLE)
    return {
      generation,
      appliance: 'internalLb',
      router: { name: router.name, guestIp: router.guest_ip ?? '', role: router.role, publicIp: null },
      network: {
        cidr: network.network_cidr ?? network.cidr ?? '',
        gateway: network.gateway ?? '',
        networkDomain: network.network_domain,
        dns1: null,
        dns2: null,
        ipv6Cidr: null,
        type: network.type,
      },
      zone: { name: zone.name, dns1: null, dns2: null },
      useExternalDns: true,
      leaseSeconds: 0,
      vms: [],
      rules: await loadApplianceRules(ex, Number(router.id)),
    };
  const nicRows = await ex
    .selectFrom('nics')
    .innerJoin('vms', 'vms.id', 'nics.vm_id')
    .leftJoin('service_offerings', 'service_offerings.id', 'vms.service_offering_id')
    .select([
      'vms.id as vm_id',
      'vms.uuid',
      'vms.instance_name',
      'vms.name',
      'vms.user_data',
      'vms.ssh_public_keys',
      'vms.password',
      'service_offerings.display_text as offering',
      'nics.mac',
      'nics.ipv4',
      'nics.ipv6',
      'nics.is_default',
    ])
    .where('nics.network_id', '=', network.id)
    .where('vms.removed', 'is', null)
    .orderBy('nics.id')
    .execute();
  const vms = new Map<number, VmRowInput>();
  for (const n of nicRows) {
    let vm = vms.get(Number(n.vm_id));
    if (!vm) {
      vm = {
        uuid: n.uuid,
        instanceName: n.instance_name,
        hostname: n.name,
        userData: n.user_data,
        publicKeys: n.ssh_public_keys,
        password: n.password,
        serviceOfferingName: n.offering ?? null,
        nics: [],
      };
      vms.set(Number(n.vm_id), vm);
    }
    vm.nics.push({ mac: n.mac, ipv4: n.ipv4, ipv6: n.ipv6, isDefault: Number(n.is_default) === 1 });
  }
  const useExternalDns = await getSetting(ex, 'use.external.dns', { zoneId: network.zone_id });
  const lease = String(await getSetting(ex, 'stacknet.dhcp.lease.time', { zoneId: network.zone_id }));
  const pair = (await liveRoutersOfNetwork(ex, network.id)).length > 1;
  const vrrp = Number(await getSetting(ex, 'router.redundant.vrrp.interval'));
  const publicSpec = publicSpecOf(
    await routerPublicIps(ex, Number(network.id)),
    await egressDefaultAllow(ex, network),
  );
  return {
    generation,
    cloudIdentifier: await cloudIdentifier(ex),
    router: {
      name: router.name,
      guestIp: router.guest_ip ?? network.gateway ?? '',
      role: router.role,
      publicIp: router.public_ip,
      ...(pair || router.role !== 'standalone'
        ? {
            redundant: {
              virtualRouterId: (Number(network.id) % 255) + 1,
              authPass: network.uuid.replace(/-/g, '').slice(0, 8),
              vrrpIntervalSeconds: vrrp,
            },
          }
        : {}),
    },
    network: {
      cidr: network.network_cidr ?? network.cidr ?? '',
      gateway: network.gateway ?? '',
      networkDomain: network.network_domain,
      dns1: network.dns1,
      dns2: network.dns2,
      ipv6Cidr: network.ip6_cidr,
      type: network.type,
    },
    zone: { name: zone.name, dns1: zone.dns1, dns2: zone.dns2 },
    useExternalDns: Boolean(useExternalDns),
    leaseSeconds: lease === 'infinite' ? 0 : Number(lease),
    vms: [...vms.values()],
    ...(publicSpec ? { public: publicSpec } : {}),
    rules: await loadRouterRules(ex, Number(network.id)),
    ...(network.vpc_id !== null
      ? { vpc: await loadVpcInput(ex, Number(network.vpc_id), Number(network.id)) }
      : {}),
  };
}

/** The VPC of a tier and its live tiers: not removed, with a live router (the same rule as the edge's). */
async function loadVpcInput(ex: Executor, vpcId: number, networkId: number): Promise<VpcRowInput> {
  const db = netDb(ex);
  const vpc = await db.selectFrom('vpcs').select('cidr').where('id', '=', vpcId).executeTakeFirstOrThrow();
  const tiers = await db
    .selectFrom('networks')
    .select(['networks.id', 'networks.cidr', 'networks.network_cidr', 'networks.gateway'])
    .where('networks.vpc_id', '=', vpcId)
    .where('networks.removed', 'is', null)
    .where((eb) =>
      eb.exists(
        eb
          .selectFrom('routers')
          .select('routers.id')
          .whereRef('routers.network_id', '=', 'networks.id')
          .where('routers.role', '!=', APPLIANCE_ROLE)
          .where('routers.removed', 'is', null),
      ),
    )
    .orderBy('networks.id')
    .execute();
  return {
    cidr: vpc.cidr,
    networkId,
    edgeNetworkId: await vpcEdgeNetworkId(ex, vpcId),
    tiers: tiers.map((t) => ({
      networkId: Number(t.id),
      cidr: t.network_cidr ?? t.cidr ?? '',
      gateway: t.gateway ?? '',
    })),
  };
}

/** The offering's egressdefaultpolicy (1 = allow); a VPC tier's egress is its network ACL's, so: allow. */
async function egressDefaultAllow(
  ex: Executor,
  network: { vpc_id: number | null; offering_id: number | null },
): Promise<boolean> {
  if (network.vpc_id !== null) return true;
  if (network.offering_id === null) return true;
  const o = await netDb(ex)
    .selectFrom('network_offerings')
    .select('egress_default_policy')
    .where('id', '=', network.offering_id)
    .executeTakeFirst();
  return o ? Number(o.egress_default_policy) === 1 : true;
}

/**
 * CloudStack's `cloud.identifier`: a random UUID made once per installation (ConfigurationServerImpl at first
 * start) and served to every guest as metadata `cloud-identifier` = `CloudStack-{<uuid>}`. Kept under that name
 * in `configurations` (global), made on first use; not in the settings catalogue, as CloudStack files it under
 * its Hidden category. Two servers making it at once: the UNIQUE(name, scope, scope_id) keeps the first. Runs
 * outside a transaction (a unique violation would abort a PostgreSQL one).
 */
export async function cloudIdentifier(db: Executor): Promise<string> {
  const name = 'cloud.identifier';
  const have = await storedValue(db, name, 'global', 0);
  if (have) return have;
  try {
    await db
      .insertInto('configurations')
      .values({ name, scope: 'global', scope_id: 0, value: randomUUID(), updated: nowMs() })
      .execute();
  } catch (e) {
    if (!isUniqueViolation(e)) throw e;
  }
  return (await storedValue(db, name, 'global', 0))!;
}

/**
 * The agent serves a password until the guest acknowledges it (DomU `saved_password`) and reports the guest
 * addresses that did. The password then leaves the VM row, and with it the desired state of every router of the
 * network, so the other router of a redundant pair never serves it again after a failover. Only a password
 * equal to the one that was pushed (and so acknowledged) is cleared: a resetPasswordForVirtualMachine that raced
 * with the report keeps its new password.
 */
export async function clearSavedPasswords(
  tx: Executor,
  networkId: number,
  saved: ReadonlyArray<{ ip: string; password: string }>,
): Promise<number> {
  let cleared = 0;
  for (const { ip, password } of saved) {
    const r = await tx
      .updateTable('vms')
      .set({ password: null })
      .where('password', '=', password)
      .where('id', 'in', (eb) =>
        eb
          .selectFrom('nics')
          .select('nics.vm_id')
          .where('nics.network_id', '=', networkId)
          .where('nics.is_default', '=', 1)
          .where('nics.ipv4', '=', ip),
      )
      .executeTakeFirst();
    cleared += Number(r.numUpdatedRows);
  }
  if (cleared > 0) await bumpNetworkRouters(tx, networkId);
  return cleared;
}
