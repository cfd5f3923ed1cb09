/** Where dnsmasq's lease file lives (no agent-process imports: tests and tools use it to clean up). */
import { createHash } from 'node:crypto';
import { statfsSync } from 'node:fs';
import { join } from 'node:path';

const tmpfsMagic = 0x01021994;

/**
 * dnsmasq fsyncs its lease file on every change it writes — after each DHCPACK and after each hostsdir pick-up —
 * so on a disk shared with busy databases a new VM's answer waits for two fsyncs (4 ms median, 30 ms tail,
 * measured here under load). The leases need no durability: the agent pre-seeds one for every host of the
 * desired state whenever dnsmasq starts, so after a reboot renewing guests still get their ACK. Hence a tmpfs
 * (`/dev/shm`) directory derived from the data directory (a restarted agent finds the same one).
 */
export function leaseDirFor(dataDir: string): string {
  try {
    if (statfsSync('/dev/shm').type === tmpfsMagic)
      return join(
        '/dev/shm',
        `stacknet-vr-${createHash('sha256').update(dataDir).digest('hex').slice(0, 16)}`,
      );
  } catch {
    /* no /dev/shm */
  }
  return dataDir;
}
