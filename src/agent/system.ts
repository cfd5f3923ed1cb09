/**
 * What the agent core and several appliers share: running a tool, looking at interfaces, and writing files
 * atomically. Each service's own tools (`dnsmasq --test`, `nft`, `ip addr`, DHCPRELEASE) live in its folder.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';

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

export function interfaceAddresses(ifname: string): string[] {
  return (networkInterfaces()[ifname] ?? []).filter((a) => a.family === 'IPv4').map((a) => a.address);
}

export function interfaceAddresses6(ifname: string): string[] {
  return (networkInterfaces()[ifname] ?? []).filter((a) => a.family === 'IPv6').map((a) => a.address);
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

export function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** Write a file so that a reader (dnsmasq, keepalived, nft, a successor agent) sees the old text or the new. */
export function writeAtomic(file: string, text: string): void {
  const dir = file.slice(0, file.lastIndexOf('/'));
  const tmp = join(dir, `.${file.slice(dir.length + 1)}.tmp`);
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

/** A directory's files without dotfiles (dnsmasq ignores those too), sorted; [] if it does not exist. */
export function listDir(dir: string): string[] {
  try {
    return readdirSync(dir)
      .filter((f) => !f.startsWith('.'))
      .sort();
  } catch {
    return [];
  }
}
