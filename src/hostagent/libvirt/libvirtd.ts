/**
 * The backend's own libvirtd, one per host agent, without systemd (issue 19's measured set-up for libvirt 9.0).
 *
 * A root libvirtd keeps its state at fixed paths (/etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/log/libvirt)
 * and refuses to start while another holds them, so each one runs in its own mount namespace (`unshare --mount`)
 * with those four directories bind-mounted from the data directory: several hosts emulated on one machine (each a
 * network namespace) each get their own daemon, domains and qemu processes, and an operator's system libvirtd is
 * not disturbed. /var/cache/libvirt stays shared: it only caches what libvirtd probed of the QEMU binary, and
 * sharing it saves every daemon after the first that cold probe (seconds under TCG).
 *
 * The daemon is started detached, so it (and its qemu processes) outlive a host agent that dies or restarts; the
 * next agent finds it by its pid file and reuses it. Its socket is `<dataDir>/sock/libvirt-sock`, with no
 * authentication: the directory is root's only (0700).
 */
import { closeSync, openSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, readlink, stat, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { exec, killPid, pidAlive } from '../../netns/exec.js';
import { Virsh } from './virsh.js';

export interface LibvirtdPaths {
  root: string;
  etc: string;
  run: string;
  lib: string;
  log: string;
  sock: string;
  socket: string;
  pidFile: string;
  /** libvirtd's own stdout/stderr. */
  out: string;
  /** Its own /var/cache/libvirt, when it has one (`startLibvirtd`'s `lightCpuCheck`). */
  cache: string;
}

/** Longest path a unix socket can have (sun_path, with its terminating NUL). */
const maxSocketPath = 107;

export function libvirtdPaths(dir: string): LibvirtdPaths {
  const sock = join(dir, 'sock');
  const socket = join(sock, 'libvirt-sock');
  if (Buffer.byteLength(socket) > maxSocketPath) {
    throw new Error(
      `libvirt's socket ${socket} would be longer than ${maxSocketPath} bytes: use a shorter data dir`,
    );
  }
  return {
    root: dir,
    etc: join(dir, 'etc'),
    run: join(dir, 'run'),
    lib: join(dir, 'lib'),
    log: join(dir, 'log'),
    sock,
    socket,
    pidFile: join(dir, 'libvirtd.pid'),
    out: join(dir, 'log', 'libvirtd.out'),
    cache: join(dir, 'cache'),
  };
}

/** The connection URI of the daemon whose socket is `socket`. */
export function libvirtdUri(socket: string): string {
  return `qemu:///system?socket=${socket}`;
}

function quote(s: string): string {
  return JSON.stringify(s);
}

export function libvirtdConf(p: LibvirtdPaths): string {
  return [
    '# Written by stacknet host-agent (src/hostagent/libvirt/libvirtd.ts); rewritten at every start.',
    `unix_sock_dir = ${quote(p.sock)}`,
    'unix_sock_group = "root"',
    'unix_sock_ro_perms = "0700"',
    'unix_sock_rw_perms = "0700"',
    'auth_unix_ro = "none"',
    'auth_unix_rw = "none"',
    // No admin socket users, no TCP: only root on this host talks to it, through the socket above.
    `log_outputs = ${quote(`3:file:${join(p.log, 'libvirtd.log')}`)}`,
    '',
  ].join('\n');
}

export function qemuConf(): string {
  return [
    '# Written by stacknet host-agent (src/hostagent/libvirt/libvirtd.ts); rewritten at every start.',
    // qemu runs as root with no sVirt labels and no chown of its files: the kernel, initrd, overlays and console
    // logs live in the data directory, root's, and no AppArmor or SELinux profile is loaded without systemd.
    'user = "root"',
    'group = "root"',
    'security_driver = "none"',
    'dynamic_ownership = 0',
    // qemu's own stdout/stderr go to a file, not through virtlogd (which would be one more daemon to run).
    'stdio_handler = "file"',
    // No per-domain mount namespace or cgroups: the host agent may itself run in a container or a network
    // namespace, where neither is guaranteed.
    'namespaces = [ ]',
    'cgroup_controllers = [ ]',
    '',
  ].join('\n');
}

/**
 * libvirt's qemu driver wants the `libvirt-qemu` user to exist even when qemu runs as root (Debian's
 * libvirt-daemon-system creates it; libvirt-daemon alone does not).
 */
export async function ensureLibvirtQemuUser(): Promise<void> {
  const has = async () => (await exec(['getent', 'passwd', 'libvirt-qemu'])).code === 0;
  if (await has()) return;
  const r = await exec([
    'useradd',
    '--system',
    '--user-group',
    '--no-create-home',
    '--home-dir',
    '/var/lib/libvirt',
    '--shell',
    '/usr/sbin/nologin',
    'libvirt-qemu',
  ]);
  // Another agent on this machine may have created it meanwhile.
  if (r.code !== 0 && !(await has())) throw new Error(`useradd libvirt-qemu: ${r.stderr.trim()}`);
}

async function readPid(file: string): Promise<number | null> {
  try {
    const pid = Number((await readFile(file, 'utf8')).trim());
    return Number.isInteger(pid) && pid > 1 ? pid : null;
  } catch {
    return null;
  }
}

/** The pid in the pid file when it is a live libvirtd (not a recycled pid). */
export async function runningLibvirtd(p: LibvirtdPaths): Promise<number | null> {
  const pid = await readPid(p.pidFile);
  if (!pid || !(await pidAlive(pid))) return null;
  try {
    const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    return cmd.includes('libvirtd') ? pid : null;
  } catch {
    return null;
  }
}

/** True when `pid` runs in network namespace `netns` (a name under /run/netns), or in ours without one. */
async function inNetns(pid: number, netns: string | undefined): Promise<boolean> {
  try {
    const its = await readlink(`/proc/${pid}/ns/net`);
    if (!netns) return its === (await readlink('/proc/self/ns/net'));
    return its === `net:[${(await stat(`/run/netns/${netns}`)).ino}]`;
  } catch {
    return false;
  }
}

async function tail(file: string, n = 3000): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).slice(-n);
  } catch {
    return '';
  }
}

