import { mkdir, rm, writeFile } from 'node:fs/promises';
import { exec, run, killPid } from './exec.js';
import { assertIfname, assertNamespaceName, normalizeMac } from './names.js';
import { eventually } from './eventually.js';

/** `ip` argv, in namespace `ns` when given (`ip -n`), else in the host namespace. */
export function ipArgv(ns: string | undefined, args: string[]): string[] {
  return ns ? ['ip', '-n', ns, ...args] : ['ip', ...args];
}

async function ip(ns: string | undefined, args: string[]): Promise<string> {
  return (await run(ipArgv(ns, args))).stdout;
}

/** `/etc/netns/<ns>`: `ip netns exec` bind-mounts the files in it over `/etc/<file>` (resolv.conf). */
export function etcNetnsDir(ns: string): string {
  return `/etc/netns/${assertNamespaceName(ns)}`;
}

/** The per-namespace resolv.conf that our DHCP hook scripts write (never the host's /etc/resolv.conf). */
export function resolvConfPath(ns: string): string {
  return `${etcNetnsDir(ns)}/resolv.conf`;
}

/**
 * Creates namespace `ns` with `lo` up (a new namespace has it down, and dnsmasq, dig and the agent talk
 * to 127.0.0.1) and an empty `/etc/netns/<ns>/resolv.conf`: with that file present, `ip netns exec`
 * shows it as /etc/resolv.conf, so nothing run in the namespace can touch the host's resolver.
 */
export async function createNamespace(ns: string): Promise<void> {
  assertNamespaceName(ns);
  await run(['ip', 'netns', 'add', ns]);
  await ip(ns, ['link', 'set', 'lo', 'up']);
  await mkdir(etcNetnsDir(ns), { recursive: true });
  await writeFile(resolvConfPath(ns), '# written by stacknet netns toolkit; DHCP hooks fill it in\n');
}

/** PIDs of every process whose network namespace is `ns`. */
export async function namespacePids(ns: string): Promise<number[]> {
  const r = await exec(['ip', 'netns', 'pids', assertNamespaceName(ns)]);
  if (r.code !== 0) return [];
  return r.stdout
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 1);
}

/** Kills every process still running in namespace `ns` (they are ours: we made the namespace). */
export async function killNamespacePids(ns: string, graceMs = 1000): Promise<void> {
  const pids = await namespacePids(ns);
  await Promise.all(pids.map((p) => killPid(p, graceMs)));
}

/** Deletes namespace `ns` (and its /etc/netns dir). Missing is fine. Kill its processes first. */
export async function deleteNamespace(ns: string): Promise<void> {
  assertNamespaceName(ns);
  const r = await exec(['ip', 'netns', 'del', ns]);
  if (r.code !== 0 && !/No such file|does not exist|Invalid argument/.test(r.stderr)) {
    throw new Error(`ip netns del ${ns}: ${r.stderr.trim()}`);
  }
  await rm(etcNetnsDir(ns), { recursive: true, force: true });
}

export async function listNamespaces(): Promise<string[]> {
  const r = await exec(['ip', 'netns', 'list']);
  return r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter(Boolean);
}

/** Names of the links in `ns` (or the host). */
export async function listLinks(ns?: string): Promise<string[]> {
  const r = await exec(ipArgv(ns, ['-o', 'link', 'show']));
  return r.stdout
    .split('\n')
    .map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1] ?? '')
    .filter(Boolean);
}

