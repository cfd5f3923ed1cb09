/**
 * The DNS probe of `npm run bench:vr`, a process of its own in the probe namespace (so DHCP clients' work in the
 * DHCP probe does not delay its timers or its receipts). Open loop: `lanes` UDP sockets, each sending one A query
 * every `intervalMs` (lanes staggered), whatever came back; each query has its own timeout after which it counts
 * as lost. Names rotate through the list given at start (hosts that exist and hosts just added). Reports sent,
 * answered, lost, latency quantiles of the answered, rcodes, and its own cost: CPU time of this process over the
 * window and how late its timers fired (a late timer = the probe itself starved, not the router slow).
 *
 * Run as `node --import tsx bench/vr-dns-probe.ts` inside a namespace; one JSON command per stdin line
 * (`{op:'start', server, names, lanes, intervalMs, timeoutMs}`, `{op:'stop'}`), one JSON reply per stdout line.
 * `VrDnsProbe` below is the bench's side.
 */
import dgram from 'node:dgram';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { decodeDnsResponse, encodeDnsQuery } from '../src/netns/dhcp-wire.js';
import type { SpawnedProcess, TestNet } from '../src/netns/index.js';

export interface DnsWindowStats {
  lanes: number;
  intervalMs: number;
  sent: number;
  answered: number;
  /** No answer within timeoutMs (each query its own timeout; those in flight at stop get theirs). */
  lost: number;
  rcodes: Record<string, number>;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  wallMs: number;
  /** CPU time of the probe process over the window (user + system). */
  probeCpuMs: number;
  /** How late the probe's send timers fired, p99 and max: large = the probe starved, its figures suspect. */
  timerLateP99Ms: number;
  timerLateMaxMs: number;
}

interface StartCmd {
  server: string;
  names: string[];
  lanes: number;
  intervalMs: number;
  timeoutMs: number;
}

const q = (xs: number[], p: number): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]!;
};

function probeMain(): void {
  const out = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify(o) + '\n');
  const now = () => performance.now();
  let run:
    | {
        c: StartCmd;
        socks: dgram.Socket[];
        timers: NodeJS.Timeout[];
        pending: Map<number, number>[];
        lat: number[];
        late: number[];
        sent: number;
        lost: number;
        rcodes: Record<string, number>;
        t0: number;
        cpu0: NodeJS.CpuUsage;
        sweep: NodeJS.Timeout;
      }
    | undefined;

  function start(c: StartCmd) {
    const r = {
      c,
      socks: [] as dgram.Socket[],
      timers: [] as NodeJS.Timeout[],
      pending: [] as Map<number, number>[],
      lat: [] as number[],
      late: [] as number[],
      sent: 0,
      lost: 0,
      rcodes: {} as Record<string, number>,
      t0: now(),
      cpu0: process.cpuUsage(),
      sweep: setInterval(() => {
        const t = now();
        for (const p of r.pending)
          for (const [id, at] of p)
            if (t - at > c.timeoutMs) {
              p.delete(id);
              r.lost++;
            }
      }, 50),
    };
    let nameSeq = 0;
    const queries = c.names.map((n, i) => ({ n, i }));
    for (let lane = 0; lane < c.lanes; lane++) {
      const s = dgram.createSocket('udp4');
      const pending = new Map<number, number>();
      r.socks.push(s);
      r.pending.push(pending);
      s.on('message', (m) => {
        const t = now();
        const d = decodeDnsResponse(m);
        if (!d) return;
        const at = pending.get(d.id);
        if (at === undefined) return;
        pending.delete(d.id);
        r.lat.push(t - at);
        r.rcodes[d.rcode] = (r.rcodes[d.rcode] ?? 0) + 1;
      });
      s.on('error', () => undefined);
      let id = 0;
      let last = 0;
      const tick = () => {
        const t = now();
        if (last) r.late.push(Math.max(0, t - last - c.intervalMs));
        last = t;
        id = (id + 1) & 0xffff;
        pending.set(id, t);
        r.sent++;
        const name = queries[nameSeq++ % queries.length]!.n;
        s.send(encodeDnsQuery(id, name), 53, c.server);
      };
      // lanes staggered over one interval
      const first = (lane * c.intervalMs) / c.lanes;
      r.timers.push(
        setTimeout(() => {
          tick();
          r.timers.push(setInterval(tick, c.intervalMs));
        }, first),
      );
    }
    run = r;
  }

  async function stop(id: string) {
    const r = run;
    if (!r) return out({ id, error: 'not running' });
    run = undefined;
    for (const t of r.timers) clearTimeout(t);
    const wallMs = now() - r.t0;
    const cpu = process.cpuUsage(r.cpu0);
    const until = now() + r.c.timeoutMs;
    const inFlight = () => r.pending.reduce((a, p) => a + p.size, 0);
    while (inFlight() > 0 && now() < until) await new Promise((res) => setTimeout(res, 5));
    clearInterval(r.sweep);
    r.lost += inFlight();
    for (const s of r.socks) s.close();
    const stats: DnsWindowStats = {
      lanes: r.c.lanes,
      intervalMs: r.c.intervalMs,
      sent: r.sent,
      answered: r.lat.length,
      lost: r.lost,
      rcodes: r.rcodes,
      p50Ms: q(r.lat, 0.5),
      p99Ms: q(r.lat, 0.99),
      maxMs: r.lat.length ? Math.max(...r.lat) : NaN,
      wallMs,
      probeCpuMs: (cpu.user + cpu.system) / 1000,
      timerLateP99Ms: q(r.late, 0.99),
      timerLateMaxMs: r.late.length ? Math.max(...r.late) : NaN,
    };
    out({ id, ...stats });
  }

  createInterface({ input: process.stdin }).on('line', (line) => {
    if (!line.trim()) return;
    const c = JSON.parse(line) as { op: string; id: string } & Record<string, unknown>;
    if (c.op === 'start') {
      start(c as unknown as StartCmd);
      out({ id: c.id, ok: true });
    } else if (c.op === 'stop') void stop(c.id);
    else out({ id: c.id, error: `unknown op ${c.op}` });
  });
  process.stdin.on('end', () => process.exit(0));
  out({ ready: true });
}

