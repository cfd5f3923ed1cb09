/**
 * A cpio archive in the kernel's initramfs format ("newc", SVR4 without CRC), written in memory so building an
 * initramfs needs neither the `cpio` tool nor root (a device node is just a header: /dev/console must exist before
 * /init runs, or the kernel starts init without a console).
 */

export type CpioEntry =
  | { path: string; type: 'dir'; mode?: number }
  | { path: string; type: 'file'; mode?: number; data: Buffer }
  | { path: string; type: 'symlink'; target: string }
  | { path: string; type: 'char'; mode?: number; major: number; minor: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

function record(
  ino: number,
  mode: number,
  data: Buffer,
  name: string,
  rdev = { major: 0, minor: 0 },
): Buffer {
  const nameBuf = Buffer.from(`${name}\0`);
  const header =
    '070701' +
    [
      ino,
      mode,
      0, // uid
      0, // gid
      mode & S_IFDIR ? 2 : 1, // nlink
      0, // mtime: fixed, so the same input gives the same archive (and checksum)
      data.length,
      0, // dev major
      0, // dev minor
      rdev.major,
      rdev.minor,
      nameBuf.length,
      0, // check
    ]
      .map(hex8)
      .join('');
  const head = Buffer.from(header);
  return Buffer.concat([
    head,
    nameBuf,
    Buffer.alloc(pad4(head.length + nameBuf.length)),
    data,
    Buffer.alloc(pad4(data.length)),
  ]);
}

/** The archive of `entries` (in order: parents before children), ending with the TRAILER!!! record. */
export function cpioNewc(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  for (const e of entries) {
    const name = e.path.replace(/^\/+/, '');
    switch (e.type) {
      case 'dir':
        parts.push(record(ino++, S_IFDIR | (e.mode ?? 0o755), Buffer.alloc(0), name));
        break;
      case 'file':
        parts.push(record(ino++, S_IFREG | (e.mode ?? 0o644), e.data, name));
        break;
      case 'symlink':
        parts.push(record(ino++, S_IFLNK | 0o777, Buffer.from(e.target), name));
        break;
      case 'char':
        parts.push(
          record(ino++, S_IFCHR | (e.mode ?? 0o600), Buffer.alloc(0), name, {
            major: e.major,
            minor: e.minor,
          }),
        );
        break;
    }
  }
  parts.push(record(0, 0, Buffer.alloc(0), 'TRAILER!!!'));
  return Buffer.concat(parts);
}
