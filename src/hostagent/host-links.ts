/**
 * The host's links as the kernel has them (`ip -j -d link show`), and the guest networks' devices made from a
 * HostNetworkSpec: a bridge on a VLAN sub-interface of the traffic label, or on a VXLAN device whose peers are
 * static all-zero FDB entries (no multicast underlay, no learning). Every function is idempotent: it compares
 * what is there with what the spec says and changes only the difference (so a restarted agent touches nothing
 * that is right, and a deleted bridge or FDB entry comes back).
 */
import { isIP } from 'node:net';
import type { HostNetworkSpec } from '../hosts/protocol.js';
import { publicBridgeName } from '../hosts/protocol.js';
import { assertIfname, createBridge, exec, run } from '../netns/index.js';
import {
  ensureTaggerFilters,
  kernelHas8021q,
  parseVlanDevice,
  removeTagger,
  taggerPeerName,
} from './vlan-tagger.js';

export interface LinkInfo {
  ifname: string;
  master?: string;
  mtu: number;
  flags: string[];
  kind?: string;
  /** vlan: { id, protocol }; vxlan: { id, local, port, learning, link } (ip's JSON names). */
  data?: Record<string, unknown>;
  link?: string;
}

/** Every link of the namespace the agent runs in, by name. */
export async function linkTable(): Promise<Map<string, LinkInfo>> {
  const r = await run(['ip', '-j', '-d', 'link', 'show']);
  const rows = JSON.parse(r.stdout || '[]') as {
    ifname: string;
    master?: string;
    mtu: number;
    flags?: string[];
    link?: string;
    linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
  }[];
  return new Map(
    rows.map((x) => [
      x.ifname,
      {
        ifname: x.ifname,
        ...(x.master ? { master: x.master } : {}),
        mtu: x.mtu,
        flags: x.flags ?? [],
        ...(x.linkinfo?.info_kind ? { kind: x.linkinfo.info_kind } : {}),
        ...(x.linkinfo?.info_data ? { data: x.linkinfo.info_data } : {}),
        ...(x.link ? { link: x.link } : {}),
      },
    ]),
  );
}

/** The device a guest network's bridge sits on: `<label>.<vlan>` or `vx<vni>`. */
export function networkDevice(n: Pick<HostNetworkSpec, 'isolation' | 'vnet' | 'trafficLabel'>): string {
  return n.isolation === 'VLAN' ? `${n.trafficLabel}.${n.vnet}` : `vx${n.vnet}`;
}

/** Makes (or repairs) a guest network's device and bridge; returns what it changed (for the log). */
export async function ensureNetwork(
  n: HostNetworkSpec,
  hostAddress: string,
  links: Map<string, LinkInfo>,
): Promise<string[]> {
  const changed: string[] = [];
  const dev = networkDevice(n);
  const have = links.get(dev);
  // Every change as one `ip -b -` (a network new to the host: device, bridge, MTU, enslaving, up in one process,
  // not six; a host's first VM of the network waits for it). `ip -b` stops at the first failing line.
  for (const name of [dev, n.bridge, n.trafficLabel]) assertIfname(name);
  if (!Number.isInteger(n.vnet) || (n.mtu !== undefined && n.mtu !== null && !Number.isInteger(n.mtu)))
    throw new Error(`network ${n.id}: vnet ${n.vnet} or MTU ${n.mtu} is not a number`);
  for (const a of [hostAddress, ...n.peers])
    if (!isIP(a)) throw new Error(`network ${n.id}: ${a} is not an address`);
  const vlan =
    n.isolation === 'VLAN' ? await vlanDevicePlan(n.trafficLabel, n.vnet, links, n.mtu ?? undefined) : null;
  const right = vlan
    ? vlan.right
    : have?.kind === 'vxlan' &&
      have.data?.id === n.vnet &&
      have.data?.local === hostAddress &&
      have.data?.port === 4789 &&
      have.data?.learning === false &&
      have.data?.link === n.trafficLabel;
  const lines: string[] = [];
  if (have && !right) changed.push(`replaced ${dev}`);
  if (vlan) lines.push(...vlan.lines);
  else if (!right) {
    if (have) lines.push(`link del ${dev}`);
    lines.push(
      `link add ${dev} type vxlan id ${n.vnet} dev ${n.trafficLabel} local ${hostAddress} dstport 4789 nolearning`,
    );
  }
  if (!right) changed.push(`made ${dev}`);
  const br = links.get(n.bridge);
  if (!br) {
    // STP off and forward_delay 0: a new port forwards at once, so the first DHCP DISCOVER is not eaten.
    lines.push(
      `link add name ${n.bridge} type bridge stp_state 0 forward_delay 0`,
      `link set ${n.bridge} up`,
    );
    changed.push(`made ${n.bridge}`);
  } else if (!br.flags.includes('UP')) lines.push(`link set ${n.bridge} up`);
  const devNow = right ? have : undefined;
  if (n.mtu && devNow?.mtu !== n.mtu) lines.push(`link set ${dev} mtu ${n.mtu}`);
  if (devNow?.master !== n.bridge || !devNow.flags.includes('UP')) {
    lines.push(`link set ${dev} master ${n.bridge} up`);
    if (devNow) changed.push(`${dev} back on ${n.bridge}`);
  }
  if (lines.length) await run(['ip', '-b', '-'], { input: `${lines.join('\n')}\n` });
  if (vlan) changed.push(...(await vlan.finish()));
  if (n.isolation === 'VXLAN') changed.push(...(await ensurePeers(dev, n.peers, !right)));
  return changed;
}

