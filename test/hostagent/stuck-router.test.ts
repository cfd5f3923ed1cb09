/**
 * A router step that never ends (issue 19; a host agent was seen silent for 5 minutes in a router's step): on a
 * host emulated as a namespace (test/hosts/host-lab.ts), the real `stacknet host-agent` runs with a wrapper `ip`
 * first in its PATH whose `ip netns add <...>r-9-VM` leaves a child holding its output pipes, so the command never
 * ends for the agent (killing ip at its 10 s timeout does not close the pipes): an await that never resolves,
 * as a grandchild holding a pipe or a process stuck in the kernel makes one. Every other command is the real ip.
 * The pass fails the router at its deadline (`STACKNET_HOST_DEADLINES`) and goes on: the VM of the same state
 * starts, and the status names the router's error and the step it was at. Later passes do not start the router
 * again while that attempt runs; once it ends, the next pass makes the router (its real router agent up).
 * Root; `npm run build` first.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { HostRouterSpec, HostVmSpec } from '../../src/hosts/protocol.js';
import { guestBridgeName } from '../../src/hosts/protocol.js';
import { eventually, exec, listNamespaces } from '../../src/netns/index.js';
import { HostLab, type LabHost } from '../hosts/host-lab.js';

const isRoot = process.getuid?.() === 0;
const lab = new HostLab(`10.98.${1 + Math.floor(Math.random() * 250)}`);
let A: LabHost;
let bin = '';
const vni = 7000 + Math.floor(Math.random() * 1000);
const CIDR = '10.71.0';

const router: HostRouterSpec = {
  id: 9,
  name: 'r-9-VM',
  networkId: 1,
  guestIp: `${CIDR}.1`,
  guestMac: '02:00:00:00:00:c9',
  controlIp: '169.254.0.19',
  controlPort: 3922,
  secret: 'stuck-router-test-secret',
  redundant: false,
  vpcId: null,
};

const vm: HostVmSpec = {
  id: 11,
  uuid: '00000000-0000-4000-8000-000000000011',
  instanceName: 'i-2-11-VM',
  hostname: 'vm11',
  state: 'Running',
  backend: 'netns',
  cpus: 1,
  memoryMiB: 64,
  template: { id: 1, name: 'light', url: 'file:///dev/null', format: 'kernel-initrd', checksum: null },
  nics: [
    {
      id: 21,
      mac: '02:00:00:00:00:0b',
      ipv4s: [`${CIDR}.11`],
      ipv6: null,
      networkId: 1,
      deviceId: 0,
      isDefault: true,
    },
  ],
};

before(async () => {
  if (!isRoot) return;
  await lab.setup();
  A = await lab.host('A', 1);
  bin = await lab.net.tempDir('ipwrap');
  const realIp = (await exec(['sh', '-c', 'command -v ip'])).stdout.trim();
  // `sleep` keeps ip's stdout and stderr: once ip is killed (the agent's 10 s timeout) they stay open.
  writeFileSync(
    join(bin, 'ip'),
    `#!/bin/sh
case "$*" in
  "netns add "*r-9-VM)
    if [ ! -e ${bin}/released ]; then
      echo hang >> ${bin}/hangs
      sleep 600 &
      echo $! > ${bin}/sleep.pid
      wait
    fi ;;
esac
exec ${realIp} "$@"
`,
  );
  chmodSync(join(bin, 'ip'), 0o755);
});

after(async () => {
  if (!isRoot) return;
  release();
  await lab.cleanup();
});

/** Ends the hanging `ip netns add` (and lets the next one through). */
function release(): void {
  if (!bin) return;
  writeFileSync(join(bin, 'released'), '');
  const f = join(bin, 'sleep.pid');
  if (existsSync(f))
    try {
      process.kill(Number(readFileSync(f, 'utf8')), 'SIGKILL');
    } catch {
      /* gone */
    }
}

const logs = () => A.agent?.output().slice(-4000) ?? '';
const hangs = () =>
  existsSync(join(bin, 'hangs')) ? readFileSync(join(bin, 'hangs'), 'utf8').split('\n').length - 1 : 0;

test(
  'a router step that never ends fails at its deadline; the pass goes on; it is retried once it ends',
  { skip: !isRoot && 'needs root' },
  async () => {
    lab.setDesired(A, {
      networks: [
        {
          id: 1,
          isolation: 'VXLAN',
          vnet: vni,
          trafficLabel: 'eth1',
          bridge: guestBridgeName('VXLAN', vni),
          peers: [],
          mtu: 1450,
        },
      ],
      routers: [router],
      vms: [vm],
    });
    lab.startAgent(A, {
      env: { PATH: `${bin}:${process.env.PATH}`, STACKNET_HOST_DEADLINES: JSON.stringify({ router: 4000 }) },
    });
    // The pass goes past the stuck router: the VM is started, the router's error names its step.
    const s = await eventually(
      () => {
        const st = lab.status(A);
        assert.ok(st, logs());
        assert.ok(
          st.vms.some((v) => v.instanceName === vm.instanceName && v.state === 'Running'),
          `${JSON.stringify(st)}\n${logs()}`,
        );
        const e = st.errors.find((x) => x.what === `router ${router.name}`);
        assert.match(e?.message ?? '', /no end after 4 s \(at: namespace /, JSON.stringify(st));
        return st;
      },
      { timeoutMs: 30_000, intervalMs: 200, what: 'the VM started and the stuck router reported' },
    );
    assert.deepEqual(
      s.routers.map((r) => [r.name, r.running]),
      [[router.name, false]],
    );
    assert.ok((await listNamespaces()).includes(`${A.prefix}${vm.instanceName}`), 'the VM namespace');
    // Later passes (one per beat, ≥ 5 s apart) report it still running and do not start it again.
    await eventually(
      () =>
        assert.match(
          lab.status(A)?.errors.find((x) => x.what === `router ${router.name}`)?.message ?? '',
          /an earlier attempt is still running after \d+ s \(at: namespace .*\); not started again/,
        ),
      { timeoutMs: 20_000, intervalMs: 200, what: 'a later pass: still running, not started again' },
    );
    assert.equal(hangs(), 1, 'one attempt only');
    // The stuck command ends: the next pass makes the router, its real agent up.
    release();
    await eventually(
      () => {
        const st = lab.status(A);
        assert.ok(
          st?.routers.some((r) => r.name === router.name && r.running) &&
            !st.errors.some((x) => x.what === `router ${router.name}`),
          `${JSON.stringify(st)}\n${logs()}`,
        );
      },
      // A router agent is a node process: on a loaded machine it takes 10-15 s to answer.
      { timeoutMs: 60_000, intervalMs: 250, what: 'the router made once the stuck attempt ended' },
    );
    assert.match(logs(), /router r-9-VM: the attempt past its deadline ended after \d+ s/);
  },
);
