/**
 * The scavenger's part for public IPs: associateIpAddress takes its address at request time and queues the job
 * in a second transaction, so a server dying in between leaves an Allocating address with no job to confirm
 * it; so does a job that failed and could not give its address back (the database connection lost under both).
 * Such an address — Allocating for longer than `olderThanMs` with no pending job acting on it — goes back to
 * Free. A minute: the gap it covers is one transaction (the address committed, then the job queued), never a
 * job's run time, since a queued job protects its address. Meant for a periodic worker (the GC's loop); safe on
 * several servers at once.
 */
import type { Store } from '../store/db.js';
import { transaction } from '../store/db.js';
import type { ExpressionBuilder } from 'kysely';
import { netDb } from '../networks/tables.js';
import type { NetDatabase } from '../networks/tables.js';
import { removeTagsOf } from '../tags/service.js';

export async function reclaimStaleAllocating(
  store: Store,
  olderThanMs = 60_000,
  now = Date.now(),
): Promise<number> {
  return transaction(
    store,
    async (tx) => {
      const stale = (eb: ExpressionBuilder<NetDatabase, 'ip_allocations'>) =>
        eb.and([
          eb('owner_kind', '=', 'publicip'),
          eb('state', '=', 'Allocating'),
          eb('updated', '<', now - olderThanMs),
          eb.not(
            eb.exists(
              eb
                .selectFrom('async_jobs')
                .select('async_jobs.id')
                .whereRef('async_jobs.instance_id', '=', 'ip_allocations.uuid')
                .where('async_jobs.status', '=', 0),
            ),
          ),
        ]);
      const db = netDb(tx);
      // Tags go with the row on every path that deletes a public IP (service.ts; associate.ts, abandonAllocating).
      await removeTagsOf(
        tx,
        'PublicIpAddress',
        db.selectFrom('ip_allocations').select('id').where(stale) as never,
      );
      const r = await db.deleteFrom('ip_allocations').where(stale).executeTakeFirst();
      return Number(r.numDeletedRows);
    },
    { doing: 'reclaiming public IPs left Allocating' },
  );
}