/** Waits until the daemon answers on its socket. */
async function waitAnswering(p: LibvirtdPaths, pid: number, timeoutMs: number): Promise<void> {
  const virsh = new Virsh(libvirtdUri(p.socket));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await virsh.exec(['version'], 10_000);
    if (r.code === 0) return;
    const last = r.stderr.trim();
    if (!(await pidAlive(pid))) {
      throw new Error(
        `libvirtd (pid ${pid}) exited before answering on ${p.socket}:\n${await tail(p.out)}\n${await tail(join(p.log, 'libvirtd.log'))}`,
      );
    }
    if (Date.now() > deadline) {
      throw new Error(`libvirtd (pid ${pid}) did not answer on ${p.socket} within ${timeoutMs} ms: ${last}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

// Runs in the new mount namespace: bind the daemon's state directories from the data dir, then become libvirtd.
const mountAndExec = `set -e
mkdir -p /etc/libvirt /run/libvirt /var/lib/libvirt /var/log/libvirt
mount --bind "$1" /etc/libvirt
mount --bind "$2" /run/libvirt
mount --bind "$3" /var/lib/libvirt
mount --bind "$4" /var/log/libvirt
if [ -n "$6" ]; then mkdir -p /var/cache/libvirt; mount --bind "$6" /var/cache/libvirt; fi
exec libvirtd --config "$1/libvirtd.conf" --pid-file "$5"`;

/** The capabilities flag that sends libvirt 9.0's check of a started guest's CPU down its generic path. */
const cpuFetchFlag = /^\s*<flag name='cpu-unavailable-features'\/>\n/gm;
const sharedCaps = '/var/cache/libvirt/qemu/capabilities';

/**
 * The daemon's own capabilities cache without `cpu-unavailable-features` (seeded from the machine's shared cache,
 * so the daemon need not probe QEMU itself). With that flag, libvirt 9.0 reads a started guest's vCPU by a
 * `qom-list` and one `qom-get` per feature property, 397 QMP round trips for `qemu64`, on every start; without
 * it, by its x86 path (`feature-words` and `filtered-features`, two `qom-get`s), which QEMU 7.2 still answers.
 * Measured under TCG (docs/benchmarks.md, "Six VMs at once on three hosts"): `virsh start` 0.2–0.35 s against
 * 0.74–1.5 s, QEMU's CPU by then 50–70 ms against 320–450 ms. libvirt keeps a cache file while QEMU's and its
 * own binaries are unchanged; a new probe (an upgrade) writes the flag again, which the next start takes out.
 * Resolves with the files it took a flag out of (a running daemon has to be restarted to read them again).
 */
export async function lightenCpuCheck(p: LibvirtdPaths): Promise<string[]> {
  const dir = join(p.cache, 'qemu', 'capabilities');
  await mkdir(dir, { recursive: true });
  const mine = await readdir(dir);
  if (!mine.some((f) => f.endsWith('.xml')))
    for (const f of await readdir(sharedCaps).catch(() => [] as string[]))
      if (f.endsWith('.xml')) await copyFile(join(sharedCaps, f), join(dir, f)).catch(() => {});
  const changed = await cpuFetchFlagged(p);
  for (const f of changed)
    await writeFile(join(dir, f), (await readFile(join(dir, f), 'utf8')).replace(cpuFetchFlag, ''));
  return changed;
}

/** The files of the daemon's own capabilities cache that carry `cpu-unavailable-features` (`lightenCpuCheck`). */
export async function cpuFetchFlagged(p: LibvirtdPaths): Promise<string[]> {
  const dir = join(p.cache, 'qemu', 'capabilities');
  const flagged: string[] = [];
  for (const f of await readdir(dir).catch(() => [] as string[]))
    if (f.endsWith('.xml') && (await readFile(join(dir, f), 'utf8')).search(cpuFetchFlag) >= 0)
      flagged.push(f);
  return flagged;
}

/**
 * The CPUs this agent may run on (`Cpus_allowed_list`, e.g. `0-1`), and the first of them: where libvirtd starts.
 *
 * libvirt 9.0 keeps a QEMU capabilities cache file (KVM usable) only while the host's CPUID matches the one
 * recorded in it, which each daemon reads once as it starts (`virCPUDataGetHost`). libvirt counts PVM's /dev/kvm
 * (`kvm_pvm`, these machines) as usable, and PVM's KVM_GET_SUPPORTED_CPUID carries the APIC ID of the CPU the call
 * ran on (leaf 1 EBX bits 31–24, leaves 0xb and 0x1f EDX): a daemon that started on another CPU than the one that
 * probed QEMU logged "Outdated capabilities ...: host cpuid changed", probed again (seconds under TCG) and wrote
 * `cpu-unavailable-features` back, so the next agent start restarted a daemon it should have reused (the libvirt
 * backend test, failing on a loaded machine, where the scheduler moves threads between CPUs). Started on one fixed
 * CPU, every daemon reads the same CPUID; once it answers (that read done), it may use them all again.
 */
async function startCpus(): Promise<{ all: string; first: string } | null> {
  try {
    const all = /^Cpus_allowed_list:\s*(\S+)$/m.exec(await readFile('/proc/self/status', 'utf8'))?.[1];
    const first = all && /^\d+/.exec(all)?.[0];
    return all && first ? { all, first } : null;
  } catch {
    return null;
  }
}

/** Lets every thread of daemon `pid` run on `cpus` again (`startCpus`: it started on one). */
async function unpin(pid: number, cpus: string, log: (m: string) => void): Promise<void> {
  const r = await exec(['taskset', '--all-tasks', '--pid', '--cpu-list', cpus, String(pid)]);
  if (r.code !== 0) log(`libvirt: could not let libvirtd ${pid} use CPUs ${cpus}: ${r.stderr.trim()}`);
}

/**
 * Starts the daemon for data directory `p.root`, or reuses the one already running there (after a host agent
 * restart). Resolves with its pid once it answers.
 */
export async function startLibvirtd(
  p: LibvirtdPaths,
  opts: {
    log: (m: string) => void;
    netns?: string;
    timeoutMs?: number;
    /** Its own /var/cache/libvirt, made `lightenCpuCheck` (TCG hosts: see there). */
    lightCpuCheck?: boolean;
  },
): Promise<{ pid: number; reused: boolean }> {
  const { log, netns } = opts;
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const cpus = await startCpus();
  const running = await runningLibvirtd(p);
  if (running) {
    if (!(await inNetns(running, netns))) {
      throw new Error(
        `libvirtd ${running} of ${p.root} runs in another network namespace than ${netns ?? 'this agent'}: stop it first`,
      );
    }
    await waitAnswering(p, running, timeoutMs);
    // Its agent may have died before it let the daemon use every CPU.
    if (cpus) await unpin(running, cpus.all, log);
    log(`libvirt: reusing libvirtd ${running} on ${p.socket}`);
    return { pid: running, reused: true };
  }
  await ensureLibvirtQemuUser();
  for (const d of [p.etc, p.run, p.lib, p.log]) await mkdir(d, { recursive: true });
  await mkdir(p.sock, { recursive: true, mode: 0o700 });
  await writeFile(join(p.etc, 'libvirtd.conf'), libvirtdConf(p));
  await writeFile(join(p.etc, 'qemu.conf'), qemuConf());
  if (opts.lightCpuCheck) await lightenCpuCheck(p);
  const out = openSync(p.out, 'a');
  let pid: number;
  try {
    const argv = [
      ...(netns ? ['ip', 'netns', 'exec', netns] : []),
      ...(cpus ? ['taskset', '--cpu-list', cpus.first] : []),
      'unshare',
      ...['--mount', '--propagation', 'private', 'sh', '-c', mountAndExec],
      ...['sh', p.etc, p.run, p.lib, p.log, p.pidFile, opts.lightCpuCheck ? p.cache : ''],
    ];
    // `ip netns exec`, `taskset` and `unshare` exec what they run: the pid is libvirtd's own.
    const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', out, out] });
    child.on('error', () => {});
    child.unref();
    if (child.pid === undefined) throw new Error('could not start unshare (util-linux) for libvirtd');
    pid = child.pid;
  } finally {
    closeSync(out);
  }
  log(
    `libvirt: started libvirtd ${pid} on ${p.socket}${cpus ? ` (CPU ${cpus.first} until it answers)` : ''}`,
  );
  await waitAnswering(p, pid, timeoutMs);
  if (cpus) await unpin(pid, cpus.all, log);
  return { pid, reused: false };
}

/** Stops the daemon of `p.root` (its domains' qemu processes keep running, as with any libvirtd restart). */
export async function stopLibvirtd(p: LibvirtdPaths): Promise<void> {
  const pid = await runningLibvirtd(p);
  if (pid) await killPid(pid, 10_000);
}
