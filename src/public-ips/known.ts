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
