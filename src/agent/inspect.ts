/**
 * `GET /v1/inspect`: what the router really serves for one VM (or, without a VM, for the whole network), read
 * from the running services rather than from the desired state, so the management server's doctor (src/doctor)
 * can tell "the router has the state" from "the daemon has the files, the lease, the DNS answer, the NAT rule".
 *
 * - dnsmasq: the hosts lines (`dhcphosts.txt`, `dhcphosts.d/`, `dhcp-host=` in `dnsmasq.conf`) and names lines
 *   (`names.txt`, `names.d/`) holding the MAC / address / name, as the dnsmasq applier writes them; the leases
 *   for the MAC or the address; the last DHCP lines of `dnsmasq.log` for the MAC (dnsmasq logs every DHCPACK,
 *   DHCPRELEASE and NAK; a pre-seeded lease (hosts-files.ts / mergeLeases) has no such line, which is how a lease
 *   the guest never asked for is told apart).
 * - DNS: a real query to the router's own dnsmasq on the guest gateway (node's resolver, one try).
 * - NAT: the `ip stacknet_nat` map elements the applied state renders for the address against those in the
 *   kernel (`nft list table`), so a rule deleted by hand shows as missing.
 * Without `mac`/`ip`, `all=1` gives every MAC of the hosts files and every lease (the network doctor's counts).
 * Read-only; never signals a daemon.
 */
import { Resolver } from 'node:dns/promises';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentStatus, RouterAgent } from './agent.js';
import { dnsPaths } from './appliers/dns/render.js';
import { dnsmasqPaths, parseLeases, shardContext } from './appliers/dnsmasq/render.js';
import type { DnsmasqPaths, Lease } from './appliers/dnsmasq/render.js';
import { natTableName, netfilterRenderer } from './appliers/netfilter/render.js';
import { listDir, readText, run } from './system.js';

export interface InspectQuery {
  mac?: string;
  ip?: string;
  name?: string;
  /** Every MAC of the hosts files and every lease (network-level checks). */
  all?: boolean;
}

export interface FileLine {
  file: string;
  line: string;
}

export interface Inspection {
  status: AgentStatus;
  dnsmasq: {
    running: boolean;
    pid: number | null;
    /** Lines of the hosts files / dnsmasq.conf `dhcp-host=` holding the MAC or the address. */
    hostsLines: FileLine[];
    /** Lines of the names files holding the address or the name. */
    nameLines: FileLine[];
    hostsCount: number;
    leases: Lease[];
    leaseCount: number;
    /** The last DHCP lines of dnsmasq.log naming the MAC (oldest first). */
    dhcpLog: string[];
    /** With `all`: every MAC in the hosts files. */
    hostMacs?: string[];
  };
  dns: null | { server: string; queries: { name: string; answers: string[]; error: string | null }[] };
  nat: null | {
    loaded: boolean;
    expected: string[];
    present: string[];
    missing: string[];
    error: string | null;
  };
}

const macRe = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const logTailBytes = 2 * 1024 * 1024;

/** Every line of a full file and its hostsdir, with the file it came from. */
function linesOf(file: string, dir: string): FileLine[] {
  const out: FileLine[] = [];
  const add = (f: string) => {
    for (const line of readText(f).split('\n')) if (line.trim()) out.push({ file: f, line });
  };
  add(file);
  for (const f of listDir(dir)) add(join(dir, f));
  return out;
}

function tail(file: string, bytes: number): string {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return '';
  }
  try {
    const size = fstatSync(fd).size;
    const len = Math.min(size, bytes);
    const buf = Buffer.alloc(len);
    readSync(fd, buf, 0, len, size - len);
    return buf.toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** `map NAME { ... elements = { a, b } }` → NAME → elements (whitespace normalised); rendered or `nft list` text. */
export function mapElements(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const re = /map (\w+) \{([^}]*?)elements = \{([^}]*)\}/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const elements = m[3]!
      .split(',')
      .map((e) => e.replace(/\s+/g, ' ').trim())
      .filter(Boolean);
    out.set(m[1]!, elements);
  }
  return out;
}

/** The maps of `ip stacknet_nat` that name a guest address (netfilter/render.ts renderNat). */
const natMaps = ['pf_dnat', 'static_dnat', 'static_snat'];
const mentions = (element: string, ip: string) => element.split(/\s+/).includes(ip);

async function queryDns(server: string, names: string[]): Promise<NonNullable<Inspection['dns']>> {
  const r = new Resolver({ timeout: 1500, tries: 1 });
  r.setServers([server]);
  const queries = await Promise.all(
    names.map(async (name) => {
      try {
        return { name, answers: await r.resolve4(name), error: null };
      } catch (e) {
        return { name, answers: [], error: (e as NodeJS.ErrnoException).code ?? (e as Error).message };
      }
    }),
  );
  return { server, queries };
}

