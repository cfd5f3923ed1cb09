/** A zone a black-box test can put networks in, built through the API: physical network, traffic, public range. */
import { ok } from '../api/harness.js';
import type { CsClient, CsRig } from '../api/harness.js';

export interface TestZone {
  zone: string;
  physicalNetwork: string;
}

/**
 * `name`-zone with guest VLANs `vlans`, Guest and Public traffic and the public range `publicPrefix`.10-40 on
 * VLAN `publicVlan` (gateway .1). Distinct prefixes and VLANs let several zones share one database.
 */
export async function createTestZone(
  admin: CsClient,
  o: { name: string; vlans: string; publicVlan: string; publicPrefix: string; guestCidr: string },
): Promise<TestZone> {
  const job = { fetch_result: true };
  const zone = ok(
    await admin('createZone', {
      name: o.name,
      networktype: 'Advanced',
      dns1: '192.0.2.53',
      internaldns1: '10.0.0.2',
      guestcidraddress: o.guestCidr,
    }),
    'createZone',
  ).zone.id as string;
  const pn = ok(
    await admin('createPhysicalNetwork', { zoneid: zone, name: `${o.name}-pn`, vlan: o.vlans }, job),
    'createPhysicalNetwork',
  ).physicalnetwork.id as string;
  for (const t of ['Guest', 'Public'])
    ok(await admin('addTrafficType', { physicalnetworkid: pn, traffictype: t }, job), `addTrafficType ${t}`);
  ok(
    await admin('createVlanIpRange', {
      zoneid: zone,
      vlan: o.publicVlan,
      gateway: `${o.publicPrefix}.1`,
      netmask: '255.255.255.0',
      startip: `${o.publicPrefix}.10`,
      endip: `${o.publicPrefix}.40`,
      forvirtualnetwork: true,
    }),
    'createVlanIpRange',
  );
  return { zone, physicalNetwork: pn };
}

/** A user account with API keys, as a `cs` client. */
export async function createUserClient(
  admin: CsClient,
  client: (key: string, secret: string) => CsClient,
  username: string,
  domainid?: string,
): Promise<{ client: CsClient; accountId: string; userId: string }> {
  const domain = domainid ?? (ok(await admin('listDomains', {}), 'listDomains').domain[0].id as string);
  const a = ok(
    await admin('createAccount', {
      username,
      password: `${username}-pw`,
      email: `${username}@example.org`,
      firstname: username,
      lastname: 'test',
      accounttype: 0,
      domainid: domain,
    }),
    `createAccount ${username}`,
  );
  const userId = a.account.user[0].id as string;
  const keys = ok(await admin('registerUserKeys', { id: userId }), 'registerUserKeys').userkeys;
  return { client: client(keys.apikey, keys.secretkey), accountId: a.account.id, userId };
}

/** createVPC `name` (cidr, offering) in `zone` as `client`; answers the VPC's id. */
export async function createTestVpc(
  client: CsClient,
  o: { zone: string; name: string; cidr: string; offering: string },
): Promise<string> {
  return ok(
    await client(
      'createVPC',
      { zoneid: o.zone, name: o.name, displaytext: o.name, cidr: o.cidr, vpcofferingid: o.offering },
      { fetch_result: true },
    ),
    'createVPC',
  ).vpc.id as string;
}

/**
 * For the rule tests: a zone (createTestZone), a user `user` with two isolated networks `web` and `db` on the
 * built-in source-NAT offering, and `vms` deployed into them. `id` holds zone, web, db, and per VM `<vm>`,
 * `<vm>ip`, `<vm>nic`.
 */
export async function createUserNetworksWithVms(
  rig: Pick<CsRig, 'admin' | 'bridge' | 'server'>,
  o: Parameters<typeof createTestZone>[1] & {
    user: string;
    vms: readonly (readonly [string, 'web' | 'db'])[];
  },
): Promise<{ client: CsClient; id: Record<string, string> }> {
  const { admin, bridge, server } = rig;
  const id: Record<string, string> = { zone: (await createTestZone(admin, o)).zone };
  const client = (await createUserClient(admin, (k, s) => bridge.client(server.url, k, s), o.user)).client;
  const offerings = ok(await client('listNetworkOfferings', {}), 'listNetworkOfferings').networkoffering;
  const iso = offerings.find(
    (x: { name: string }) => x.name === 'DefaultIsolatedNetworkOfferingWithSourceNatService',
  );
  for (const n of ['web', 'db'])
    id[n] = ok(
      await client('createNetwork', { zoneid: id.zone, name: n, displaytext: n, networkofferingid: iso.id }),
      `createNetwork ${n}`,
    ).network.id;
  const so = ok(await client('listServiceOfferings', { name: 'Small Instance' }), 'so').serviceoffering[0].id;
  const tpl = ok(await client('listTemplates', { templatefilter: 'featured' }), 'tpl').template[0].id;
  for (const [vm, net] of o.vms) {
    const v = ok(
      await client(
        'deployVirtualMachine',
        { serviceofferingid: so, templateid: tpl, zoneid: id.zone, networkids: id[net], name: vm },
        { fetch_result: true },
      ),
      `deploy ${vm}`,
    ).virtualmachine;
    id[vm] = v.id;
    id[`${vm}ip`] = v.nic[0].ipaddress;
    id[`${vm}nic`] = v.nic[0].id;
  }
  return { client, id };
}
