/** The agent's few calls to system tools: dnsmasq --test, nft, ip, and releasing DHCP leases. */
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { networkInterfaces } from 'node:os';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], input?: string): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 127) : 0;
      resolve({
        code,
        stdout: String(stdout),
        stderr: String(stderr || (err && code === 127 ? err.message : '')),
      });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** `dnsmasq --test` on a configuration file; returns the complaint, or null if dnsmasq accepts it. */
export async function dnsmasqTest(binary: string, confFile: string): Promise<string | null> {
  const r = await run(binary, ['--test', `--conf-file=${confFile}`]);
  if (r.code === 0) return null;
  let msg = (r.stderr || r.stdout).trim().replace(/^dnsmasq: /, '') || `dnsmasq --test exited ${r.code}`;
  const m = /at line (\d+) of /.exec(msg);
  if (m) {
    const line = readText(confFile).split('\n')[Number(m[1]) - 1];
    msg = msg.replace(/ of \S+$/, '') + (line !== undefined ? `: ${JSON.stringify(line)}` : '');
  }
  return msg;
}

export function interfaceAddresses(ifname: string): string[] {
  return (networkInterfaces()[ifname] ?? []).filter((a) => a.family === 'IPv4').map((a) => a.address);
}

export function interfaceAddresses6(ifname: string): string[] {
  return (networkInterfaces()[ifname] ?? []).filter((a) => a.family === 'IPv6').map((a) => a.address);
}

/**
 * The router's IPv6 address on the guest interface. `nodad`: the VR is the only holder of its gateway address, and
 * duplicate address detection would keep it tentative (unusable for dnsmasq's advertisements) for a second.
 */
export async function ensureAddress6(
  ifname: string,
  address: string,
  prefix: number,
): Promise<string | null> {
  if (interfaceAddresses6(ifname).includes(address)) return null;
  const r = await run('ip', ['-6', 'addr', 'add', `${address}/${prefix}`, 'dev', ifname, 'nodad']);
  if (r.code !== 0 && !/File exists/.test(r.stderr)) return r.stderr.trim();
  return null;
}

export function interfaceExists(ifname: string): boolean {
  return existsSync(`/sys/class/net/${ifname}`);
}

export function interfaceHolding(address: string): string | undefined {
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    if ((addrs ?? []).some((a) => a.address === address)) return name;
  }
  return undefined;
}

/** Make sure the router's own guest address is on the guest interface (CloudStack's CsAddress does the same). */
export async function ensureAddress(ifname: string, address: string, prefix: number): Promise<string | null> {
  if (interfaceAddresses(ifname).includes(address)) return null;
  const r = await run('ip', ['addr', 'add', `${address}/${prefix}`, 'dev', ifname]);
  if (r.code !== 0 && !/File exists/.test(r.stderr)) return r.stderr.trim();
  await run('ip', ['link', 'set', ifname, 'up']);
  return null;
}

/** Re-add `own` (a /32) behind `vip` so the VIP is the interface's first IPv4 address (the DHCP server id). */
export async function putVipFirst(ifname: string, own: string, vip: string): Promise<void> {
  const addrs = interfaceAddresses(ifname);
  if (addrs[0] === vip || !addrs.includes(own)) return;
  await run('ip', ['-batch', '-'], `addr del ${own}/32 dev ${ifname}\naddr add ${own}/32 dev ${ifname}\n`);
}

export async function removeAddress(ifname: string, address: string, prefix: number): Promise<void> {
  if (interfaceAddresses(ifname).includes(address))
    await run('ip', ['addr', 'del', `${address}/${prefix}`, 'dev', ifname]);
}

/**
 * True unless this process is provably in another network namespace than the machine's: loading a drop-policy
 * firewall in the machine's own namespace would cut it off. PID 1's namespace is often unreadable (containers,
 * microVMs), so a namespace also counts as "ours" when it is one of the named ones in /run/netns.
 */
export function inInitialNetNamespace(): boolean {
  let self: string;
  try {
    self = readlinkSync('/proc/self/ns/net');
  } catch {
    return true;
  }
  try {
    return self === readlinkSync('/proc/1/ns/net');
  } catch {
    /* not readable here: look for a named namespace */
  }
  try {
    const ino = statSync('/proc/self/ns/net').ino;
    return !readdirSync('/run/netns').some((n) => {
      try {
        return statSync(`/run/netns/${n}`).ino === ino;
      } catch {
        return false;
      }
    });
  } catch {
    return true;
  }
}

