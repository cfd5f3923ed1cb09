// The test template's kernel unpacked for PVH boot (kernel-image.ts), on small bzImages made here: the setup
// header, the payload compressed by the real lz4 (legacy frame, as the kernel's build writes it) and gzip, the
// size trailer, the PVH note. The real kernel's is booted by test/hostagent/libvirt-backend.test.ts.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { run } from '../../netns/exec.js';
import { bzImagePayload, directBootKernel, elfExtent, hasPvhEntry } from './kernel-image.js';

/** A minimal x86-64 ELF: its header, a PT_NOTE with one note (owner, type), a PT_LOAD of 1 KiB of "code". */
function elf(note: { owner: string; type: number }): Buffer {
  const name = Buffer.alloc(Math.ceil((note.owner.length + 1) / 4) * 4);
  name.write(note.owner, 'latin1');
  const n = Buffer.alloc(12);
  n.writeUInt32LE(note.owner.length + 1, 0);
  n.writeUInt32LE(8, 4);
  n.writeUInt32LE(note.type, 8);
  const noteBytes = Buffer.concat([n, name, Buffer.alloc(8, 0x11)]);
  const h = Buffer.alloc(64 + 2 * 56);
  h.writeUInt32BE(0x7f454c46, 0);
  h[4] = 2; // 64-bit
  h[5] = 1; // little-endian
  h[6] = 1;
  h.writeUInt16LE(2, 0x10); // ET_EXEC
  h.writeUInt16LE(62, 0x12); // x86-64
  h.writeBigUInt64LE(64n, 0x20); // phoff
  h.writeUInt16LE(64, 0x34);
  h.writeUInt16LE(56, 0x36);
  h.writeUInt16LE(2, 0x38);
  h.writeUInt16LE(64, 0x3a);
  const note0 = h.length;
  const code0 = note0 + noteBytes.length;
  h.writeUInt32LE(4, 64); // PT_NOTE
  h.writeBigUInt64LE(BigInt(note0), 64 + 8);
  h.writeBigUInt64LE(BigInt(noteBytes.length), 64 + 32);
  h.writeUInt32LE(1, 120); // PT_LOAD
  h.writeBigUInt64LE(BigInt(code0), 120 + 8);
  h.writeBigUInt64LE(1024n, 120 + 32);
  return Buffer.concat([h, noteBytes, Buffer.alloc(1024, 0x90)]);
}

/** A bzImage of boot protocol 2.15 around `payload`: 2 setup sectors + the boot sector, then 16 bytes of stub. */
function bzImage(payload: Buffer): Buffer {
  const setup = Buffer.alloc(3 * 512);
  setup[0x1f1] = 2;
  setup.write('HdrS', 0x202, 'latin1');
  setup.writeUInt16LE(0x20f, 0x206);
  setup.writeUInt32LE(16, 0x248);
  setup.writeUInt32LE(payload.length, 0x24c);
  return Buffer.concat([setup, Buffer.alloc(16, 0xcc), payload, Buffer.alloc(64, 0xee)]);
}

const sizeTrailer = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};

describe('the test template kernel for PVH boot', () => {
  it('finds the PVH entry note and the ELF extent', () => {
    const pvh = elf({ owner: 'Xen', type: 18 });
    assert.equal(hasPvhEntry(pvh), true);
    assert.equal(hasPvhEntry(elf({ owner: 'Xen', type: 17 })), false);
    assert.equal(hasPvhEntry(elf({ owner: 'GNU', type: 18 })), false);
    assert.equal(
      hasPvhEntry(Buffer.from('not an elf at all, but long enough to have a header......')),
      false,
    );
    assert.equal(elfExtent(Buffer.concat([pvh, Buffer.from('relocation table')])), pvh.length);
  });

  it("unpacks an lz4 payload (legacy frame + size trailer) with Debian's lz4 to the ELF, cut to its extent", async () => {
    const vmlinux = Buffer.concat([elf({ owner: 'Xen', type: 18 }), Buffer.from('relocs')]);
    const dir = await mkdtemp(join(tmpdir(), 'sn-kimg-'));
    try {
      await writeFile(join(dir, 'vmlinux'), vmlinux);
      await run(['sh', '-c', `lz4 -l -9 -c ${dir}/vmlinux > ${dir}/vmlinux.lz4`]);
      const lz4 = await readFile(join(dir, 'vmlinux.lz4'));
      const img = bzImage(Buffer.concat([lz4, sizeTrailer(vmlinux.length)]));
      const p = bzImagePayload(img)!;
      assert.equal(p.format, 'lz4');
      assert.equal(p.size, vmlinux.length);
      assert.ok(p.data.equals(lz4));
      const k = await directBootKernel(img);
      assert.equal(k.kind, 'pvh-elf');
      assert.ok(k.image.equals(vmlinux.subarray(0, vmlinux.length - 'relocs'.length)));
      // A trailer that disagrees with what the payload unpacks to is an error, not a kernel.
      await assert.rejects(
        directBootKernel(bzImage(Buffer.concat([lz4, sizeTrailer(vmlinux.length + 1)]))),
        /unpacked to \d+ bytes, its trailer says/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('keeps the bzImage (and says why) without a PVH note, an unknown payload or a bzImage header', async () => {
    const noNote = bzImage(gzipSync(elf({ owner: 'Xen', type: 5 })));
    const k = await directBootKernel(noNote);
    assert.equal(k.kind, 'bzImage');
    assert.match(k.kind === 'bzImage' ? k.why : '', /no PVH entry note/);
    assert.ok(k.image.equals(noNote));
    const bzip2 = await directBootKernel(bzImage(Buffer.from('BZh91AY&SY...........')));
    assert.match(bzip2.kind === 'bzImage' ? bzip2.why : '', /not unpacked here \(magic 425a68/);
    const notBz = await directBootKernel(Buffer.alloc(4096));
    assert.match(notBz.kind === 'bzImage' ? notBz.why : '', /not a bzImage/);
  });
});
