/**
 * The DHCP/DNS probe process, run INSIDE a guest namespace (`startDhcpProbe` spawns it there): one UDP socket
 * on :68 carries DISCOVER/REQUEST for any number of made-up MACs at once (broadcast flag set, so replies come
 * back to this socket), and a background DNS loop counts queries that got no answer in time. Line protocol:
 * one JSON command per stdin line, one JSON reply per stdout line (see dhcp-probe.ts).
 */
import dgram from 'node:dgram';
import { createInterface } from 'node:readline';
import {
  DHCP_ACK,
  DHCP_DISCOVER,
  DHCP_NAK,
  DHCP_OFFER,
  DHCP_REQUEST,
  decodeDhcpReply,
  decodeDnsResponse,
  encodeDhcpRequest,
  encodeDnsQuery,
} from './dhcp-wire.js';

interface Txn {
  id: string;
  mac: string;
  xid: number;
  state: 'discover' | 'request';
  offered?: string;
  serverId?: string;
  discovers: number;
  requests: number;
  started: number;
  retry: NodeJS.Timeout | undefined;
  interval: number;
  maxInterval: number;
  sentAtInterval: number;
  deadline: NodeJS.Timeout;
  hostname?: string;
}

const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');
const now = () => performance.now();
const txns = new Map<number, Txn>();
const sock = dgram.createSocket({ type: 'udp4', reuseAddr: true });

function send(t: Txn) {
  const pkt =
    t.state === 'discover'
      ? encodeDhcpRequest({ type: DHCP_DISCOVER, xid: t.xid, mac: t.mac, hostname: t.hostname })
      : encodeDhcpRequest({
          type: DHCP_REQUEST,
          xid: t.xid,
          mac: t.mac,
          requestedIp: t.offered,
          serverId: t.serverId,
          hostname: t.hostname,
        });
  if (t.state === 'discover') t.discovers++;
  else t.requests++;
  sock.send(pkt, 67, '255.255.255.255', (err) => {
    if (err) out({ warn: `send for ${t.mac}: ${err.message}` });
  });
}

function finish(t: Txn, result: Record<string, unknown>) {
  clearTimeout(t.retry);
  t.retry = undefined;
  clearTimeout(t.deadline);
  txns.delete(t.xid);
  out({
    id: t.id,
    mac: t.mac,
    discovers: t.discovers,
    requests: t.requests,
    ms: now() - t.started,
    ...result,
  });
}

sock.on('message', (msg) => {
  const r = decodeDhcpReply(msg);
  if (!r) return;
  const t = txns.get(r.xid);
  if (!t || r.mac !== t.mac) return;
  if (r.messageType === DHCP_OFFER && t.state === 'discover') {
    t.state = 'request';
    t.offered = r.yiaddr;
    t.serverId = r.serverId;
    send(t);
  } else if (r.messageType === DHCP_ACK && t.state === 'request') {
    finish(t, {
      ok: true,
      ip: r.yiaddr,
      router: r.router,
      dns: r.dns,
      domain: r.domain,
      lease: r.leaseSeconds,
    });
  } else if (r.messageType === DHCP_NAK) {
    finish(t, { ok: false, nak: true, offered: t.offered });
  }
});

let xidSeq = Math.floor(Math.random() * 0x7fffffff);

interface LeaseCmd {
  op: 'lease';
  id: string;
  mac: string;
  retryMs?: number;
  maxRetryMs?: number;
  timeoutMs?: number;
  hostname?: string;
}

/*
 * Resend every `interval` ms, doubling it every 20 sends up to `maxInterval`: a fine resolution while the answer
 * is near, and no flood of queued DISCOVERs while dnsmasq is busy (each one costs it an OFFER afterwards, and the
 * REQUEST would wait behind all of them — the probe would measure its own load).
 */
function schedule(t: Txn) {
  t.retry = setTimeout(() => {
    if (!txns.has(t.xid)) return;
    send(t);
    if (++t.sentAtInterval >= 20 && t.interval < t.maxInterval) {
      t.interval = Math.min(t.interval * 2, t.maxInterval);
      t.sentAtInterval = 0;
    }
    schedule(t);
  }, t.interval);
}

