/**
 * The router's public side in nftables (issue 13): NAT and what is forwarded. A service of its own, next to the
 * guest-side input firewall (appliers/nftables), because it reads other sections (public, rules, vpc), is loaded
 * whenever the router has a public side or is a VPC tier (NAT is not optional, whatever `firewall.enabled` says),
 * and fails with its own reasons (NatRejected/NatFailed). Two tables, each declared, deleted and re-declared in
 * the same file so that one `nft -f` replaces both atomically and leaves every other table alone:
 *
 * - `ip stacknet_nat`: prerouting DNAT (port forwards through a map keyed by public IP . protocol . port range,
 *   static NAT through an address map), postrouting SNAT (a static-NAT VM leaves with its public address, the
 *   guest CIDR — on a VPC edge the VPC CIDR — with the source-NAT address, both only out of public interfaces).
 * - `inet stacknet_public`: the ingress firewall, egress rules, VPC ACLs and the router's input on its public
 *   interfaces. Firewall rules, egress rules and VPC forward sources are set elements (concatenations with
 *   `flags interval` for port ranges and CIDRs), so 10,000 rules are 10,000 elements looked up in one rule, not
 *   10,000 rules walked in order.
 *
 * The ingress firewall is decided on the ORIGINAL destination (public IP and port). nft 1.0.6 cannot put
 * `ct original proto-dst` in a concatenation ("variable sized data types"), so a filter chain at prerouting, just
 * before DNAT, looks the packet up while it still carries the public address and port, and marks the connection
 * (`ct mark` bit `allowedMark`); forward accepts a DNATed connection only with that mark. Same semantics, and the
 * mark travels with the connection.
 *
 * nftables refuses overlapping elements in a concatenated interval set, and two firewall rules may well overlap
 * (the same port from 0.0.0.0/0 and from 10.0.0.0/8): elements are spread over as many sets ("layers") as
 * overlaps need, each looked up by its own rule. Normally there is one layer. Pure.
 */
import type { DesiredState, RuleSpec } from '../../desired-state.js';
import { formatIpv4, parseIpv4, parseIpv4Cidr } from '../../render/ip.js';
import type { RenderContext, Renderer } from '../applier.js';
import { lbListenPort } from '../haproxy/render.js';

export const natTableName = 'stacknet_nat';
export const publicTableName = 'stacknet_public';
/** The connection-mark bit of a connection the ingress firewall (or, in a VPC, a forward's sources) let in. */
export const allowedMark = '0x00100000';

/** Match fields every filtering rule shares (RuleBase). */
type Matching = Extract<RuleSpec, { kind: 'firewall' | 'egress' | 'acl' }>;

/** One dimension of a set element: its text and the numeric interval it covers. */
type Dim = { text: string; lo: number; hi: number };

const cidrDim = (cidr: string): Dim => {
  const c = parseIpv4Cidr(cidr);
  const hi = (c.network + (2 ** (32 - c.prefix) - 1)) >>> 0;
  const net = formatIpv4(c.network);
  return { text: c.prefix === 32 ? net : `${net}/${c.prefix}`, lo: c.network, hi };
};
const ipDim = (ip: string): Dim => ({ text: ip, lo: parseIpv4(ip), hi: parseIpv4(ip) });
const rangeDim = (lo: number, hi: number): Dim => ({ text: lo === hi ? `${lo}` : `${lo}-${hi}`, lo, hi });
const protoNumber: Record<string, number> = { icmp: 1, tcp: 6, udp: 17 };
const protoDim = (p: string): Dim => ({
  text: p,
  lo: protoNumber[p] ?? Number(p),
  hi: protoNumber[p] ?? Number(p),
});

/** What a rule's protocol matches: transport ports, icmp type/code, or the IP protocol alone. */
type ProtoMatch = { family: 'l4' | 'icmp' | 'proto'; dims: Dim[] };

function protoMatch(r: Matching): ProtoMatch {
  if (r.protocol === 'tcp' || r.protocol === 'udp')
    return {
      family: 'l4',
      dims: [protoDim(r.protocol), r.ports ? rangeDim(r.ports.start, r.ports.end) : rangeDim(0, 65535)],
    };
  if (r.protocol === 'icmp') {
    const one = (v: number | undefined) => (v === undefined || v < 0 ? rangeDim(0, 255) : rangeDim(v, v));
    return { family: 'icmp', dims: [one(r.icmpType), one(r.icmpCode)] };
  }
  return { family: 'proto', dims: [r.protocol === 'all' ? rangeDim(0, 255) : protoDim(r.protocol)] };
}