/** Creates bridge `name` (in `ns`, or in the host) and brings it up. */
export async function createBridge(name: string, opts: { ns?: string } = {}): Promise<void> {
  assertIfname(name);
  // STP off and forward_delay 0: a new port forwards at once, so the first DHCP DISCOVER is not eaten.
  await ip(opts.ns, ['link', 'add', 'name', name, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
  await ip(opts.ns, ['link', 'set', name, 'up']);
}

/** Deletes link `name` (in `ns` or the host); missing is fine. */
export async function deleteLink(name: string, opts: { ns?: string } = {}): Promise<void> {
  const r = await exec(ipArgv(opts.ns, ['link', 'del', assertIfname(name)]));
  if (r.code !== 0 && !/Cannot find device|does not exist|Invalid argument|No such/.test(r.stderr)) {
    throw new Error(`ip link del ${name}: ${r.stderr.trim()}`);
  }
}

export interface VethSpec {
  /** Namespace of the inner end (a guest or VR). */
  ns: string;
  /** Name of the inner end inside `ns`, e.g. `eth0`. */
  ifname: string;
  /** Name of the outer end (unique in its namespace: the host, or `outerNs`). */
  outerName: string;
  /** Namespace of the outer end; default the host. */
  outerNs?: string;
  /** Bridge (in the outer end's namespace) to attach the outer end to. */
  bridge?: string;
  /** MAC of the inner end. */
  mac?: string;
}

/**
 * Creates a veth pair: `ifname` inside `ns`, `outerName` in the host (or `outerNs`), optionally enslaved to
 * `bridge`; both ends up.
 */
export async function createVeth(spec: VethSpec): Promise<void> {
  assertIfname(spec.ifname);
  assertIfname(spec.outerName);
  assertNamespaceName(spec.ns);
  await ip(spec.outerNs, [
    'link',
    'add',
    spec.outerName,
    'type',
    'veth',
    'peer',
    'name',
    spec.ifname,
    'netns',
    spec.ns,
  ]);
  if (spec.mac) await setMac(spec.ns, spec.ifname, spec.mac);
  await ip(spec.ns, ['link', 'set', spec.ifname, 'up']);
  if (spec.bridge)
    await ip(spec.outerNs, ['link', 'set', spec.outerName, 'master', assertIfname(spec.bridge)]);
  await ip(spec.outerNs, ['link', 'set', spec.outerName, 'up']);
}

/** Adds `cidr` (e.g. `10.1.1.1/24`) to `ifname` in `ns` (undefined = host). */
export async function addAddress(ns: string | undefined, ifname: string, cidr: string): Promise<void> {
  await ip(ns, ['addr', 'add', cidr, 'dev', assertIfname(ifname)]);
}

export async function deleteAddress(ns: string | undefined, ifname: string, cidr: string): Promise<void> {
  await ip(ns, ['addr', 'del', cidr, 'dev', assertIfname(ifname)]);
}

export async function flushAddresses(ns: string | undefined, ifname: string): Promise<void> {
  await ip(ns, ['addr', 'flush', 'dev', assertIfname(ifname)]);
}

/** IPv4 addresses (`a.b.c.d/len`) on `ifname`. */
export async function listAddresses(ns: string | undefined, ifname: string): Promise<string[]> {
  const out = await ip(ns, ['-o', '-4', 'addr', 'show', 'dev', assertIfname(ifname)]);
  return [...out.matchAll(/inet (\S+)/g)].map((m) => m[1] ?? '');
}

export async function setMac(ns: string | undefined, ifname: string, mac: string): Promise<void> {
  await ip(ns, ['link', 'set', 'dev', assertIfname(ifname), 'address', normalizeMac(mac)]);
}

export async function getMac(ns: string | undefined, ifname: string): Promise<string> {
  const out = await ip(ns, ['-o', 'link', 'show', 'dev', assertIfname(ifname)]);
  const m = /link\/ether ([0-9a-f:]{17})/.exec(out);
  if (!m?.[1]) throw new Error(`no MAC on ${ifname}`);
  return m[1];
}

export async function setLinkUp(ns: string | undefined, ifname: string, up = true): Promise<void> {
  await ip(ns, ['link', 'set', 'dev', assertIfname(ifname), up ? 'up' : 'down']);
}

export interface RouteSpec {
  /** `default` or a CIDR. */
  to: string;
  via?: string;
  dev?: string;
}

export async function addRoute(ns: string | undefined, r: RouteSpec): Promise<void> {
  const args = ['route', 'replace', r.to];
  if (r.via) args.push('via', r.via);
  if (r.dev) args.push('dev', assertIfname(r.dev));
  await ip(ns, args);
}

/** The default route's gateway in `ns`, or undefined when there is none. */
export async function defaultGateway(ns: string | undefined): Promise<string | undefined> {
  const out = await ip(ns, ['-4', 'route', 'show', 'default']);
  return /default via (\S+)/.exec(out)?.[1];
}

/** Sets a sysctl inside `ns` (e.g. `net.ipv4.ip_nonlocal_bind`). */
export async function sysctlIn(ns: string, key: string, value: string): Promise<void> {
  if (!/^[a-z0-9_.]+$/.test(key)) throw new Error(`invalid sysctl key '${key}'`);
  await run(['ip', 'netns', 'exec', ns, 'sysctl', '-q', '-w', `${key}=${value}`]);
}

/**
 * Waits until `ifname` in `ns` has its link-local IPv6 address out of duplicate address detection (no longer
 * tentative): a DHCPv6 client started before cannot bind it ("Cannot assign requested address").
 */
export async function linkLocalReady(ns: string, ifname = 'eth0', timeoutMs = 10_000): Promise<void> {
  await eventually(
    async () => {
      const a = await ip(ns, ['-6', 'addr', 'show', 'dev', ifname, 'scope', 'link']);
      if (!/inet6 fe80::/.test(a) || /tentative/.test(a)) throw new Error(a || 'no link-local address');
    },
    { timeoutMs, intervalMs: 100, what: `${ns}: the link-local address of ${ifname}` },
  );
}
