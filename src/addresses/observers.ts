/**
 * Who wants to hear that an address was handed out, refused or freed (the metrics of src/metrics). A listener
 * is called synchronously on the allocation path, so it must be cheap (a counter increment). Listeners are per
 * process: a server subscribes at start and unsubscribes at close, so in a process that runs several servers
 * (tests) each hears the allocations of all of them.
 */
export interface AddressEvent {
  /** The scope's kind: `pub`, `net`, `pod`, `portable`, ... */
  kind: string;
  zoneId: number | null | undefined;
}

export interface AddressObserver {
  allocated(e: AddressEvent): void;
  /** `reason` is the CloudStack error's name (InsufficientAddressCapacity, InvalidParameterValue, ...). */
  failed(e: AddressEvent, reason: string): void;
  released(e: AddressEvent): void;
}

const observers = new Set<AddressObserver>();

/** Returns the function that unsubscribes. */
export function observeAddresses(o: AddressObserver): () => void {
  observers.add(o);
  return () => observers.delete(o);
}

export const scopeKind = (scope: string): string => scope.slice(0, Math.max(scope.indexOf(':'), 0)) || scope;

export function notifyAddress(
  what: 'allocated' | 'released',
  scope: string,
  zoneId: number | null | undefined,
): void {
  if (observers.size === 0) return;
  const e = { kind: scopeKind(scope), zoneId };
  for (const o of observers) o[what](e);
}

export function notifyAddressFailure(scope: string, zoneId: number | null | undefined, reason: string): void {
  if (observers.size === 0) return;
  const e = { kind: scopeKind(scope), zoneId };
  for (const o of observers) o.failed(e, reason);
}
