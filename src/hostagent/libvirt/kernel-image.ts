/**
 * The test template's kernel as QEMU boots it fastest under TCG: the uncompressed ELF `vmlinux` inside Debian's
 * bzImage, booted through its PVH entry point (QEMU ≥ 4.0 loads an ELF `-kernel` with a
 * XEN_ELFNOTE_PHYS32_ENTRY note straight into guest memory and enters it in 32-bit protected mode: no real-mode
 * set-up code, no decompressor, no KASLR relocation pass). Under emulation the decompressor's work (unpacking
 * ~50 MB and relocating it, instruction by instruction) is most of the time from QEMU's start to the guest's
 * clock (docs/benchmarks.md, "Booting the guest's kernel without its decompressor").
 *
 * The bzImage's setup header (Documentation/x86/boot.rst, protocol ≥ 2.08) says where its payload is:
 * `payload_offset` (0x248) and `payload_length` (0x24c) from the start of the protected-mode code, which follows
 * the `setup_sects` (0x1f1) + 1 sectors of real-mode code. The payload is the compressed `vmlinux` (followed by
 * its relocation table, which only the decompressor reads); every format but gzip ends with the uncompressed size
 * as 4 little-endian bytes. It is unpacked with the Debian tool of its format (lz4, xz, zstd; gzip by zlib).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { run } from '../../netns/exec.js';

export type PayloadFormat = 'gzip' | 'lz4' | 'xz' | 'zstd';

/** Magic bytes of the payload formats unpacked here (the kernel's other formats: bzip2, lzma, lzo are not). */
const magics: [PayloadFormat, Buffer][] = [
  ['gzip', Buffer.from([0x1f, 0x8b])],
  // The legacy LZ4 frame the kernel's `lz4 -l` writes.
  ['lz4', Buffer.from([0x02, 0x21, 0x4c, 0x18])],
  ['xz', Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])],
  ['zstd', Buffer.from([0x28, 0xb5, 0x2f, 0xfd])],
];

/** The Debian command that unpacks a format from stdin to stdout (gzip is unpacked in-process). */
const unpackers: Record<Exclude<PayloadFormat, 'gzip'>, string[]> = {
  lz4: ['lz4', '-d', '-c'],
  xz: ['xz', '-d', '-c'],
  zstd: ['zstd', '-d', '-c'],
};

export interface BzImagePayload {
  format: PayloadFormat | null;
  /** The compressed bytes (without the size trailer). */
  data: Buffer;
  /** The uncompressed size the trailer states (null for gzip, whose own trailer holds it). */
  size: number | null;
}

/** The compressed payload of a bzImage, or null when `img` is not a bzImage of boot protocol ≥ 2.08. */
export function bzImagePayload(img: Buffer): BzImagePayload | null {
  if (img.length < 0x250 || img.toString('latin1', 0x202, 0x206) !== 'HdrS') return null;
  if (img.readUInt16LE(0x206) < 0x208) return null;
  const setupSects = img[0x1f1] || 4;
  const start = (setupSects + 1) * 512 + img.readUInt32LE(0x248);
  const length = img.readUInt32LE(0x24c);
  if (length < 8 || start + length > img.length) return null;
  const payload = img.subarray(start, start + length);
  const format = magics.find(([, m]) => payload.subarray(0, m.length).equals(m))?.[0] ?? null;
  if (format === 'gzip' || format === null) return { format, data: payload, size: null };
  return {
    format,
    data: payload.subarray(0, length - 4),
    size: payload.readUInt32LE(length - 4),
  };
}

/** XEN_ELFNOTE_PHYS32_ENTRY: the 32-bit PVH entry point QEMU's ELF loader looks for. */
const PHYS32_ENTRY = 18;

/** True when `elf` is a 64-bit little-endian x86-64 ELF with a PVH entry note (owner `Xen`, type 18). */
export function hasPvhEntry(elf: Buffer): boolean {
  if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2 || elf[5] !== 1) return false;
  if (elf.readUInt16LE(0x12) !== 62) return false;
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const phentsize = elf.readUInt16LE(0x36);
  const phnum = elf.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (ph + 56 > elf.length || elf.readUInt32LE(ph) !== 4 /* PT_NOTE */) continue;
    const off = Number(elf.readBigUInt64LE(ph + 8));
    const end = Math.min(elf.length, off + Number(elf.readBigUInt64LE(ph + 32)));
    for (let n = off; n + 12 <= end;) {
      const namesz = elf.readUInt32LE(n);
      const descsz = elf.readUInt32LE(n + 4);
      const type = elf.readUInt32LE(n + 8);
      const name = elf.toString('latin1', n + 12, n + 12 + Math.max(0, namesz - 1));
      if (name === 'Xen' && type === PHYS32_ENTRY && descsz >= 4) return true;
      n += 12 + align4(namesz) + align4(descsz);
    }
  }
  return false;
}

const align4 = (x: number) => (x + 3) & ~3;

/** The bytes the ELF itself spans (its program and section headers and segments): what follows is not its. */
export function elfExtent(elf: Buffer): number {
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const shoff = Number(elf.readBigUInt64LE(0x28));
  const phentsize = elf.readUInt16LE(0x36);
  const phnum = elf.readUInt16LE(0x38);
  let end = Math.max(phoff + phentsize * phnum, shoff + elf.readUInt16LE(0x3a) * elf.readUInt16LE(0x3c));
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    end = Math.max(end, Number(elf.readBigUInt64LE(ph + 8)) + Number(elf.readBigUInt64LE(ph + 32)));
  }
  return Math.min(end, elf.length);
}

async function unpack(p: BzImagePayload & { format: PayloadFormat }): Promise<Buffer> {
  if (p.format === 'gzip') return gunzipSync(p.data);
  const dir = await mkdtemp(join(tmpdir(), 'sn-vmlinux-'));
  try {
    const [input, output] = [join(dir, 'payload'), join(dir, 'vmlinux')];
    await writeFile(input, p.data);
    await run(['bash', '-c', '"${@:3}" < "$1" > "$2"', 'unpack', input, output, ...unpackers[p.format]], {
      timeoutMs: 120_000,
    });
    return await readFile(output);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export type DirectBootKernel =
  | { kind: 'pvh-elf'; format: PayloadFormat; image: Buffer }
  /** The bzImage as it is, and why it could not be unpacked to a PVH ELF. */
  | { kind: 'bzImage'; why: string; image: Buffer };

/**
 * The kernel to boot directly: the bzImage's `vmlinux` cut to the ELF's own extent when it unpacks and has a PVH
 * entry, else the bzImage itself (and why).
 */
export async function directBootKernel(bzImage: Buffer): Promise<DirectBootKernel> {
  const p = bzImagePayload(bzImage);
  if (!p) return { kind: 'bzImage', why: 'not a bzImage of boot protocol 2.08 or later', image: bzImage };
  if (p.format === null) {
    const magic = p.data.subarray(0, 6).toString('hex');
    return { kind: 'bzImage', why: `payload format not unpacked here (magic ${magic})`, image: bzImage };
  }
  const elf = await unpack({ ...p, format: p.format });
  if (p.size !== null && elf.length !== p.size) {
    throw new Error(`the ${p.format} payload unpacked to ${elf.length} bytes, its trailer says ${p.size}`);
  }
  if (!hasPvhEntry(elf)) {
    return { kind: 'bzImage', why: 'its vmlinux has no PVH entry note (CONFIG_PVH)', image: bzImage };
  }
  return { kind: 'pvh-elf', format: p.format, image: elf.subarray(0, elfExtent(elf)) };
}
