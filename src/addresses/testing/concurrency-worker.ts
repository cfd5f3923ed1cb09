/**
 * One OS process of the concurrency test (concurrency.test.ts): allocates from a shared pool until it is told
 * the pool is exhausted, freeing one of its own addresses now and then, and prints one JSON line with what it
 * saw. Run as `node --import tsx concurrency-worker.ts <json-config>`.
 */
import { openStore, transaction } from '../../store/db.js';
import { isCloudStackError } from '../../errors/catalogue.js';
import { firstHost, formatIp, lastHost, parseCidr, parseIp, RangeSet } from '../../ipam/index.js';
import type { Strategy } from '../../ipam/index.js';
import { allocateAddress, allocateAddressTx, releaseAddress } from '../address-service.js';
import type { AllocateRequest } from '../address-service.js';

export interface WorkerConfig {
  url: string;
  scope: string;
  cidr: string;
  strategy: Strategy;
  /** Allocate inside transaction(store, tx => allocateAddressTx(tx, ...)) instead of allocateAddress(store). */
  inTransaction: boolean;
  releaseProbability: number;
  worker: number;
}

export interface WorkerReport {
  worker: number;
  allocations: number;
  releases: number;
  lostRaces: number;
  held: string[];
  /** The error that ended the loop, as CloudStack would report it. */
  end: { kind: string; httpCode: number; csErrorCode: number; message: string } | { raw: string };
  /** Any error before the end (must stay empty). */
  others: string[];
}

async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2] ?? '{}') as WorkerConfig;
  const store = await openStore(cfg.url, { poolSize: 2 });
  const cidr = parseCidr(cfg.cidr);
  const req: AllocateRequest = {
    scope: cfg.scope,
    pool: RangeSet.of({ family: cidr.family, start: firstHost(cidr).value, end: lastHost(cidr).value }),
    gateway: firstHost(cidr),
    strategy: cfg.strategy,
    owner: { kind: 'test', id: cfg.worker },
    exhaustedMessage: `network ${cfg.scope} has no free address`,
  };
  // Start line: every process has loaded and connected before any allocates, so they really overlap.
  await store.db.selectFrom('ip_allocations').select('id').limit(1).execute();
  process.stdout.write('ready\n');
  await new Promise<void>((resolve) => process.stdin.once('data', () => resolve()));
  process.stdin.pause();
  const held: string[] = [];
  const report: WorkerReport = {
    worker: cfg.worker,
    allocations: 0,
    releases: 0,
    lostRaces: 0,
    held,
    end: { raw: '' },
    others: [],
  };
  try {
    for (;;) {
      if (held.length > 0 && Math.random() < cfg.releaseProbability) {
        const [ip] = held.splice(Math.floor(Math.random() * held.length), 1) as [string];
        const freed = await releaseAddress(store.db, { scope: cfg.scope, address: parseIp(ip) });
        if (!freed) report.others.push(`release of ${ip} found nothing to free`);
        report.releases++;
      }
      const a = cfg.inTransaction
        ? await transaction(store, (tx) => allocateAddressTx(tx, req))
        : await allocateAddress(store, req);
      held.push(formatIp(a.address));
      report.lostRaces += a.lostRaces;
      report.allocations++;
    }
  } catch (e) {
    report.end = isCloudStackError(e)
      ? { kind: e.kind, httpCode: e.httpCode, csErrorCode: e.csErrorCode, message: e.message }
      : { raw: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
  } finally {
    await store.close();
  }
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

await main();
