/**
 * Builds the project's own tiny test template from Debian packages (issue 19): Debian's cloud kernel
 * (`linux-image-<abi>-cloud-amd64`, virtio_net and virtio_pci as modules) booted directly, with a gzip'd cpio
 * initramfs holding busybox-static, those modules and the /init of test-template-init.ts. The packages are
 * fetched with `apt-get download` and unpacked with `dpkg-deb -x`, never installed: installing busybox-static
 * removes the busybox package that the host's udhcpc needs. `apt-get update` must have run (CI's .ci/run does).
 *
 * The result is cached under `cacheDir` (default /var/cache/stacknet/test-template, or $STACKNET_TEMPLATE_CACHE)
 * keyed by the package versions and the init's text, built in a temporary directory and renamed into place, so
 * concurrent builders (two test files) never see half a template. Output: a directory with `vmlinuz` and
 * `initrd.img` (format kernel-initrd) and its checksum (checksum.ts); `vmlinuz` is the kernel unpacked to the ELF
 * QEMU boots at its PVH entry (kernel-image.ts) when Debian's bzImage allows it.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { run } from '../../netns/exec.js';
import { kernelInitrdChecksum } from './checksum.js';
import { cpioNewc, type CpioEntry } from './cpio.js';
import { directBootKernel } from './kernel-image.js';
import { testTemplateInit, testTemplateModules, testTemplateUdhcpcScript } from './test-template-init.js';

export interface TestTemplate {
  /** The directory holding vmlinuz and initrd.img. */
  dir: string;
  /** `file://<dir>`: what registerTemplate (and HostTemplateSpec.url) takes. */
  url: string;
  format: 'kernel-initrd';
  /** SHA-256 of the kernel-initrd manifest (checksum.ts). */
  checksum: string;
  /** The Debian packages it was built from (`name=version`). */
  packages: string[];
  /**
   * What `vmlinuz` holds: `pvh-elf`, the package's kernel unpacked from its bzImage to the ELF QEMU enters at its
   * PVH entry point (kernel-image.ts), or `bzImage` as packaged (when that cannot be done: `kernelWhy` says why).
   */
  kernel: 'pvh-elf' | 'bzImage';
  kernelWhy?: string;
  /**
   * The machine the host agent boots it on (its `template.json`, read by templates.ts): not set, so the PC. Its
   * initramfs carries virtio_mmio and its /init loads the transport the guest has, so `"machine": "microvm"` in
   * that file boots it on QEMU's microvm instead (measured in docs/benchmarks.md, branch hosts7: less CPU per
   * guest, but its clock then starts later by its console, which the bench counts as overhead).
   */
  machine?: 'microvm';
  /**
   * Its kernel arguments (`template.json`, added to the host agent's): `cryptomgr.notests`. Debian's cloud kernel
   * (CONFIG_CRYPTO_FIPS, the manager's tests enabled) tests each crypto algorithm as it registers; this guest
   * uses none, and under emulation the tests cost it ~0.3 s of CPU of ~1.8 s to its lease (docs/benchmarks.md).
   */
  cmdline: string;
}

export const defaultTemplateCache = '/var/cache/stacknet/test-template';

const kernelMeta = 'linux-image-cloud-amd64';
/** Part of the cache key: a template built before the kernel was unpacked for PVH boot is built again. */
const kernelRecipe = 'vmlinuz: PVH ELF when the bzImage unpacks to one (kernel-image.ts)';
const busyboxPackage = 'busybox-static';
const testTemplateCmdline = 'cryptomgr.notests';

async function aptCache(args: string[]): Promise<string> {
  try {
    return (await run(['apt-cache', ...args], { timeoutMs: 60_000, env: { ...process.env, LC_ALL: 'C' } }))
      .stdout;
  } catch (e) {
    throw new Error(`apt-cache ${args.join(' ')} failed (has \`apt-get update\` run?): ${String(e)}`, {
      cause: e,
    });
  }
}

/** The kernel package the `linux-image-cloud-amd64` metapackage points at now, e.g. linux-image-6.1.0-57-cloud-amd64. */
async function currentKernelPackage(): Promise<string> {
  const out = await aptCache(['depends', kernelMeta]);
  const m = /Depends:\s*(linux-image-[0-9][^\s]*-cloud-amd64)/.exec(out);
  if (!m) throw new Error(`apt-cache depends ${kernelMeta} names no cloud kernel:\n${out}`);
  return m[1]!;
}

async function candidateVersion(pkg: string): Promise<string> {
  const out = await aptCache(['show', '--no-all-versions', pkg]);
  const m = /^Version:\s*(\S+)/m.exec(out);
  if (!m) throw new Error(`apt-cache show ${pkg}: no Version`);
  return m[1]!;
}

/** `depends=` of a kernel module (its .modinfo section, read as bytes: no kmod needed). */
export function moduleDepends(ko: Buffer): string[] {
  const i = ko.indexOf('\0depends=');
  if (i < 0) return [];
  const end = ko.indexOf(0, i + 1);
  return ko
    .subarray(i + '\0depends='.length, end)
    .toString()
    .split(',')
    .filter(Boolean);
}

