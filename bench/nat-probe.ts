/**
 * The packet ends of `bench/nat.ts`'s rule-latency scenario, run inside a namespace (one process each side).
 * Times are `process.hrtime.bigint()`: CLOCK_MONOTONIC, the same clock in every network namespace, so the bench
 * compares them with its own.
 *
 *   listen <ip>   stdin `<port>` → bind UDP <ip>:<port>; on the first datagram print `got <port> <ns>` and close
 *   send <ip>     stdin `<port>` → every ms send one datagram to <ip>:<port> from a fresh socket (a fresh source
 *                 port each time, so no conntrack entry made before the rule existed can keep a packet from the
 *                 new DNAT); stdin `stop` → stop sending
 */
import { createSocket, type Socket } from 'node:dgram';
import { createInterface } from 'node:readline';

const [mode, ip] = process.argv.slice(2);
if (!ip || (mode !== 'listen' && mode !== 'send')) throw new Error('usage: nat-probe listen|send <ip>');
const lines = createInterface({ input: process.stdin });

if (mode === 'listen') {
  lines.on('line', (line) => {
    const port = Number(line);
    const s: Socket = createSocket('udp4');
    s.once('message', () => {
      process.stdout.write(`got ${port} ${process.hrtime.bigint()}\n`);
      s.close();
    });
    s.bind(port, ip, () => process.stdout.write(`ready ${port}\n`));
  });
} else {
  let port = 0;
  const payload = Buffer.from('stacknet-nat-probe');
  setInterval(() => {
    if (!port) return;
    const s = createSocket('udp4');
    s.send(payload, port, ip, () => s.close());
  }, 1);
  lines.on('line', (line) => {
    port = line === 'stop' ? 0 : Number(line);
  });
}
lines.on('close', () => process.exit(0));
