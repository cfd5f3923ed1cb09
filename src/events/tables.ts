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
}
