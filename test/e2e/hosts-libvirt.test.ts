/**
 * Real VMs through the API (issue 19): a real `stacknet server --driver hosts` and three host namespaces each
 * running the real `stacknet host-agent --vm-backend libvirt` (its own libvirtd; QEMU emulation unless /dev/kvm
 * works), driven only through the CloudStack API with the python `cs` client (set-up: hosts-rig.ts). The
 * project's test template (src/hostagent/libvirt/test-template.ts) is registered with registerTemplate by its
 * file:// URL; an isolated network without source NAT, over VXLAN and over VLAN; two VMs with user-data land on two hosts and
 * the router on the third. Each guest's serial console, read through its host agent's console relay, shows the
 * address, gateway and DNS the API gave it, its own metadata, user-data and password, and that it reached the
 * other guest by name through the router's DNS. Stop / start / destroy map to libvirt on that host (virsh).
 * Two guest boots in all (QEMU emulation is slow). Root; `npm run build` first.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ok } from '../api/harness.js';
import { eventually } from '../../src/netns/index.js';
import { parseGuestConsole, type GuestReport } from '../../src/hostagent/libvirt/guest-console.js';
import { libvirtdPaths, libvirtdUri } from '../../src/hostagent/libvirt/libvirtd.js';
import { buildTestTemplate } from '../../src/hostagent/libvirt/test-template.js';
import { Virsh } from '../../src/hostagent/libvirt/virsh.js';
import type { LabHost } from '../hosts/host-lab.js';
import { HostsRig } from './hosts-rig.js';

const isRoot = process.getuid?.() === 0;

interface Vm {
  id: string;
  name: string;
  instance: string;
  host: LabHost;
  ip: string;
  gateway: string;
  netmask: string;
  password: string;
  userData: string;
}

/** What the host agent's console relay (GET /v1/vms/<instance>/console, the host's secret) says of a VM. */
export async function guestConsole(h: LabHost, instance: string): Promise<string> {
  const { secret } = JSON.parse(readFileSync(`${h.dataDir}/host.json`, 'utf8')) as { secret: string };
  const r = await fetch(`http://${h.mgmt}/v1/vms/${encodeURIComponent(instance)}/console`, {
    headers: { authorization: `Bearer ${secret}` },
    signal: AbortSignal.timeout(5000),
  });
  if (r.status === 404) return '';
  if (r.status !== 200) throw new Error(`console of ${instance} on ${h.name}: HTTP ${r.status}`);
  return r.text();
}

/** The host's own libvirt (the agent's libvirtd, by its socket under the agent's data dir). */
export const hostVirsh = (h: LabHost) => new Virsh(libvirtdUri(libvirtdPaths(h.dataDir).socket));

