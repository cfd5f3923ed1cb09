/**
 * The outbox's publisher: every server with a bus runs one. A pass claims a batch of outbox rows (outbox.ts),
 * publishes them in order on a confirm channel, waits for the broker's confirms and deletes what was confirmed.
 * At least once: a server that dies between publishing and deleting leaves its rows to expire and be published
 * again by whoever claims them next, so a consumer may see an event twice (the message id is the event's uuid).
 *
 * A broker that is away costs the API nothing: recordEvent only writes rows, and the publisher gives its batch
 * back, drops the connection and tries again with a growing pause (from 200 ms up to `maxBackoffMs`); the outbox
 * grows meanwhile and drains when the broker returns.
 */
import { randomUUID } from 'node:crypto';
import amqp from 'amqplib';
import type { ChannelModel, ConfirmChannel } from 'amqplib';
import type { Store } from '../store/db.js';
import { claimOutbox, deletePublished, releaseOutbox } from './outbox.js';
import type { OutboxRow } from './outbox.js';

/** CloudStack's default exchange name for its event bus. */
export const DEFAULT_EXCHANGE = 'cloudstack-events';

export interface EventPublisherOptions {
  store: Store;
  /** amqp://user:password@host:port/vhost */
  url: string;
  exchange?: string;
  /** This publisher's name in claims (default: a random uuid per process). */
  owner?: string;
  pollMs?: number;
  batch?: number;
  /** How long a claim holds (ms): a dead server's rows are taken over after this. */
  leaseMs?: number;
  /** The longest wait for the broker's confirms before the batch is given back (ms). */
  confirmTimeoutMs?: number;
  maxBackoffMs?: number;
  log?: (msg: string) => void;
}

export class EventPublisher {
  readonly owner: string;
  readonly exchange: string;
  private conn: ChannelModel | null = null;
  private ch: ConfirmChannel | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  private backoffMs = 0;
  private retryAt = 0;
  /** Consecutive failures, for logging once per outage rather than once per attempt. */
  private failures = 0;
  published = 0;

  constructor(private readonly o: EventPublisherOptions) {
    this.owner = o.owner ?? randomUUID();
    this.exchange = o.exchange ?? DEFAULT_EXCHANGE;
  }

  start(): void {
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running?.catch(() => undefined);
    await this.disconnect();
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.pass()
        .then((more) => this.schedule(more ? 0 : (this.o.pollMs ?? 100)))
        .catch(() => this.schedule(this.o.pollMs ?? 100))
        .finally(() => (this.running = null));
    }, ms);
    this.timer.unref();
  }

  /** One batch. True when there may be more waiting right away. */
  async pass(): Promise<boolean> {
    if (Date.now() < this.retryAt) return false;
    let ch: ConfirmChannel;
    try {
      ch = await this.channel();
    } catch (e) {
      this.failed(`connecting to the message broker: ${(e as Error).message}`);
      return false;
    }
    const batch = this.o.batch ?? 200;
    let rows: OutboxRow[];
    try {
      rows = await claimOutbox(this.o.store, this.owner, this.o.leaseMs ?? 30_000, batch);
    } catch (e) {
      this.o.log?.(`events: claiming the outbox: ${(e as Error).message}`);
      return false;
    }
    if (rows.length === 0) return false;
    try {
      for (const r of rows) {
        ch.publish(this.exchange, r.routingKey, Buffer.from(r.body), {
          persistent: true,
          contentType: 'application/json',
          messageId: r.eventUuid,
          timestamp: Math.floor(r.created / 1000),
        });
      }
      await withTimeout(ch.waitForConfirms(), this.o.confirmTimeoutMs ?? 10_000);
    } catch (e) {
      await releaseOutbox(
        this.o.store,
        this.owner,
        rows.map((r) => r.id),
      ).catch(() => undefined);
      await this.disconnect();
      this.failed(`publishing ${rows.length} events: ${(e as Error).message}`);
      return false;
    }
    await deletePublished(
      this.o.store,
      this.owner,
      rows.map((r) => r.id),
    );
    this.published += rows.length;
    // A full batch: more is waiting, the next pass comes at once. Otherwise wait a poll interval, so a trickle of
    // events goes out in batches rather than a claim and a delete (two commits) for each one.
    return rows.length === batch;
  }

  private failed(msg: string): void {
    this.backoffMs = Math.min(this.o.maxBackoffMs ?? 10_000, this.backoffMs ? this.backoffMs * 2 : 200);
    this.retryAt = Date.now() + this.backoffMs;
    if (this.failures++ === 0) this.o.log?.(`events: ${msg}; the outbox keeps them, retrying`);
  }

  private async channel(): Promise<ConfirmChannel> {
    if (this.ch) return this.ch;
    // A broker host that drops packets would otherwise hold the connect for the OS's TCP timeout.
    const conn = await amqp.connect(this.o.url, { timeout: 5_000 });
    // A broker going away is an 'error' then a 'close'; unheard, the error would end the process.
    conn.on('error', () => undefined);
    conn.on('close', () => {
      if (this.conn === conn) {
        this.conn = null;
        this.ch = null;
      }
    });
    try {
      const ch = await conn.createConfirmChannel();
      ch.on('error', () => undefined);
      ch.on('close', () => {
        if (this.ch === ch) this.ch = null;
      });
      // As CloudStack declares it: a durable topic exchange.
      await ch.assertExchange(this.exchange, 'topic', { durable: true });
      this.conn = conn;
      this.ch = ch;
    } catch (e) {
      await conn.close().catch(() => undefined);
      throw e;
    }
    if (this.failures > 0) this.o.log?.('events: the message broker is back');
    this.failures = 0;
    this.backoffMs = 0;
    return this.ch;
  }

  private async disconnect(): Promise<void> {
    const conn = this.conn;
    this.conn = null;
    this.ch = null;
    await conn?.close().catch(() => undefined);
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      t = setTimeout(() => reject(new Error(`no confirm from the broker within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(t));
}