/** The nft types and the packet expressions of each protocol family, around the caller's own dimensions. */
const familyTypes = {
  l4: {
    types: ['inet_proto', 'inet_service'],
    exprs: ['meta l4proto', 'th dport'],
    guard: 'meta l4proto { tcp, udp } ',
  },
  icmp: { types: ['icmp_type', 'icmp_code'], exprs: ['icmp type', 'icmp code'], guard: '' },
  proto: { types: ['inet_proto'], exprs: ['meta l4proto'], guard: '' },
} as const;

const overlaps = (a: Dim[], b: Dim[]) => a.every((d, i) => d.lo <= b[i]!.hi && b[i]!.lo <= d.hi);

/**
 * Elements of one logical set, spread over layers so that no two elements of a layer overlap (nft refuses that
 * in a concatenated interval set). `group` is a dimension compared exactly first (the public IP), which keeps the
 * overlap search to the elements sharing it.
 */
export function layered(elements: Dim[][], groupDim: number | null): string[][] {
  const seen = new Set<string>();
  const layers: string[][] = [[]];
  const byGroup = new Map<string, Dim[][][]>();
  for (const e of elements) {
    const text = e.map((d) => d.text).join(' . ');
    if (seen.has(text)) continue;
    seen.add(text);
    const key = groupDim === null ? '' : e[groupDim]!.text;
    const perLayer = byGroup.get(key) ?? [];
    byGroup.set(key, perLayer);
    let i = 0;
    while (perLayer[i]?.some((o) => overlaps(o, e))) i++;
    (perLayer[i] ??= []).push(e);
    (layers[i] ??= []).push(text);
  }
  return layers;
}

interface SetDecl {
  name: string;
  types: string[];
  elements: string[];
}

const setText = (s: SetDecl): string[] => [
  `  set ${s.name} {`,
  `    type ${s.types.join(' . ')}`,
  '    flags interval',
  ...elementBlock(s.elements),
  '  }',
];

/** One element per line, so that the applier can tell a change of elements from a change of everything else. */
function elementBlock(elements: string[]): string[] {
  if (!elements.length) return [];
  return [
    '    elements = {',
    ...elements.map((e, i) => `      ${e}${i < elements.length - 1 ? ',' : ''}`),
    '    }',
  ];
}

/**
 * A logical set per protocol family, matched by `exprs` around the family's own expressions, and the rules that
 * look a packet up in each of its layers. `before`/`after`: the dimensions ahead of and behind the protocol.
 */
class MatchSets {
  readonly decls: SetDecl[] = [];
  private readonly elements: Record<ProtoMatch['family'], Dim[][]> = { l4: [], icmp: [], proto: [] };

  constructor(
    readonly name: string,
    readonly before: { type: string; expr: string }[],
    readonly after: { type: string; expr: string }[],
    readonly groupDim: number | null,
  ) {}

  add(r: Matching, before: Dim[], after: Dim[]): void {
    const m = protoMatch(r);
    this.elements[m.family].push([...before, ...m.dims, ...after]);
  }

  /** Every element as it would be in each family's first set (no layering). */
  firstLayer(): { set: string; text: string }[] {
    return (['l4', 'icmp', 'proto'] as const).flatMap((family) =>
      this.elements[family].map((e) => ({
        set: `${this.name}_${family}`,
        text: e.map((d) => d.text).join(' . '),
      })),
    );
  }

  /** One rule per family and layer: `<prefix> <lookup> <verdict>`. */
  rules(prefix: string, verdict: string): string[] {
    const out: string[] = [];
    for (const family of ['l4', 'icmp', 'proto'] as const) {
      const f = familyTypes[family];
      const types = [...this.before.map((d) => d.type), ...f.types, ...this.after.map((d) => d.type)];
      const exprs = [...this.before.map((d) => d.expr), ...f.exprs, ...this.after.map((d) => d.expr)];
      layered(this.elements[family], this.groupDim).forEach((elements, i) => {
        const name = `${this.name}_${family}${i ? `_${i}` : ''}`;
        this.decls.push({ name, types, elements });
        out.push(`${prefix}${f.guard}${exprs.join(' . ')} @${name} ${verdict}`);
      });
    }
    return out;
  }
}

const quoteSet = (names: string[]) => `{ ${names.map((n) => JSON.stringify(n)).join(', ')} }`;
const sortBy = <T>(xs: T[], key: (x: T) => string) => [...xs].sort((a, b) => (key(a) < key(b) ? -1 : 1));

