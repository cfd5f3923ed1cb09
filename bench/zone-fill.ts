/**
 * Fills one zone with N allocated addresses for bench/zone.ts, honestly and fast: the zone, its public ranges, its
 * networks, one VM per network and one public IP per network are made by the real API commands; the rest are
 * copies of the rows those real commands wrote (ip_allocations, vms, nics, events, usage_events), inserted in
 * batches, each copy differing only where two real calls would differ (ids, uuids, addresses, MACs, names,
 * passwords). MACs come from the zone's counter through the repository's batch path (takeMacSequence), so later
 * real deploys never collide. async_jobs rows are not copied: they belong to the job history, not to the zone.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { callApi, waitForJob } from '../src/api/client.js';
import type { ClientOptions } from '../src/api/client.js';
import { takeMacSequence } from '../src/addresses/address-repository.js';
import { formatIp, parseIp, valueKey } from '../src/ipam/address.js';
import { macFromSequence } from '../src/ipam/mac.js';
import { publicIpUuid } from '../src/public-ips/ids.js';
import { netDb } from '../src/networks/tables.js';
import { dbKindOf, openStore } from '../src/store/db.js';
import type { Executor } from '../src/store/db.js';
import { startServer } from '../test/api/harness.js';

export interface FillOptions {
  url: string;
  /** Public addresses to allocate (spread over /16 ranges) and guest addresses (networks × VMs). */
  publicAddresses: number;
  networks: number;
  vmsPerNetwork: number;
  /** The kept database's server key (the routers' secrets are sealed with it). */
  serverKeyFile: string;
  log: (m: string) => void;
}

/** What bench/zone.ts needs to know about a filled zone (kept in stacknet_meta as `bench.zone`). */
export interface FilledZone {
  zoneid: string;
  /** The zone's networks, oldest first (read from the database, not kept in stacknet_meta). */
  networkids: string[];
  vmid: string;
  public_addresses: number;
  guest_addresses: number;
  fill_seconds: number;
  api_seconds: number;
}

const META = 'bench.zone';
const PUBLIC_RANGE_SIZE = 65_533; // x.y.0.2 – x.y.255.254 of a /16
const BATCH = 500;

export async function filledZone(url: string): Promise<FilledZone | undefined> {
  const store = await openStore(url, { poolSize: 1 });
  try {
    const row = await store.db
      .selectFrom('stacknet_meta')
      .select('value')
      .where('name', '=', META)
      .executeTakeFirst()
      .catch(() => undefined);
    if (!row) return undefined;
    const kept = JSON.parse(row.value) as Omit<FilledZone, 'networkids'>;
    const zone = await store.db
      .selectFrom('zones')
      .select('id')
      .where('uuid', '=', kept.zoneid)
      .executeTakeFirstOrThrow();
    const nets = await store.db
      .selectFrom('networks')
      .select('uuid')
      .where('zone_id', '=', zone.id)
      .orderBy('id')
      .execute();
    return { ...kept, networkids: nets.map((n) => n.uuid) };
  } finally {
    await store.close();
  }
}

type Body = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

async function must(o: ClientOptions, command: string, params: Record<string, string>, async = false) {
  const r = await callApi(o, command, params);
  if (r.status !== 200) throw new Error(`${command}: HTTP ${r.status} ${r.text}`);
  if (!async) return r.body as Body;
  const job = await waitForJob(o, (r.body as { jobid: string }).jobid, { intervalMs: 20 });
  if (job.jobstatus !== 1) throw new Error(`${command}: job failed ${JSON.stringify(job.jobresult)}`);
  return job.jobresult as Body;
}

