import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execIn, spawnIn, type ExecResult, type SpawnedProcess } from './exec.js';
import { resolvConfPath } from './links.js';
import { assertIfname, assertNamespaceName } from './names.js';

/*
 * Debian's default udhcpc and dhclient hook scripts rewrite /etc/resolv.conf — inside `ip netns exec` that is
 * the host's file unless /etc/netns/<ns>/resolv.conf exists. So the clients get OUR hook scripts: they set only
 * the address, the default route and /etc/netns/<ns>/resolv.conf, and record what they got in a state file
 * (one `key=value` per line) that tests read with `readLease`.
 */

// A guest's hook runs once per lease event, for every VM of a deploy burst on the same machine: it forks as few
// processes as it can (an exec costs 6–9 ms of CPU on these VMs). bash, not sh: its clock ($EPOCHREALTIME) saves
// the `date` process, and bash alone costs less than dash plus `date` (measured 2.3–3.4 ms vs 5.4–6.0 ms per run).
// Left: one `ip -batch` to change and, on a renewal only, one `ip` to look; none at a light VM's first deconfig
// (SN_LINKS_UP). The lease record is written in place, not renamed into place (`mv` was a process per event):
// readLease reads again while it finds the record without its last line (docs/benchmarks.md "Deploy bursts").
const COMMON_SH = `PATH=/usr/sbin:/usr/bin:/sbin:/bin
# Epoch ms from bash's clock (seconds, the locale's decimal separator, microseconds), in POSIX expansions so that
# a client running the hook with sh still gets a stamp (from date).
now_ms() {
  if [ -n "\${EPOCHREALTIME:-}" ]; then
    now="\${EPOCHREALTIME%[.,]*}\${EPOCHREALTIME#*[.,]}"
    now="\${now%???}"
  else
    now=$(date +%s%3N)
  fi
}
# record EVENT IP MASK ROUTERS DNS DOMAIN LEASE SERVERID HOSTNAME
record() {
  now_ms
  # The history line first: whoever sees the new state (readLease) then finds it in the history too.
  echo "$now $1 ip=$2 routers=$4 dns=$5 domain=$6" >> "$SN_STATE.log"
  # The record in place, "at=" last: a reader that opens the file while it is written (after its truncation)
  # finds it without that line, and reads again (readLease). Built first, then written at once (one write, mostly:
  # bash's stdout may flush per line; under sh, a command substitution).
  fmt='client=%s\\nevent=%s\\ninterface=%s\\nip=%s\\nmask=%s\\nrouters=%s\\ndns=%s\\ndomain=%s\\nlease=%s\\nserverid=%s\\nhostname=%s\\nat=%s\\n'
  set -- "$SN_CLIENT" "$1" "$SN_IFACE" "$2" "$3" "$4" "$5" "$6" "$7" "$8" "$9" "$now"
  if [ -n "\${BASH_VERSION:-}" ]; then
    printf -v rec "$fmt" "$@"
    echo -n "$rec" > "$SN_STATE"
  else
    rec=$(printf "$fmt" "$@")
    printf '%s\\n' "$rec" > "$SN_STATE"
  fi
}
apply() { # IP MASK ROUTERS DNS DOMAIN [fresh]
  # The address, kept when it is already there (a renewal); the link up; the default route via the first
  # router, and none when the lease names no router: one ip process for all of it. "fresh": the client cleared
  # the interface before (udhcpc's bound follows its deconfig), so there is nothing to look at.
  cmds="addr flush dev $SN_IFACE
addr add $1/$2 dev $SN_IFACE
"
  if [ "$6" != fresh ]; then
    case "$(ip -4 -o addr show dev "$SN_IFACE")" in
      *"inet $1/"*) cmds="" ;;
    esac
  fi
  cmds="\${cmds}link set dev $SN_IFACE up"
  # SN_UP: more links to bring up with this one (a light VM's lo and other NICs: no process of their own).
  for l in \${SN_UP:-}; do cmds="\${cmds}
link set dev $l up"; done
  gw=""
  for r in $3; do gw="$r"; break; done
  if [ -n "$gw" ]; then
    ip -4 -force -batch - <<EOF
$cmds
route replace default via $gw dev $SN_IFACE
EOF
  else
    ip -4 -force -batch - 2>/dev/null <<EOF
$cmds
route del default dev $SN_IFACE
EOF
  fi
  if [ -n "$4" ] && [ -n "$SN_RESOLV" ]; then
    # Written in place (it may be a bind mount), in one write.
    conf=""
    [ -n "$5" ] && conf="search $5
"
    for d in $4; do conf="\${conf}nameserver $d
"; done
    printf '%s' "$conf" > "$SN_RESOLV"
  fi
}
`;