function lease(c: LeaseCmd) {
  const xid = (xidSeq = (xidSeq + 1) >>> 0);
  const t: Txn = {
    id: c.id,
    mac: c.mac.toLowerCase(),
    xid,
    state: 'discover',
    discovers: 0,
    requests: 0,
    started: now(),
    hostname: c.hostname,
    retry: undefined,
    interval: c.retryMs ?? 5,
    maxInterval: Math.max(c.retryMs ?? 5, c.maxRetryMs ?? 100),
    sentAtInterval: 0,
    deadline: setTimeout(
      () => finish(t, { ok: false, timeout: true, offered: t.offered }),
      c.timeoutMs ?? 10_000,
    ),
  };
  txns.set(xid, t);
  send(t);
  schedule(t);
}

// DNS loop: one query every intervalMs; a query unanswered after timeoutMs is lost.
let dns:
  | {
      sock: dgram.Socket;
      timer: NodeJS.Timeout;
      pending: Map<number, number>;
      sent: number;
      answered: number;
      lost: number;
      rcodes: Record<string, number>;
      maxMs: number;
      timeoutMs: number;
    }
  | undefined;

function dnsStart(c: { server: string; name: string; intervalMs?: number; timeoutMs?: number }) {
  const s = dgram.createSocket('udp4');
  let id = 0;
  const state = {
    sock: s,
    pending: new Map<number, number>(),
    sent: 0,
    answered: 0,
    lost: 0,
    rcodes: {} as Record<string, number>,
    maxMs: 0,
    timeoutMs: c.timeoutMs ?? 1000,
    timer: setInterval(() => {
      const t = now();
      for (const [qid, at] of state.pending) {
        if (t - at > state.timeoutMs) {
          state.pending.delete(qid);
          state.lost++;
        }
      }
      id = (id + 1) & 0xffff;
      state.pending.set(id, t);
      state.sent++;
      s.send(encodeDnsQuery(id, c.name), 53, c.server);
    }, c.intervalMs ?? 10),
  };
  s.on('message', (m) => {
    const r = decodeDnsResponse(m);
    if (!r) return;
    const at = state.pending.get(r.id);
    if (at === undefined) return;
    state.pending.delete(r.id);
    state.answered++;
    state.maxMs = Math.max(state.maxMs, now() - at);
    state.rcodes[r.rcode] = (state.rcodes[r.rcode] ?? 0) + 1;
  });
  s.on('error', () => {
    /* ICMP errors on an unconnected socket are not reported; a refused query shows up as lost */
  });
  dns = state;
}

async function dnsStop(id: string) {
  const d = dns;
  if (!d) return out({ id, error: 'dns loop not running' });
  clearInterval(d.timer);
  // queries still in flight get their full timeout before they count as lost
  const waitUntil = now() + d.timeoutMs;
  while (d.pending.size > 0 && now() < waitUntil) await new Promise((r) => setTimeout(r, 10));
  d.lost += d.pending.size;
  d.sock.close();
  dns = undefined;
  out({ id, sent: d.sent, answered: d.answered, lost: d.lost, rcodes: d.rcodes, maxMs: d.maxMs });
}

sock.on('error', (e) => {
  out({ fatal: e.message });
  process.exit(1);
});
sock.bind(68, '0.0.0.0', () => {
  sock.setBroadcast(true);
  sock.setRecvBufferSize?.(4 * 1024 * 1024);
  out({ ready: true });
});

createInterface({ input: process.stdin }).on('line', (line) => {
  if (!line.trim()) return;
  const c = JSON.parse(line) as { op: string; id: string } & Record<string, unknown>;
  if (c.op === 'lease') lease(c as unknown as LeaseCmd);
  else if (c.op === 'dnsStart') {
    dnsStart(c as unknown as { server: string; name: string; intervalMs?: number; timeoutMs?: number });
    out({ id: c.id, ok: true });
  } else if (c.op === 'dnsStop') void dnsStop(c.id);
  else if (c.op === 'ping') out({ id: c.id, ok: true });
  else out({ id: c.id, error: `unknown op ${c.op}` });
});
process.stdin.on('end', () => process.exit(0));