/** A port forward's entries in `pf_dnat`: its range onto one port, or port by port onto a range as long. */
function forwardElements(f: Extract<RuleSpec, { kind: 'portForward' }>): string[] {
  const { publicPorts: p, privatePorts: q } = f;
  if (q.start === q.end || p.start === p.end)
    return [`${f.publicIp} . ${f.protocol} . ${rangeDim(p.start, p.end).text} : ${f.guestIp} . ${q.start}`];
  // nat cannot add an offset to a port: a range onto a range maps each port.
  const out: string[] = [];
  for (let i = 0; i <= p.end - p.start; i++)
    out.push(`${f.publicIp} . ${f.protocol} . ${p.start + i} : ${f.guestIp} . ${q.start + i}`);
  return out;
}

type LbPorts = Partial<Pick<RenderContext, 'metadataPort' | 'passwordPort'>>;

/** A load balancer rule haproxy serves on another local port (lbListenPort): its public port is DNATed to it. */
function lbElements(r: RuleSpec, ports: LbPorts): string[] {
  if (r.kind !== 'loadBalancer') return [];
  const local = lbListenPort(r.publicPort, ports);
  return local === r.publicPort ? [] : [`${r.publicIp} . tcp . ${r.publicPort} : ${r.publicIp} . ${local}`];
}

function renderNat(state: DesiredState, pub: string | null, rules: RuleSpec[], ports: LbPorts): string[] {
  const pf = rules.flatMap((r) => (r.kind === 'portForward' ? forwardElements(r) : lbElements(r, ports)));
  const statics = state.public?.staticNats ?? [];
  const map = (name: string, type: string, elements: string[], interval: boolean) => [
    `  map ${name} {`,
    `    type ${type}`,
    ...(interval ? ['    flags interval'] : []),
    ...elementBlock(elements),
    '  }',
  ];
  const sourceNat = state.public?.sourceNatIp;
  const natted = state.vpc ? state.vpc.cidr : state.network.cidr;
  const pre = pub
    ? [
        `iifname ${pub} meta l4proto { tcp, udp } dnat ip to ip daddr . meta l4proto . th dport map @pf_dnat`,
        `iifname ${pub} dnat ip to ip daddr map @static_dnat`,
      ]
    : [];
  const post = pub
    ? [
        `oifname ${pub} snat ip to ip saddr map @static_snat`,
        ...(sourceNat ? [`oifname ${pub} ip saddr ${cidrDim(natted).text} snat ip to ${sourceNat}`] : []),
      ]
    : [];
  return [
    `table ip ${natTableName}`,
    `delete table ip ${natTableName}`,
    `table ip ${natTableName} {`,
    ...map('pf_dnat', 'ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service', pf, true),
    ...map(
      'static_dnat',
      'ipv4_addr : ipv4_addr',
      statics.map((s) => `${s.publicIp} : ${s.guestIp}`),
      false,
    ),
    ...map(
      'static_snat',
      'ipv4_addr : ipv4_addr',
      sortBy(statics, (s) => s.guestIp).map((s) => `${s.guestIp} : ${s.publicIp}`),
      false,
    ),
    '  chain prerouting {',
    '    type nat hook prerouting priority dstnat; policy accept;',
    ...pre.map((r) => `    ${r}`),
    '  }',
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    ...post.map((r) => `    ${r}`),
    '  }',
    '}',
  ];
}

const chain = (name: string, head: string | null, rules: string[]) => [
  `  chain ${name} {`,
  ...(head ? [`    ${head}`] : []),
  ...rules.map((r) => `    ${r}`),
  '  }',
];

const drop = (reason: string) => `counter drop comment ${JSON.stringify(reason)}`;

function aclRules(items: Extract<RuleSpec, { kind: 'acl' }>[], traffic: 'ingress' | 'egress'): string[] {
  const out: string[] = [];
  const sorted = items
    .filter((a) => a.traffic === traffic)
    .sort((a, b) => a.number - b.number || (a.id < b.id ? -1 : 1));
  for (const a of sorted) {
    const cidrs = a.cidrs.length ? a.cidrs.map((c) => cidrDim(c).text) : ['0.0.0.0/0'];
    const addr = `ip ${traffic === 'ingress' ? 'saddr' : 'daddr'} { ${cidrs.join(', ')} }`;
    const m = protoMatch(a);
    let proto: string;
    if (m.family === 'l4') proto = `meta l4proto ${a.protocol} th dport ${m.dims[1]!.text}`;
    else if (m.family === 'icmp')
      proto = `meta l4proto icmp${m.dims[0]!.hi - m.dims[0]!.lo < 255 ? ` icmp type ${m.dims[0]!.text}` : ''}${m.dims[1]!.hi - m.dims[1]!.lo < 255 ? ` icmp code ${m.dims[1]!.text}` : ''}`;
    else proto = a.protocol === 'all' ? '' : `meta l4proto ${a.protocol}`;
    const verdict = a.action === 'allow' ? 'accept' : drop(`acl ${a.id}`);
    out.push([addr, proto, verdict].filter(Boolean).join(' '));
  }
  out.push(drop(`acl-${traffic}-no-match`));
  return out;
}

