/**
 * The CPU time the database server spends for a bench's own connections: PostgreSQL's backend processes of the
 * bench's database (pg_stat_activity), MariaDB's connection threads on it (information_schema.PROCESSLIST's TID),
 * read from /proc (Linux) at the start and the end of a window. Other sessions' work on the same server (other
 * databases, other benches) is not counted; the server's shared background work (PostgreSQL's WAL writer,
 * checkpointer and autovacuum, InnoDB's background threads) is not either.
 */
import { readdirSync, readFileSync } from 'node:fs';

/**
 * utime + stime of a process or thread id, in ms (clock ticks of 10 ms); 0 when it is gone. `/proc/<id>/task/<id>`:
 * for a thread that is not its process's first, `/proc/<id>/stat` is the whole process's.
 */
function cpuMsOf(id: number): number {
  try {
    const fields = readFileSync(`/proc/${id}/task/${id}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return 0;
  }
}

/**
 * The OS process (PostgreSQL) or thread (MariaDB) ids serving the database of `dbUrl`, but the asker's own; on
 * MariaDB also the threads serving any other connection then (`others`).
 */
async function serverIdsOf(dbUrl: string): Promise<{ ids: number[]; others: Set<number> }> {
  if (dbUrl.startsWith('postgres')) {
    const pg = (await import('pg')).default;
    const c = new pg.Client({ connectionString: dbUrl });
    await c.connect();
    try {
      const r = await c.query<{ pid: number }>(
        'select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()',
      );
      return { ids: r.rows.map((x) => Number(x.pid)), others: new Set() };
    } finally {
      await c.end();
    }
  }
  if (dbUrl.startsWith('mysql') || dbUrl.startsWith('mariadb')) {
    const mysql = await import('mysql2/promise');
    const c = await mysql.createConnection(dbUrl.replace(/^mariadb:/, 'mysql:'));
    try {
      const [rows] = await c.query(
        'select tid, db <=> database() as ours from information_schema.processlist where id <> connection_id()',
      );
      const all = rows as { tid: number; ours: number }[];
      return {
        ids: all.filter((x) => Number(x.ours) === 1).map((x) => Number(x.tid)),
        others: new Set(all.filter((x) => Number(x.ours) !== 1).map((x) => Number(x.tid))),
      };
    } finally {
      await c.end();
    }
  }
  return { ids: [], others: new Set() };
}

/** The threads of the process that thread `id` belongs to. */
function threadsOf(id: number): number[] {
  try {
    return readdirSync(`/proc/${id}/task`).map(Number);
  } catch {
    return [id];
  }
}

export interface DbCpuWindow {
  /** CPU ms the database's server spent for the bench's database since `dbCpuWindow` (NaN: not measurable). */
  stop(): Promise<number>;
}

/** Starts a window; SQLite (in the server's own process) and other hosts' databases are not measured (NaN). */
export async function dbCpuWindow(dbUrl: string): Promise<DbCpuWindow> {
  const local = /@(127\.0\.0\.1|localhost)[:/]/.test(dbUrl);
  if (!dbUrl || !local) return { stop: async () => NaN };
  const { ids, others } = await serverIdsOf(dbUrl);
  // MariaDB's threads serve one connection after another (its thread cache): every thread of the server is
  // read at the start, so that a thread that joins the database's connections later counts from then. One that
  // served another database's connection at the start is left out: what it did for that one cannot be told
  // apart (other sessions' benches and tests share the server).
  const anyThread = ids[0] ?? [...others][0];
  const all = anyThread !== undefined && !dbUrl.startsWith('postgres') ? threadsOf(anyThread) : ids;
  const start = new Map(all.map((id) => [id, cpuMsOf(id)]));
  const ours = new Set(ids);
  return {
    async stop() {
      // Ids gone since the start (a closed connection) lose their share; new processes count from zero.
      let ms = 0;
      for (const id of (await serverIdsOf(dbUrl)).ids)
        if (ours.has(id) || !others.has(id)) ms += cpuMsOf(id) - (start.get(id) ?? 0);
      return ms;
    },
  };
}
