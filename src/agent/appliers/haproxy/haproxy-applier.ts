/**
 * The public load balancer (issue 18): haproxy in master-worker mode (`-W`), supervised like dnsmasq. A new
 * configuration is checked with `haproxy -c`, replaced atomically and taken by a SIGUSR2 to the master, which
 * starts new workers on it and lets the old ones finish their connections (the listening sockets pass from one
 * worker to the next over the stats socket, `expose-fd listeners`): a reload drops nothing. A refused
 * configuration leaves the last good one serving and the router Degraded (HaproxyRejected). No rule: stopped.
 *
 * On a redundant pair only the primary runs it, as dnsmasq (`serving`/`roleChanged`): the backup has no address
 * on the guest network (its own sits on lo, the VIP is the primary's), so its health checks would all fail and a
 * takeover would wait `rise` intervals with every member DOWN; started on the takeover instead, haproxy assumes its
 * servers UP until checks say otherwise, and takes traffic at once. Its listeners are bound `transparent` (see
 * render.ts), so starting before keepalived has moved the public addresses cannot fail.
 *
 * Health: the stats socket's `show stat`, polled while haproxy runs (status() is synchronous), reported as
 * `lb: { [ruleId]: { [guestIp]: 'UP' | 'DOWN' } }`.
 */
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { ProcessSupervisor } from '../../process-supervisor.js';
import { readText, run, writeAtomic } from '../../system.js';
import type { DesiredState, DesiredStateDelta } from '../../desired-state.js';
import type { AgentStatus } from '../../status.js';
import type { Applier, ApplierContext, ServiceStatus, Step } from '../applier.js';
import { ApplyFailure } from '../applier.js';
import { backendName, haproxyRenderer, lbRules, serverArgs, statsSocket, type LbRule } from './render.js';

const pollMs = 500;

