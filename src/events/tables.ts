import type { Generated } from 'kysely';

export interface EventTables {
  events: {
    id: Generated<number>;
    uuid: string;
    type: string;
    level: string;
    state: string;
    description: string;
    /** Who did it. */
    user_id: number | null;
    username: string | null;
    /** Whose resource it concerns (the owner), denormalised so the event outlives the account. */
    account_id: number;
    account_name: string;
    domain_id: number;
    domain_path: string;
    resource_type: string | null;
    resource_id: string | null;
    resource_name: string | null;
    created: number;
  };
  usage_events: {
    id: Generated<number>;
    type: string;
    account_id: number;
    domain_id: number;
    zone_id: number | null;
    resource_id: number | null;
    resource_uuid: string | null;
    resource_name: string | null;
    resource_type: string | null;
    offering_id: number | null;
    size: number | null;
    created: number;
    processed: number;
  };
  /** Events waiting for the message broker (src/events/README.md "The outbox"); only written when a bus is on. */
  event_outbox: {
    id: Generated<number>;
    event_uuid: string;
    routing_key: string;
    /** The message body, JSON (CloudStack's event description map). */
    body: string;
    /** `<resource type>:<resource id>`, or '' for an event about no resource: one resource's events stay in order. */
    resource_key: string;
    /** The publisher holding the row, until claim_until (epoch ms); a dead publisher's claim expires. */
    claim_owner: string | null;
    claim_until: number | null;
    created: number;
  };
}
