import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { VmBackendOptions } from '../hostagent/netns-backend.js';
import type { VmBackend } from '../hostagent/vm-backend.js';
import { createLogger, logHook, parseLogFormat, parseLogLevel } from '../logging/logger.js';
import { flagValue, parseFlags } from './flags.js';
import type { CliCommand } from './main.js';

const usage = `usage: stacknet host-agent --server <url> --token <t> --name <n> --address <underlay ip> --port <p>
       --data-dir <d> --guest-label <iface> [--public-label <iface>] [--vm-backend netns|libvirt]
       [--prefix <name prefix>]
       [--listen <ip>] [--control-cidr 169.254.0.0/16] [--ping-interval 60] [--zone <uuid>]
       [--log-level info] [--log-format json|text]
       stacknet host-agent cleanup --data-dir <d> [--prefix <name prefix>]

Runs a host's agent (issue 19; one per hypervisor or network node, as root): registers with the management
server at --server with the registration token (once: the host's id and secret are kept in <d>/host.json, so a
restart does not register again), heartbeats every ping interval (the server's ping.interval when it says it,
else --ping-interval seconds), long-polls its desired state and converges the host to it: a bridge per guest
network on a VLAN sub-interface of --guest-label (<label>.<vlan>) or on a VXLAN device (vx<vni>, local
--address, dstport 4789, peers as static FDB entries), VM ports with nftables anti-spoofing, routers as
namespaces running \`stacknet router-agent\` (eth1 on a host-local control bridge in --control-cidr, or the
desired state's controlCidr; eth2, eth3... on a public bridge per public VLAN over the zone's Public traffic
label or --public-label: brpub holding the label when untagged, unless the label is a bridge itself, then the
label as is; brpub<vlan> holding <label>.<vlan> when tagged), VMs through the VM backend (netns: light VMs, a namespace with udhcpc; libvirt:
domains). Whatever fails is reported in the status's errors and retried each heartbeat; the rest goes on.

It listens on --listen (default --address) port --port for the server: ANY /v1/routers/<router>/<path>
(relayed to the router agent's control API), GET /v1/status, GET /v1/vms/<instance>/console, all with
Authorization: Bearer <host secret> (the relay also takes the router's own secret).

Stopping the agent (SIGTERM, or killed) leaves every VM, router and bridge running; a new agent adopts them.
\`cleanup\` removes what the agent with this data dir created (<d>/created.json, and the backends' VMs), nothing
else. --prefix prefixes every namespace name (tests).`;

const parse = (args: string[]) => parseFlags(args, usage);
const str = flagValue;

const here = dirname(fileURLToPath(import.meta.url));

/**
 * The VM backend by name. `libvirt` is src/hostagent/libvirt/index.js exporting
 * `createLibvirtBackend(opts: VmBackendOptions)`; loaded only when asked for, and only if present.
 */
export async function loadVmBackend(name: string, opts: VmBackendOptions): Promise<VmBackend> {
  if (name === 'netns') return (await import('../hostagent/netns-backend.js')).createNetnsBackend(opts);
  if (name === 'libvirt') {
    const js = resolve(here, '..', 'hostagent', 'libvirt', 'index.js');
    const ts = js.replace(/\.js$/, '.ts');
    if (!existsSync(js) && !existsSync(ts)) throw new Error(`--vm-backend libvirt: ${js} is not there`);
    const mod = (await import(pathToFileURL(js).href)) as {
      createLibvirtBackend?: (o: VmBackendOptions) => VmBackend | Promise<VmBackend>;
    };
    if (!mod.createLibvirtBackend) throw new Error(`${js} does not export createLibvirtBackend`);
    return mod.createLibvirtBackend(opts);
  }
  throw new Error(`--vm-backend must be netns or libvirt, got '${name}'`);
}

export const hostAgentCommand: CliCommand = {
  summary: 'run a host agent (guest bridges, VXLAN/VLAN, VM ports, routers, VMs on this host)',
  async run(args) {
    if (args.includes('--help') || args.includes('-h')) {
      console.log(usage);
      return 0;
    }
    const cleanup = args[0] === 'cleanup';
    const m = parse(cleanup ? args.slice(1) : args);
    const logger = createLogger({
      level: parseLogLevel(str(m, 'log-level') ?? process.env.STACKNET_LOG_LEVEL),
      format: parseLogFormat(str(m, 'log-format') ?? process.env.STACKNET_LOG_FORMAT),
      base: { service: 'stacknet-host-agent' },
    });
    const log = logHook(logger);
    const dataDir = str(m, 'data-dir');
    if (!dataDir) {
      console.error(`stacknet host-agent: --data-dir is required\n\n${usage}`);
      return 2;
    }
    const dir = resolve(dataDir);
    mkdirSync(dir, { recursive: true });
    const prefix = str(m, 'prefix') ?? '';
    const { HostConverger } = await import('../hostagent/converge.js');
    if (cleanup) {
      const { Created } = await import('../hostagent/created.js');
      const backends = new Map<'libvirt' | 'netns', VmBackend>();
      for (const b of new Created(dir).read().backends)
        backends.set(b, await loadVmBackend(b, { dataDir: dir, prefix, log, kvm: false }));
      const controlCidr = str(m, 'control-cidr') ?? '169.254.0.0/16';
      await new HostConverger({
        dataDir: dir,
        prefix,
        hostAddress: '',
        controlCidr,
        backends,
        log,
      }).cleanup();
      console.log(`removed what the host agent in ${dir} created`);
      return 0;
    }
    const need = ['server', 'token', 'name', 'address', 'port', 'guest-label'];
    const missing = need.filter((k) => !str(m, k) && !(k === 'token' && existsSync(join(dir, 'host.json'))));
    if (missing.length) {
      console.error(`stacknet host-agent: ${missing.map((k) => `--${k}`).join(', ')} required\n\n${usage}`);
      return 2;
    }
    const port = Number(str(m, 'port'));
    if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`--port must be a port number`);
    const pingInterval = Number(str(m, 'ping-interval') ?? 60);
    if (!(pingInterval > 0)) throw new Error('--ping-interval must be a number of seconds');
    const { HostAgent, kvmUsable } = await import('../hostagent/host-agent.js');
    const kvm = kvmUsable();
    const backend = await loadVmBackend(str(m, 'vm-backend') ?? 'netns', { dataDir: dir, prefix, log, kvm });
    const zone = str(m, 'zone');
    const agent = new HostAgent({
      server: str(m, 'server')!,
      token: str(m, 'token') ?? '',
      name: str(m, 'name')!,
      address: str(m, 'address')!,
      port,
      ...(str(m, 'listen') ? { listen: str(m, 'listen')! } : {}),
      dataDir: dir,
      guestLabel: str(m, 'guest-label')!,
      ...(str(m, 'public-label') ? { publicLabel: str(m, 'public-label')! } : {}),
      prefix,
      controlCidr: str(m, 'control-cidr') ?? '169.254.0.0/16',
      pingInterval,
      ...(zone ? { zoneId: zone } : {}),
      backend,
      log,
    });
    await agent.start();
    log(`host agent ${str(m, 'name')} serving on ${str(m, 'listen') ?? str(m, 'address')}:${port}`);
    await new Promise<void>((done) => {
      const stop = () => void agent.stop().then(done);
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
    return 0;
  },
};
