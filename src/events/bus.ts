/**
 * Turning the bus on for a server (buildServer): with an AMQP URL, recordEvent starts writing the outbox and a
 * publisher drains it; without one, nothing at all.
 */
import type { Store } from '../store/db.js';
import { enableOutbox } from './outbox.js';
import { EventPublisher } from './publisher.js';

export interface EventBus {
  publisher: EventPublisher;
  stop(): Promise<void>;
}

export function startEventBus(
  store: Store,
  o: { url?: string | undefined; exchange?: string | undefined; log?: ((m: string) => void) | undefined },
): EventBus | undefined {
  if (!o.url) return undefined;
  const disable = enableOutbox();
  const publisher = new EventPublisher({
    store,
    url: o.url,
    exchange: o.exchange || undefined,
    log: o.log,
  });
  publisher.start();
  return {
    publisher,
    async stop() {
      disable();
      await publisher.stop();
    },
  };
}