async function findModules(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.name.endsWith('.ko')) out.set(e.name.slice(0, -3).replace(/-/g, '_'), p);
    }
  };
  await walk(root);
  return out;
}

/** The modules to load, dependencies first, with their files. */
async function resolveModules(modulesDir: string, wanted: readonly string[]): Promise<[string, Buffer][]> {
  const files = await findModules(modulesDir);
  const order: [string, Buffer][] = [];
  const seen = new Set<string>();
  const visit = async (name: string, chain: string[]) => {
    if (seen.has(name)) return;
    if (chain.includes(name)) throw new Error(`module dependency cycle: ${[...chain, name].join(' → ')}`);
    const f = files.get(name);
    if (!f) {
      throw new Error(
        `kernel module ${name} not found under ${modulesDir} (compressed modules are not supported by busybox insmod)`,
      );
    }
    const ko = await readFile(f);
    for (const d of moduleDepends(ko)) await visit(d.replace(/-/g, '_'), [...chain, name]);
    seen.add(name);
    order.push([name, ko]);
  };
  for (const m of wanted) await visit(m, []);
  return order;
}

/**
 * `/bin/rdtsc` of the test template: a static x86-64 ELF that prints the TSC in decimal and exits (the CLOCK line,
 * test-template-init.ts; busybox has no such applet). One PT_LOAD segment, no sections; the code, assembled from
 *
 *   rdtsc ; shl rdx, 32 ; or rax, rdx           the 64-bit TSC in rax
 *   lea rsi, [rsp-1] ; mov byte [rsi], 10       digits written downwards below the stack pointer, '\n' last
 *   mov ecx, 10
 *   1: xor edx, edx ; div rcx ; add dl, '0' ; dec rsi ; mov [rsi], dl ; test rax, rax ; jnz 1b
 *   mov rdx, rsp ; sub rdx, rsi                 the length
 *   mov edi, 1 ; mov eax, 1 ; syscall           write(1, rsi, rdx)
 *   mov eax, 60 ; xor edi, edi ; syscall        exit(0)
 */
export function rdtscProgram(): Buffer {
  const code = Buffer.from(
    '0f3148c1e2204809d0488d7424ffc6060ab90a00000031d248f7f180c23048ffce88164885c075ee4889e24829f2' +
      'bf01000000b8010000000f05b83c00000031ff0f05',
    'hex',
  );
  const base = 0x400000n;
  const size = BigInt(64 + 56 + code.length);
  const elf = Buffer.alloc(64 + 56);
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]).copy(elf, 0); // ELF64, little-endian, SysV
  elf.writeUInt16LE(2, 16); // ET_EXEC
  elf.writeUInt16LE(0x3e, 18); // x86-64
  elf.writeUInt32LE(1, 20);
  elf.writeBigUInt64LE(base + 120n, 24); // entry: the code, after the two headers
  elf.writeBigUInt64LE(64n, 32); // program headers at 64
  elf.writeUInt16LE(64, 52); // header size
  elf.writeUInt16LE(56, 54); // program header size
  elf.writeUInt16LE(1, 56); // one of them
  elf.writeUInt32LE(1, 64); // PT_LOAD
  elf.writeUInt32LE(5, 68); // R+X
  elf.writeBigUInt64LE(0n, 72); // the whole file
  elf.writeBigUInt64LE(base, 80);
  elf.writeBigUInt64LE(base, 88);
  elf.writeBigUInt64LE(size, 96);
  elf.writeBigUInt64LE(size, 104);
  elf.writeBigUInt64LE(0x1000n, 112);
  return Buffer.concat([elf, code]);
}

/** The initramfs: busybox-static as /bin/busybox, /bin/rdtsc, the modules, /init and its udhcpc script, /dev/console. */
export function testTemplateInitramfs(busybox: Buffer, modules: [string, Buffer][]): Buffer {
  const entries: CpioEntry[] = [
    ...['bin', 'dev', 'etc', 'lib', 'lib/modules', 'proc', 'run', 'sys', 'tmp'].map((path): CpioEntry => ({
      path,
      type: 'dir',
    })),
    { path: 'dev/console', type: 'char', major: 5, minor: 1 },
    { path: 'bin/busybox', type: 'file', mode: 0o755, data: busybox },
    { path: 'bin/sh', type: 'symlink', target: 'busybox' },
    { path: 'bin/rdtsc', type: 'file', mode: 0o755, data: rdtscProgram() },
    ...modules.map(([name, ko]): CpioEntry => ({ path: `lib/modules/${name}.ko`, type: 'file', data: ko })),
    {
      path: 'init',
      type: 'file',
      mode: 0o755,
      data: Buffer.from(testTemplateInit(modules.map(([n]) => n))),
    },
    { path: 'etc/udhcpc.script', type: 'file', mode: 0o755, data: Buffer.from(testTemplateUdhcpcScript) },
  ];
  return gzipSync(cpioNewc(entries), { level: 9 });
}

