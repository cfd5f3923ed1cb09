/**
 * What a command already read about an address row, kept beside the row so that rendering its answer does not
 * read it again (list.ts's ipResponses). Keyed by the row object: a row read again or changed is a new object and
 * is looked up afresh.
 */

/** The zone, public range and physical network an address's answer names (ids as in its row). */
export interface KnownPlaces {
  zone: { id: number; uuid: string; name: string };
  range?: {
    id: number;
    uuid: string;
    vlan_tag: string | null;
    physical_network_id: number | null;
    for_system_vms: number;
  };
  pnUuid?: string;
}

export const knownPlaces = new WeakMap<object, KnownPlaces>();

/**
 * An address this process's associateIpAddress request inserted Allocating, with its owner and its answer's places,
 * kept for the association job, which then need not read them back (on PostgreSQL and MariaDB a round trip per
 * job): the job runs in the process that queued it, a moment after the request committed. Keyed by the address's
 * id (its uuid), which a later allocation of the same address reuses: what is kept is only a guess, which the job's
 * UPDATE confirms by the row's id (never reused), state and source NAT flag, and falls back to the read when it
 * changes nothing (a request that rolled back, a job another server queued or took over). Bounded: a request that
 * failed after inserting leaves its entry, which the oldest-first bound drops. A job run in its request's own
 * transaction (completesInline) finds the address inserted Allocated already (`assignedIn`) and writes nothing.
 */
export interface HeldForJob<Row, Owner> {
  row: Row;
  owner: Owner;
  places: KnownPlaces;
  /**
   * The transaction that wrote it Allocated already (AssignPublicIp.assignNow): its job, run in that same
   * transaction, only answers. A guess left by a transaction that rolled back is not that transaction.
   */
  assignedIn?: WeakRef<object>;
}

const HELD_MAX = 4096;
const held = new Map<string, HeldForJob<unknown, unknown>>();

export function rememberHeld<Row, Owner>(uuid: string, h: HeldForJob<Row, Owner>): void {
  held.delete(uuid);
  held.set(uuid, h);
  if (held.size > HELD_MAX) held.delete(held.keys().next().value as string);
}

/** The address `uuid` as its request left it in this process, once (undefined when not, or taken already). */
export function takeHeld<Row, Owner>(uuid: string): HeldForJob<Row, Owner> | undefined {
  const h = held.get(uuid);
  if (h) held.delete(uuid);
  return h as HeldForJob<Row, Owner> | undefined;
}
