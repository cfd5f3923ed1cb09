/**
 * CloudStack's host and cluster commands over the hosts `stacknet host-agent` registered (src/hosts): listHosts,
 * addHost, updateHost, deleteHost, prepareHostForMaintenance, cancelHostMaintenance, listClusters, addCluster;
 * listInfrastructure's counts. listStoragePools and listSystemVms answer empty lists (stacknet has no primary
 * storage or system VMs; routers are listed by listRouters), as CloudStack answers for a zone without any.
 */
import { randomUUID } from 'node:crypto';
import { URL } from 'node:url';
import { defineCommand, listResult, objectResult, refParams, rootAdminOnly } from '../api/command.js';
import type { AnyCommand, CommandContext, ParamSpecs, ResponseObject } from '../api/command.js';
import { csDate } from '../api/envelope.js';
import { keywordMatch, pageArray, pageOf } from '../api/list.js';
import { referenceParamTypes } from '../api/reference/cloudstack-4.18.generated.js';
import { countOpenAlerts, clearAlert } from '../alerts/service.js';
import { CloudStackError, invalidParameter } from '../errors/catalogue.js';
import type { Executor } from '../store/db.js';
import { isUniqueViolation } from '../store/db.js';
import type { ClusterRow, HostRow } from './repository.js';
import { createCluster, liveHostByUuid, reportedStatus } from './repository.js';
import { hostLoads } from './placement.js';
import { refreshAllHosts } from './desired-state.js';
import { countLiveHosts, hostDownKey, hostEvent } from './service.js';
import type { HostResourceState } from './tables.js';

function emptyList(name: 'listStoragePools' | 'listSystemVms', item: string) {
  return defineCommand({
    name,
    roles: rootAdminOnly,
    params: referenceParamTypes[name] as ParamSpecs,
    async handler(p, ctx) {
      await pageOf(ctx.store.db, p);
      return listResult(item, [], 0);
    },
  });
}

async function countLive(db: Executor, table: 'zones' | 'pods' | 'routers' | 'clusters'): Promise<number> {
  const r = await db
    .selectFrom(table)
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('removed', 'is', null)
    .executeTakeFirstOrThrow();
  return Number(r.n);
}

/**
 * listInfrastructure: counts for the UI's Infrastructure page. Objects stacknet does not have are 0; routers are
 * every router not yet expunged, alerts those not archived. stacknet keeps no registry of management servers
 * (they share the database and lease work), so it reports the one answering.
 */
const listInfrastructure = defineCommand({
  name: 'listInfrastructure',
  roles: rootAdminOnly,
  params: {},
  async handler(_p, ctx) {
    const db = ctx.store.db;
    return objectResult('infrastructure', {
      zones: await countLive(db, 'zones'),
      pods: await countLive(db, 'pods'),
      clusters: await countLive(db, 'clusters'),
      hosts: await countLiveHosts(db),
      storagepools: 0,
      imagestores: 0,
      systemvms: 0,
      routers: await countLive(db, 'routers'),
      ilbvms: 0,
      managementservers: 1,
      cpusockets: await countLiveHosts(db),
      alerts: await countOpenAlerts(db),
    });
  },
});

const pct = (used: number, total: number) => `${total > 0 ? ((used / total) * 100).toFixed(2) : '0.00'}%`;
const MiB = 1024 * 1024;

async function names(ex: Executor, h: HostRow) {
  const zone = await ex
    .selectFrom('zones')
    .select(['uuid', 'name'])
    .where('id', '=', h.zone_id)
    .executeTakeFirst();
  const pod = await ex
    .selectFrom('pods')
    .select(['uuid', 'name'])
    .where('id', '=', h.pod_id)
    .executeTakeFirst();
  const cluster = await ex
    .selectFrom('clusters')
    .select(['uuid', 'name', 'cluster_type'])
    .where('id', '=', h.cluster_id)
    .executeTakeFirst();
  return { zone, pod, cluster };
}

