/**
 * Template checksums as CloudStack's registerTemplate takes them: hex, optionally prefixed with the algorithm in
 * braces (`{SHA-256}…`, `{MD5}…`); without a prefix the length says which (32 MD5, 40 SHA-1, 64 SHA-256,
 * 128 SHA-512). A kernel-initrd directory has no single file, so its checksum is that of the manifest
 * `<hash of vmlinuz>  vmlinuz\n<hash of initrd.img>  initrd.img\n` (what `sha256sum vmlinuz initrd.img | sha256sum`
 * computes in the directory), with the same algorithm for the inner hashes.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';

export type ChecksumAlgorithm = 'md5' | 'sha1' | 'sha256' | 'sha512';

export interface ParsedChecksum {
  algorithm: ChecksumAlgorithm;
  hex: string;
}

const byPrefix: Record<string, ChecksumAlgorithm> = {
  MD5: 'md5',
  'SHA-1': 'sha1',
  SHA1: 'sha1',
  'SHA-256': 'sha256',
  SHA256: 'sha256',
  'SHA-512': 'sha512',
  SHA512: 'sha512',
};
const byLength: Record<number, ChecksumAlgorithm> = { 32: 'md5', 40: 'sha1', 64: 'sha256', 128: 'sha512' };

export function parseChecksum(s: string): ParsedChecksum {
  const m = /^\s*(?:\{([A-Za-z0-9-]+)\})?([0-9a-fA-F]+)\s*$/.exec(s);
  const algorithm = m && (m[1] ? byPrefix[m[1].toUpperCase()] : byLength[m[2]!.length]);
  if (!m || !algorithm) {
    throw new Error(
      `template checksum ${JSON.stringify(s)}: not hex MD5/SHA-1/SHA-256/SHA-512 (or {ALG}hex)`,
    );
  }
  return { algorithm, hex: m[2]!.toLowerCase() };
}

export function fileHash(path: string, algorithm: ChecksumAlgorithm): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash(algorithm);
    createReadStream(path)
      .on('error', reject)
      .on('data', (b) => h.update(b))
      .on('end', () => resolve(h.digest('hex')));
  });
}

export const kernelInitrdFiles = ['vmlinuz', 'initrd.img'] as const;

/** The checksum of a kernel-initrd directory (see the module comment). */
export async function kernelInitrdChecksum(
  dir: string,
  algorithm: ChecksumAlgorithm = 'sha256',
): Promise<string> {
  let manifest = '';
  for (const f of kernelInitrdFiles) manifest += `${await fileHash(join(dir, f), algorithm)}  ${f}\n`;
  return createHash(algorithm).update(manifest).digest('hex');
}