/**
 * The ingress sets (keyed by the original destination and the source: firewall rules, or in a VPC the forwards'
 * own sources and the static NATs) and the egress sets (source, destination) holding `rules`' elements.
 */
function matchSets(state: DesiredState, rules: RuleSpec[], withStatics: boolean) {
  const vpc = state.vpc;
  const ip = (expr: string) => ({ type: 'ipv4_addr', expr });
  const ingress = new MatchSets('ingress', [ip('ip daddr')], [ip('ip saddr')], 0);
  const egress = new MatchSets('egress', [ip('ip saddr'), ip('ip daddr')], [], null);
  const any = (cidrs: string[], dflt: string) => (cidrs.length ? cidrs : [dflt]).map(cidrDim);
  for (const r of rules) {
    if (r.kind === 'firewall' && !vpc)
      for (const s of any(r.sourceCidrs, '0.0.0.0/0')) ingress.add(r, [ipDim(r.publicIp)], [s]);
    else if (r.kind === 'portForward' && vpc) {
      const asFirewall = { ...r, kind: 'firewall' as const, ports: r.publicPorts };
      for (const s of any(r.sourceCidrs, '0.0.0.0/0')) ingress.add(asFirewall, [ipDim(r.publicIp)], [s]);
    } else if (r.kind === 'loadBalancer' && vpc) {
      // A VPC has no firewall rules on its public IPs: a load balancer rule opens its own port (as CloudStack's).
      const asFirewall = {
        kind: 'firewall' as const,
        id: r.id,
        protocol: 'tcp' as const,
        publicIp: r.publicIp,
        ports: { start: r.publicPort, end: r.publicPort },
        sourceCidrs: r.sourceCidrs,
      };
      for (const s of any(r.sourceCidrs, '0.0.0.0/0')) ingress.add(asFirewall, [ipDim(r.publicIp)], [s]);
    } else if (r.kind === 'egress' && !vpc)
      for (const s of any(r.sourceCidrs, state.network.cidr))
        for (const d of any(r.destCidrs, '0.0.0.0/0')) egress.add(r, [s, d], []);
  }
  if (vpc && withStatics)
    for (const s of state.public?.staticNats ?? [])
      ingress.add(
        { kind: 'firewall', id: s.publicIp, protocol: 'all', publicIp: s.publicIp, sourceCidrs: [] },
        [ipDim(s.publicIp)],
        [cidrDim('0.0.0.0/0')],
      );
  return { ingress, egress };
}

/** A set or map element and where it goes: `table` is `family name`. */
export interface Element {
  table: string;
  set: string;
  /** For a map, `key : value`. */
  text: string;
}

/**
 * The elements a rule adds, in the first layer of each set (the applier's short path for a new rule); null for
 * a rule that is not a set element (ACL items are rules in a chain).
 */
export function ruleElements(state: DesiredState, rule: RuleSpec): Element[] | null {
  // A load balancer rule is haproxy's too: it must take the full path, where every applier sees it.
  if (rule.kind === 'acl' || rule.kind === 'loadBalancer') return null;
  const nat = `ip ${natTableName}`;
  const filter = `inet ${publicTableName}`;
  const out: Element[] =
    rule.kind === 'portForward'
      ? forwardElements(rule).map((text) => ({ table: nat, set: 'pf_dnat', text }))
      : [];
  const { ingress, egress } = matchSets(state, [rule], false);
  for (const m of [ingress, egress])
    for (const e of m.firstLayer()) out.push({ table: filter, set: e.set, text: e.text });
  return out;
}

/** Where haproxy listens: `publicIp . publicPort` of each load balancer rule (one element per line, no interval). */
function lbListenSet(rules: RuleSpec[], ports: LbPorts): string[] {
  const listen = new Set(
    rules.flatMap((r) =>
      r.kind === 'loadBalancer' ? [`${r.publicIp} . ${lbListenPort(r.publicPort, ports)}`] : [],
    ),
  );
  return ['  set lb_listen {', '    type ipv4_addr . inet_service', ...elementBlock([...listen]), '  }'];
}