// Over each isolation method: VXLAN devices with the other hosts as static peers, and VLAN on the hosts' trunk
// (802.1Q sub-interfaces, or the agent's eBPF tagger on a kernel without 802.1Q, as here).
for (const isolation of ['VXLAN', 'VLAN'] as const)
  describe(
    `hosts driver with libvirt VMs end to end over ${isolation}: server + three host agents (python cs)`,
    { skip: !isRoot && 'needs root' },
    () => {
      const rig = new HostsRig({ vmBackend: 'libvirt', isolation });
      let net = '';
      let template = '';
      const vms: Record<string, Vm> = {};

      /** The guest's report once `done` holds for it (its console through the relay); the console when it fails. */
      const report = async (v: Vm, done: (r: GuestReport) => boolean, timeoutMs = 60_000) => {
        let last = '';
        return eventually(
          async () => {
            last = await guestConsole(v.host, v.instance);
            const r = parseGuestConsole(last);
            if (!done(r)) throw new Error('not yet');
            return r;
          },
          { timeoutMs, intervalMs: 200, what: `${v.name}'s console` },
        ).catch((e: unknown) => {
          throw new Error(`${String(e)}\n--- console of ${v.name}\n${last.slice(-3000)}\n${rig.logs()}`);
        });
      };
      const domain = (v: Vm) => `${v.host.prefix}${v.instance}`;
      const domstate = (v: Vm) => hostVirsh(v.host).domstate(domain(v));
      const router = async () =>
        ok(await rig.admin('listRouters', { networkid: net }), 'listRouters').router[0] as {
          hostid: string;
          guestipaddress: string;
          state: string;
        };

      before(async () => {
        const built = buildTestTemplate();
        built.catch(() => {});
        await rig.start();
        net = await rig.isolatedNetwork('lv', '10.3.4.1');
        const t = await built;
        // The agents' libvirtd start (a cold one probes QEMU for seconds) overlaps the template's registration.
        const up = rig.hostsUp(90_000);
        up.catch(() => {});
        template = ok(
          await rig.admin('registerTemplate', {
            name: 'stacknet-test',
            displaytext: 'stacknet test template (kernel + busybox initramfs)',
            url: t.url,
            format: 'TAR',
            hypervisor: 'KVM',
            zoneid: rig.id.zone,
            checksum: `{SHA-256}${t.checksum}`,
            passwordenabled: 'true',
            ostypeid: ok(await rig.admin('listOsTypes', { keyword: 'Other Linux' }), 'os').ostype[0].id,
          }),
          'registerTemplate',
        ).template[0].id;
        await up;
      });

      after(async () => {
        await rig.stop();
      });

      test('two VMs on two hosts, the router on a third: each console shows what the API gave it, and the other by name', async () => {
        const deploy = async (name: string, peer: string) => {
          const userData = `#cloud-config\n# ${name}'s own user-data\n# stacknet-ping: ${peer}\n`;
          const r = ok(
            await rig.admin(
              'deployVirtualMachine',
              {
                serviceofferingid: rig.id.so,
                templateid: template,
                zoneid: rig.id.zone,
                networkids: net,
                name,
                userdata: Buffer.from(userData).toString('base64'),
              },
              { fetch_result: true },
            ),
            `deploy ${name}`,
          ).virtualmachine;
          const host = rig.byUuid.get(r.hostid);
          assert.ok(host, `${name} placed on a known host: ${JSON.stringify(r)}`);
          assert.ok(r.password, `a password-enabled template: the deploy answers the password`);
          vms[name] = {
            id: r.id,
            name,
            instance: r.instancename,
            host,
            ip: r.nic[0].ipaddress,
            gateway: r.nic[0].gateway,
            netmask: r.nic[0].netmask,
            password: r.password,
            userData,
          };
        };
        await Promise.all([deploy('vm1', 'vm2'), deploy('vm2', 'vm1')]);
        const r = await router();
        const placed = new Set([vms.vm1!.host, vms.vm2!.host, rig.byUuid.get(r.hostid)]);
        assert.equal(placed.size, 3, 'the router and the two VMs on three different hosts');
        for (const v of [vms.vm1!, vms.vm2!]) {
          const listed = ok(await rig.admin('listVirtualMachines', { id: v.id }), 'listVirtualMachines')
            .virtualmachine[0];
          assert.equal(listed.nic[0].ipaddress, v.ip);
          assert.equal(listed.hostid, rig.uuidOf(v.host));
          assert.equal(
            await domstate(v),
            'running',
            `${v.name} a running domain in ${v.host.name}'s libvirt`,
          );
        }
        const [r1, r2] = await Promise.all(
          [vms.vm1!, vms.vm2!].map((v) => report(v, (x) => x.readyUptime !== undefined)),
        );
        for (const [v, g, peer] of [
          [vms.vm1!, r1!, vms.vm2!],
          [vms.vm2!, r2!, vms.vm1!],
        ] as const) {
          assert.deepEqual(g.errors, [], v.name);
          // The router is the network's DHCP and DNS server (no source NAT: it is still the gateway it serves).
          assert.deepEqual(g.lease, {
            ip: v.ip,
            mask: v.netmask,
            router: v.gateway,
            dns: [r.guestipaddress],
            hostname: v.name,
          });
          assert.equal(g.meta['instance-id'], v.id);
          assert.equal(g.meta['local-hostname'], v.name);
          assert.equal(g.meta['local-ipv4'], v.ip);
          assert.equal(g.userData, v.userData);
          assert.equal(g.password, v.password);
          assert.deepEqual(
            g.pings,
            { [peer.name]: { ip: peer.ip, ok: true } },
            `${v.name} reaches ${peer.name}`,
          );
        }
      });

      test('stop, start, destroy map to libvirt on the VM host; the other VM untouched', async () => {
        const v = vms.vm2!;
        const state = async () =>
          ok(await rig.admin('listVirtualMachines', { id: v.id }), 'list').virtualmachine[0].state as string;
        ok(await rig.admin('stopVirtualMachine', { id: v.id }, { fetch_result: true }), 'stop vm2');
        assert.equal(await state(), 'Stopped');
        await eventually(async () => assert.equal(await domstate(v), 'shut off'), {
          timeoutMs: 10_000,
          what: 'vm2 shut off in its host libvirt',
        });
        ok(await rig.admin('startVirtualMachine', { id: v.id }, { fetch_result: true }), 'start vm2');
        assert.equal(await state(), 'Running');
        await eventually(async () => assert.equal(await domstate(v), 'running'), {
          timeoutMs: 10_000,
          what: 'vm2 running again in its host libvirt',
        });
        ok(
          await rig.admin('destroyVirtualMachine', { id: v.id, expunge: true }, { fetch_result: true }),
          'destroy vm2',
        );
        await eventually(async () => assert.equal(await domstate(v), null, 'no domain left'), {
          timeoutMs: 10_000,
          what: 'vm2 gone from its host libvirt',
        });
        assert.deepEqual(
          (await hostVirsh(vms.vm1!.host).list()).map((d) => `${d.name} ${d.state}`),
          [`${domain(vms.vm1!)} running`],
          'vm1 untouched on its host',
        );
      });
    },
  );
