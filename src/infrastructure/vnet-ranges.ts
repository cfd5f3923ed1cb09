/**
 * Pure parsing and checking of a physical network's VLAN/VNI ranges (`createPhysicalNetwork vlan=100-199,300-310`).
 * No I/O: the service loads the other physical networks' ranges and asks here whether they collide.
 */
import { CloudStackError, invalidParameter } from '../errors/catalogue.js';

export type IsolationMethod = 'VLAN' | 'VXLAN';

/** An inclusive span of VLAN ids or VXLAN VNIs. */
export interface VnetSpan {
  start: number;
  end: number;
}

/** 802.1Q ids 0 and 4095 are reserved; VXLAN VNIs are 24 bits (CloudStack allows 1..2^24-1 for VXLAN). */
export function vnetLimits(method: IsolationMethod): VnetSpan {
  return method === 'VXLAN' ? { start: 1, end: 16_777_215 } : { start: 1, end: 4094 };
}

const SPAN = /^(\d{1,8})(?:-(\d{1,8}))?$/;

/**
 * Parses `100-199,300-310` (a single `250` means 250-250). Spans come back sorted; spans that overlap each
 * other are refused rather than merged, so a typo like `100-300,200-250` is pointed out instead of silently
 * widening the range.
 */
export function parseVnetRanges(text: string, method: IsolationMethod, param = 'vlan'): VnetSpan[] {
  if (typeof text !== 'string' || text.trim() === '') {
    throw invalidParameter(
      param,
      text,
      'give VLAN ranges as start-end, comma separated, e.g. 100-199,300-310',
    );
  }
  const limits = vnetLimits(method);
  const spans: VnetSpan[] = [];
  for (const raw of text.split(',')) {
    const part = raw.trim();
    const m = SPAN.exec(part);
    if (!m) {
      throw invalidParameter(
        param,
        text,
        `'${part}' is not a range: give start-end with whole numbers, e.g. 100-199,300-310`,
      );
    }
    const start = Number(m[1]);
    const end = m[2] === undefined ? start : Number(m[2]);
    if (start > end) throw invalidParameter(param, text, `'${part}' starts after it ends`);
    if (start < limits.start || end > limits.end) {
      throw invalidParameter(
        param,
        text,
        `'${part}' is outside ${limits.start}-${limits.end}, the ${method === 'VXLAN' ? 'VXLAN VNI' : 'VLAN id'} range`,
      );
    }
    spans.push({ start, end });
  }
  spans.sort((a, b) => a.start - b.start);
  for (let i = 1; i < spans.length; i++) {
    const prev = spans[i - 1]!;
    const cur = spans[i]!;
    if (cur.start <= prev.end) {
      throw invalidParameter(param, text, `ranges ${formatSpan(prev)} and ${formatSpan(cur)} overlap`);
    }
  }
  return spans;
}

export const formatSpan = (s: VnetSpan): string => (s.start === s.end ? `${s.start}` : `${s.start}-${s.end}`);

export const formatVnetRanges = (spans: readonly VnetSpan[]): string => spans.map(formatSpan).join(',');

export const spanSize = (s: VnetSpan): number => s.end - s.start + 1;

export const totalVnets = (spans: readonly VnetSpan[]): number => spans.reduce((n, s) => n + spanSize(s), 0);

/** The first pair of overlapping spans between `a` and `b`, if any. */
export function firstOverlap(
  a: readonly VnetSpan[],
  b: readonly VnetSpan[],
): { mine: VnetSpan; theirs: VnetSpan } | undefined {
  for (const mine of a) {
    for (const theirs of b) {
      if (mine.start <= theirs.end && theirs.start <= mine.end) return { mine, theirs };
    }
  }
  return undefined;
}

/**
 * Refuses ranges that collide with another physical network of the same zone: CloudStack's
 * PhysicalNetwork vnet ranges must be disjoint within a zone, or two networks could be given one VLAN.
 */