/** CloudStack's HostResponse for a host, with its allocation (placement.ts hostLoads) and what it reported. */
export async function hostResponse(ex: Executor, h: HostRow): Promise<ResponseObject> {
  const { zone, pod, cluster } = await names(ex, h);
  const load = (await hostLoads(ex, [h])).get(Number(h.id))!;
  const cpuTotal = Number(h.cpus) * Number(h.cpu_speed);
  const memTotal = Number(h.memory_mib) * MiB;
  const memAllocated = load.memoryAllocatedMiB * MiB;
  const status = reportedStatus(h);
  return {
    id: h.uuid,
    name: h.name,
    type: 'Routing',
    hypervisor: 'KVM',
    state: h.state,
    resourcestate: h.resource_state,
    zoneid: zone?.uuid,
    zonename: zone?.name,
    podid: pod?.uuid,
    podname: pod?.name,
    clusterid: cluster?.uuid,
    clustername: cluster?.name,
    clustertype: cluster?.cluster_type,
    ipaddress: h.address,
    cpunumber: Number(h.cpus),
    cpusockets: 1,
    cpuspeed: Number(h.cpu_speed),
    cpuallocated: pct(load.cpuAllocatedMhz, cpuTotal),
    cpuallocatedvalue: load.cpuAllocatedMhz,
    cpuallocatedpercentage: pct(load.cpuAllocatedMhz, cpuTotal),
    cpuallocatedwithoverprovisioning: pct(load.cpuAllocatedMhz, cpuTotal),
    cpuwithoverprovisioning: String(cpuTotal),
    memorytotal: memTotal,
    memorywithoverprovisioning: String(memTotal),
    memoryallocated: memAllocated,
    memoryallocatedbytes: memAllocated,
    memoryallocatedpercentage: pct(memAllocated, memTotal),
    hasenoughcapacity: memAllocated < memTotal && load.cpuAllocatedMhz < cpuTotal,
    islocalstorageactive: false,
    encryptionsupported: false,
    ueficapability: false,
    hahost: false,
    capabilities: 'hvm',
    hosttags: h.host_tags ?? undefined,
    version: h.version ?? undefined,
    lastpinged: csDate(h.last_pinged),
    disconnected: h.state === 'Up' ? undefined : csDate(h.last_pinged),
    created: csDate(h.created),
    // What the agent last said it could not converge (CloudStack's `events` is the host's last events).
    events: status?.errors.length
      ? status.errors.map((e) => `${e.what}: ${e.message}`).join('; ')
      : undefined,
    // stacknet's own: the host's desired generation and what it reported applied.
    desiredgeneration: Number(h.desired_generation),
    appliedgeneration: h.applied_generation === null ? undefined : Number(h.applied_generation),
  };
}

async function idOf(ex: Executor, table: 'zones' | 'pods' | 'clusters', uuid: string): Promise<number> {
  const r = await ex.selectFrom(table).select('id').where('uuid', '=', uuid).executeTakeFirst();
  return r ? Number(r.id) : -1;
}

const listHosts = defineCommand({
  name: 'listHosts',
  roles: rootAdminOnly,
  params: refParams('listHosts', [
    'id',
    'name',
    'state',
    'resourcestate',
    'type',
    'hypervisor',
    'zoneid',
    'podid',
    'clusterid',
    'virtualmachineid',
    'keyword',
    'page',
    'pagesize',
    'details',
    'hahost',
    'outofbandmanagementenabled',
    'outofbandmanagementpowerstate',
  ]),
  async handler(p, ctx) {
    const db = ctx.store.db;
    const page = await pageOf(db, p);
    // Every stacknet host is a KVM Routing host: other types or hypervisors find none.
    if (
      (p.type !== undefined && p.type.toLowerCase() !== 'routing') ||
      (p.hypervisor && p.hypervisor !== 'KVM')
    )
      return listResult('host', [], 0);
    let q = db.selectFrom('hosts').selectAll().where('removed', 'is', null);
    if (p.id !== undefined) q = q.where('uuid', '=', p.id);
    if (p.name !== undefined) q = q.where('name', '=', p.name);
    if (p.state !== undefined) q = q.where('state', '=', p.state as HostRow['state']);
    if (p.resourcestate !== undefined)
      q = q.where('resource_state', '=', p.resourcestate as HostResourceState);
    if (p.zoneid !== undefined) q = q.where('zone_id', '=', await idOf(db, 'zones', p.zoneid));
    if (p.podid !== undefined) q = q.where('pod_id', '=', await idOf(db, 'pods', p.podid));
    if (p.clusterid !== undefined) q = q.where('cluster_id', '=', await idOf(db, 'clusters', p.clusterid));
    if (p.keyword !== undefined) q = q.where(keywordMatch(['name', 'address'], p.keyword));
    if (p.virtualmachineid !== undefined) {
      const vm = await db
        .selectFrom('vms')
        .select('host_id')
        .where('uuid', '=', p.virtualmachineid)
        .executeTakeFirst();
      q = q.where('id', '=', vm?.host_id == null ? -1 : Number(vm.host_id));
    }
    const rows = await q.orderBy('id').execute();
    const items: ResponseObject[] = [];
    for (const h of pageArray(rows, page)) items.push(await hostResponse(db, h));
    return listResult('host', items, rows.length);
  },
});