export async function fillZone(o: FillOptions): Promise<FilledZone> {
  const ranges = Math.ceil(o.publicAddresses / PUBLIC_RANGE_SIZE);
  if (ranges > 64) throw new Error('at most 64 public /16 ranges (100.64.0.0/10)');
  if (o.networks > 250 || o.vmsPerNetwork > 16_000) throw new Error('at most 250 networks of 16,000 VMs');
  const t0 = performance.now();
  const server = await startServer(o.url, {
    STACKNET_SERVER_KEY_FILE: o.serverKeyFile,
    STACKNET_SQLITE_SYNC: 'NORMAL',
    STACKNET_LOG_LEVEL: 'warn',
  });
  const api: ClientOptions = { url: server.url, apiKey: server.apiKey, secretKey: server.secretKey };
  let zoneid: string;
  const networkids: string[] = [];
  const vmids: string[] = [];
  try {
    zoneid = (
      await must(api, 'createZone', {
        name: 'big-zone',
        networktype: 'Advanced',
        dns1: '8.8.8.8',
        internaldns1: '10.0.0.2',
        guestcidraddress: '10.0.0.0/8',
      })
    ).zone.id;
    const pn = (await must(api, 'createPhysicalNetwork', { zoneid, name: 'big-pn', vlan: '100-999' }, true))
      .physicalnetwork.id;
    for (const t of ['Guest', 'Public'])
      await must(api, 'addTrafficType', { physicalnetworkid: pn, traffictype: t }, true);
    // Networks of 10,000 VMs need a /18: CloudStack's network.guest.cidr.limit (default 22) allows it at 16.
    await must(api, 'updateConfiguration', { name: 'network.guest.cidr.limit', value: '16' });
    for (let r = 0; r < ranges; r++)
      await must(api, 'createVlanIpRange', {
        zoneid,
        vlan: String(30 + r),
        gateway: `100.${64 + r}.0.1`,
        netmask: '255.255.0.0',
        startip: `100.${64 + r}.0.2`,
        endip: `100.${64 + r}.255.254`,
        forvirtualnetwork: 'true',
      });
    const offering = (await must(api, 'listNetworkOfferings', {})).networkoffering.find(
      (x: Body) => x.name === 'DefaultIsolatedNetworkOfferingWithSourceNatService',
    ).id;
    const so = (await must(api, 'listServiceOfferings', { name: 'Small Instance' })).serviceoffering[0].id;
    const tpl = (await must(api, 'listTemplates', { templatefilter: 'featured' })).template[0].id;
    for (let n = 1; n <= o.networks; n++) {
      const net = (
        await must(api, 'createNetwork', {
          zoneid,
          name: `big-${n}`,
          displaytext: `big-${n}`,
          networkofferingid: offering,
          gateway: `10.${n}.0.1`,
          netmask: '255.255.192.0',
        })
      ).network.id;
      networkids.push(net);
      const vm = await must(
        api,
        'deployVirtualMachine',
        { serviceofferingid: so, templateid: tpl, zoneid, networkids: net, name: `vm-${n}-0` },
        true,
      );
      vmids.push(vm.virtualmachine.id);
      await must(api, 'associateIpAddress', { networkid: net }, true);
    }
  } finally {
    await server.stop();
  }
  const apiSeconds = (performance.now() - t0) / 1000;
  o.log(
    `zone, ${ranges} public ranges, ${o.networks} networks made by the API in ${apiSeconds.toFixed(1)} s`,
  );

  const store = await openStore(o.url, { poolSize: 1 });
  const db = netDb(store.db);
  let guest = 0;
  let pub = 0;
  try {
    const zone = await db
      .selectFrom('zones')
      .select('id')
      .where('uuid', '=', zoneid)
      .executeTakeFirstOrThrow();
    const zoneId = Number(zone.id);
    const nextIds = new Map<string, number>();
    for (const t of ['vms', 'nics', 'ip_allocations', 'events', 'usage_events'] as const) {
      const r = await sql<{ m: number | string | null }>`select max(id) as m from ${sql.table(t)}`.execute(
        db,
      );
      nextIds.set(t, Number(r.rows[0]?.m ?? 0) + 1);
    }
    const nextId = (t: string): number => {
      const v = nextIds.get(t)!;
      nextIds.set(t, v + 1);
      return v;
    };
    const pending = new Map<string, Record<string, unknown>[]>();
    const flush = async (force = false) => {
      for (const [t, rows] of pending) {
        if (rows.length === 0 || (!force && rows.length < BATCH)) continue;
        // Parents before children is not needed (no foreign keys between these tables), only whole batches.
        await db
          .insertInto(t as 'vms')
          .values(rows as never)
          .execute();
        rows.length = 0;
      }
    };
    const add = async (t: string, row: Record<string, unknown>) => {
      const rows = pending.get(t) ?? [];
      pending.set(t, rows);
      rows.push(row);
      if (rows.length >= BATCH) await flush();
    };
    const now = Date.now();

    // Guest side: copies of each network's real VM (vms, nics, its ip_allocations row, its events and usage).
    for (let n = 0; n < o.networks; n++) {
      const vm = await db
        .selectFrom('vms')
        .selectAll()
        .where('uuid', '=', vmids[n]!)
        .executeTakeFirstOrThrow();
      const nic = await db
        .selectFrom('nics')
        .selectAll()
        .where('vm_id', '=', vm.id)
        .executeTakeFirstOrThrow();
      const alloc = await db
        .selectFrom('ip_allocations')
        .selectAll()
        .where('id', '=', nic.ip_allocation_id!)
        .executeTakeFirstOrThrow();
      const events = await db
        .selectFrom('events')
        .selectAll()
        .where('resource_id', 'in', [vm.uuid, nic.uuid])
        .orderBy('id')
        .execute();
      const usage = await db
        .selectFrom('usage_events')
        .selectAll()
        .where('resource_uuid', '=', vm.uuid)
        .executeTakeFirstOrThrow();
      const taken = new Set(
        (
          await db
            .selectFrom('ip_allocations')
            .select('address')
            .where('scope', '=', alloc.scope)
            .where('family', '=', 4)
            .execute()
        ).map((r) => r.address),
      );
      const base = parseIp(`10.${n + 1}.0.0`).value;
      const gateway = base + 1n;
      let candidate = base + 2n;
      const count = o.vmsPerNetwork - 1;
      const macBase = await takeMacSequence(store.db, zoneId, count);
      for (let k = 1; k <= count; k++) {
        while (taken.has(valueKey(candidate)) || candidate === gateway) candidate++;
        if (candidate >= base + (1n << 14n) - 1n) throw new Error('network full');
        const value = candidate++;
        const ip = formatIp({ family: 4, value });
        const vmId = nextId('vms');
        const nicId = nextId('nics');
        const allocId = nextId('ip_allocations');
        const name = `vm-${n + 1}-${k}`;
        const vmUuid = randomUUID();
        const nicUuid = randomUUID();
        await add('vms', {
          ...vm,
          id: vmId,
          uuid: vmUuid,
          instance_name: `i-${vm.account_id}-${vmId}-VM`,
          name,
          display_name: name,
          password: vm.password === null ? null : randomBytes(9).toString('base64url').slice(0, 12),
          created: now,
        });
        await add('nics', {
          ...nic,
          id: nicId,
          uuid: nicUuid,
          vm_id: vmId,
          mac: macFromSequence(zoneId, macBase + k - 1),
          ipv4: ip,
          ip_allocation_id: allocId,
          created: now,
        });
        await add('ip_allocations', {
          ...alloc,
          id: allocId,
          address: valueKey(value),
          owner_id: nicId,
          vm_id: vmId,
          created: now,
          updated: now,
        });
        for (const e of events)
          await add('events', {
            ...e,
            id: nextId('events'),
            uuid: randomUUID(),
            description: e.description.replace(nic.ipv4 ?? '\0', ip).replace(vm.name, name),
            resource_id: e.resource_id === vm.uuid ? vmUuid : nicUuid,
            resource_name: e.resource_name === null ? null : name,
            created: now,
          });
        await add('usage_events', {
          ...usage,
          id: nextId('usage_events'),
          resource_id: vmId,
          resource_uuid: vmUuid,
          resource_name: name,
          created: now,
        });
        guest++;
      }
      await flush(true);
      // One batch of changes to the network: its router's desired state moves on once, as after a burst.
      await db
        .updateTable('routers')
        .set((eb) => ({ desired_generation: eb('desired_generation', '+', 1) }))
        .where('network_id', '=', alloc.network_id!)
        .execute();
      if ((n + 1) % 10 === 0) o.log(`guest: ${n + 1}/${o.networks} networks, ${guest} addresses`);
    }

    // Public side: copies of each network's real associateIpAddress row, round-robin over the networks.
    const templates = await db
      .selectFrom('ip_allocations')
      .selectAll()
      .where('zone_id', '=', zoneId)
      .where('owner_kind', '=', 'publicip')
      .where('source_nat', '=', 0)
      .orderBy('id')
      .execute();
    const tEvents = new Map<string, Record<string, unknown>>();
    const tUsage = new Map<string, Record<string, unknown>>();
    for (const t of templates) {
      const e = await db
        .selectFrom('events')
        .selectAll()
        .where('resource_id', '=', t.uuid)
        .where('type', '=', 'NET.IPASSIGN')
        .executeTakeFirstOrThrow();
      tEvents.set(t.uuid!, e);
      const u = await db
        .selectFrom('usage_events')
        .selectAll()
        .where('resource_uuid', '=', t.uuid)
        .executeTakeFirstOrThrow();
      tUsage.set(t.uuid!, u);
    }
    const takenPub = new Set(
      (
        await db
          .selectFrom('ip_allocations')
          .select('address')
          .where('scope', '=', templates[0]!.scope)
          .execute()
      ).map((r) => r.address),
    );
    const rangeRows = await db
      .selectFrom('public_ip_ranges')
      .select(['id', 'start_key', 'end_key'])
      .where('zone_id', '=', zoneId)
      .orderBy('id')
      .execute();
    let want = o.publicAddresses - takenPub.size;
    let i = 0;
    for (const r of rangeRows) {
      for (let v = BigInt(`0x${r.start_key}`); v <= BigInt(`0x${r.end_key}`) && want > 0; v++) {
        if (takenPub.has(valueKey(v))) continue;
        const t = templates[i++ % templates.length]!;
        const ip = formatIp({ family: 4, value: v });
        const id = nextId('ip_allocations');
        const uuid = publicIpUuid('pub', zoneId, 4, v);
        await add('ip_allocations', {
          ...t,
          id,
          address: valueKey(v),
          range_id: r.id,
          uuid,
          created: now,
          updated: now,
        });
        const e = tEvents.get(t.uuid!)!;
        await add('events', {
          ...e,
          id: nextId('events'),
          uuid: randomUUID(),
          resource_id: uuid,
          created: now,
        });
        const u = tUsage.get(t.uuid!)!;
        await add('usage_events', {
          ...u,
          id: nextId('usage_events'),
          resource_id: id,
          resource_uuid: uuid,
          resource_name: ip,
          created: now,
        });
        pub++;
        want--;
        if (pub % 100_000 === 0) o.log(`public: ${pub} addresses`);
      }
    }
    await flush(true);
    pub += takenPub.size;
    guest += o.networks * 2; // the real VMs' NICs and the routers' guest addresses
    await afterBulkInsert(store.db, o.url);
    const filled: FilledZone = {
      zoneid,
      networkids,
      vmid: vmids[0]!,
      public_addresses: pub,
      guest_addresses: guest,
      fill_seconds: Math.round((performance.now() - t0) / 100) / 10,
      api_seconds: Math.round(apiSeconds * 10) / 10,
    };
    await markFilled(db, filled);
    return filled;
  } finally {
    await store.close();
  }
}

/** stacknet_meta.value is a VARCHAR(255): the networks' ids are read back from the zone instead. */
export async function markFilled(db: Executor, filled: FilledZone): Promise<void> {
  const { networkids: _, ...kept } = filled;
  await db
    .insertInto('stacknet_meta')
    .values({ name: META, value: JSON.stringify(kept) })
    .execute();
}

/** Ids were given explicitly: PostgreSQL's sequences must move past them; every engine gets fresh statistics. */
export async function afterBulkInsert(db: Executor, url: string): Promise<void> {
  const kind = dbKindOf(url);
  const tables = ['vms', 'nics', 'ip_allocations', 'events', 'usage_events'];
  if (kind === 'postgres') {
    for (const t of tables)
      await sql
        .raw(`select setval(pg_get_serial_sequence('${t}', 'id'), (select max(id) from ${t}))`)
        .execute(db);
    // VACUUM as autovacuum would soon after a bulk load: it sets the visibility map, without which an index-only
    // scan still reads every row it passes.
    await sql`vacuum analyze`.execute(db);
  } else if (kind === 'mysql') {
    for (const t of tables) await sql.raw(`analyze table ${t}`).execute(db);
  } else {
    await sql`analyze`.execute(db);
  }
}
