/**
 * Fresh VMs of the netns driver started in batches (netns.ts): their namespaces, veths and port rules, then their
 * guests' DHCP clients, in a handful of processes per batch rather than per VM.
 */
import { mkdir, rm } from 'node:fs/promises';
import { hookScripts, resolvConfPath } from '../netns/index.js';
import type { NetnsShell } from './netns-shell.js';
import { shq } from './netns-shell.js';
import type { GuestNetworkRuntime, VmNicRuntime, VmRuntime } from './types.js';

/** How a VM's DHCP client (its guest OS) runs (NetnsDriver's `guest`). */
export interface GuestSpec {
  argv: string[];
  env: Record<string, string>;
  log: string;
  pidFile: string;
  /** What `prepare` does (false: the caller's batch script does it): directories made, a record removed. */
  dirs: string[];
  stale: string;
}

/** What the batches need of their driver. */
export interface StartHost {
  readonly sh: NetnsShell;
  readonly switchNs: string;
  log?: ((m: string) => void) | undefined;
  vmNs(vm: VmRuntime): string;
  bridgeName(n: GuestNetworkRuntime): string;
  remember(names: string[]): void;
  ensureBridge(n: GuestNetworkRuntime): Promise<void>;
  portRules(nic: VmNicRuntime, fresh: boolean): Promise<void>;
  /** The one-at-a-time path: a VM's namespace, veths and rules; its guest. */
  plugNics(vm: VmRuntime): Promise<number>;
  startGuest(vm: VmRuntime): Promise<void>;
  guest(vm: VmRuntime, hooks: { udhcpc: string }, prepare: boolean): GuestSpec | null;
}

/**
 * A fresh VM waiting for its start (start): `ready` settles when its guest may run (startVmAfter), `state`
 * says how it settled.
 */
interface StartRequest {
  vm: VmRuntime;
  state: 'waiting' | 'ready' | 'failed';
  ready?: Promise<void>;
  error?: Error;
  done: (e?: Error, marks?: StartMarks) => void;
}

/** Most fresh VMs started in one batch (start). */
const START_BATCH = 128;
/**
 * Least time between the starts of two batches in a burst (startPump): about a router pass's time in a burst,
 * so the guests' wait for their router covers it.
 */
const START_GATHER_MS = 100;

/** When a VM start's phases ended (epoch ms), for the trace; `batch`: how many VMs started with it. */
export interface StartMarks {
  linked: number;
  plugged: number;
  spawned: number;
  batch: number;
}

export class NetnsStarts {
  constructor(private readonly h: StartHost) {}

  private pending: StartRequest[] = [];
  private running = false;
  private readonly starting = new Map<string, Promise<StartMarks>>();

  /**
   * A VM whose namespace does not exist yet: queued and started with the others waiting, in batches. A server
   * process forks slowly (measured 35–120 ms of blocked event loop per child at 45–350 MB RSS on these
   * machines), so a burst of N starts costs no fork of the server: the driver shell (netns-shell.ts) runs one
   * `ip -b` for the namespaces, one in the switch namespace for the veths, one nft transaction for the port
   * rules (elements of the guard chain's sets: O(1) per port), and one script that starts each VM's DHCP client
   * (one fork and two execs per VM: lightGuestUdhcpc; the veths' batch makes the VM's end up in its namespace).
   * A batch that fails is done again VM by VM on the one-at-a-time path
   * (plugNics, startGuest), which says which VM failed and why.
   */
  start(vm: VmRuntime, ready?: Promise<unknown>): Promise<StartMarks> {
    const ns = this.h.vmNs(vm);
    let p = this.starting.get(ns);
    if (!p) {
      p = new Promise<StartMarks>((resolve, reject) => {
        const r: StartRequest = { vm, state: 'ready', done: (e, m) => (e ? reject(e) : resolve(m!)) };
        if (ready) {
          r.state = 'waiting';
          r.ready = ready.then(
            () => void (r.state = 'ready'),
            (e: unknown) => {
              r.state = 'failed';
              r.error = e instanceof Error ? e : new Error(String(e));
            },
          );
        }
        this.pending.push(r);
        void this.pump();
      }).finally(() => this.starting.delete(ns));
      this.starting.set(ns, p);
    }
    return p;
  }