/**
 * A VLAN device `<label>.<vid>` as this kernel makes it: an 802.1Q sub-interface, or (no 802.1Q) the eBPF
 * tagger's veth end (vlan-tagger.ts). `right`: it is there, of that kind, id and parent (its MTU, master and
 * state aside); `lines` (`ip -b`): a wrong one deleted and the device made when not right, the tagger's peer up
 * with the MTU; `finish`, once they ran: the tagger's filters (level-based; nothing for 802.1Q).
 */
async function vlanDevicePlan(
  label: string,
  vid: number,
  links: Map<string, LinkInfo>,
  mtu?: number,
): Promise<{ right: boolean; lines: string[]; finish: () => Promise<string[]> }> {
  const dev = `${label}.${vid}`;
  const have = links.get(dev);
  const lines: string[] = [];
  // Said here for both kinds: a veth pair would be made without the label, only its filter would fail.
  if (!links.has(label)) throw new Error(`traffic label ${label} does not exist on this host`);
  if (await kernelHas8021q()) {
    const right = have?.kind === 'vlan' && have.data?.id === vid && have.link === label;
    if (have && !right) lines.push(`link del ${dev}`);
    if (!right) lines.push(`link add link ${label} name ${dev} type vlan id ${vid}`);
    return { right, lines, finish: async () => [] };
  }
  const peer = taggerPeerName(label, vid);
  assertIfname(peer);
  const p = links.get(peer);
  const right = have?.kind === 'veth' && have.link === peer && p?.link === dev;
  if (!right) {
    if (have) lines.push(`link del ${dev}`);
    // A peer left alone (or paired elsewhere) is not deleted with the device.
    if (p && have?.link !== peer) lines.push(`link del ${peer}`);
    lines.push(`link add ${dev} type veth peer name ${peer}`);
  }
  if (mtu && (!right || p?.mtu !== mtu)) lines.push(`link set ${peer} mtu ${mtu}`);
  if (!right || !p?.flags.includes('UP')) lines.push(`link set ${peer} up`);
  return { right, lines, finish: () => ensureTaggerFilters(label, vid, !right) };
}

/** Deletes a VLAN device `<label>.<vid>` of ours, an 802.1Q sub-interface or the tagger's (its veth, its filter). */
async function removeVlanDevice(dev: string): Promise<void> {
  const v = parseVlanDevice(dev);
  if (v) await removeTagger(v.label, v.vid);
  else gone(await exec(['ip', 'link', 'del', dev]));
}

/**
 * The VXLAN device's flooding list: one all-zero FDB entry per peer; stale peers removed. `fresh`: the device was
 * made just now, so it has none to list. The changes as one `bridge -b -`.
 */
async function ensurePeers(dev: string, peers: string[], fresh: boolean): Promise<string[]> {
  const have = new Set<string>();
  if (!fresh) {
    const r = await run(['bridge', '-j', 'fdb', 'show', 'dev', dev]);
    for (const e of JSON.parse(r.stdout || '[]') as { mac: string; dst?: string }[])
      if (e.mac === '00:00:00:00:00:00' && e.dst) have.add(e.dst);
  }
  const changed: string[] = [];
  const lines: string[] = [];
  for (const p of peers)
    if (!have.has(p)) {
      lines.push(`fdb append 00:00:00:00:00:00 dev ${dev} dst ${p}`);
      changed.push(`${dev} peer ${p}`);
    }
  for (const p of have)
    if (!peers.includes(p)) {
      lines.push(`fdb del 00:00:00:00:00:00 dev ${dev} dst ${p}`);
      changed.push(`${dev} peer ${p} removed`);
    }
  if (lines.length) await run(['bridge', '-b', '-'], { input: `${lines.join('\n')}\n` });
  return changed;
}