async function hostForAdmin(ctx: CommandContext, uuid: string): Promise<HostRow> {
  const h = await liveHostByUuid(ctx.store.db, uuid);
  if (!h) throw invalidParameter('id', uuid, 'no host with this id');
  return h;
}

async function clusterResponse(ex: Executor, c: ClusterRow): Promise<ResponseObject> {
  const zone = await ex
    .selectFrom('zones')
    .select(['uuid', 'name'])
    .where('id', '=', c.zone_id)
    .executeTakeFirst();
  const pod = await ex
    .selectFrom('pods')
    .select(['uuid', 'name'])
    .where('id', '=', c.pod_id)
    .executeTakeFirst();
  return {
    id: c.uuid,
    name: c.name,
    zoneid: zone?.uuid,
    zonename: zone?.name,
    podid: pod?.uuid,
    podname: pod?.name,
    hypervisortype: c.hypervisor,
    clustertype: c.cluster_type,
    allocationstate: c.allocation_state,
    managedstate: c.managed_state,
    cpuovercommitratio: '1.0',
    memoryovercommitratio: '1.0',
  };
}

function checkKvm(hypervisor: string): void {
  if (hypervisor.toLowerCase() !== 'kvm')
    throw invalidParameter('hypervisor', hypervisor, 'stacknet hosts are KVM (stacknet host-agent); use KVM');
}

function allocationState(
  v: string | undefined,
  param = 'allocationstate',
): 'Enabled' | 'Disabled' | undefined {
  if (v === undefined) return undefined;
  if (v === 'Enabled' || v === 'Disabled') return v;
  throw invalidParameter(param, v, 'Enabled or Disabled');
}

async function podOf(ctx: CommandContext, zoneUuid: string, podUuid: string) {
  const db = ctx.store.db;
  const zone = await db
    .selectFrom('zones')
    .selectAll()
    .where('uuid', '=', zoneUuid)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!zone) throw invalidParameter('zoneid', zoneUuid, 'no zone with this id');
  const pod = await db
    .selectFrom('pods')
    .selectAll()
    .where('uuid', '=', podUuid)
    .where('zone_id', '=', zone.id)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!pod) throw invalidParameter('podid', podUuid, `no pod with this id in zone ${zone.name}`);
  return { zone, pod };
}

const listClusters = defineCommand({
  name: 'listClusters',
  roles: rootAdminOnly,
  params: refParams('listClusters', [
    'id',
    'name',
    'zoneid',
    'podid',
    'hypervisor',
    'clustertype',
    'allocationstate',
    'managedstate',
    'keyword',
    'showcapacities',
    'page',
    'pagesize',
  ]),
  async handler(p, ctx) {
    const db = ctx.store.db;
    const page = await pageOf(db, p);
    let q = db.selectFrom('clusters').selectAll().where('removed', 'is', null);
    if (p.id !== undefined) q = q.where('uuid', '=', p.id);
    if (p.name !== undefined) q = q.where('name', '=', p.name);
    if (p.zoneid !== undefined) q = q.where('zone_id', '=', await idOf(db, 'zones', p.zoneid));
    if (p.podid !== undefined) q = q.where('pod_id', '=', await idOf(db, 'pods', p.podid));
    if (p.hypervisor !== undefined) q = q.where('hypervisor', '=', p.hypervisor);
    if (p.clustertype !== undefined) q = q.where('cluster_type', '=', p.clustertype);
    if (p.allocationstate !== undefined) q = q.where('allocation_state', '=', p.allocationstate);
    if (p.managedstate !== undefined) q = q.where('managed_state', '=', p.managedstate);
    if (p.keyword !== undefined) q = q.where(keywordMatch(['name'], p.keyword));
    const rows = await q.orderBy('id').execute();
    const items: ResponseObject[] = [];
    for (const c of pageArray(rows, page)) items.push(await clusterResponse(db, c));
    return listResult('cluster', items, rows.length);
  },
});