  private async pump(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      // A batch's guests start while the next batch is plugged (its namespaces, veths, rules): one script of
      // guest starts in flight at a time, after the one before it, each batch answered when its guests run.
      let spawning: Promise<void> = Promise.resolve();
      let lastBatch = 0;
      while (this.pending.length) {
        // Within a burst, batches START_GATHER_MS apart at least: VMs whose guests wait for their router anyway
        // (startVmAfter) arrive one by one as their jobs commit, and a batch of each handful costs the same
        // processes as a batch of many. The first batch after a pause goes at once.
        const since = Date.now() - lastBatch;
        if (this.pending.length < START_BATCH && since < START_GATHER_MS)
          await new Promise((r) => setTimeout(r, START_GATHER_MS - since));
        lastBatch = Date.now();
        const batch = this.pending.splice(0, START_BATCH);
        const vms = batch.map((b) => b.vm);
        const plugged = await this.plugMany(vms).catch((e: Error) => {
          this.h.log?.(`plugging ${batch.length} VMs at once: ${e.message}; one by one instead`);
          return null;
        });
        spawning = spawning.then(async () => {
          // The guests whose routers are ready, as they become so (a router pass makes a whole batch ready at
          // once, nearly always): one start script per group.
          for (let left = batch; left.length;) {
            if (left.every((b) => b.state === 'waiting')) await Promise.race(left.map((b) => b.ready));
            const now = left.filter((b) => b.state !== 'waiting');
            left = left.filter((b) => b.state === 'waiting');
            for (const b of now) if (b.state === 'failed') b.done(b.error);
            await this.spawnGroup(
              now.filter((b) => b.state === 'ready'),
              plugged,
            );
          }
        });
        // Every path above settles its VMs; nothing may stop the chain for the batches after.
        spawning = spawning.catch((e: Error) => this.h.log?.(`starting VMs: ${e.message}`));
      }
    } finally {
      this.running = false;
    }
  }

  /** The guests of a plugged batch (or of a part of it), or each VM on its own when that fails (see start). */
  private async spawnGroup(
    group: StartRequest[],
    plugged: { linked: number; plugged: number } | null,
  ): Promise<void> {
    if (group.length === 0) return;
    const r = plugged
      ? await this.spawnMany(
          group.map((b) => b.vm),
          plugged,
        ).catch((e: Error) => {
          this.h.log?.(`starting ${group.length} VMs at once: ${e.message}; one by one instead`);
          return null;
        })
      : null;
    for (const b of group) {
      if (r && !r.failed.has(b.vm.instanceName)) {
        b.done(undefined, r.marks);
        continue;
      }
      await (async () => {
        const linked = await this.h.plugNics(b.vm);
        const plugged = Date.now();
        await this.h.startGuest(b.vm);
        return { linked, plugged, spawned: Date.now(), batch: 1 };
      })().then(
        (m) => b.done(undefined, m),
        (e: Error) => b.done(e),
      );
    }
  }

  /** One batch of fresh VMs, plugged: namespaces, veths and port rules (see start). */
  private async plugMany(vms: VmRuntime[]): Promise<{ linked: number; plugged: number }> {
    const nss = vms.map((vm) => this.h.vmNs(vm));
    const long = { timeoutMs: 120_000 };
    await this.h.sh.run(['ip', '-b', '-'], { input: nss.map((ns) => `netns add ${ns}\n`).join(''), ...long });
    // Their resolv.conf is written by the guests' start script (spawnMany), not here: a few file system calls per
    // VM on the server's event loop add up in a burst.
    this.h.remember(nss);
    const nics = vms.flatMap((vm, i) => vm.nics.map((nic) => ({ ns: nss[i]!, nic })));
    await Promise.all(nics.map((x) => this.h.ensureBridge(x.nic.network)));
    // One strict batch for the veths. A stale outer end (a namespace deleted asynchronously) makes it fail: then
    // every outer end of the batch goes (-force: most do not exist) and the batch runs again, once. No process
    // is spent on stale ends that are not there, which is nearly always.
    const add = () =>
      this.h.sh.run(['ip', '-n', this.h.switchNs, '-b', '-'], {
        input: nics
          .map(
            // The VM's end made in the VM's namespace and up at once (the guest's hook then needs no `ip` for
            // it: lightGuestUdhcpc). Measured on this kernel: only the end the request names can come up in it
            // (asking for the peer up fails, ENOTCONN: the veth's two ends are not joined yet).
            ({ ns, nic }) =>
              `link add eth${nic.deviceId} address ${nic.mac} netns ${ns} up type veth peer name n${nic.id}\n` +
              `link set n${nic.id} master ${this.h.bridgeName(nic.network)} up\n`,
          )
          .join(''),
        ...long,
      });
    await add().catch(async () => {
      await this.h.sh.exec(['ip', '-n', this.h.switchNs, '-force', '-b', '-'], {
        input: nics.map((x) => `link del n${x.nic.id}\n`).join(''),
        ...long,
      });
      await add();
    });
    const linked = Date.now();
    await Promise.all(nics.map((x) => this.h.portRules(x.nic, true)));
    return { linked, plugged: Date.now() };
  }

  /** The guests of a plugged batch (see start). Returns the instance names whose guest did not start. */
  private async spawnMany(
    vms: VmRuntime[],
    { linked, plugged }: { linked: number; plugged: number },
  ): Promise<{ failed: Set<string>; marks: StartMarks }> {
    const nss = vms.map((vm) => this.h.vmNs(vm));
    const long = { timeoutMs: 120_000 };
    // Each guest, its pid recorded as it starts. The script's shell runs in a session of its own (setsid), which
    // its guests keep: detached from the server's and from the driver shell's (which a timeout kills).
    // Per VM one fork and two execs (nsenter, udhcpc); the VM's links are up already (plugMany), lo comes up with
    // the lease (lightGuestUdhcpc).
    const script: string[] = [];
    const hooks = await hookScripts();
    // The guests' directories made and their last lease records removed in libuv's threads, side by side, their
    // resolv.conf written by the script's shell: no synchronous file system call per VM on the server's event
    // loop, and no process for them either (a `mkdir` per batch costs more than it saves when batches are small).
    const guests = vms.map((vm) => this.h.guest(vm, hooks, false));
    await Promise.all(guests.flatMap((g) => g?.dirs ?? []).map((d) => mkdir(d, { recursive: true })));
    await Promise.all(guests.map((g) => g && rm(g.stale, { force: true })));
    for (const [i, vm] of vms.entries()) {
      const ns = nss[i]!;
      const g = guests[i];
      const env = g ? Object.entries(g.env).map(([k, v]) => `${k}=${shq(v)}`) : [];
      script.push(
        `if [ -e ${shq(`/run/netns/${ns}`)} ]; then`,
        `  echo ${shq('# written by stacknet; the DHCP hook fills it in')} >${shq(resolvConfPath(ns))}`,
        ...(g
          ? [
              `  ${env.join(' ')} ${g.argv.map(shq).join(' ')} >>${shq(g.log)} 2>&1 </dev/null &`,
              `  echo $! >${shq(g.pidFile)}`,
            ]
          : []),
        `  echo ${shq(`started ${vm.instanceName}`)}`,
        'fi',
      );
    }
    const out = (await this.h.sh.exec(['setsid', 'sh'], { input: `${script.join('\n')}\n`, ...long })).stdout;
    const marks = { linked, plugged, spawned: Date.now(), batch: vms.length };
    const started = new Set(
      out
        .split('\n')
        .filter((l) => l.startsWith('started '))
        .map((l) => l.slice('started '.length)),
    );
    return { failed: new Set(vms.map((vm) => vm.instanceName).filter((n) => !started.has(n))), marks };
  }
}