/** udhcpc passes its environment to the script; $1 is the event. */
export const UDHCPC_HOOK = `#!/bin/bash
# stacknet netns toolkit: udhcpc hook (never touches /etc/resolv.conf)
${COMMON_SH}
SN_IFACE="$interface"
case "$1" in
  deconfig)
    # SN_LINKS_UP: the starter made the client's link up and addressless (the netns driver's light VMs), so the
    # client's first deconfig (no record yet: the starter cleared it) changes nothing and costs no process; SN_UP
    # come up with the lease. Any later deconfig (the lease lost, a NAK) takes the address away.
    if [ -z "\${SN_LINKS_UP:-}" ] || [ -e "$SN_STATE" ]; then
      up=""
      for l in \${SN_UP:-}; do up="\${up}link set dev $l up
"; done
      ip -4 -force -batch - <<EOF
addr flush dev $interface
\${up}link set dev $interface up
EOF
    fi
    record deconfig "" "" "" "" "" "" "" ""
    ;;
  bound)
    apply "$ip" "$subnet" "$router" "$dns" "$domain" fresh
    record "$1" "$ip" "$subnet" "$router" "$dns" "$domain" "$lease" "$serverid" "$hostname"
    ;;
  renew)
    apply "$ip" "$subnet" "$router" "$dns" "$domain"
    record "$1" "$ip" "$subnet" "$router" "$dns" "$domain" "$lease" "$serverid" "$hostname"
    ;;
  leasefail|nak)
    record "$1" "" "" "" "" "" "" "" ""
    ;;
esac
exit 0
`;

/** dhclient does not pass its environment: SN_* come from `-e VAR=value`; $reason is the event. */
export const DHCLIENT_HOOK = `#!/bin/bash
# stacknet netns toolkit: dhclient hook (never touches /etc/resolv.conf)
${COMMON_SH}
SN_IFACE="$interface"
case "$reason" in
  PREINIT)
    ip link set dev "$interface" up
    ;;
  BOUND|RENEW|REBIND|REBOOT)
    apply "$new_ip_address" "$new_subnet_mask" "$new_routers" "$new_domain_name_servers" "$new_domain_name"
    record "$reason" "$new_ip_address" "$new_subnet_mask" "$new_routers" "$new_domain_name_servers" \\
      "$new_domain_name" "$new_dhcp_lease_time" "$new_dhcp_server_identifier" "$new_host_name"
    ;;
  EXPIRE|FAIL|RELEASE|STOP)
    ip -4 addr flush dev "$interface"
    record "$reason" "" "" "" "" "" "" "" ""
    ;;
  TIMEOUT)
    record TIMEOUT "" "" "" "" "" "" "" ""
    exit 1
    ;;
esac
exit 0
`;

/** Where the toolkit keeps per-namespace client state (lease records, dhclient lease/config files). */
export function stateDir(ns: string): string {
  return join(tmpdir(), 'stacknet-netns', assertNamespaceName(ns));
}

export function leaseStatePath(ns: string, ifname: string): string {
  return join(stateDir(ns), `lease-${assertIfname(ifname)}.env`);
}

let hooksReady: Promise<{ udhcpc: string; dhclient: string }> | undefined;

