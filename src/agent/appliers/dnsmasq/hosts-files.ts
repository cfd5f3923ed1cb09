/**
 * The DHCP dnsmasq's host files and what it has loaded from them: the full file (re-read on SIGHUP) and the
 * inotify directory for additions (`--dhcp-hostsdir`). Names are the DNS dnsmasq's (appliers/dns/).
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { listDir, readText, writeAtomic } from '../../system.js';
import type { LoadedDnsmasq } from './plan.js';
import { loadedFrom } from './plan.js';
import type { DnsmasqFiles, DnsmasqPaths } from './render.js';

const compactAfterFiles = 64;

export class HostsFiles {
  /** What dnsmasq has loaded (null: unknown, e.g. not running). */
  loaded: LoadedDnsmasq | null = null;
  private addSeq = 0;

  constructor(private readonly paths: DnsmasqPaths) {}

  /** What a running dnsmasq has loaded, read back from the files (after an adoption or a role change). */
  readLoaded(): void {
    const hostLines = readText(this.paths.dhcpHostsFile).split('\n');
    for (const f of listDir(this.paths.dhcpHostsDir))
      hostLines.push(...readText(join(this.paths.dhcpHostsDir, f)).split('\n'));
    this.loaded = loadedFrom(readText(this.paths.conf), hostLines);
  }

  /** One new file in --dhcp-hostsdir (`<prefix>-<seq>`), picked up by inotify without a reload. */
  addHosts(prefix: string, lines: string[]): void {
    writeAtomic(join(this.paths.dhcpHostsDir, `${prefix}-${++this.addSeq}`), lines.join('\n') + '\n');
  }

  /**
   * Write the full files and empty the hostsdir (before the SIGHUP, or it would re-read removed hosts; deleting
   * from --dhcp-hostsdir costs dnsmasq nothing).
   */
  writeFull(rendered: DnsmasqFiles): void {
    writeAtomic(this.paths.dhcpHostsFile, rendered.dhcpHosts);
    for (const f of listDir(this.paths.dhcpHostsDir))
      rmSync(join(this.paths.dhcpHostsDir, f), { force: true });
    writeAtomic(this.paths.conf, rendered.dnsmasqConf);
    this.loaded = loadedFrom(rendered.dnsmasqConf, rendered.dhcpHosts.split('\n'));
  }

  /**
   * Many small files in the hostsdir slow dnsmasq's start and SIGHUP, so past a threshold the additions are
   * folded into dhcphosts.txt. No signal is needed: the full file holds exactly what dnsmasq has loaded, and a
   * file deleted from --dhcp-hostsdir is not unloaded.
   */
  compactHostsDir(rendered: DnsmasqFiles): void {
    const files = listDir(this.paths.dhcpHostsDir);
    if (files.length < compactAfterFiles) return;
    writeAtomic(this.paths.dhcpHostsFile, rendered.dhcpHosts);
    for (const f of files) rmSync(join(this.paths.dhcpHostsDir, f), { force: true });
  }
}