const addCluster = defineCommand({
  name: 'addCluster',
  roles: rootAdminOnly,
  params: refParams('addCluster', [
    'zoneid',
    'podid',
    'clustername',
    'clustertype',
    'hypervisor',
    'allocationstate',
    'url',
    'username',
    'password',
  ]),
  async handler(p, ctx) {
    checkKvm(p.hypervisor);
    if (p.clustertype !== 'CloudManaged')
      throw invalidParameter('clustertype', p.clustertype, 'KVM clusters are CloudManaged');
    const { pod } = await podOf(ctx, p.zoneid, p.podid);
    const c = await ctx.transaction(async (tx) => {
      const same = await tx
        .selectFrom('clusters')
        .select('id')
        .where('pod_id', '=', pod.id)
        .where('name', '=', p.clustername)
        .where('removed', 'is', null)
        .executeTakeFirst();
      if (same)
        throw invalidParameter('clustername', p.clustername, 'a cluster of this name exists in the pod');
      return createCluster(
        tx,
        {
          zoneId: Number(pod.zone_id),
          podId: Number(pod.id),
          name: p.clustername,
          allocationState: allocationState(p.allocationstate),
        },
        ctx.now(),
      );
    });
    return listResult('cluster', [await clusterResponse(ctx.store.db, c)], 1);
  },
});

/**
 * addHost: CloudStack's way to add a KVM host is to give the management server its address and root password,
 * and the server installs and starts the agent over SSH. stacknet does not log in to hosts: addHost records
 * the host at that address (Connecting) in the zone, pod and cluster given, and the host becomes Up when
 * `stacknet host-agent` on it registers from that address with the registration token (`stacknet host token`).
 * username and password are accepted and not used. The url is `http://<address>[:<agent port>]` (port 8250
 * when absent; what the agent registers wins).
 */
