/**
 * The set-up of the hosts driver's end-to-end tests (hosts-netns.test.ts, hosts-libvirt.test.ts) and of
 * `bench:e2e --driver hosts` (issue 19): a real
 * `stacknet server --driver hosts` on a fresh SQLite database, a VXLAN zone made through the python `cs` client
 * (zoneWithTwoNetworks), the settings a lab needs (registration token, a short ping interval, the VM backend),
 * and three host namespaces on an underlay bridge (test/hosts/host-lab.ts), each reachable from the server,
 * their agents started on demand with `--vm-backend netns|libvirt`. Root; `npm run build` first.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createTestDatabase } from '../../src/store/testing/test-databases.js';
import type { TestDatabase } from '../../src/store/testing/test-databases.js';
import { zoneWithTwoNetworks, type injectClient } from '../../src/server/testing/test-server.js';
import { CsBridge, ok, startServer } from '../api/harness.js';
import type { CsClient, ServerProcess } from '../api/harness.js';
import { eventually, run } from '../../src/netns/index.js';
import { HostLab, PUBLIC_LABEL, type LabHost } from '../hosts/host-lab.js';

/** zoneWithTwoNetworks' client over `cs` (it is written for the in-process client). */
export function fixtureClient(admin: CsClient): ReturnType<typeof injectClient> {
  return {
    call: async () => {
      throw new Error('unused');
    },
    okCall: async (command: string, params: Record<string, string> = {}) =>
      ok(await admin(command, params), command),
    job: async (command: string, params: Record<string, string> = {}) => {
      const r = await admin(command, params, { fetch_result: true });
      return r.ok ? { ok: true, result: r.data } : { ok: false, error: r.error };
    },
  } as unknown as ReturnType<typeof injectClient>;
}

export interface HostsRigOptions {
  vmBackend: 'netns' | 'libvirt';
  /** Host names (single letters), in order; default A, B, C. */
  hosts?: string[];
  /** More settings (updateConfiguration) after the rig's own. */
  settings?: [string, string][];
  /** Another checkout's built tree whose server and host agents run (a benchmark's baseline); default this one. */
  root?: string;
  /** More environment for the server (e.g. STACKNET_TRACE_VMS). */
  serverEnv?: Record<string, string>;
  /** The physical network's isolation method (default VXLAN); its range is random. */
  isolation?: 'VLAN' | 'VXLAN';
}

export class HostsRig {
  readonly lab: HostLab;
  tdb!: TestDatabase;
  server!: ServerProcess;
  bridge!: CsBridge;
  admin!: CsClient;
  id!: Awaited<ReturnType<typeof zoneWithTwoNetworks>>;
  readonly hosts: LabHost[] = [];
  /** Lab host by the host's uuid in the API (filled by hostsUp). */
  readonly byUuid = new Map<string, LabHost>();

  constructor(readonly o: HostsRigOptions) {
    this.lab = new HostLab(`10.99.${1 + (randomBytes(1)[0]! % 250)}`, o.root);
  }

  /** The server and its zone, and the lab's namespaces, made side by side. */
  async start(): Promise<this> {
    const lab = this.labUp();
    lab.catch(() => {}); // awaited below; stop() cleans up whatever it made
    await this.serverUp();
    await lab;
    return this;
  }

  private async serverUp(): Promise<void> {
    this.tdb = await createTestDatabase('sqlite');
    this.server = await startServer(
      this.tdb.url,
      { STACKNET_DRIVER: 'hosts', STACKNET_HOST: '0.0.0.0', ...this.o.serverEnv },
      [],
      this.o.root ? { root: this.o.root } : {},
    );
    this.bridge = new CsBridge();
    this.admin = this.bridge.client(this.server.url, this.server.apiKey, this.server.secretKey);
    const vni = (this.o.isolation === 'VLAN' ? 300 : 6000) + Math.floor(Math.random() * 1000);
    this.id = await zoneWithTwoNetworks(fixtureClient(this.admin), {
      isolation: this.o.isolation ?? 'VXLAN',
      vnets: `${vni}-${vni + 10}`,
      kvmLabel: 'eth1',
    });
    for (const [name, value] of [
      ['host.registration.token', this.lab.token],
      // 2 s × 2: Disconnected 4 s after the last beat, Down 6 s after it (src/hosts/service.ts).
      ['ping.interval', '2'],
      ['ping.timeout', '2'],
      ['stacknet.host.vm.backend', this.o.vmBackend],
      ['stacknet.host.vm.wait', '30'],
      ...(this.o.settings ?? []),
    ])
      ok(await this.admin('updateConfiguration', { name, value }), `setting ${name}`);
  }

