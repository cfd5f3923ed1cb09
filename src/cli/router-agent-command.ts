import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { resolve } from 'node:path';
import { RouterAgent } from '../agent/agent.js';
import { createControlServer } from '../agent/control-server.js';
import { recordAgentLog } from '../agent/diagnostics.js';
import { createMetadataServer, createPasswordServer } from '../agent/guest-services.js';
import { AgentMetrics } from '../metrics/agent-metrics.js';
import { createLogger, logHook, parseLogFormat, parseLogLevel } from '../logging/logger.js';
import { flagValue, parseFlags, type Flags } from './flags.js';
import type { CliCommand } from './main.js';

const usage = `usage: stacknet router-agent --control-address <ip:port> --data-dir <dir> (--secret <s> | --secret-file <f>)
       [--guest-interface eth0] [--dnsmasq-binary dnsmasq] [--keepalived-binary keepalived]
       [--metadata-port 80] [--password-port 8080] [--no-firewall] [--appliance internal-lb]
       [--dhcp-shards K] [--log-level info] [--log-format json|text] [--no-metrics]

Runs one virtual router's agent (run it inside the router's network namespace: ip netns exec <ns> stacknet ...).
SIGTERM/SIGINT stop keepalived and dnsmasq too; SIGKILL leaves them serving and a new agent adopts them.
--appliance internal-lb: an internal LB appliance (CloudStack's internal LB VM): its address and haproxy only,
no dnsmasq, metadata or password server, firewall or NAT.
--dhcp-shards K: serve DHCP from K dnsmasq shards whatever the number of hosts (default: one dnsmasq up to
2,048 hosts, then about 1,024 hosts a shard; see src/agent/README.md "DHCP and DNS").
Control API: see src/agent/README.md. GET /metrics on the control address: Prometheus text, with the same
Authorization: Bearer <router secret> as every control request (--no-metrics: none).
Logs: JSON lines on stdout (--log-level / STACKNET_LOG_LEVEL, default info; --log-format text /
STACKNET_LOG_FORMAT for people).`;

const parse = (args: string[]) => parseFlags(args, usage);
const str = flagValue;

function port(m: Flags, k: string, dflt: number): number {
  const v = str(m, k);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`--${k} must be a port number, got '${v}'`);
  return n;
}

function listen(server: Server, port: number, host: string | undefined, what: string): Promise<void> {
  return new Promise((ok, fail) => {
    server.once('error', (e: Error) =>
      fail(new Error(`cannot listen for ${what} on ${host ?? '*'}:${port}: ${e.message}`)),
    );
    server.listen(port, host, () => ok());
  });
}

export const routerAgentCommand: CliCommand = {
  summary: 'run a virtual router agent (dnsmasq, metadata, password server, firewall, keepalived)',
  async run(args) {
    if (args.includes('--help') || args.includes('-h')) {
      console.log(usage);
      return 0;
    }
    const m = parse(args);
    const control = str(m, 'control-address');
    const dataDir = str(m, 'data-dir');
    let secret = str(m, 'secret');
    const secretFile = str(m, 'secret-file');
    if (!control || !dataDir || (!secret && !secretFile)) {
      console.error(
        `stacknet router-agent: --control-address, --data-dir and --secret or --secret-file are required\n\n${usage}`,
      );
      return 2;
    }
    if (secretFile) secret = readFileSync(secretFile, 'utf8').trim();
    if (!secret) throw new Error('the router secret is empty');
    const idx = control.lastIndexOf(':');
    const controlHost = control.slice(0, idx).replace(/^\[|\]$/g, '');
    const controlPort = Number(control.slice(idx + 1));
    if (idx <= 0 || !Number.isInteger(controlPort) || controlPort <= 0 || controlPort > 65535)
      throw new Error(`--control-address must be <ip>:<port>, got '${control}'`);
    const logger = createLogger({
      level: parseLogLevel(str(m, 'log-level') ?? process.env.STACKNET_LOG_LEVEL),
      format: parseLogFormat(str(m, 'log-format') ?? process.env.STACKNET_LOG_FORMAT),
      // Each line also goes to the recent-log ring that getDiagnosticsData archives.
      destination: {
        write: (line: string) => {
          recordAgentLog(line.replace(/\n$/, ''));
          return process.stdout.write(line);
        },
      },
      base: { service: 'stacknet-router-agent', control: control },
    });
    const applianceArg = str(m, 'appliance');
    if (applianceArg !== undefined && applianceArg !== 'internal-lb')
      throw new Error(`--appliance must be internal-lb, got '${applianceArg}'`);
    const appliance = applianceArg ? ('internalLb' as const) : undefined;
    // An appliance serves no metadata or passwords: nothing listens on those ports.
    const metadataPort = port(m, 'metadata-port', appliance ? 0 : 80);
    const passwordPort = port(m, 'password-port', appliance ? 0 : 8080);
    const shardsArg = str(m, 'dhcp-shards');
    const dhcpShards = shardsArg === undefined ? undefined : Number(shardsArg);
    if (dhcpShards !== undefined && !(Number.isInteger(dhcpShards) && dhcpShards >= 1 && dhcpShards <= 256))
      throw new Error(`--dhcp-shards must be a whole number from 1 to 256, got '${shardsArg}'`);
    const metrics = m.has('no-metrics') ? undefined : new AgentMetrics(() => agent.status(false));
    const agent = new RouterAgent({
      dataDir: resolve(dataDir),
      guestInterface: str(m, 'guest-interface') ?? 'eth0',
      controlAddress: controlHost,
      controlPort,
      metadataPort,
      passwordPort,
      dnsmasqBinary: str(m, 'dnsmasq-binary') ?? 'dnsmasq',
      keepalivedBinary: str(m, 'keepalived-binary') ?? 'keepalived',
      firewall: !m.has('no-firewall'),
      ...(appliance ? { appliance } : {}),
      ...(dhcpShards !== undefined ? { dhcpShards } : {}),
      log: logHook(logger),
      onApply: (a) => {
        metrics?.applied(a);
        const fields = {
          generation: a.generation,
          result: a.ok ? 'ok' : 'failed',
          reason: a.reason,
          forced: a.force || undefined,
          durationMs: Math.round(a.seconds * 1e6) / 1e3,
          appliers: Object.fromEntries(a.appliers.map((x) => [x.name, Math.round(x.seconds * 1e6) / 1e3])),
        };
        if (a.ok) logger.info(fields, 'applied');
        else logger.warn(fields, 'apply failed');
      },
    });
    const servers: Server[] = [];
    // Guest services listen on all addresses and answer only on the router's guest addresses: with a redundant
    // pair the VIP comes and goes, and binding it would fail on the backup.
    if (metadataPort) {
      const s = createMetadataServer(agent);
      await listen(s, metadataPort, undefined, 'metadata');
      servers.push(s);
    }
    if (passwordPort) {
      const s = createPasswordServer(agent);
      await listen(s, passwordPort, undefined, 'the password server');
      servers.push(s);
    }
    await agent.start();
    const ctl = createControlServer(agent, secret, {
      metrics: metrics && { contentType: metrics.registry.contentType, scrape: () => metrics.scrape() },
    });
    await listen(ctl, controlPort, controlHost, 'the control API');
    servers.push(ctl);
    logger.info({ dataDir: resolve(dataDir) }, `router agent listening on ${controlHost}:${controlPort}`);
    await new Promise<void>((done) => {
      const stop = (sig: string) => {
        logger.info(`${sig}: stopping keepalived and dnsmasq`);
        for (const s of servers) s.close();
        agent.stop().then(done, done);
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
    return 0;
  },
};
