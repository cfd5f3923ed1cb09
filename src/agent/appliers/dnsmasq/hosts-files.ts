/**
 * dnsmasq's host and name files, and what it has loaded from them: the full files (re-read on SIGHUP), the
 * inotify directories for additions (`--dhcp-hostsdir`, `--hostsdir`), and the batching of names.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { listDir, readText, writeAtomic } from '../../system.js';
import type { LoadedDnsmasq } from './plan.js';
import { loadedFrom } from './plan.js';
import type { DnsmasqFiles, DnsmasqPaths } from './render.js';

const compactAfterFiles = 64;
/** New names go to dnsmasq's --hostsdir once additions have paused this long (see queueNames)... */
const namesQuietMs = 300;
/** ...or at the latest this long after the first of them was queued. */
const namesMaxDelayMs = 1500;

export class HostsFiles {
  /** What dnsmasq has loaded (null: unknown, e.g. not running). */
  loaded: LoadedDnsmasq | null = null;
  private addSeq = 0;
  private queuedNames: string[] = [];
  private namesTimer: NodeJS.Timeout | null = null;
  private namesFirstQueued = 0;

  constructor(
    private readonly paths: DnsmasqPaths,
    /** Address → MAC of dnsmasq's current leases. */
    private readonly leasedIps: () => Map<string, string>,
  ) {}

  /** What a running dnsmasq has loaded, read back from the files (after an adoption or a role change). */
  readLoaded(): void {
    const hostLines = readText(this.paths.dhcpHostsFile).split('\n');
    for (const f of listDir(this.paths.dhcpHostsDir))
      hostLines.push(...readText(join(this.paths.dhcpHostsDir, f)).split('\n'));
    const nameLines = readText(this.paths.namesFile).split('\n');
    for (const f of listDir(this.paths.namesDir))
      nameLines.push(...readText(join(this.paths.namesDir, f)).split('\n'));
    this.loaded = loadedFrom(readText(this.paths.conf), hostLines, nameLines);
  }

  /** One new file in --dhcp-hostsdir (`<prefix>-<seq>`), picked up by inotify without a reload. */
  addHosts(prefix: string, lines: string[]): void {
    writeAtomic(join(this.paths.dhcpHostsDir, `${prefix}-${++this.addSeq}`), lines.join('\n') + '\n');
  }

  /**
   * Write the full files and empty the DHCP hostsdir (before the SIGHUP, or it would re-read removed hosts;
   * deleting from --dhcp-hostsdir costs dnsmasq nothing). The DNS hostsdir is different: dnsmasq processes each
   * removal from it with a full lease re-match (about a second per file at 5,000 hosts, measured by bench:vr),
   * so while dnsmasq runs its files are kept when every name in them is still wanted (names.txt repeats them;
   * dnsmasq drops duplicate hosts entries) and only files holding a removed name are rewritten. With dnsmasq
   * stopped (restart, backup) they are simply deleted.
   */
  writeFull(rendered: DnsmasqFiles, dnsmasqRunning: boolean): void {
    this.dropQueuedNames();
    writeAtomic(this.paths.dhcpHostsFile, rendered.dhcpHosts);
    writeAtomic(this.paths.namesFile, rendered.names);
    for (const f of listDir(this.paths.dhcpHostsDir))
      rmSync(join(this.paths.dhcpHostsDir, f), { force: true });
    const wanted = new Set(rendered.names.split('\n').filter(Boolean));
    for (const f of listDir(this.paths.namesDir)) {
      const file = join(this.paths.namesDir, f);
      if (!dnsmasqRunning) {
        rmSync(file, { force: true });
        continue;
      }
      const lines = readText(file).split('\n').filter(Boolean);
      const keep = lines.filter((l) => wanted.has(l));
      if (keep.length === lines.length) continue;
      if (keep.length === 0) rmSync(file, { force: true });
      else writeAtomic(file, keep.join('\n') + '\n');
    }
    writeAtomic(this.paths.conf, rendered.dnsmasqConf);
    this.loaded = loadedFrom(
      rendered.dnsmasqConf,
      rendered.dhcpHosts.split('\n'),
      rendered.names.split('\n'),
    );
  }

  /**
   * Many small files in the hostsdir slow dnsmasq's start and SIGHUP, so past a threshold the DHCP additions are
   * folded into dhcphosts.txt. No signal is needed: the full file holds exactly what dnsmasq has loaded, and a
   * file deleted from --dhcp-hostsdir is not unloaded. (names.d is left alone: deleting a --hostsdir file does
   * unload its names, so it is folded only at the next reload.)
   */
  compactHostsDir(rendered: DnsmasqFiles): void {
    const files = listDir(this.paths.dhcpHostsDir);
    if (files.length < compactAfterFiles) return;
    writeAtomic(this.paths.dhcpHostsFile, rendered.dhcpHosts);
    for (const f of files) rmSync(join(this.paths.dhcpHostsDir, f), { force: true });
  }

  /**
   * A file in --hostsdir costs dnsmasq the same full lease re-match as one in --dhcp-hostsdir (its inotify
   * handler re-runs the DHCP config/lease update too; O(leases × hosts)). Names are therefore written a little
   * later and batched, so a new VM's DHCP answer waits for one re-match, not two. While additions keep coming
   * (VMs deployed one after another) the names wait for a pause, up to namesMaxDelayMs: a names re-match in the
   * middle of the stream would block the next VM's DHCP answer (bench:vr saw it in the p99). Until then the
   * name resolves from the VM's lease once it has one.
   */
  queueNames(lines: string[]): void {
    if (lines.length === 0) return;
    if (this.queuedNames.length === 0) this.namesFirstQueued = performance.now();
    this.queuedNames.push(...lines);
    if (this.namesTimer) clearTimeout(this.namesTimer);
    const wait = Math.min(namesQuietMs, this.namesFirstQueued + namesMaxDelayMs - performance.now());
    this.namesTimer = setTimeout(() => this.flushNames(), Math.max(0, wait));
  }

  flushNames(): void {
    if (this.namesTimer) clearTimeout(this.namesTimer);
    this.namesTimer = null;
    if (this.queuedNames.length === 0) return;
    // A host that already holds its lease resolves by it (dnsmasq names a lease `host` and `host.<domain>` from
    // its dhcp-host line; the address could only be leased to that host's MAC), so its IPv4 line would buy
    // nothing for the re-match it costs; names.txt gets it at the next full write.
    const leased = this.leasedIps();
    const lines = this.queuedNames.filter((l) => {
      const ip = l.slice(0, l.indexOf('\t'));
      return ip.includes(':') || !leased.has(ip);
    });
    this.queuedNames = [];
    if (lines.length === 0) return;
    writeAtomic(join(this.paths.namesDir, `n-${++this.addSeq}`), lines.join('\n') + '\n');
  }

  private dropQueuedNames(): void {
    if (this.namesTimer) clearTimeout(this.namesTimer);
    this.namesTimer = null;
    this.queuedNames = [];
  }
}
