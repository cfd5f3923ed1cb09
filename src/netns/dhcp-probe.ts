import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';
import { spawnIn, type SpawnedProcess } from './exec.js';
import { addRoute } from './links.js';

/** What the probe got for one MAC. `ms` is measured inside the probe from its first DISCOVER to the ACK. */
export interface ProbeLeaseResult {
  id: string;
  mac: string;
  ok: boolean;
  ip?: string;
  router?: string;
  dns?: string[];
  domain?: string;
  lease?: number;
  nak?: boolean;
  timeout?: boolean;
  offered?: string;
  discovers: number;
  requests: number;
  ms: number;
}

export interface ProbeDnsStats {
  sent: number;
  answered: number;
  /** Queries with no answer within the loop's timeout. */
  lost: number;
  rcodes: Record<string, number>;
  maxMs: number;
}

export interface ProbeLeaseOptions {
  /** Resend DISCOVER (then REQUEST) every this many ms until answered (default 5). */
  retryMs?: number;
  /** The resend interval doubles every 20 sends up to this (default 100 ms), so a busy server is not flooded. */
  maxRetryMs?: number;
  /** Give up after (default 10 s). */
  timeoutMs?: number;
  hostname?: string;
}

/**
 * A DHCP/DNS load and latency probe running inside namespace `ns` (dhcp-probe-main.ts): `lease(mac)` keeps
 * sending DISCOVER for `mac` until it is offered and ACKed (so it measures when the server starts answering),
 * many MACs at once; `dnsStart`/`dnsStop` run a background query loop and count lost queries. The namespace
 * needs an IPv4 address on its interface `ifname` (default eth0) for the DNS loop.
 */
export class DhcpProbe {
  private seq = 0;
  private buf = '';
  private readonly waiters = new Map<string, (v: Record<string, unknown>) => void>();
  private readyResolve!: () => void;
  private readonly ready = new Promise<void>((r) => (this.readyResolve = r));

  private constructor(readonly process: SpawnedProcess) {}

  static async start(
    ns: string,
    opts: { ifname?: string; track?: (p: SpawnedProcess) => void } = {},
  ): Promise<DhcpProbe> {
    // Node cannot bind a socket to a device; a limited-broadcast route tells the kernel where 255.255.255.255 goes.
    await addRoute(ns, { to: '255.255.255.255/32', dev: opts.ifname ?? 'eth0' });
    const here = dirname(fileURLToPath(import.meta.url));
    const isTs = import.meta.url.endsWith('.ts');
    const main = join(here, isTs ? 'dhcp-probe-main.ts' : 'dhcp-probe-main.js');
    const argv = isTs ? [process.execPath, '--import', 'tsx', main] : [process.execPath, main];
    const holder: { probe?: DhcpProbe } = {};
    const proc = spawnIn(ns, argv, {
      stdinPipe: true,
      cwd: resolve(here, '..', '..'),
      onStdout: (b) => holder.probe?.onData(b),
    });
    const probe = new DhcpProbe(proc);
    holder.probe = probe;
    opts.track?.(proc);
    const failed = proc.exited.then(() => {
      throw new Error(`DHCP probe in ${ns} exited: ${proc.output()}`);
    });
    await Promise.race([probe.ready, failed]);
    failed.catch(() => undefined);
    return probe;
  }

  private onData(b: Buffer) {
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
      if (msg.ready) this.readyResolve();
      const id = typeof msg.id === 'string' ? msg.id : undefined;
      const w = id ? this.waiters.get(id) : undefined;
      if (id && w) {
        this.waiters.delete(id);
        w(msg);
      }
    }
  }

  private call(cmd: Record<string, unknown>): Promise<Record<string, unknown>> {
    const id = `c${++this.seq}`;
    return new Promise((resolvePromise, reject) => {
      this.waiters.set(id, resolvePromise);
      const stdin = this.process.child.stdin;
      if (!stdin || this.process.hasExited()) {
        reject(new Error(`DHCP probe is not running: ${this.process.output()}`));
        return;
      }
      stdin.write(JSON.stringify({ ...cmd, id }) + '\n');
    });
  }

  /** DISCOVER → OFFER → REQUEST → ACK for `mac`, retrying until answered or timed out. */
  async lease(mac: string, opts: ProbeLeaseOptions = {}): Promise<ProbeLeaseResult> {
    return (await this.call({ op: 'lease', mac, ...opts })) as unknown as ProbeLeaseResult;
  }

  /** Start a DNS query loop (one query of `name` to `server` every intervalMs; lost after timeoutMs). */
  async dnsStart(
    server: string,
    name: string,
    opts: { intervalMs?: number; timeoutMs?: number } = {},
  ): Promise<void> {
    await this.call({ op: 'dnsStart', server, name, ...opts });
  }

  async dnsStop(): Promise<ProbeDnsStats> {
    return (await this.call({ op: 'dnsStop' })) as unknown as ProbeDnsStats;
  }

  async close(): Promise<void> {
    this.process.child.stdin?.end();
    await this.process.stop(1000);
  }
}
