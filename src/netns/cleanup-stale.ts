import { readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deleteLink, deleteNamespace, killNamespacePids, listLinks, listNamespaces } from './links.js';
import { NAME_PREFIX } from './names.js';

/**
 * Removes every namespace, host link and /etc/netns dir whose name starts with `sn-` (what this toolkit
 * creates), e.g. after a test process was killed before its cleanup ran. Only for a machine where no
 * test is running: it does not know which run owns what.
 *   node --import tsx src/netns/cleanup-stale.ts
 */
export async function cleanupStale(prefix = NAME_PREFIX): Promise<string[]> {
  const removed: string[] = [];
  for (const ns of (await listNamespaces()).filter((n) => n.startsWith(prefix))) {
    await killNamespacePids(ns);
    await deleteNamespace(ns);
    removed.push(`netns ${ns}`);
  }
  for (const link of (await listLinks()).filter((n) => n.startsWith(prefix))) {
    await deleteLink(link);
    removed.push(`link ${link}`);
  }
  for (const dir of ['/etc/netns', join(tmpdir(), 'stacknet-netns')]) {
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const n of names.filter((x) => x.startsWith(prefix))) {
      await rm(join(dir, n), { recursive: true, force: true });
      removed.push(`dir ${join(dir, n)}`);
    }
  }
  return removed;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const removed = await cleanupStale();
  console.log(removed.length ? removed.join('\n') : 'nothing to remove');
}
