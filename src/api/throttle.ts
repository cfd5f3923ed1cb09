/**
 * CloudStack's API rate limit (ApiRateLimitServiceImpl): when `api.throttling.enabled`, an account may make
 * `api.throttling.max` calls per `api.throttling.interval` seconds; more answer 429. Like CloudStack, counts are
 * per management server (a cache, not shared state), root admins are not limited, and the settings are read at
 * start.
 */
export interface ThrottleSettings {
  intervalSeconds: number;
  max: number;
  cacheSize: number;
}

export class ApiThrottle {
  private readonly windows = new Map<number, { start: number; count: number }>();

  constructor(private readonly s: ThrottleSettings) {}

  /** Counts one call; false when the account is over its limit for the current window. */
  allow(accountId: number, now: number): boolean {
    const w = this.windows.get(accountId);
    if (!w || now - w.start >= this.s.intervalSeconds * 1000) {
      if (!w && this.windows.size >= this.s.cacheSize) {
        // Full: drop the oldest entry (Map keeps insertion order).
        this.windows.delete(this.windows.keys().next().value!);
      }
      this.windows.set(accountId, { start: now, count: 1 });
      return true;
    }
    w.count++;
    return w.count <= this.s.max;
  }
}
