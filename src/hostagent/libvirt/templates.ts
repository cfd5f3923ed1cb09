/**
 * The host's template cache: each template fetched once from its URL (file:// or http(s)://) into
 * `<cacheDir>/<template id>-<checksum>` (or `-url-<hash of the URL>` without a checksum), verified against its
 * checksum when it has one, written to a temporary directory and renamed into place so a half-fetched template is
 * never used. Concurrent VMs of one template share one fetch.
 *
 * Formats (HostTemplateSpec): `kernel-initrd` is a directory holding `vmlinuz` and `initrd.img` (the URL names
 * the directory), or a tar of them (`.tar`, `.tar.gz`, `.tgz`); `qcow2` is a disk image.
 *
 * A kernel-initrd template may also hold `template.json` (optional, not part of its checksum): `"machine":
 * "microvm"` says its kernel drives virtio-mmio devices, so the guest is booted on QEMU's microvm machine
 * (render.ts), and `"cmdline"` is kernel arguments of its own, added after the host agent's; any other key is
 * ignored. Without it the guest gets the default PC machine and the agent's command line.
 */
import { createHash } from 'node:crypto';
import { constants, createWriteStream, existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { fileURLToPath } from 'node:url';
import type { HostTemplateSpec } from '../../hosts/protocol.js';
import { exec, run } from '../../netns/exec.js';
import { fileHash, kernelInitrdChecksum, kernelInitrdFiles, parseChecksum } from './checksum.js';

export type CachedTemplate =
  | {
      format: 'kernel-initrd';
      dir: string;
      kernel: string;
      initrd: string;
      machine?: 'microvm';
      /** Kernel arguments of the template's own (template.json). */
      cmdline?: string;
    }
  | { format: 'qcow2'; dir: string; disk: string };

/** The optional settings file of a kernel-initrd template (see the module comment). */
export const templateSettingsFile = 'template.json';

function cacheKey(t: HostTemplateSpec): string {
  if (t.checksum) {
    const c = parseChecksum(t.checksum);
    return `${t.id}-${c.algorithm}-${c.hex}`;
  }
  return `${t.id}-url-${createHash('sha256').update(t.url).digest('hex').slice(0, 16)}`;
}

async function located(t: HostTemplateSpec, dir: string): Promise<CachedTemplate> {
  if (t.format === 'qcow2') return { format: 'qcow2', dir, disk: join(dir, 'disk.qcow2') };
  const kernel = join(dir, 'vmlinuz');
  const initrd = join(dir, 'initrd.img');
  let settings: unknown = null;
  try {
    settings = JSON.parse(await readFile(join(dir, templateSettingsFile), 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new Error(`template ${t.id} (${t.url}): ${templateSettingsFile}: ${String(e)}`, { cause: e });
    }
  }
  const { machine, cmdline } = (settings ?? {}) as { machine?: unknown; cmdline?: unknown };
  const bad = (what: string) => new Error(`template ${t.id} (${t.url}): ${templateSettingsFile}: ${what}`);
  if (machine !== undefined && machine !== 'microvm' && machine !== 'pc') {
    throw bad(`machine ${JSON.stringify(machine)}: only "microvm" or "pc"`);
  }
  if (cmdline !== undefined && (typeof cmdline !== 'string' || /[^ -~]/.test(cmdline))) {
    throw bad(`cmdline ${JSON.stringify(cmdline)}: not one line of printable ASCII kernel arguments`);
  }
  return {
    format: 'kernel-initrd',
    dir,
    kernel,
    initrd,
    ...(machine === 'microvm' ? { machine } : {}),
    ...(cmdline?.trim() ? { cmdline: cmdline.trim() } : {}),
  };
}

const isTar = (url: string) => /\.(tar|tar\.gz|tgz)$/i.test(new URL(url).pathname);

/** Copies (file://) or downloads (http(s)://) `url` to `dest`. */
async function fetchTo(url: string, dest: string): Promise<void> {
  const u = new URL(url);
  if (u.protocol === 'file:') {
    // A reflink where the file system has them (the same blocks, copied on write), else a plain copy.
    await copyFile(fileURLToPath(u), dest, constants.COPYFILE_FICLONE);
    return;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new Error(`template URL ${url}: only file://, http:// and https:// are supported`);
  }
  const res = await fetch(url, { signal: AbortSignal.timeout(600_000) });
  if (!res.ok || !res.body) throw new Error(`GET ${url}: HTTP ${res.status}`);
  await pipeline(Readable.fromWeb(res.body as WebReadableStream), createWriteStream(dest));
}

/** Like fetchTo, for a file the template may lack (a missing file, HTTP 404: nothing fetched). */
async function fetchOptional(url: string, dest: string): Promise<void> {
  const u = new URL(url);
  if (u.protocol === 'file:') {
    if (existsSync(fileURLToPath(u))) await fetchTo(url, dest);
    return;
  }
  const res = await fetch(url, { signal: AbortSignal.timeout(60_000) });
  if (res.status === 404) return;
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
  await writeFile(dest, Buffer.from(await res.arrayBuffer()));
}

function joinUrl(base: string, name: string): string {
  return base.endsWith('/') ? base + name : `${base}/${name}`;
}

async function verify(t: HostTemplateSpec, actual: (alg: Parameters<typeof fileHash>[1]) => Promise<string>) {
  if (!t.checksum) return;
  const want = parseChecksum(t.checksum);
  const got = await actual(want.algorithm);
  if (got !== want.hex) {
    throw new Error(`template ${t.id} (${t.url}): ${want.algorithm} is ${got}, registered as ${want.hex}`);
  }
}

/** Fetches template `t` into `work` (an empty directory) and verifies it. */
async function fetchInto(t: HostTemplateSpec, work: string): Promise<void> {
  if (t.format === 'qcow2') {
    const disk = join(work, 'disk.qcow2');
    await fetchTo(t.url, disk);
    await verify(t, (alg) => fileHash(disk, alg));
    return;
  }
  if (isTar(t.url)) {
    const tar = join(work, 'template.tar');
    await fetchTo(t.url, tar);
    await verify(t, (alg) => fileHash(tar, alg));
    await run(['tar', '-xf', tar, '-C', work, ...kernelInitrdFiles], { timeoutMs: 120_000 });
    // Its settings file when the tar has one (tar fails on a name it lacks: that is none).
    await exec(['tar', '-xf', tar, '-C', work, templateSettingsFile], { timeoutMs: 120_000 });
    await rm(tar);
    return;
  }
  let base = t.url;
  if (base.startsWith('file:') && !(await stat(fileURLToPath(base))).isDirectory()) {
    throw new Error(
      `template ${t.id}: ${t.url} is neither a directory with vmlinuz and initrd.img nor a tar`,
    );
  }
  if (!base.endsWith('/')) base += '/';
  for (const f of kernelInitrdFiles) await fetchTo(joinUrl(base, f), join(work, f));
  await verify(t, (alg) => kernelInitrdChecksum(work, alg));
  await fetchOptional(joinUrl(base, templateSettingsFile), join(work, templateSettingsFile));
}

export class TemplateCache {
  private readonly inflight = new Map<string, Promise<CachedTemplate>>();

  constructor(
    readonly dir: string,
    private readonly log: (m: string) => void,
  ) {}

  /** The template, fetched now if it is not in the cache yet. */
  get(t: HostTemplateSpec): Promise<CachedTemplate> {
    const key = cacheKey(t);
    let p = this.inflight.get(key);
    if (!p) {
      p = this.load(t, key).finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    return p;
  }

  private async load(t: HostTemplateSpec, key: string): Promise<CachedTemplate> {
    const dir = join(this.dir, key);
    if (existsSync(join(dir, '.complete'))) return await located(t, dir);
    await mkdir(this.dir, { recursive: true });
    const work = `${dir}.tmp-${process.pid}-${Date.now()}`;
    await mkdir(work);
    const started = Date.now();
    try {
      await fetchInto(t, work);
      await writeFile(join(work, '.complete'), `${t.url}\n`);
      await rm(dir, { recursive: true, force: true });
      await rename(work, dir);
    } catch (e) {
      await rm(work, { recursive: true, force: true });
      throw e;
    }
    this.log(`libvirt: template ${t.id} (${t.name}) cached from ${t.url} in ${Date.now() - started} ms`);
    return await located(t, dir);
  }
}