/** Writes the hook scripts once per process (content-addressed dir, atomic rename: parallel tests agree). */
export function hookScripts(): Promise<{ udhcpc: string; dhclient: string }> {
  hooksReady ??= (async () => {
    const hash = createHash('sha256')
      .update(UDHCPC_HOOK + DHCLIENT_HOOK)
      .digest('hex')
      .slice(0, 12);
    const dir = join(tmpdir(), 'stacknet-netns', `hooks-${hash}`);
    await mkdir(dir, { recursive: true });
    const write = async (name: string, text: string) => {
      const p = join(dir, name);
      const tmp = `${p}.${process.pid}.${Math.random().toString(36).slice(2)}`;
      await writeFile(tmp, text, { mode: 0o755 });
      await rename(tmp, p);
      return p;
    };
    return {
      udhcpc: await write('udhcpc.sh', UDHCPC_HOOK),
      dhclient: await write('dhclient.sh', DHCLIENT_HOOK),
    };
  })();
  return hooksReady;
}

/** What a DHCP client got, as recorded by our hook script. */
export interface Lease {
  client: 'udhcpc' | 'dhclient' | 'dhcpcd';
  /** udhcpc: bound|renew|deconfig|leasefail|nak; dhclient and dhcpcd: BOUND|RENEW|REBIND|REBOOT|EXPIRE|FAIL|... */
  event: string;
  interface: string;
  /** Empty when the event carries no address (deconfig, leasefail, FAIL...). */
  ip: string;
  /** Dotted netmask. */
  mask: string;
  routers: string[];
  /** The first router, if any. */
  router: string | undefined;
  dns: string[];
  domain: string | undefined;
  leaseSeconds: number | undefined;
  serverId: string | undefined;
  hostname: string | undefined;
  /** Epoch ms when the hook ran. */
  at: number;
}

/** True for events that mean "the client holds this address now". */
export function isBound(lease: Lease | undefined): lease is Lease {
  return !!lease && !!lease.ip && /^(bound|renew|BOUND|RENEW|REBIND|REBOOT)$/.test(lease.event);
}

export function parseLeaseState(text: string): Lease {
  const kv = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) kv.set(line.slice(0, i), line.slice(i + 1));
  }
  const list = (k: string) => (kv.get(k) ?? '').split(/\s+/).filter(Boolean);
  const opt = (k: string) => kv.get(k) || undefined;
  const lease = opt('lease');
  const routers = list('routers');
  return {
    client:
      kv.get('client') === 'dhclient' || kv.get('client') === 'dhcpcd'
        ? (kv.get('client') as 'dhclient' | 'dhcpcd')
        : 'udhcpc',
    event: kv.get('event') ?? '',
    interface: kv.get('interface') ?? '',
    ip: kv.get('ip') ?? '',
    mask: kv.get('mask') ?? '',
    routers,
    router: routers[0],
    dns: list('dns'),
    domain: opt('domain'),
    leaseSeconds: lease === undefined ? undefined : Number(lease),
    serverId: opt('serverid'),
    hostname: opt('hostname'),
    at: Number(kv.get('at') ?? 0),
  };
}

/** A record the hook has written whole: it ends with its last line (`at=`). */
function completeRecord(text: string): boolean {
  return /(^|\n)at=\d*\n$/.test(text);
}

/**
 * The last DHCP event our hook recorded for `ifname` in `ns`, or undefined if none yet. The hook writes the
 * record in place in one write (no rename: a process per event), so a read that falls between the file's
 * truncation and that write finds it empty: read again, briefly, until it ends with its last line.
 */