/** Removes a guest network's bridge and device (missing is fine). */
export async function removeNetwork(bridge: string, dev: string): Promise<void> {
  await removeVlanDevice(dev);
  gone(await exec(['ip', 'link', 'del', bridge]));
}

/** A public VLAN's bridge on the host's public traffic label, and the VLAN sub-interface made for it (if any). */
export interface PublicBridge {
  bridge: string;
  /** `<label>.<vlan>` this agent made (tagged), the label it enslaved (untagged), or null (the label is a bridge). */
  device: string | null;
  /** The device is a VLAN sub-interface of ours (deleted with the bridge), not the label (only released). */
  vlanDevice: boolean;
}

/**
 * Makes (or repairs) the bridge a public VLAN's router interfaces go on: untagged, `brpub` holding the label
 * itself, or the label as is when it is a bridge already (CloudStack's `cloudbr0`: the operator's, never
 * changed); tagged (`vlan` a number, CloudStack's `vlan://N`), `brpub<vlan>` holding `<label>.<vlan>`. The label
 * must exist: an untagged label is enslaved to the bridge, so it should carry no address of its own.
 */
export async function ensurePublicBridge(
  label: string,
  vlan: string,
  links: Map<string, LinkInfo>,
  /** Told what will be made before it is (created.json), unless the label is used as is. */
  record: (b: PublicBridge & { device: string }) => void,
): Promise<PublicBridge & { changed: string[] }> {
  const parent = links.get(label);
  if (!parent) throw new Error(`public traffic label ${label} does not exist on this host`);
  const changed: string[] = [];
  const untagged = vlan === 'untagged';
  if (!untagged && !/^\d+$/.test(vlan)) throw new Error(`public VLAN '${vlan}' is not untagged or a VLAN id`);
  if (untagged && parent.kind === 'bridge') {
    if (!parent.flags.includes('UP')) await run(['ip', 'link', 'set', label, 'up']);
    return { bridge: label, device: null, vlanDevice: false, changed };
  }
  const bridge = publicBridgeName(vlan);
  const dev = untagged ? label : `${label}.${vlan}`;
  record({ bridge, device: dev, vlanDevice: !untagged });
  if (!untagged) {
    assertIfname(dev);
    const plan = await vlanDevicePlan(label, Number(vlan), links);
    if (!plan.right) {
      if (links.has(dev)) changed.push(`replaced ${dev}`);
      changed.push(`made ${dev}`);
      links.delete(dev);
    }
    if (plan.lines.length) await run(['ip', '-b', '-'], { input: `${plan.lines.join('\n')}\n` });
    changed.push(...(await plan.finish()));
  }
  const br = links.get(bridge);
  if (!br) {
    await createBridge(bridge);
    changed.push(`made ${bridge}`);
  } else if (!br.flags.includes('UP')) await run(['ip', 'link', 'set', bridge, 'up']);
  const d = links.get(dev);
  if (d?.master !== bridge || !d.flags.includes('UP')) {
    await run(['ip', 'link', 'set', dev, 'master', bridge, 'up']);
    changed.push(`${dev} on ${bridge}`);
  }
  return { bridge, device: dev, vlanDevice: !untagged, changed };
}

/** Takes a public bridge's device off it: a VLAN sub-interface of ours deleted, an untagged label released. */
export async function releasePublicDevice(b: Omit<PublicBridge, 'bridge'>): Promise<void> {
  if (b.device === null) return;
  if (b.vlanDevice) await removeVlanDevice(b.device);
  else gone(await exec(['ip', 'link', 'set', b.device, 'nomaster']));
}

/** Removes a public bridge made by ensurePublicBridge, its device released first. */
export async function removePublicBridge(b: PublicBridge): Promise<void> {
  if (b.device === null) return;
  await releasePublicDevice(b);
  gone(await exec(['ip', 'link', 'del', b.bridge]));
}

/** A link command's result: fine when it succeeded or the link was not there. */
function gone(r: { code: number | null; stderr: string }): void {
  if (r.code !== 0 && !/Cannot find device|does not exist/.test(r.stderr)) throw new Error(r.stderr.trim());
}
