/**
 * The address life cycle (DESIGN.md guarantee 4). `Free` is not stored: an address is Free exactly when it has
 * no ip_allocations row, so there is one predicate and nothing to drift (CloudStack's `state` and `allocated`
 * columns disagree in the wild, reference §6: #7109, #11252).
 */
import type { AllocationState } from './tables.js';

export type AddressState = AllocationState | 'Free';

export const ADDRESS_STATES: readonly AddressState[] = [
  'Free',
  'Allocating',
  'Allocated',
  'Releasing',
  'Reserved',
];

const allowed: Record<AddressState, readonly AddressState[]> = {
  // Leaving Free means inserting a row: allocate or reserve, never markState.
  Free: ['Allocating', 'Allocated', 'Reserved'],
  // Allocating → Releasing is CloudStack's failed-association path (associateIPToGuestNetwork, releaseOnFailure).
  Allocating: ['Allocated', 'Releasing', 'Free'],
  Allocated: ['Releasing', 'Free'],
  // Releasing → Allocated: CloudStack puts a Releasing source-NAT address back, the VR cannot drop SNAT.
  Releasing: ['Free', 'Allocated'],
  // A reservation (reserveIpAddress) is taken into use by its owner, or given up.
  Reserved: ['Allocating', 'Allocated', 'Free'],
};

export function canTransition(from: AddressState, to: AddressState): boolean {
  return allowed[from].includes(to);
}

/** The stored states a row may be in for an update to `to` to be allowed. */
export function predecessorsOf(to: AddressState): AllocationState[] {
  return (Object.keys(allowed) as AddressState[]).filter(
    (from): from is AllocationState => from !== 'Free' && allowed[from].includes(to),
  );
}

export function isAddressState(s: string): s is AddressState {
  return (ADDRESS_STATES as readonly string[]).includes(s);
}