/** One line of `show stat` (CSV, `# pxname,svname,...,status,...`) per server, as `lb` reports it. */
export function parseShowStat(csv: string): NonNullable<AgentStatus['lb']> {
  const lines = csv.split('\n').filter((l) => l.trim());
  const header = (lines[0] ?? '').replace(/^# /, '').split(',');
  const px = header.indexOf('pxname');
  const sv = header.indexOf('svname');
  const st = header.indexOf('status');
  const out: NonNullable<AgentStatus['lb']> = {};
  for (const line of lines.slice(1)) {
    const f = line.split(',');
    const pxname = f[px] ?? '';
    const svname = f[sv] ?? '';
    if (!pxname.startsWith('lb_') || svname === 'BACKEND' || svname === 'FRONTEND') continue;
    const status = f[st] ?? '';
    // 'UP', 'UP 1/3' (going down), 'no check' (no health check: haproxy sends it traffic) are serving.
    const up = status.startsWith('UP') || status === 'no check';
    (out[pxname.slice(3)] ??= {})[svname] = up ? 'UP' : 'DOWN';
  }
  return out;
}

/** A command on haproxy's stats socket; its whole answer ('' when haproxy does not answer). */
function askSocket(path: string, command: string, timeoutMs = 1000): Promise<string> {
  return new Promise((resolve) => {
    let data = '';
    const s = createConnection(path);
    const done = () => {
      s.destroy();
      resolve(data);
    };
    s.setTimeout(timeoutMs, done);
    s.on('connect', () => s.write(`${command}\n`));
    s.on('data', (d) => (data += d.toString()));
    s.on('end', done);
    s.on('error', () => resolve(''));
  });
}

export class HaproxyApplier implements Applier<string | null> {
  readonly renderer = haproxyRenderer;
  readonly servesGuests = false;
  readonly haproxy: ProcessSupervisor;
  private readonly conf: string;
  private readonly binary: string;
  private health: NonNullable<AgentStatus['lb']> = {};
  private timer: NodeJS.Timeout | null = null;
  /** The state in force has LB rules (what a takeover starts haproxy for). */
  private hasRules = false;
  reloads = 0;

  constructor(private readonly ctx: ApplierContext) {
    const d = ctx.dataDir;
    this.conf = join(d, 'haproxy.cfg');
    this.binary = ctx.haproxyBinary ?? 'haproxy';
    const pidFile = join(d, 'haproxy.pid');
    this.haproxy = new ProcessSupervisor({
      name: 'haproxy',
      binary: this.binary,
      // -W: master-worker (the master re-executes itself on SIGUSR2); -db: the master stays in the foreground,
      // a child of the supervisor, which reads its pid from the pid file.
      args: ['-W', '-db', '-f', this.conf, '-p', pidFile],
      pidFile,
      identity: this.conf,
      outputFile: join(d, 'haproxy.out'),
      onEvent: (e) => ctx.log(`haproxy ${e.type} ${JSON.stringify(e)}`),
    });
  }

  async start(saved: DesiredState | null): Promise<void> {
    if (!saved || !lbRules(saved).length || !this.haproxy.adopt()) return;
    // Left by a previous agent: it keeps serving untouched, unless the VRRP role moved while no agent watched.
    if (this.ctx.serving(saved)) this.poll();
    else await this.haproxy.stop();
  }

  roleChanged(serving: boolean): void {
    if (serving && readText(this.conf) && this.hasRules) {
      this.haproxy
        .ensureRunning()
        .then(() => this.poll())
        .catch((e: Error) => this.ctx.degrade('HaproxyStartFailed', e.message));
    } else if (!serving) {
      this.stopPolling();
      this.haproxy.stop().catch(() => undefined);
    }
  }

  async check(next: Step<string | null>): Promise<void> {
    if (!next.out || readText(this.conf) === next.out) return;
    const tmp = join(this.ctx.dataDir, '.haproxy-check.cfg');
    writeAtomic(tmp, next.out);
    const r = await run(this.binary, ['-c', '-q', '-f', tmp]);
    if (r.code !== 0) throw new ApplyFailure('HaproxyRejected', (r.stderr || r.stdout).trim());
  }

  async apply(next: Step<string | null>): Promise<void> {
    const conf = next.out;
    this.hasRules = conf !== null;
    // Compared with the file, not the previous render: an agent restarted next to a running haproxy must not
    // reload it when nothing changed. Written on a backup too, for the takeover.
    const changed = conf !== null && readText(this.conf) !== conf;
    if (changed) writeAtomic(this.conf, conf);
    if (!conf || !this.ctx.serving(next.state)) {
      this.stopPolling();
      if (this.haproxy.running) await this.haproxy.stop();
      return;
    }
    if (!this.haproxy.running) {
      try {
        await this.haproxy.ensureRunning();
      } catch (e) {
        throw new ApplyFailure('HaproxyStartFailed', (e as Error).message, true);
      }
    } else if (changed) {
      this.haproxy.signal('SIGUSR2');
      this.reloads++;
    }
    // Members that left are no longer reported; new ones are until the next poll says otherwise.
    this.health = {};
    this.poll();
  }

  /**
   * A delta that only adds members to LB rules (nothing else of them changes): the new servers go in through the
   * runtime API (`add server`, then `enable health`/`enable server`: a dynamic server starts in maintenance) as
   * the delta arrives, instead of waiting for the full apply's check and reload, which follow as usual and bring
   * the configuration file to the same servers. haproxy 2.6 refuses a dynamic server with a cookie, and hash
   * balancing (`source`) does not take them: those rules take the full path only.
   */
  ahead(base: Step<string | null>, delta: DesiredStateDelta): ((next: DesiredState) => boolean) | null {
    const upsert = delta.rules?.upsert ?? [];
    if (!this.haproxy.running || !upsert.length || delta.rules?.remove?.length) return null;
    const known = new Map(lbRules(base.state).map((r) => [r.id, r]));
    const commands: string[] = [];
    for (const r of upsert) {
      const old = known.get(r.id);
      if (!old || r.kind !== 'loadBalancer') return null;
      const added = addedMembers(old, r);
      if (!added || r.stickiness?.method === 'LbCookie' || r.algorithm === 'source') return null;
      for (const ip of added) {
        const name = `${backendName(r.id)}/${ip}`;
        commands.push(`add server ${backendName(r.id)}/${serverArgs(r, ip)}`);
        commands.push(`enable health ${name}`, `enable server ${name}`);
      }
    }
    if (!commands.length) return null;
    const t0 = performance.now();
    void askSocket(statsSocket(this.ctx.dataDir), commands.join(';')).then((answer) => {
      if (process.env.STACKNET_DEBUG_AHEAD)
        this.ctx.log(`haproxy ahead in ${Math.round(performance.now() - t0)} ms: ${answer.trim()}`);
    });
    return (next) => {
      const ids = new Set((next.rules ?? []).map((r) => r.id));
      return upsert.every((r) => ids.has(r.id));
    };
  }

  private poll(): void {
    if (this.timer) return;
    const tick = async () => {
      if (!this.haproxy.running) return;
      const csv = await askSocket(statsSocket(this.ctx.dataDir), 'show stat');
      // Empty while a reload swaps workers: keep the last answer rather than report nothing.
      if (csv.includes('pxname')) this.health = parseShowStat(csv);
    };
    void tick();
    this.timer = setInterval(() => void tick(), pollMs);
    this.timer.unref();
  }

  private stopPolling(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.health = {};
  }

  status(applied: DesiredState | null): ServiceStatus {
    const rules = applied ? lbRules(applied) : [];
    // A backup serves nothing and checks nothing: the primary reports the members' health.
    if (!rules.length || !this.ctx.serving(applied)) return { report: {} };
    // Every member of every rule, DOWN until haproxy says otherwise.
    const lb: NonNullable<AgentStatus['lb']> = {};
    for (const r of rules) {
      const seen = this.health[r.id] ?? {};
      lb[r.id] = Object.fromEntries(r.members.map((m) => [m.guestIp, seen[m.guestIp] ?? 'DOWN']));
    }
    if (!this.haproxy.running)
      return {
        degraded: { reason: 'HaproxyDown', message: this.haproxy.lastError ?? 'haproxy is not running' },
        report: { lb },
      };
    return { report: { lb } };
  }

  readonly observedReasons = ['HaproxyDown'];

  async stop(opts: { leaveRunning?: boolean }): Promise<void> {
    this.stopPolling();
    if (opts.leaveRunning) this.haproxy.detach();
    else await this.haproxy.stop();
  }
}

/** The members `next` adds to `old` when nothing else of the rule changes (null: another change). */
function addedMembers(old: LbRule, next: LbRule): string[] | null {
  const had = new Set(old.members.map((m) => m.guestIp));
  if (!old.members.every((m) => next.members.some((n) => n.guestIp === m.guestIp && n.vmId === m.vmId)))
    return null;
  const strip = (r: LbRule) => JSON.stringify({ ...r, members: [] });
  if (strip(old) !== strip(next)) return null;
  return next.members.filter((m) => !had.has(m.guestIp)).map((m) => m.guestIp);
}