const addHost = defineCommand({
  name: 'addHost',
  roles: rootAdminOnly,
  params: refParams('addHost', [
    'zoneid',
    'podid',
    'clusterid',
    'clustername',
    'url',
    'hypervisor',
    'username',
    'password',
    'allocationstate',
    'hosttags',
  ]),
  async handler(p, ctx) {
    checkKvm(p.hypervisor);
    let url: URL;
    try {
      url = new URL(/^[a-z]+:\/\//i.test(p.url) ? p.url : `http://${p.url}`);
    } catch {
      throw invalidParameter('url', p.url, 'http://<host address>[:<agent port>]');
    }
    const address = url.hostname.replace(/^\[|\]$/g, '');
    if (!/^[0-9a-fA-F:.]+$/.test(address))
      throw invalidParameter(
        'url',
        p.url,
        'the host by its IP address (the address its agent registers from)',
      );
    const { pod } = await podOf(ctx, p.zoneid, p.podid);
    const resource = allocationState(p.allocationstate) ?? 'Enabled';
    const h = await ctx.transaction(async (tx) => {
      let clusterId: number;
      if (p.clusterid !== undefined) {
        const c = await tx
          .selectFrom('clusters')
          .select('id')
          .where('uuid', '=', p.clusterid)
          .where('pod_id', '=', pod.id)
          .where('removed', 'is', null)
          .executeTakeFirst();
        if (!c) throw invalidParameter('clusterid', p.clusterid, 'no cluster with this id in the pod');
        clusterId = Number(c.id);
      } else if (p.clustername !== undefined) {
        const c =
          (await tx
            .selectFrom('clusters')
            .selectAll()
            .where('name', '=', p.clustername)
            .where('pod_id', '=', pod.id)
            .where('removed', 'is', null)
            .executeTakeFirst()) ??
          (await createCluster(
            tx,
            { zoneId: Number(pod.zone_id), podId: Number(pod.id), name: p.clustername },
            ctx.now(),
          ));
        clusterId = Number(c.id);
      } else throw invalidParameter('clusterid', '', 'give clusterid or clustername');
      const uuid = randomUUID();
      try {
        await tx
          .insertInto('hosts')
          .values({
            uuid,
            name: address,
            zone_id: Number(pod.zone_id),
            pod_id: Number(pod.id),
            cluster_id: clusterId,
            address,
            port: url.port ? Number(url.port) : 8250,
            secret_sealed: null,
            capabilities: null,
            version: null,
            host_tags: p.hosttags?.join(',') ?? null,
            state: 'Connecting',
            resource_state: resource,
            last_pinged: null,
            desired_hash: null,
            applied_generation: null,
            status: null,
            created: ctx.now(),
            removed: null,
          })
          .execute();
      } catch (e) {
        if (isUniqueViolation(e)) throw invalidParameter('url', p.url, 'a host with this address exists');
        throw e;
      }
      return (await tx.selectFrom('hosts').selectAll().where('uuid', '=', uuid).executeTakeFirst())!;
    });
    await hostEvent(ctx.store, h, 'HOST.ADD', `Host ${address} added (Connecting until its agent registers)`);
    return listResult('host', [await hostResponse(ctx.store.db, h)], 1);
  },
});

const updateHost = defineCommand({
  name: 'updateHost',
  roles: rootAdminOnly,
  params: refParams('updateHost', [
    'id',
    'allocationstate',
    'hosttags',
    'name',
    'annotation',
    'url',
    'oscategoryid',
  ]),
  async handler(p, ctx) {
    const h = await hostForAdmin(ctx, p.id);
    const set: { resource_state?: HostResourceState; host_tags?: string | null; name?: string } = {};
    if (p.allocationstate !== undefined) {
      // CloudStack's updateHost allocationstate: Enable / Disable (the resource state's events).
      const want =
        p.allocationstate === 'Enable' ? 'Enabled' : p.allocationstate === 'Disable' ? 'Disabled' : null;
      if (!want) throw invalidParameter('allocationstate', p.allocationstate, 'Enable or Disable');
      if (h.resource_state !== 'Enabled' && h.resource_state !== 'Disabled')
        throw invalidParameter(
          'allocationstate',
          p.allocationstate,
          `host ${h.name} is ${h.resource_state}; cancel its maintenance first (cancelHostMaintenance)`,
        );
      set.resource_state = want;
    }
    if (p.hosttags !== undefined) set.host_tags = p.hosttags.join(',') || null;
    if (p.name !== undefined) set.name = p.name;
    if (Object.keys(set).length > 0) {
      try {
        await ctx.store.db.updateTable('hosts').set(set).where('id', '=', h.id).execute();
      } catch (e) {
        if (isUniqueViolation(e)) throw invalidParameter('name', p.name, 'another host has this name');
        throw e;
      }
      await hostEvent(ctx.store, h, 'HOST.UPDATE', `Host ${h.name} updated: ${JSON.stringify(set)}`);
    }
    const now = (await liveHostByUuid(ctx.store.db, p.id))!;
    return objectResult('host', await hostResponse(ctx.store.db, now));
  },
});

const RUNNING = ['Starting', 'Running', 'Stopping'] as const;

async function setResourceState(ctx: CommandContext, h: HostRow, to: HostResourceState): Promise<void> {
  await ctx.store.db.updateTable('hosts').set({ resource_state: to }).where('id', '=', h.id).execute();
}

async function vmsOn(ex: Executor, hostId: number, running: boolean) {
  let q = ex
    .selectFrom('vms')
    .select(['id', 'name', 'state'])
    .where('host_id', '=', hostId)
    .where('removed', 'is', null);
  if (running) q = q.where('state', 'in', [...RUNNING]);
  return q.orderBy('id').execute();
}

/**
 * deleteHost: as CloudStack, only a host in Maintenance unless forced; a forced delete of a host that still
 * has VMs marks its running VMs Stopped (they start on another host next time) and frees its routers, which
 * the reconciler's next pass re-places.
 */
const deleteHost = defineCommand({
  name: 'deleteHost',
  roles: rootAdminOnly,
  params: refParams('deleteHost', ['id', 'forced', 'forcedestroylocalstorage']),
  async handler(p, ctx) {
    const h = await hostForAdmin(ctx, p.id);
    const running = await vmsOn(ctx.store.db, Number(h.id), true);
    if (!p.forced) {
      if (h.resource_state !== 'Maintenance')
        throw new CloudStackError(
          'InternalError',
          `Host ${h.uuid} cannot be deleted as it is not in maintenance mode. Either put the host into maintenance or perform a forced deletion.`,
        );
      if (running.length)
        throw new CloudStackError(
          'InternalError',
          `Unable to delete host ${h.name}: VMs run on it (${running.map((v) => v.name).join(', ')}); stop them or use forced=true`,
        );
    }
    await ctx.transaction(async (tx) => {
      await tx
        .updateTable('vms')
        .set({ state: 'Stopped' })
        .where('host_id', '=', h.id)
        .where('state', 'in', [...RUNNING])
        .where('removed', 'is', null)
        .execute();
      await tx.updateTable('vms').set({ host_id: null }).where('host_id', '=', h.id).execute();
      await tx.updateTable('vms').set({ last_host_id: null }).where('last_host_id', '=', h.id).execute();
      await tx.updateTable('routers').set({ host_id: null }).where('host_id', '=', h.id).execute();
      await tx.deleteFrom('hosts').where('id', '=', h.id).execute();
    });
    await clearAlert(ctx.store.db, hostDownKey(Number(h.id)), ctx.now());
    await hostEvent(
      ctx.store,
      h,
      'HOST.DELETE',
      `Host ${h.name} (${h.address}) deleted${p.forced ? ' (forced)' : ''}`,
    );
    await refreshAllHosts(ctx.store.db, Number(h.zone_id));
    return { kind: 'raw', value: { success: true } };
  },
});

/** How long prepareHostForMaintenance waits for the host's routers to be rebuilt elsewhere. */
const ROUTERS_OFF_MS = 60_000;

/**
 * prepareHostForMaintenance: no new VM or router goes to the host (PrepareForMaintenance); its routers are
 * rebuilt on other hosts by the reconciler (the hosts driver no longer keeps routers on it). CloudStack
 * live-migrates the VMs; stacknet does not migrate, so running VMs stay and the host ends ErrorInMaintenance,
 * the job failing with their names (stop them, then ask again). With none running it is in Maintenance; its
 * stopped VMs start on other hosts.
 */
const prepareHostForMaintenance = defineCommand({
  name: 'prepareHostForMaintenance',
  roles: rootAdminOnly,
  params: refParams('prepareHostForMaintenance', ['id']),
  jobInstance: (p) => ({ type: 'Host', id: p.id }),
  async handler(p, ctx) {
    const h = await hostForAdmin(ctx, p.id);
    if (h.resource_state === 'Maintenance') return objectResult('host', await hostResponse(ctx.store.db, h));
    await setResourceState(ctx, h, 'PrepareForMaintenance');
    await hostEvent(ctx.store, h, 'MAINT.PREPARE', `Host ${h.name} is being prepared for maintenance`);
    const deadline = Date.now() + ROUTERS_OFF_MS;
    for (;;) {
      const left = await ctx.store.db
        .selectFrom('routers')
        .select('name')
        .where('host_id', '=', h.id)
        .where('removed', 'is', null)
        .where('state', 'in', ['Starting', 'Running'])
        .execute();
      if (left.length === 0) break;
      if (Date.now() > deadline) {
        await setResourceState(ctx, h, 'ErrorInMaintenance');
        throw new CloudStackError(
          'ResourceUnavailable',
          `Host ${h.name}: routers ${left.map((r) => r.name).join(', ')} could not be moved to another host within ${ROUTERS_OFF_MS / 1000} s`,
        );
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    const running = await vmsOn(ctx.store.db, Number(h.id), true);
    if (running.length) {
      await setResourceState(ctx, h, 'ErrorInMaintenance');
      throw new CloudStackError(
        'ResourceUnavailable',
        `Host ${h.name} cannot enter maintenance: VMs ${running.map((v) => v.name).join(', ')} run on it and stacknet does not migrate them; stop them and call prepareHostForMaintenance again`,
      );
    }
    await setResourceState(ctx, h, 'Maintenance');
    return objectResult(
      'host',
      await hostResponse(ctx.store.db, (await liveHostByUuid(ctx.store.db, p.id))!),
    );
  },
});

const cancelHostMaintenance = defineCommand({
  name: 'cancelHostMaintenance',
  roles: rootAdminOnly,
  params: refParams('cancelHostMaintenance', ['id']),
  jobInstance: (p) => ({ type: 'Host', id: p.id }),
  async handler(p, ctx) {
    const h = await hostForAdmin(ctx, p.id);
    if (h.resource_state === 'Enabled' || h.resource_state === 'Disabled')
      throw invalidParameter('id', p.id, `host ${h.name} is not in maintenance (${h.resource_state})`);
    await setResourceState(ctx, h, 'Enabled');
    await hostEvent(ctx.store, h, 'MAINT.CANCEL', `Maintenance of host ${h.name} cancelled`);
    return objectResult(
      'host',
      await hostResponse(ctx.store.db, (await liveHostByUuid(ctx.store.db, p.id))!),
    );
  },
});

export const commands: AnyCommand[] = [
  listInfrastructure,
  listHosts,
  addHost,
  updateHost,
  deleteHost,
  prepareHostForMaintenance,
  cancelHostMaintenance,
  listClusters,
  addCluster,
  emptyList('listStoragePools', 'storagepool'),
  emptyList('listSystemVms', 'systemvm'),
];