  private async labUp(): Promise<void> {
    await this.lab.setup();
    for (const [n, name] of (this.o.hosts ?? ['A', 'B', 'C']).entries()) {
      const h = await this.lab.host(name, n + 1);
      await this.lab.routeToHost(h);
      this.hosts.push(h);
    }
  }

  /** An isolated network of `offering` (default DefaultIsolatedNetworkOffering: no source NAT) on `<gateway>/24`. */
  async isolatedNetwork(name: string, gateway: string, offering = 'DefaultIsolatedNetworkOffering') {
    const off = ok(await this.admin('listNetworkOfferings', { name: offering }), 'offering')
      .networkoffering[0].id as string;
    return ok(
      await this.admin('createNetwork', {
        zoneid: this.id.zone,
        name,
        displaytext: name,
        networkofferingid: off,
        gateway,
        netmask: '255.255.255.0',
      }),
      'createNetwork',
    ).network.id as string;
  }

  listHosts = async () =>
    ok(await this.admin('listHosts', { type: 'Routing' }), 'listHosts').host as {
      id: string;
      name: string;
      state: string;
    }[];

  /** Starts every host's agent with the rig's VM backend and waits until listHosts shows them all Up. */
  async hostsUp(timeoutMs = 30_000): Promise<void> {
    for (const h of this.hosts)
      this.lab.startAgent(h, { serverPort: this.server.port, args: ['--vm-backend', this.o.vmBackend] });
    const want = this.hosts.map((h) => `host-${h.name}:Up`).sort();
    const up = await eventually(
      async () => {
        const l = (await this.listHosts()) ?? [];
        assert.deepEqual(l.map((x) => `${x.name}:${x.state}`).sort(), want, this.logs());
        return l;
      },
      { timeoutMs, intervalMs: 250, what: `${this.hosts.length} hosts Up` },
    );
    for (const x of up)
      this.byUuid.set(
        x.id,
        this.hosts.find((h) => `host-${h.name}` === x.name)!,
      );
  }

  /** A host fails: its agent gone without a word, its underlay and public legs down (its routers stay, cut off). */
  async cutOff(h: LabHost): Promise<void> {
    h.agent!.child.kill('SIGKILL');
    await h.agent!.exited;
    await run(['ip', '-n', h.ns, 'link', 'set', 'eth1', 'down']);
    await run(['ip', '-n', h.ns, 'link', 'set', PUBLIC_LABEL, 'down']);
  }

  /** The API's host uuid of a lab host. */
  uuidOf(h: LabHost): string {
    return [...this.byUuid].find(([, x]) => x === h)![0];
  }

  /** The server's and agents' logs: their tails (for an assertion's message), or whole (`HOSTLAB_LOG`). */
  logs(whole = false): string {
    const tail = (s: string | undefined, n: number) => (whole ? s : s?.slice(-n)) ?? '';
    return [
      `--- server\n${tail(this.server?.output(), 6000)}`,
      ...this.hosts.map((h) => `--- agent ${h.name}\n${tail(h.agent?.output(), 3000)}`),
    ].join('\n');
  }

  /** Everything stopped and removed, whatever part of start() ran. */
  async stop(): Promise<void> {
    if (process.env.HOSTLAB_LOG && this.server) writeFileSync(process.env.HOSTLAB_LOG, this.logs(true));
    await this.lab.cleanup();
    await this.bridge?.close();
    await this.server?.stop();
    await this.tdb?.drop();
  }
}
