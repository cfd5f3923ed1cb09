/**
 * Just enough of the DHCPv4 wire format (RFC 2131/2132) to send DISCOVER/REQUEST for made-up MACs and read
 * OFFER/ACK/NAK: a load generator and latency probe that needs no client per MAC. Pure.
 */

export const DHCP_DISCOVER = 1;
export const DHCP_OFFER = 2;
export const DHCP_REQUEST = 3;
export const DHCP_ACK = 5;
export const DHCP_NAK = 6;

const MAGIC = 0x63825363;

export interface DhcpRequestSpec {
  type: typeof DHCP_DISCOVER | typeof DHCP_REQUEST;
  xid: number;
  mac: string;
  /** REQUEST: the offered address (option 50) and the server that offered it (option 54). */
  requestedIp?: string;
  serverId?: string;
  hostname?: string;
  /** Set the broadcast flag so replies reach a client that has no address yet (and our shared socket). */
  broadcast?: boolean;
}

function ipBytes(ip: string): number[] {
  const p = ip.split('.').map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255))
    throw new Error(`bad IPv4 '${ip}'`);
  return p;
}

export function encodeDhcpRequest(spec: DhcpRequestSpec): Buffer {
  const b = Buffer.alloc(300);
  b[0] = 1; // BOOTREQUEST
  b[1] = 1; // ethernet
  b[2] = 6;
  b.writeUInt32BE(spec.xid >>> 0, 4);
  b.writeUInt16BE(spec.broadcast === false ? 0 : 0x8000, 10);
  const mac = spec.mac.split(':').map((x) => parseInt(x, 16));
  if (mac.length !== 6 || mac.some((x) => Number.isNaN(x))) throw new Error(`bad MAC '${spec.mac}'`);
  Buffer.from(mac).copy(b, 28);
  b.writeUInt32BE(MAGIC, 236);
  let o = 240;
  const opt = (code: number, data: number[]) => {
    b[o++] = code;
    b[o++] = data.length;
    for (const x of data) b[o++] = x;
  };
  opt(53, [spec.type]);
  if (spec.requestedIp) opt(50, ipBytes(spec.requestedIp));
  if (spec.serverId) opt(54, ipBytes(spec.serverId));
  if (spec.hostname) opt(12, [...Buffer.from(spec.hostname)]);
  opt(55, [1, 3, 6, 15, 51, 54]);
  b[o++] = 255;
  return b;
}

export interface DhcpReply {
  xid: number;
  mac: string;
  messageType: number;
  yiaddr: string;
  serverId: string | undefined;
  router: string | undefined;
  dns: string[];
  domain: string | undefined;
  leaseSeconds: number | undefined;
}

function ipAt(b: Buffer, off: number): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

/** Parses a BOOTREPLY; undefined if it is not one. */
export function decodeDhcpReply(b: Buffer): DhcpReply | undefined {
  if (b.length < 241 || b[0] !== 2 || b.readUInt32BE(236) !== MAGIC) return undefined;
  const mac = [...b.subarray(28, 34)].map((x) => x.toString(16).padStart(2, '0')).join(':');
  const r: DhcpReply = {
    xid: b.readUInt32BE(4),
    mac,
    messageType: 0,
    yiaddr: ipAt(b, 16),
    serverId: undefined,
    router: undefined,
    dns: [],
    domain: undefined,
    leaseSeconds: undefined,
  };
  let o = 240;
  while (o < b.length) {
    const code = b[o++]!;
    if (code === 0) continue;
    if (code === 255) break;
    const len = b[o++] ?? 0;
    const data = b.subarray(o, o + len);
    o += len;
    if (code === 53) r.messageType = data[0] ?? 0;
    else if (code === 54 && len >= 4) r.serverId = ipAt(data, 0);
    else if (code === 3 && len >= 4) r.router = ipAt(data, 0);
    else if (code === 6) for (let i = 0; i + 4 <= len; i += 4) r.dns.push(ipAt(data, i));
    else if (code === 15) r.domain = data.toString();
    else if (code === 51 && len === 4) r.leaseSeconds = data.readUInt32BE(0);
  }
  return r;
}

/** A minimal DNS A query (RD set) for `name` with id `id`. */
export function encodeDnsQuery(id: number, name: string): Buffer {
  const labels = name
    .split('.')
    .filter(Boolean)
    .flatMap((l) => [l.length, ...Buffer.from(l)]);
  const b = Buffer.alloc(12 + labels.length + 1 + 4);
  b.writeUInt16BE(id & 0xffff, 0);
  b.writeUInt16BE(0x0100, 2);
  b.writeUInt16BE(1, 4);
  Buffer.from(labels).copy(b, 12);
  b.writeUInt16BE(1, 12 + labels.length + 1);
  b.writeUInt16BE(1, 12 + labels.length + 3);
  return b;
}

/** id and rcode of a DNS response. */
export function decodeDnsResponse(b: Buffer): { id: number; rcode: number } | undefined {
  if (b.length < 12 || (b[2]! & 0x80) === 0) return undefined;
  return { id: b.readUInt16BE(0), rcode: b[3]! & 0x0f };
}
