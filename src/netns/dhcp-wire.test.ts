import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  DHCP_ACK,
  DHCP_DISCOVER,
  DHCP_REQUEST,
  decodeDhcpReply,
  decodeDnsResponse,
  encodeDhcpRequest,
  encodeDnsQuery,
} from './dhcp-wire.js';

/** The option bytes of a packet (after the magic cookie), as code → data. */
function options(b: Buffer): Map<number, Buffer> {
  const m = new Map<number, Buffer>();
  let o = 240;
  while (o < b.length && b[o] !== 255) {
    const code = b[o]!;
    const len = b[o + 1]!;
    m.set(code, b.subarray(o + 2, o + 2 + len));
    o += 2 + len;
  }
  return m;
}

describe('dhcp-wire', () => {
  it('encodes a DISCOVER with the broadcast flag, chaddr and message type', () => {
    const b = encodeDhcpRequest({
      type: DHCP_DISCOVER,
      xid: 0x01020304,
      mac: '02:AA:00:00:00:01',
      hostname: 'vm1',
    });
    assert.equal(b.length, 300);
    assert.deepEqual([b[0], b[1], b[2]], [1, 1, 6]);
    assert.equal(b.readUInt32BE(4), 0x01020304);
    assert.equal(b.readUInt16BE(10), 0x8000);
    assert.equal(b.subarray(28, 34).toString('hex'), '02aa00000001');
    assert.equal(b.readUInt32BE(236), 0x63825363);
    const o = options(b);
    assert.deepEqual([...o.get(53)!], [DHCP_DISCOVER]);
    assert.equal(o.get(12)!.toString(), 'vm1');
    assert.equal(o.has(50), false);
  });

  it('encodes a REQUEST with the requested address and server identifier', () => {
    const b = encodeDhcpRequest({
      type: DHCP_REQUEST,
      xid: 7,
      mac: '02:aa:00:00:00:01',
      requestedIp: '10.1.2.3',
      serverId: '10.1.2.1',
    });
    const o = options(b);
    assert.deepEqual([...o.get(53)!], [DHCP_REQUEST]);
    assert.deepEqual([...o.get(50)!], [10, 1, 2, 3]);
    assert.deepEqual([...o.get(54)!], [10, 1, 2, 1]);
  });

  it('rejects malformed MACs and addresses', () => {
    assert.throws(() => encodeDhcpRequest({ type: DHCP_DISCOVER, xid: 1, mac: '02:aa:00' }), /bad MAC/);
    assert.throws(
      () =>
        encodeDhcpRequest({
          type: DHCP_REQUEST,
          xid: 1,
          mac: '02:aa:00:00:00:01',
          requestedIp: '10.1.2.300',
        }),
      /bad IPv4/,
    );
  });

  it('decodes a BOOTREPLY: type, yiaddr, router, DNS, domain, lease, server id', () => {
    const b = Buffer.alloc(300);
    b[0] = 2;
    b.writeUInt32BE(42, 4);
    Buffer.from([10, 1, 2, 3]).copy(b, 16);
    Buffer.from('02aa00000001', 'hex').copy(b, 28);
    b.writeUInt32BE(0x63825363, 236);
    const opts = [
      [53, 1, DHCP_ACK],
      [54, 4, 10, 1, 2, 1],
      [3, 4, 10, 1, 2, 1],
      [6, 8, 10, 1, 2, 1, 8, 8, 8, 8],
      [15, 3, ...Buffer.from('lab')],
      [51, 4, 0, 0, 14, 16],
      [255],
    ].flat();
    Buffer.from(opts).copy(b, 240);
    const r = decodeDhcpReply(b);
    assert.deepEqual(r, {
      xid: 42,
      mac: '02:aa:00:00:00:01',
      messageType: DHCP_ACK,
      yiaddr: '10.1.2.3',
      serverId: '10.1.2.1',
      router: '10.1.2.1',
      dns: ['10.1.2.1', '8.8.8.8'],
      domain: 'lab',
      leaseSeconds: 3600,
    });
    assert.equal(
      decodeDhcpReply(encodeDhcpRequest({ type: DHCP_DISCOVER, xid: 1, mac: '02:aa:00:00:00:01' })),
      undefined,
    );
  });

  it('encodes a DNS query and reads a response id and rcode', () => {
    const q = encodeDnsQuery(0x1234, 'vm1.lab.internal');
    assert.equal(q.readUInt16BE(0), 0x1234);
    assert.equal(q.subarray(12, 12 + 18).toString('latin1'), '\x03vm1\x03lab\x08internal\x00');
    assert.equal(decodeDnsResponse(q), undefined, 'a query is not a response');
    const resp = Buffer.from(q);
    resp[2] = 0x81;
    resp[3] = 0x83;
    assert.deepEqual(decodeDnsResponse(resp), { id: 0x1234, rcode: 3 });
  });
});