export async function nftApply(file: string, checkOnly: boolean): Promise<string | null> {
  const r = await run('nft', checkOnly ? ['--check', '-f', file] : ['-f', file]);
  return r.code === 0 ? null : (r.stderr || r.stdout).trim();
}

// dnsmasq-utils (dhcp_release) is not installed everywhere; this sends the same DHCPRELEASE. SO_BINDTODEVICE is
// what makes it work: the kernel then reports the guest interface (not lo) as the arrival interface, which
// dnsmasq needs to find the DHCP context. Node's dgram cannot set it, python3's socket can. One long-lived
// helper reads `<iface> <server> <ip>,<mac> ...` lines, so a release costs no interpreter start.
const releaseScript = `
import os, socket, struct, sys
socks = {}
for line in sys.stdin:
    f = line.split()
    try:
        iface, server = f[0], f[1]
        s = socks.get(iface)
        if s is None:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
            socks[iface] = s
        for pair in f[2:]:
            ip, mac = pair.split(',')
            chaddr = bytes.fromhex(mac.replace(':', '')) + bytes(10)
            pkt = struct.pack('!BBBBIHH4s4s4s4s16s64s128s', 1, 1, 6, 0, int.from_bytes(os.urandom(4), 'big'), 0, 0,
                              socket.inet_aton(ip), bytes(4), bytes(4), bytes(4), chaddr, bytes(64), bytes(128))
            pkt += bytes([99, 130, 83, 99, 53, 1, 7, 54, 4]) + socket.inet_aton(server) + bytes([255])
            s.sendto(pkt, (server, 67))
        print('ok', flush=True)
    except Exception as e:
        print('error ' + str(e).replace(chr(10), ' '), flush=True)
`;

function findPython(): string | null {
  for (const p of ['/usr/bin/python3', '/usr/local/bin/python3']) if (existsSync(p)) return p;
  return null;
}

function findDhcpRelease(): string | null {
  for (const p of ['/usr/bin/dhcp_release', '/usr/sbin/dhcp_release']) if (existsSync(p)) return p;
  return null;
}

let releaser: { child: ChildProcess; pending: ((line: string) => void)[]; buf: string } | null = null;

function releaserProcess(py: string) {
  if (releaser && releaser.child.exitCode === null && !releaser.child.killed) return releaser;
  const child = spawn(py, ['-u', '-c', releaseScript], { stdio: ['pipe', 'pipe', 'ignore'] });
  const r = { child, pending: [] as ((line: string) => void)[], buf: '' };
  child.stdout!.on('data', (b: Buffer) => {
    r.buf += b.toString();
    let i: number;
    while ((i = r.buf.indexOf('\n')) >= 0) {
      const line = r.buf.slice(0, i);
      r.buf = r.buf.slice(i + 1);
      r.pending.shift()?.(line);
    }
  });
  child.on('exit', () => {
    for (const p of r.pending.splice(0)) p('error release helper exited');
    if (releaser === r) releaser = null;
  });
  child.on('error', () => undefined);
  child.unref();
  (child.stdin as unknown as { unref?: () => void }).unref?.();
  (child.stdout as unknown as { unref?: () => void }).unref?.();
  releaser = r;
  return r;
}

export function stopReleaser(): void {
  releaser?.child.kill();
  releaser = null;
}

/** Release leases held by dnsmasq on `ifname` (server address `server`). Returns an error text or null. */
export async function releaseLeases(
  ifname: string,
  server: string,
  leases: { ip: string; mac: string }[],
): Promise<string | null> {
  if (leases.length === 0) return null;
  const py = findPython();
  if (py) {
    const r = releaserProcess(py);
    const answer = new Promise<string>((resolve) => r.pending.push(resolve));
    r.child.stdin!.write(`${ifname} ${server} ${leases.map((l) => `${l.ip},${l.mac}`).join(' ')}\n`);
    const line = await answer;
    return line === 'ok' ? null : line.replace(/^error /, '');
  }
  const tool = findDhcpRelease();
  if (!tool) return 'neither python3 nor dhcp_release is installed; stale leases stay until they expire';
  for (const l of leases) {
    const r = await run(tool, [ifname, l.ip, l.mac]);
    if (r.code !== 0) return r.stderr.trim();
  }
  return null;
}

export function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