function renderFilter(
  state: DesiredState,
  guestIf: string,
  pub: string | null,
  rules: RuleSpec[],
  ports: LbPorts,
): string[] {
  const g = JSON.stringify(guestIf);
  const vpc = state.vpc;
  const { ingress, egress } = matchSets(state, rules, true);
  const mark = `ct mark set ct mark | ${allowedMark}`;
  const prerouting = pub ? ingress.rules(`iifname ${pub} ct state new `, mark) : [];
  const allowed = `ct mark & ${allowedMark} == ${allowedMark}`;
  const forward = ['ct state established,related accept', `ct state invalid ${drop('invalid')}`];
  const input: string[] = [];
  const extra: string[][] = [];
  if (pub) {
    // Echo requests to the router's own public addresses, where an icmp rule lets them in (isolated networks).
    const echo = vpc ? [] : ingress.decls.filter((d) => d.name.startsWith('ingress_icmp'));
    input.push(
      `iifname ${pub} ct state established,related accept`,
      // haproxy's listeners: new connections the ingress firewall let in (marked at prerouting).
      `iifname ${pub} ${allowed} meta l4proto tcp ip daddr . tcp dport @lb_listen accept`,
      ...echo.map(
        (d) =>
          `iifname ${pub} icmp type echo-request ip daddr . icmp type . icmp code . ip saddr @${d.name} accept`,
      ),
      `iifname ${pub} ${drop('public-input')}`,
    );
    if (vpc)
      forward.push(
        `iifname ${pub} ct status dnat ${allowed} oifname ${g} jump acl_ingress`,
        `iifname ${pub} ct status dnat ${allowed} oifname ${JSON.stringify(vpc.transitInterface)} accept`,
      );
    else forward.push(`iifname ${pub} ct status dnat ${allowed} oifname ${g} accept`);
    forward.push(`iifname ${pub} ${drop('no-firewall-rule')}`);
  }
  if (vpc) {
    const t = JSON.stringify(vpc.transitInterface);
    const acls = rules.filter((r) => r.kind === 'acl');
    forward.push(`iifname ${g} jump acl_egress`, `oifname ${g} jump acl_ingress`);
    if (pub) forward.push(`iifname ${t} oifname ${pub} accept`);
    extra.push(
      chain('acl_ingress', null, aclRules(acls, 'ingress')),
      chain('acl_egress', null, aclRules(acls, 'egress')),
    );
  } else if (pub) {
    const allow = state.public!.egressDefaultAllow;
    forward.push(`iifname ${g} oifname ${pub} jump egress`);
    extra.push(
      chain('egress', null, [
        ...egress.rules('', allow ? drop('egress-rule') : 'accept'),
        allow ? 'accept' : drop('egress-default-deny'),
      ]),
    );
  }
  forward.push(drop('not-forwarded'));
  return [
    `table inet ${publicTableName}`,
    `delete table inet ${publicTableName}`,
    `table inet ${publicTableName} {`,
    ...[...ingress.decls, ...egress.decls].flatMap(setText),
    ...lbListenSet(rules, ports),
    // Just before DNAT (dstnat = -100): the packet still carries the public address and port.
    ...chain('prerouting', 'type filter hook prerouting priority dstnat - 10; policy accept;', prerouting),
    // Before the guest-side input table, which accepts echo requests on every interface for this one to decide.
    ...chain('input', 'type filter hook input priority filter - 10; policy accept;', input),
    ...chain('forward', 'type filter hook forward priority filter; policy accept;', forward),
    ...extra.flat(),
    '}',
  ];
}

/** The ruleset, or '' when the router has neither a public side nor a VPC (nothing to load, tables removed). */
export function renderNetfilter(state: DesiredState, o: { guestInterface: string } & LbPorts): string {
  if (!state.public && !state.vpc) return '';
  const nics = state.public?.nics ?? [];
  const pub = nics.length ? quoteSet(nics.map((n) => n.interface)) : null;
  const rules = state.rules ?? [];
  return [
    ...renderNat(state, pub, rules, o),
    ...renderFilter(state, o.guestInterface, pub, rules, o),
    '',
  ].join('\n');
}

export const netfilterRenderer: Renderer<string> = {
  name: 'netfilter',
  consumes: ['network', 'public', 'rules', 'vpc'],
  render: (state, ctx) => renderNetfilter(state, ctx),
  digest: (ruleset) => [ruleset],
};