export async function readLease(ns: string, ifname = 'eth0'): Promise<Lease | undefined> {
  for (let attempt = 0; ; attempt++) {
    let text: string;
    try {
      text = await readFile(leaseStatePath(ns, ifname), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    if (completeRecord(text)) return parseLeaseState(text);
    // Still cut short after ~100 ms: a writer that died mid-record; nothing recorded that can be trusted.
    if (attempt >= 20) return undefined;
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Every event recorded for `ifname` in `ns`, one line each (`<ms> <event> ip=... routers=...`). */
export async function leaseHistory(ns: string, ifname = 'eth0'): Promise<string[]> {
  try {
    return (await readFile(`${leaseStatePath(ns, ifname)}.log`, 'utf8')).split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

async function resetState(ns: string, ifname: string): Promise<void> {
  await mkdir(stateDir(ns), { recursive: true });
  await rm(leaseStatePath(ns, ifname), { force: true });
}

function assertHostname(h: string): string {
  if (!/^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9-]{1,63})*$/.test(h)) {
    throw new Error(`invalid hostname '${h}'`);
  }
  return h;
}

/**
 * argv that runs `argv` in its own UTS namespace with hostname `hostname` (so a client that sends
 * gethostname() sends the guest's name, not the host's). The shell text is constant; the name and argv
 * are passed as arguments, never spliced into it.
 */
export function withHostname(hostname: string, argv: string[]): string[] {
  return [
    'unshare',
    '--uts',
    '--',
    '/bin/sh',
    '-c',
    'hostname "$0" && exec "$@"',
    assertHostname(hostname),
    ...argv,
  ];
}

export interface UdhcpcOptions {
  /** Sent as option 12 (and set as the UTS hostname the client runs under). */
  hostname?: string;
  /** `-r IP`: ask for this address. */
  requestIp?: string;
  /** DISCOVERs to send before giving up (`-t`, default 3). 1 = "the first request must succeed". */
  discoverAttempts?: number;
  /** Seconds to wait for an answer to each (`-T`, default 1). */
  discoverTimeoutSec?: number;
  /**
   * false (default): `-q -n`, exit after the lease (or after giving up); the address stays configured.
   * true: stay in the foreground and renew; the returned process must be stopped (TestNet does).
   */
  keepRunning?: boolean;
  /** Ask for broadcast replies (`-B`). */
  broadcast?: boolean;
  extraArgs?: string[];
}

export interface DhcpRunResult {
  /** The lease this run obtained, or undefined if it got none. */
  lease: Lease | undefined;
  /** The client's output (udhcpc logs to stderr). */
  output: string;
  /** With keepRunning: the running client (tracked by PID). */
  process?: SpawnedProcess;
  exec?: ExecResult;
}

async function waitForBoundOrExit(
  ns: string,
  ifname: string,
  proc: SpawnedProcess,
  timeoutMs: number,
): Promise<Lease | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const l = await readLease(ns, ifname);
    if (isBound(l)) return l;
    if (proc.hasExited() || Date.now() > deadline) return undefined;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Runs busybox udhcpc on `ifname` in `ns` with our hook script. */
export async function runUdhcpc(
  ns: string,
  ifname: string,
  opts: UdhcpcOptions = {},
): Promise<DhcpRunResult> {
  assertIfname(ifname);
  const hooks = await hookScripts();
  await resetState(ns, ifname);
  const attempts = opts.discoverAttempts ?? 3;
  const perTry = opts.discoverTimeoutSec ?? 1;
  const argv = [
    'udhcpc',
    '-f',
    '-i',
    ifname,
    '-s',
    hooks.udhcpc,
    '-t',
    String(attempts),
    '-T',
    String(perTry),
  ];
  argv.push('-n');
  if (!opts.keepRunning) argv.push('-q');
  if (opts.broadcast) argv.push('-B');
  if (opts.requestIp) argv.push('-r', opts.requestIp);
  if (opts.hostname) argv.push('-x', `hostname:${assertHostname(opts.hostname)}`);
  argv.push(...(opts.extraArgs ?? []));
  const full = opts.hostname ? withHostname(opts.hostname, argv) : argv;
  const env = {
    ...process.env,
    SN_CLIENT: 'udhcpc',
    SN_STATE: leaseStatePath(ns, ifname),
    SN_RESOLV: resolvConfPath(ns),
  };
  const budgetMs = (attempts * perTry + 5) * 1000;
  if (!opts.keepRunning) {
    const r = await execIn(ns, full, { env, timeoutMs: budgetMs });
    const l = await readLease(ns, ifname);
    return { lease: isBound(l) ? l : undefined, output: r.stdout + r.stderr, exec: r };
  }
  const proc = spawnIn(ns, full, { env });
  const lease = await waitForBoundOrExit(ns, ifname, proc, budgetMs);
  return { lease, output: proc.output(), process: proc };
}

export interface DhclientOptions {
  hostname?: string;
  /** Seconds dhclient tries before giving up (`timeout` in its config; default 10). */
  timeoutSec?: number;
  /** false (default): stop dhclient once bound (the address stays). true: keep it running to renew. */
  keepRunning?: boolean;
  /**
   * Keep the lease file of a previous run: dhclient then starts in INIT-REBOOT and asks (broadcast REQUEST,
   * event REBOOT) for the address it had, as a rebooted or failed-over guest does. Default: start fresh.
   */
  keepLeaseFile?: boolean;
  extraArgs?: string[];
}

/**
 * Runs ISC dhclient on `ifname` in `ns`, in the foreground (`-d`: it would otherwise daemonize and its PID be
 * lost), with our hook (`-sf`, variables via `-e`), its own config (no host-global /etc/dhcp/dhclient.conf),
 * lease and pid files.
 */
export async function runDhclient(
  ns: string,
  ifname: string,
  opts: DhclientOptions = {},
): Promise<DhcpRunResult> {
  assertIfname(ifname);
  const hooks = await hookScripts();
  await resetState(ns, ifname);
  const dir = stateDir(ns);
  const timeout = opts.timeoutSec ?? 10;
  const conf = [
    `timeout ${timeout};`,
    'retry 1;',
    'initial-interval 1;',
    'backoff-cutoff 2;',
    opts.hostname ? `send host-name "${assertHostname(opts.hostname)}";` : '',
    'request subnet-mask, broadcast-address, routers, domain-name, domain-name-servers, host-name;',
    '',
  ].join('\n');
  const cf = join(dir, `dhclient-${ifname}.conf`);
  await writeFile(cf, conf);
  const lf = join(dir, `dhclient-${ifname}.leases`);
  if (!opts.keepLeaseFile) await rm(lf, { force: true });
  const argv = [
    'dhclient',
    '-4',
    '-d',
    '-1',
    '-v',
    '-cf',
    cf,
    '-lf',
    lf,
    '-pf',
    join(dir, `dhclient-${ifname}.pid`),
    '-sf',
    hooks.dhclient,
    '-e',
    'SN_CLIENT=dhclient',
    '-e',
    `SN_STATE=${leaseStatePath(ns, ifname)}`,
    '-e',
    `SN_RESOLV=${resolvConfPath(ns)}`,
    ...(opts.extraArgs ?? []),
    ifname,
  ];
  // SIGTERM when done: dhclient exits without releasing, so the address stays configured.
  return runUntilBound(ns, ifname, opts.hostname ? withHostname(opts.hostname, argv) : argv, timeout, opts);
}

/**
 * Runs a client that records through our hook until it is bound or gives up (`timeoutSec` + 5 s); stops it then
 * unless it is to keep running (renewing).
 */
async function runUntilBound(
  ns: string,
  ifname: string,
  argv: string[],
  timeoutSec: number,
  opts: { keepRunning?: boolean },
): Promise<DhcpRunResult> {
  const proc = spawnIn(ns, argv);
  const lease = await waitForBoundOrExit(ns, ifname, proc, (timeoutSec + 5) * 1000);
  if (!opts.keepRunning || !lease) {
    await proc.stop();
    return { lease, output: proc.output() };
  }
  return { lease, output: proc.output(), process: proc };
}

export interface DhcpcdOptions {
  hostname?: string;
  /** Seconds dhcpcd tries before giving up (`-t`; default 10). */
  timeoutSec?: number;
  /**
   * Probe the offered address with ARP before taking it, as dhcpcd does by default (about 5 s more per lease).
   * Default false (`--noarp`): the answers are what is checked, not dhcpcd's duplicate detection.
   */
  arpProbe?: boolean;
  /** false (default): `-1`, exit once bound (the address stays). true: keep it running to renew. */
  keepRunning?: boolean;
  extraArgs?: string[];
}

/**
 * Runs dhcpcd 9 on `ifname` in `ns`, in the foreground (`-B`), IPv4 only, with our hook (`-c`, variables via
 * `-e`; dhcpcd passes the same `new_*` variables as dhclient, so it shares dhclient's hook) and its own
 * configuration (not the host's /etc/dhcpcd.conf). Its pid files and control sockets live under /run/dhcpcd
 * and its leases under /var/lib/dhcpcd, named after the interface: `ip netns exec` gives each run its own mount
 * namespace, where the toolkit's state dir is bound over both, so guests with the same `eth0` do not meet.
 */
export async function runDhcpcd(
  ns: string,
  ifname: string,
  opts: DhcpcdOptions = {},
): Promise<DhcpRunResult> {
  assertIfname(ifname);
  const hooks = await hookScripts();
  await resetState(ns, ifname);
  const dir = join(stateDir(ns), `dhcpcd-${ifname}`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, 'run'), { recursive: true });
  await mkdir(join(dir, 'db'), { recursive: true });
  const conf = join(dir, 'dhcpcd.conf');
  // What Debian's /etc/dhcpcd.conf asks for, without its hooks, DUID file or IPv6.
  await writeFile(
    conf,
    [
      '# stacknet netns toolkit',
      'option domain_name_servers, domain_name, domain_search, host_name',
      'option classless_static_routes, interface_mtu',
      'require dhcp_server_identifier',
      '',
    ].join('\n'),
  );
  const timeout = opts.timeoutSec ?? 10;
  const argv = [
    'dhcpcd',
    '-B',
    '-4',
    // Persistent: leaves the address configured when it exits (as the other clients do when stopped).
    '-p',
    '-f',
    conf,
    '-c',
    hooks.dhclient,
    '-t',
    String(timeout),
    '-e',
    'SN_CLIENT=dhcpcd',
    '-e',
    `SN_STATE=${leaseStatePath(ns, ifname)}`,
    '-e',
    `SN_RESOLV=${resolvConfPath(ns)}`,
  ];
  if (!opts.keepRunning) argv.push('-1');
  if (!opts.arpProbe) argv.push('--noarp');
  if (opts.hostname) argv.push('-h', assertHostname(opts.hostname));
  argv.push(...(opts.extraArgs ?? []), ifname);
  // The bind mounts' targets and sources are arguments, never spliced into the shell text.
  const private_ = [
    'sh',
    '-c',
    'mkdir -p /run/dhcpcd && mount --bind "$0" /run/dhcpcd && mount --bind "$1" /var/lib/dhcpcd && shift && exec "$@"',
    join(dir, 'run'),
    join(dir, 'db'),
  ];
  // With `-1` it exits on its own once bound; `-p` keeps the address.
  return runUntilBound(
    ns,
    ifname,
    [...private_, ...(opts.hostname ? withHostname(opts.hostname, argv) : argv)],
    timeout,
    opts,
  );
}

/** Removes the toolkit's per-namespace state dir. */
export async function removeState(ns: string): Promise<void> {
  await rm(stateDir(ns), { recursive: true, force: true });
}

/**
 * A light VM's busybox udhcpc on `ifname` with our hook: in the foreground (its caller detaches it), asking again
 * quickly when its first DISCOVERs go unanswered (-T 1 -A 1), never giving up (no -n), option 12 from `hostname`.
 */
function udhcpcArgv(ifname: string, hook: string, hostname: string): string[] {
  return [
    'udhcpc',
    '-f',
    '-i',
    assertIfname(ifname),
    '-s',
    hook,
    '-t',
    '3',
    '-T',
    '1',
    '-A',
    '1',
    '-x',
    `hostname:${hostname}`,
  ];
}

/**
 * How a light VM's DHCP client runs: busybox udhcpc on `ifname` in `ns` under the guest's host name with our
 * hook. It asks again quickly when its first DISCOVERs go unanswered (-T 1 -A 1) and never gives up (no -n).
 * Clears the last lease record first. Used by the netns driver (its batches) and the host agent's netns backend.
 */
export async function guestUdhcpc(
  ns: string,
  ifname: string,
  hostname: string,
): Promise<{ argv: string[]; env: Record<string, string> }> {
  const hooks = await hookScripts();
  await resetState(ns, ifname);
  const argv = withHostname(hostname, udhcpcArgv(ifname, hooks.udhcpc, hostname));
  return {
    argv: ['ip', 'netns', 'exec', assertNamespaceName(ns), ...argv],
    env: { SN_CLIENT: 'udhcpc', SN_STATE: leaseStatePath(ns, ifname), SN_RESOLV: resolvConfPath(ns) },
  };
}

/**
 * The netns driver's guest: busybox udhcpc as `guestUdhcpc` runs it, in three fewer processes per VM, for deploy
 * bursts (docs/benchmarks.md "Deploy bursts"):
 * - entered with `nsenter --net` (one setns, then exec) rather than `ip netns exec`, which also makes a mount
 *   namespace, remounts /sys and binds /etc/netns/<ns>/* over /etc: the client reads none of those (our hook
 *   writes the namespace's resolv.conf by its path), and what runs later in the namespace gets its own;
 * - no UTS namespace with the guest's name (unshare, sh, hostname): udhcpc sends option 12 from `-x hostname:`,
 *   never from gethostname(), and nothing else runs under that name;
 * - the caller makes the client's link up (and the VM's other NICs: the netns driver creates the VM's end of each
 *   veth up, in its batch), so the hook's first deconfig runs no `ip` (SN_LINKS_UP); `up`: links the hook brings up
 *   with the lease, in the `ip` it runs anyway (lo), so the caller needs no `ip` process per VM for them.
 * The caller starts argv detached (its own session) and records the pid: nsenter execs udhcpc in place.
 * Synchronous (`hooks` from `hookScripts()`; the last lease record cleared with two quick syscalls): a batch of
 * a hundred guests must not wait a hundred turns of a busy server's event loop.
 */
export function lightGuestUdhcpc(
  ns: string,
  ifname: string,
  hostname: string,
  up: string[],
  hooks: { udhcpc: string },
  /** false: the caller makes stateDir(ns) and removes the last lease record itself (a batch in one shell). */
  prepare = true,
): { argv: string[]; env: Record<string, string> } {
  if (prepare) {
    mkdirSync(stateDir(ns), { recursive: true });
    rmSync(leaseStatePath(ns, ifname), { force: true });
  }
  const argv = [
    'nsenter',
    `--net=/run/netns/${assertNamespaceName(ns)}`,
    ...udhcpcArgv(ifname, hooks.udhcpc, assertHostname(hostname)),
  ];
  return {
    argv,
    env: {
      SN_CLIENT: 'udhcpc',
      SN_STATE: leaseStatePath(ns, ifname),
      SN_RESOLV: resolvConfPath(ns),
      SN_UP: up.map(assertIfname).join(' '),
      SN_LINKS_UP: '1',
    },
  };
}

/**
 * A light VM's DHCP client (`guestUdhcpc`), detached in its own session so it outlives whoever started it (a
 * restarted host agent adopts it by its pid). Returns its pid; output goes to `logFile`.
 */
export async function startDetachedUdhcpc(
  ns: string,
  ifname: string,
  o: { hostname: string; logFile: string },
): Promise<number> {
  const { argv, env } = await guestUdhcpc(ns, ifname, o.hostname);
  const out = openSync(o.logFile, 'a');
  try {
    const child = spawn(argv[0]!, argv.slice(1), {
      detached: true,
      stdio: ['ignore', out, out],
      env: { ...process.env, ...env },
    });
    child.unref();
    if (child.pid === undefined) throw new Error(`cannot start udhcpc in ${ns}`);
    return child.pid;
  } finally {
    closeSync(out);
  }
}