export function checkNoOverlapWithOthers(
  spans: readonly VnetSpan[],
  others: readonly { name: string; spans: readonly VnetSpan[] }[],
  param = 'vlan',
): void {
  for (const other of others) {
    const hit = firstOverlap(spans, other.spans);
    if (hit) {
      throw invalidParameter(
        param,
        formatVnetRanges(spans),
        `range ${formatSpan(hit.mine)} overlaps ${formatSpan(hit.theirs)} of physical network '${other.name}' in the same zone`,
      );
    }
  }
}

/** Is `vnet` inside one of `spans`? */
export const vnetInSpans = (vnet: number, spans: readonly VnetSpan[]): boolean =>
  spans.some((s) => vnet >= s.start && vnet <= s.end);

/**
 * Shrinking a physical network's ranges must not strand a VLAN a network is using (CloudStack refuses
 * updatePhysicalNetwork in that case too).
 */
export function checkShrinkKeepsUsed(
  newSpans: readonly VnetSpan[],
  used: readonly { vnet: number; networkName: string }[],
  param = 'vlan',
): void {
  const stranded = used.find((u) => !vnetInSpans(u.vnet, newSpans));
  if (stranded) {
    throw new CloudStackError(
      'InvalidParameterValue',
      `Invalid value for parameter ${param}: '${formatVnetRanges(newSpans)}': VLAN ${stranded.vnet} is in use by network '${stranded.networkName}' and would fall outside the new ranges`,
    );
  }
}

/** A `vlan://100`, `vxlan://5000`, `100` or `untagged` tag as CloudStack writes it on ranges and networks. */
export function parseVlanTag(text: string, param = 'vlan'): number | 'untagged' {
  const t = text.trim().toLowerCase();
  if (t === 'untagged' || t === 'vlan://untagged') return 'untagged';
  const m = /^(?:vlan:\/\/|vxlan:\/\/)?(\d{1,8})$/.exec(t);
  if (!m) throw invalidParameter(param, text, "give a VLAN id such as 100 (or vlan://100), or 'untagged'");
  const n = Number(m[1]);
  if (n < 1 || n > 16_777_215)
    throw invalidParameter(param, text, 'a VLAN id is from 1 to 4094 (VXLAN VNIs to 16777215)');
  return n;
}

/** `spans` minus every span of `cut`, sorted (the VLANs of a physical network nobody has dedicated). */
export function subtractSpans(spans: readonly VnetSpan[], cut: readonly VnetSpan[]): VnetSpan[] {
  let out = [...spans].sort((a, b) => a.start - b.start);
  for (const c of cut) {
    const next: VnetSpan[] = [];
    for (const s of out) {
      if (c.end < s.start || c.start > s.end) next.push(s);
      else {
        if (s.start < c.start) next.push({ start: s.start, end: c.start - 1 });
        if (s.end > c.end) next.push({ start: c.end + 1, end: s.end });
      }
    }
    out = next;
  }
  return out;
}

/** The part of `spans` inside `within`, sorted. */
export const intersectSpans = (spans: readonly VnetSpan[], within: readonly VnetSpan[]): VnetSpan[] =>
  subtractSpans(spans, subtractSpans([vnetLimits('VXLAN')], within));

/** `100-199` as CloudStack's dedicateGuestVlanRange takes it: exactly start-end, start not after end. */
export function parseDedicatedSpan(text: string, param = 'vlanrange'): VnetSpan {
  const m = /^\s*(\d{1,8})\s*-\s*(\d{1,8})\s*$/.exec(text);
  if (!m) throw invalidParameter(param, text, "give the VLAN range as 'startvlan-endvlan', e.g. 100-110");
  const span = { start: Number(m[1]), end: Number(m[2]) };
  if (span.start > span.end) throw invalidParameter(param, text, 'the range starts after it ends');
  return span;
}