async function natCheck(agent: RouterAgent, ip: string): Promise<Inspection['nat']> {
  const state = agent.appliedState;
  if (!state || (!state.public && !state.vpc)) return null;
  const rendered = netfilterRenderer.render(state, {
    dataDir: agent.options.dataDir,
    leaseDir: agent.leaseDir,
    guestInterface: agent.options.guestInterface,
    controlPort: agent.options.controlPort,
    metadataPort: agent.options.metadataPort,
    passwordPort: agent.options.passwordPort,
  });
  const pick = (text: string) =>
    [...mapElements(text)]
      .filter(([map]) => natMaps.includes(map))
      .flatMap(([map, els]) => els.filter((e) => mentions(e, ip)).map((e) => `${map}: ${e}`));
  const expected = pick(rendered);
  const listed = await run('nft', ['list', 'table', 'ip', natTableName]);
  if (listed.code !== 0) {
    return {
      loaded: false,
      expected,
      present: [],
      missing: expected,
      error: (listed.stderr || listed.stdout).trim(),
    };
  }
  const present = pick(listed.stdout);
  return {
    loaded: true,
    expected,
    present,
    missing: expected.filter((e) => !present.includes(e)),
    error: null,
  };
}

/**
 * The dnsmasq part of an inspection, from the files as the DHCP and DNS appliers lay them out under the data and
 * lease directories (the DHCP shards of a big network each in `dhcp-<i>/`, the names in the DNS dnsmasq's files);
 * also used by the simulator driver on the files it renders.
 */
export function inspectDnsmasqFiles(
  dirs: { dataDir: string; leaseDir: string },
  q: InspectQuery,
  daemon: { running: boolean; pid: number | null },
): Inspection['dnsmasq'] {
  const mac = q.mac?.toLowerCase();
  const shards = listDir(dirs.dataDir)
    .map((f) => /^dhcp-(\d+)$/.exec(f))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => dnsmasqPaths(shardContext(dirs, Number(m[1]))));
  const all: DnsmasqPaths[] = [dnsmasqPaths(dirs), ...shards];
  const hosts = all.flatMap((paths) => [
    ...linesOf(paths.dhcpHostsFile, paths.dhcpHostsDir),
    ...readText(paths.conf)
      .split('\n')
      .filter((l) => l.startsWith('dhcp-host='))
      .map((line) => ({ file: paths.conf, line })),
  ]);
  const dns = dnsPaths(dirs);
  const names = linesOf(dns.namesFile, dns.namesDir);
  const fields = (l: string) => l.replace(/^dhcp-host=/, '').split(',');
  const hostsLines = hosts.filter(({ line }) => {
    const f = fields(line);
    return (mac !== undefined && f[0] === mac) || (q.ip !== undefined && f.includes(q.ip));
  });
  const nameLines = names.filter(({ line }) => {
    const [addr, ...n] = line.split(/\s+/);
    return (q.ip !== undefined && addr === q.ip) || (q.name !== undefined && n.includes(q.name));
  });
  const allLeases = all.flatMap((paths) => parseLeases(readText(paths.leaseFile)));
  const leases = q.all ? allLeases : allLeases.filter((l) => l.mac === mac || l.ip === q.ip);
  const dhcpLog =
    mac === undefined
      ? []
      : all
          .flatMap((paths) => tail(paths.logFile, logTailBytes).split('\n'))
          .filter((l) => l.includes('DHCP') && l.toLowerCase().includes(mac))
          .slice(-5);
  return {
    ...daemon,
    hostsLines,
    nameLines,
    hostsCount: hosts.length,
    leases,
    leaseCount: allLeases.length,
    dhcpLog,
    ...(q.all
      ? { hostMacs: [...new Set(hosts.map(({ line }) => fields(line)[0]!).filter((m) => macRe.test(m)))] }
      : {}),
  };
}

export async function inspect(agent: RouterAgent, q: InspectQuery): Promise<Inspection> {
  const status = agent.status(false);
  const state = agent.appliedState;
  const dnsServer = state && !state.network.useExternalDns ? state.network.gateway : null;
  const dnsNames =
    q.name && state ? [q.name, ...(q.name.includes('.') ? [] : [`${q.name}.${state.network.domain}`])] : [];
  return {
    status,
    dnsmasq: inspectDnsmasqFiles({ dataDir: agent.options.dataDir, leaseDir: agent.leaseDir }, q, {
      running: status.dnsmasq?.running ?? false,
      pid: status.dnsmasq?.pid ?? null,
    }),
    dns: dnsServer && dnsNames.length ? await queryDns(dnsServer, dnsNames) : null,
    nat: q.ip ? await natCheck(agent, q.ip) : null,
  };
}

/** The query of `GET /v1/inspect?mac=&ip=&name=&all=1`. */
export function inspectQuery(params: URLSearchParams): InspectQuery {
  const v = (k: string) => params.get(k) || undefined;
  return { mac: v('mac'), ip: v('ip'), name: v('name'), all: params.get('all') === '1' };
}