async function readTemplate(dir: string): Promise<TestTemplate | null> {
  try {
    const info = JSON.parse(await readFile(join(dir, 'template.json'), 'utf8')) as TestTemplate;
    return { ...info, dir, url: `file://${dir}` };
  } catch {
    return null;
  }
}

/** Builds the test template, or returns the cached one for the current package versions. */
export async function buildTestTemplate(
  opts: { cacheDir?: string; log?: (m: string) => void } = {},
): Promise<TestTemplate> {
  const log = opts.log ?? (() => {});
  const cacheDir = opts.cacheDir ?? process.env.STACKNET_TEMPLATE_CACHE ?? defaultTemplateCache;
  const kernelPkg = await currentKernelPackage();
  const [kernelVersion, busyboxVersion] = await Promise.all([
    candidateVersion(kernelPkg),
    candidateVersion(busyboxPackage),
  ]);
  const packages = [`${kernelPkg}=${kernelVersion}`, `${busyboxPackage}=${busyboxVersion}`];
  const recipe = createHash('sha256')
    .update(
      JSON.stringify([
        packages,
        testTemplateModules,
        testTemplateInit([]),
        rdtscProgram().toString('hex'),
        testTemplateUdhcpcScript,
        kernelRecipe,
        'template.json: no machine',
        testTemplateCmdline,
      ]),
    )
    .digest('hex')
    .slice(0, 16);
  const dir = join(cacheDir, `${kernelPkg}-${recipe}`);
  const cached = await readTemplate(dir);
  if (cached) return cached;

  log(`building the test template from ${packages.join(', ')} into ${dir}`);
  await mkdir(cacheDir, { recursive: true });
  const work = `${dir}.tmp-${process.pid}-${Date.now()}`;
  await mkdir(work, { recursive: true });
  try {
    const debs = join(work, 'debs');
    await mkdir(debs);
    // Run as root, apt warns that its _apt user cannot write here; the download works all the same.
    await run(['apt-get', 'download', '-q', ...packages], { cwd: debs, timeoutMs: 300_000 });
    const names = await readdir(debs);
    const deb = (prefix: string) => {
      const f = names.find((n) => n.startsWith(`${prefix}_`) && n.endsWith('.deb'));
      if (!f) throw new Error(`apt-get download left no ${prefix}_*.deb in ${debs}: ${names.join(' ')}`);
      return join(debs, f);
    };
    const abi = kernelPkg.replace(/^linux-image-/, '');
    const kroot = join(work, 'kernel');
    const broot = join(work, 'busybox');
    // Only the kernel and the module directories the initramfs draws from: unpacking the whole package
    // (`dpkg-deb -x`, 100 MB of modules) takes twice as long.
    await mkdir(kroot);
    const mods = `./lib/modules/${abi}/kernel`;
    await run(
      [
        'bash',
        '-o',
        'pipefail',
        '-c',
        'dpkg-deb --fsys-tarfile "$1" | tar -x -C "$2" --wildcards "${@:3}"',
        'extract',
        deb(kernelPkg),
        kroot,
        `./boot/vmlinuz-${abi}`,
        `${mods}/drivers/virtio/*`,
        `${mods}/drivers/net/*.ko`,
        `${mods}/net/core/*`,
      ],
      { timeoutMs: 120_000 },
    );
    await run(['dpkg-deb', '-x', deb(busyboxPackage), broot], { timeoutMs: 60_000 });
    const modules = await resolveModules(join(kroot, 'lib', 'modules', abi), testTemplateModules);
    const busybox = await readFile(join(broot, 'bin', 'busybox'));
    const out = join(work, 'template');
    await mkdir(out);
    // The kernel without its decompressor when it can be (kernel-image.ts); the file keeps the name `vmlinuz`
    // (the template format's), QEMU tells a bzImage from an ELF by its header.
    const kernel = await directBootKernel(await readFile(join(kroot, 'boot', `vmlinuz-${abi}`)));
    if (kernel.kind === 'bzImage') log(`test template: booting the bzImage as packaged: ${kernel.why}`);
    await writeFile(join(out, 'vmlinuz'), kernel.image);
    await writeFile(join(out, 'initrd.img'), testTemplateInitramfs(busybox, modules));
    const checksum = await kernelInitrdChecksum(out);
    const info: Omit<TestTemplate, 'dir' | 'url'> = {
      format: 'kernel-initrd',
      checksum,
      packages,
      kernel: kernel.kind,
      ...(kernel.kind === 'bzImage' ? { kernelWhy: kernel.why } : {}),
      cmdline: testTemplateCmdline,
    };
    await writeFile(join(out, 'template.json'), JSON.stringify(info, null, 2) + '\n');
    try {
      await rename(out, dir);
    } catch (e) {
      // Another builder got there first: theirs is the same recipe.
      if (!existsSync(join(dir, 'template.json'))) throw e;
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  const built = await readTemplate(dir);
  if (!built) throw new Error(`test template in ${dir} is incomplete`);
  log(`test template ${dir}: checksum ${built.checksum}`);
  return built;
}