/** The bench's side: the probe process in namespace `ns`, started once, windows opened and closed by start/stop. */
export class VrDnsProbe {
  private seq = 0;
  private buf = '';
  private readonly waiters = new Map<string, (v: Record<string, unknown>) => void>();
  private constructor(readonly proc: SpawnedProcess) {}

  static async start(net: TestNet, ns: string): Promise<VrDnsProbe> {
    const self = fileURLToPath(import.meta.url);
    let ready!: () => void;
    const isReady = new Promise<void>((r) => (ready = r));
    const holder: { p?: VrDnsProbe } = {};
    const proc = net.spawnIn(ns, [process.execPath, '--import', 'tsx', self, '--probe'], {
      stdinPipe: true,
      onStdout: (b) => holder.p?.onData(b, ready),
    });
    holder.p = new VrDnsProbe(proc);
    const failed = proc.exited.then(() => {
      throw new Error(`DNS probe exited: ${proc.output()}`);
    });
    await Promise.race([isReady, failed]);
    failed.catch(() => undefined);
    return holder.p;
  }

  private onData(b: Buffer, ready: () => void) {
    this.buf += b.toString();
    let i: number;
    while ((i = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 1);
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      if (msg.ready) ready();
      const id = typeof msg.id === 'string' ? msg.id : undefined;
      const w = id ? this.waiters.get(id) : undefined;
      if (id && w) {
        this.waiters.delete(id);
        w(msg);
      }
    }
  }

  private call(cmd: Record<string, unknown>): Promise<Record<string, unknown>> {
    const id = `d${++this.seq}`;
    return new Promise((res, rej) => {
      const stdin = this.proc.child.stdin;
      if (!stdin || this.proc.hasExited())
        return rej(new Error(`DNS probe not running: ${this.proc.output()}`));
      this.waiters.set(id, res);
      stdin.write(JSON.stringify({ ...cmd, id }) + '\n');
    });
  }

  async begin(c: StartCmd): Promise<void> {
    const r = await this.call({ op: 'start', ...c });
    if (r.error) throw new Error(String(r.error));
  }

  async end(): Promise<DnsWindowStats> {
    const r = await this.call({ op: 'stop' });
    if (r.error) throw new Error(String(r.error));
    return r as unknown as DnsWindowStats;
  }

  async close(): Promise<void> {
    this.proc.child.stdin?.end();
    await this.proc.stop(2000);
  }
}

if (process.argv.includes('--probe')) probeMain();
