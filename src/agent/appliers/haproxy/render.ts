/**
 * haproxy.cfg for the router's public load balancer rules (issue 18): one frontend per rule bound on
 * `publicIp:publicPort`, one backend with the members on `privatePort`. Modelled on CloudStack's VR
 * (HAProxyConfigurator): TCP unless a cookie stickiness policy or an HTTP health check needs HTTP, in which case
 * the proxy runs in `mode http` as the VR's does. Pure: the state directory comes from the render context.
 *
 * Differences from CloudStack's generator, all forced by haproxy 2.6 (the VR ships 1.x):
 * - `appsession` is gone: an AppCookie policy becomes a string stick table learnt from the server's Set-Cookie
 *   (`stick store-response res.cook(name)`) and matched on the request's cookie (`stick match`, or `stick on`
 *   with `request-learn`, which also learns the cookie a client sends first).
 * - `bind ... transparent`: the backup of a redundant pair does not hold the public addresses (keepalived moves
 *   them), yet its haproxy must already listen on them so that a takeover serves at once. IP_TRANSPARENT lets
 *   this one socket bind a foreign address, without turning on `ip_nonlocal_bind` for the whole namespace.
 */
import type { DesiredState, LoadBalancerRuleSpec } from '../../desired-state.js';
import type { RenderContext, Renderer } from '../applier.js';

export type LbRule = LoadBalancerRuleSpec;

/** The backend (and frontend) name of a rule; the status reader maps it back to the rule id. */
export const backendName = (id: string) => `lb_${id}`;
export const frontendName = (id: string) => `fe_${id}`;
export const statsSocket = (dataDir: string) => `${dataDir}/haproxy.sock`;

/**
 * The port haproxy listens on for a rule. The agent's own metadata and password servers listen on every address
 * of the router (the VIP of a pair comes and goes), and Linux refuses a specific-address listener on a port a
 * wildcard one holds: a rule on one of those two ports listens on a port of its own instead, and the public
 * side's NAT (appliers/netfilter) turns `publicIp:publicPort` into it, on public interfaces only.
 */
export function lbListenPort(
  publicPort: number,
  ctx: Partial<Pick<RenderContext, 'metadataPort' | 'passwordPort'>>,
): number {
  if (publicPort === ctx.metadataPort) return 64580;
  if (publicPort === ctx.passwordPort) return 64581;
  return publicPort;
}

export function lbRules(state: DesiredState): LbRule[] {
  return (state.rules ?? []).filter((r): r is LbRule => r.kind === 'loadBalancer');
}

const param = (r: LbRule, name: string) => r.stickiness?.params[name];
const flag = (r: LbRule, name: string) => {
  const v = param(r, name);
  return v !== undefined && v !== 'false';
};

/** HTTP is needed to read or set cookies and to send an HTTP check; everything else stays TCP. */
export function lbMode(r: LbRule): 'http' | 'tcp' {
  const cookie = r.stickiness?.method === 'LbCookie' || r.stickiness?.method === 'AppCookie';
  return cookie || r.healthCheck?.pingPath ? 'http' : 'tcp';
}

/** The LB cookie's name: CloudStack's default when the policy names none is `<rule's public IP>-<port>`. */
function lbCookieName(r: LbRule): string {
  return param(r, 'cookie-name') || `lb-${r.publicIp.replace(/\./g, '-')}-${r.publicPort}`;
}

function stickinessLines(r: LbRule): string[] {
  const s = r.stickiness;
  if (!s) return [];
  if (s.method === 'LbCookie') {
    // CloudStack's `mode` is the cookie mode (insert, rewrite, prefix); insert is its default.
    const mode = param(r, 'mode') || 'insert';
    const opts = ['nocache', 'indirect', 'postonly'].filter((o) => flag(r, o));
    const domain = param(r, 'domain');
    return [`cookie ${lbCookieName(r)} ${[mode, ...opts].join(' ')}${domain ? ` domain ${domain}` : ''}`];
  }
  if (s.method === 'AppCookie') {
    const name = param(r, 'cookie-name') || 'JSESSIONID';
    const len = param(r, 'length') || '52';
    const expire = param(r, 'holdtime') || '3h';
    return [
      `stick-table type string len ${len} size 200k expire ${expire}`,
      flag(r, 'request-learn') ? `stick on req.cook(${name})` : `stick match req.cook(${name})`,
      `stick store-response res.cook(${name})`,
    ];
  }
  const size = param(r, 'tablesize') || '200k';
  const expire = param(r, 'expire') || '30m';
  return [`stick-table type ip size ${size} expire ${expire}`, 'stick on src'];
}

