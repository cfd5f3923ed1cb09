/** Pure helpers over members: address order (numeric, as the router's spec wants) and reported health. */

const key = (ip: string): number => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);

/** IPv4 dotted quads in numeric order (10.1.1.9 before 10.1.1.10). */
export const ipOrder = (a: string, b: string): number => key(a) - key(b);

export type ServiceState = 'UP' | 'DOWN' | 'Unknown';

/**
 * A member's health as the routers last reported it: their stored status (routers.health, written by the
 * reconciler from the agent's status) carries `lb: { [ruleUuid]: { [guestIp]: 'UP' | 'DOWN' } }`. UP if any
 * router (a redundant pair: the primary serves) saw it UP, DOWN if one saw it DOWN and none UP, else Unknown.
 */
export function memberState(healths: readonly unknown[], ruleUuid: string, guestIp: string): ServiceState {
  let seen: ServiceState = 'Unknown';
  for (const h of healths) {
    const lb = (h as { lb?: unknown } | null)?.lb;
    const rule = lb && typeof lb === 'object' ? (lb as Record<string, unknown>)[ruleUuid] : undefined;
    const v = rule && typeof rule === 'object' ? (rule as Record<string, unknown>)[guestIp] : undefined;
    if (v === 'UP') return 'UP';
    if (v === 'DOWN') seen = 'DOWN';
  }
  return seen;
}
