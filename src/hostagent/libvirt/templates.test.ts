// The host's template cache with real files and a real HTTP server: file:// and http:// directories and tars,
// qcow2 images, checksums checked, one fetch per template.
import assert from 'node:assert/strict';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { HostTemplateSpec } from '../../hosts/protocol.js';
import { run } from '../../netns/exec.js';
import { fileHash, kernelInitrdChecksum } from './checksum.js';
import { TemplateCache } from './templates.js';

describe('template cache', () => {
  let root = '';
  let src = '';
  let server: Server;
  let base = '';
  let requests: string[] = [];

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'sn-tmpl-'));
    src = join(root, 'src');
    await mkdir(join(src, 'dir'), { recursive: true });
    await writeFile(join(src, 'dir', 'vmlinuz'), 'a kernel');
    await writeFile(join(src, 'dir', 'initrd.img'), 'an initrd');
    await run(['tar', '-czf', join(src, 'ki.tar.gz'), '-C', join(src, 'dir'), 'vmlinuz', 'initrd.img']);
    await writeFile(join(src, 'disk.qcow2'), 'QFI\xfb a disk');
    server = createServer((req, res) => {
      requests.push(req.url!);
      const f = join(src, decodeURIComponent(new URL(req.url!, 'http://x').pathname));
      if (!existsSync(f) || f.endsWith('/')) {
        res.writeHead(404).end();
        return;
      }
      createReadStream(f).pipe(res);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.close();
    await rm(root, { recursive: true, force: true });
  });

  const spec = (id: number, url: string, extra: Partial<HostTemplateSpec> = {}): HostTemplateSpec => ({
    id,
    name: `t${id}`,
    url,
    format: 'kernel-initrd',
    checksum: null,
    ...extra,
  });

  it('fetches a kernel-initrd directory over file:// and http://, checked against its manifest checksum', async () => {
    const cache = new TemplateCache(join(root, 'c1'), () => {});
    const sum = await kernelInitrdChecksum(join(src, 'dir'));
    const a = await cache.get(spec(1, `file://${join(src, 'dir')}`, { checksum: sum }));
    assert.equal(a.format, 'kernel-initrd');
    assert.equal(await readFile(a.format === 'kernel-initrd' ? a.kernel : '', 'utf8'), 'a kernel');
    assert.equal(a.dir, join(root, 'c1', `1-sha256-${sum}`));
    requests = [];
    const b = await cache.get(spec(2, `${base}/dir`, { checksum: `{SHA-256}${sum.toUpperCase()}` }));
    assert.equal(await readFile(b.format === 'kernel-initrd' ? b.initrd : '', 'utf8'), 'an initrd');
    // and its optional settings file, which this one lacks (404: none)
    assert.deepEqual(requests.sort(), ['/dir/initrd.img', '/dir/template.json', '/dir/vmlinuz']);
    assert.equal(b.format === 'kernel-initrd' && (b.machine ?? b.cmdline), undefined);
    // cached: no second fetch, also when asked for concurrently
    requests = [];
    await Promise.all([1, 2, 3].map(() => cache.get(spec(2, `${base}/dir`, { checksum: sum }))));
    assert.deepEqual(requests, []);
  });

  it('fetches a tar of them (checksum of the tar) and a qcow2 image; one concurrent fetch per template', async () => {
    const cache = new TemplateCache(join(root, 'c2'), () => {});
    const tarSum = await fileHash(join(src, 'ki.tar.gz'), 'md5');
    requests = [];
    const [t1, t2] = await Promise.all([
      cache.get(spec(3, `${base}/ki.tar.gz`, { checksum: tarSum })),
      cache.get(spec(3, `${base}/ki.tar.gz`, { checksum: tarSum })),
    ]);
    assert.deepEqual(requests, ['/ki.tar.gz']);
    assert.deepEqual(t1, t2);
    assert.deepEqual((await readdir(t1!.dir)).sort(), ['.complete', 'initrd.img', 'vmlinuz']);
    const q = await cache.get(spec(4, `file://${join(src, 'disk.qcow2')}`, { format: 'qcow2' }));
    assert.equal(q.format, 'qcow2');
    assert.match(q.dir, /\/4-url-[0-9a-f]{16}$/);
    assert.equal(await readFile(q.format === 'qcow2' ? q.disk : '', 'utf8'), 'QFI\xfb a disk');
  });

  it("reads a kernel-initrd template's template.json (machine, its own kernel arguments) from a directory and a tar", async () => {
    const dir = join(src, 'mvm');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'vmlinuz'), 'a kernel');
    await writeFile(join(dir, 'initrd.img'), 'an initrd');
    await writeFile(
      join(dir, 'template.json'),
      JSON.stringify({ machine: 'microvm', cmdline: ' cryptomgr.notests ', packages: ['ignored'] }),
    );
    await run(['tar', '-cf', join(src, 'mvm.tar'), '-C', dir, 'vmlinuz', 'initrd.img', 'template.json']);
    const cache = new TemplateCache(join(root, 'c4'), () => {});
    // the checksum stays that of vmlinuz and initrd.img
    const sum = await kernelInitrdChecksum(dir);
    for (const [id, url] of [
      [20, `file://${dir}`],
      [21, `${base}/mvm`],
      [22, `${base}/mvm.tar`],
    ] as const) {
      const t = await cache.get(spec(id, url, id === 22 ? {} : { checksum: sum }));
      assert.equal(t.format, 'kernel-initrd');
      if (t.format !== 'kernel-initrd') continue;
      assert.equal(t.machine, 'microvm', url);
      assert.equal(t.cmdline, 'cryptomgr.notests', url);
    }
    // read again from the cache, as after an agent restart
    const again = await new TemplateCache(join(root, 'c4'), () => {}).get(
      spec(21, `${base}/mvm`, { checksum: sum }),
    );
    assert.equal(again.format === 'kernel-initrd' && again.machine, 'microvm');
    await writeFile(join(dir, 'template.json'), JSON.stringify({ machine: 'q35' }));
    await assert.rejects(
      cache.get(spec(23, `file://${dir}`)),
      /template\.json: machine "q35": only "microvm" or "pc"/,
    );
    await writeFile(join(dir, 'template.json'), JSON.stringify({ cmdline: 'a\ninit=/bin/sh' }));
    await assert.rejects(
      cache.get(spec(24, `file://${dir}`)),
      /not one line of printable ASCII kernel arguments/,
    );
    await writeFile(join(dir, 'template.json'), JSON.stringify({ machine: 'pc' }));
    const pc = await cache.get(spec(25, `file://${dir}`));
    assert.equal(pc.format === 'kernel-initrd' && pc.machine, undefined);
  });

  it('refuses a template whose checksum differs, a missing file and an unknown scheme, and caches nothing', async () => {
    const cache = new TemplateCache(join(root, 'c3'), () => {});
    await assert.rejects(
      cache.get(spec(5, `${base}/dir`, { checksum: 'f'.repeat(64) })),
      /sha256 is [0-9a-f]{64}, registered as f{64}/,
    );
    await assert.rejects(cache.get(spec(6, `${base}/nothing`)), /HTTP 404/);
    await assert.rejects(
      cache.get(spec(7, 'ftp://example.invalid/t')),
      /only file:\/\/, http:\/\/ and https:\/\//,
    );
    assert.deepEqual(await readdir(join(root, 'c3')), []);
  });
});
