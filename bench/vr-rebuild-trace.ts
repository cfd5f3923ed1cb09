/**
 * Where a rebuild's time goes (issue 15): the whole state of N hosts pushed to a brand-new router, nobody asking.
 * Prints the push's wall time and the agent's own per-applier check + apply time (its /metrics), three times.
 *   node --import tsx bench/vr-rebuild-trace.ts [N]
 */
import { loadavg } from 'node:os';
import { exec, killPid, newRunPrefix, TestNet } from '../src/netns/index.js';
import type { HostSpec } from '../src/agent/desired-state.js';
import { VrLab } from '../test/agent/vr-lab.js';

const n = Number(process.argv[2] ?? 50000);
const hex = (x: number) => x.toString(16).padStart(2, '0');
const hosts: HostSpec[] = Array.from({ length: n }, (_, i) => ({
  mac: `02:7e:00:${hex((i >> 16) & 255)}:${hex((i >> 8) & 255)}:${hex(i & 255)}`,
  ipv4: `10.30.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`,
  hostname: `t${i}`,
  defaultNic: true,
  vmId: `vm-t${i}`,
}));
const lab = new VrLab({ cidr: '10.30.0.0/16', domain: 'trace.internal' });
Object.defineProperty(lab, 'net', { value: new TestNet(`shd-${newRunPrefix(5).slice(3)}`) });
try {
  await lab.setup();
  for (let r = 0; r < 3; r++) {
    const vr = await lab.router(`t${r}`);
    const state = lab.state(1, hosts);
    state.router.guestIp = '10.30.0.1';
    state.network.gateway = '10.30.0.1';
    const t = performance.now();
    const res = await vr.push(state, { timeoutMs: 120_000 });
    const ms = performance.now() - t;
    const m = await fetch(`http://${vr.control}/metrics`, {
      headers: { authorization: `Bearer ${vr.secret}` },
    });
    const text = await m.text();
    const sums = [
      ...text.matchAll(/stacknet_agent_applier_duration_seconds_sum\{applier="(\w+)",result="ok"\} (\S+)/g),
    ]
      .map(([, a, s]) => `${a} ${(Number(s) * 1000).toFixed(0)}`)
      .join(', ');
    const whole = /stacknet_agent_apply_duration_seconds_sum\{result="ok"\} (\S+)/.exec(text)?.[1];
    console.log(
      `N=${n} push ${ms.toFixed(0)} ms ok=${res.ok}; apply ${(Number(whole) * 1000).toFixed(0)} ms: ${sums} (ms); load ${loadavg()[0]!.toFixed(1)}`,
    );
    await vr.agent.stop();
    // Its dnsmasq processes too (the agent leaves the data plane running when it stops).
    const pids = (await exec(['ip', 'netns', 'pids', vr.ns])).stdout.split(/\s+/).filter(Boolean);
    await Promise.all(pids.map((p) => killPid(Number(p), 1000)));
  }
} finally {
  await lab.cleanup();
}
