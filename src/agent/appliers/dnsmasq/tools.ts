/** dnsmasq's tools: `dnsmasq --test`, and sending DHCPRELEASE for leases the state no longer has. */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readText, run } from '../../system.js';

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

// dnsmasq-utils (dhcp_release) is not installed everywhere; this sends the same DHCPRELEASE. SO_BINDTODEVICE is
// what makes it work: the kernel then reports the guest interface (not lo) as the arrival interface, which
// dnsmasq needs to find the DHCP context. Node's dgram cannot set it, python3's socket can. One long-lived
// helper reads `<iface> <server> <destination> <ip>,<mac> ...` lines, so a release costs no interpreter start.
// The destination is the server address (unicast, as a client sends it), or 255.255.255.255 for DHCP shards:
// the kernel loops a sent broadcast back to local sockets with the guest interface as arrival interface, so it
// passes the router's steering rule (steering.ts), which hands it to the shard of the MAC, the one holding the
// lease (dnsmasq 2.90, measured here; vr-big-network.test.ts).
const releaseScript = `
import os, socket, struct, sys
socks = {}
for line in sys.stdin:
    f = line.split()
    try:
        iface, server, dest = f[0], f[1], f[2]
        s = socks.get(iface)
        if s is None:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            socks[iface] = s
        for pair in f[3:]:
            ip, mac = pair.split(',')
            chaddr = bytes.fromhex(mac.replace(':', '')) + bytes(10)
            pkt = struct.pack('!BBBBIHH4s4s4s4s16s64s128s', 1, 1, 6, 0, int.from_bytes(os.urandom(4), 'big'), 0, 0,
                              socket.inet_aton(ip), bytes(4), bytes(4), bytes(4), chaddr, bytes(64), bytes(128))
            pkt += bytes([99, 130, 83, 99, 53, 1, 7, 54, 4]) + socket.inet_aton(server) + bytes([255])
            s.sendto(pkt, (dest, 67))
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

/**
 * Whether a release can reach every DHCP shard (a broadcast DHCPRELEASE needs the python3 helper; dhcp_release
 * only sends unicast). Without it a shard frees a stale lease by restarting.
 */
export function canBroadcastRelease(): boolean {
  return findPython() !== null;
}

/**
 * Release leases held by dnsmasq on `ifname` (server address `server`); `broadcast` sends them to every dnsmasq
 * bound there (DHCP shards). Returns an error text or null.
 */
export async function releaseLeases(
  ifname: string,
  server: string,
  leases: { ip: string; mac: string }[],
  broadcast = false,
): Promise<string | null> {
  if (leases.length === 0) return null;
  const py = findPython();
  if (py) {
    const r = releaserProcess(py);
    const answer = new Promise<string>((resolve) => r.pending.push(resolve));
    const dest = broadcast ? '255.255.255.255' : server;
    r.child.stdin!.write(`${ifname} ${server} ${dest} ${leases.map((l) => `${l.ip},${l.mac}`).join(' ')}\n`);
    const line = await answer;
    return line === 'ok' ? null : line.replace(/^error /, '');
  }
  if (broadcast) return 'python3 is not installed: a release cannot reach every DHCP shard';
  const tool = findDhcpRelease();
  if (!tool) return 'neither python3 nor dhcp_release is installed; stale leases stay until they expire';
  for (const l of leases) {
    const r = await run(tool, [ifname, l.ip, l.mac]);
    if (r.code !== 0) return r.stderr.trim();
  }
  return null;
}