function healthLines(r: LbRule): { backend: string[]; server: string } {
  const h = r.healthCheck;
  if (!h) return { backend: [], server: ' check' };
  return {
    backend: [
      ...(h.pingPath ? [`option httpchk GET ${h.pingPath}`] : []),
      `timeout check ${h.timeoutSeconds}s`,
    ],
    server: ` check inter ${h.intervalSeconds}s rise ${h.healthyThreshold} fall ${h.unhealthyThreshold}`,
  };
}

/** CloudStack's cidrlist: nothing to say when it is empty or lets everyone in. */
function sourceLines(r: LbRule): string[] {
  const cidrs = r.sourceCidrs.filter((c) => c !== '0.0.0.0/0');
  if (!cidrs.length || cidrs.length < r.sourceCidrs.length) return [];
  return [`tcp-request connection reject unless { src ${cidrs.join(' ')} }`];
}

/** A member as a `server` line has it (name, address, checks), and as the runtime API's `add server` takes it. */
export function serverArgs(r: LbRule, guestIp: string): string {
  return `${guestIp} ${guestIp}:${r.privatePort}${healthLines(r).server}`;
}

function ruleLines(r: LbRule, ctx: Pick<RenderContext, 'metadataPort' | 'passwordPort'>): string[] {
  const mode = lbMode(r);
  const health = healthLines(r);
  const lbCookie = r.stickiness?.method === 'LbCookie';
  // The cookie value names the member by its address (in hex, not to show guest addresses to clients): a member
  // added or removed must not move the clients of the others.
  const cookieOf = (ip: string) =>
    ip
      .split('.')
      .map((o) => Number(o).toString(16).padStart(2, '0'))
      .join('');
  const servers = r.members.map(
    (m) => `server ${serverArgs(r, m.guestIp)}${lbCookie ? ` cookie ${cookieOf(m.guestIp)}` : ''}`,
  );
  const indent = (l: string) => `  ${l}`;
  return [
    '',
    `frontend ${frontendName(r.id)}`,
    ...[
      `bind ${r.publicIp}:${lbListenPort(r.publicPort, ctx)} transparent`,
      `mode ${mode}`,
      ...(mode === 'http' ? ['option forwardfor'] : []),
      ...sourceLines(r),
      `default_backend ${backendName(r.id)}`,
    ].map(indent),
    '',
    `backend ${backendName(r.id)}`,
    ...[`mode ${mode}`, `balance ${r.algorithm}`, ...stickinessLines(r), ...health.backend, ...servers].map(
      indent,
    ),
  ];
}

/** The configuration, or null when the router has no load balancer rule (haproxy is then stopped). */
export function renderHaproxy(
  state: DesiredState,
  ctx: Pick<RenderContext, 'dataDir' | 'metadataPort' | 'passwordPort'>,
): string | null {
  const rules = lbRules(state);
  if (!rules.length) return null;
  return (
    [
      `# stacknet router-agent: router ${state.router.name}. Generated; the agent overwrites it.`,
      'global',
      // `expose-fd listeners`: a reloaded worker takes the listening sockets over from the old one, so no
      // connection arriving during a reload is refused.
      `  stats socket ${statsSocket(ctx.dataDir)} mode 600 level admin expose-fd listeners`,
      // CloudStack's VR value; haproxy needs two descriptors per connection, within the agent's own limit.
      '  maxconn 4096',
      // Old workers left after a reload finish their connections within this, then go.
      '  hard-stop-after 30s',
      'defaults',
      '  mode tcp',
      '  timeout connect 5s',
      '  timeout client 50s',
      '  timeout server 50s',
      // A reload lets the old worker finish its connections, but not forever.
      '  timeout client-fin 5s',
      ...rules.flatMap((r) => ruleLines(r, ctx)),
    ].join('\n') + '\n'
  );
}

export const haproxyRenderer: Renderer<string | null> = {
  name: 'haproxy',
  consumes: ['rules'],
  render: (state, ctx) => renderHaproxy(state, ctx),
  // Nothing without LB rules: a router without any keeps the hash it had before haproxy was a service.
  digest: (conf) => (conf ? [conf] : []),
};
