/**
 * Reads what the test template's guest reported on its serial console (test-template-init.ts lists the lines).
 * For tests and benchmarks of every layer that boots it: the backend, the host agent, the whole API path.
 */

export interface GuestReport {
  /** The STACKNET-LEASE line's fields (ip, mask, router, dns, hostname), once bound. */
  lease?: { ip: string; mask: string; router: string; dns: string[]; hostname: string };
  /** Guest uptime (s) when /init started and when the lease was bound: the boot as the guest saw it. */
  initUptime?: number;
  leaseUptime?: number;
  /** Guest uptime (s) when its DHCP client started (eth0 up): /init → here is its modules, here → lease its DHCP. */
  dhcpUptime?: number;
  /** Each metadata key the router listed, with its value (newlines restored). */
  meta: Record<string, string>;
  /** The user-data as read (decoded); '' when there was none; undefined before the guest asked. */
  userData?: string;
  /** The password server's answer ('' for none); undefined before the guest asked. */
  password?: string;
  /** Each peer the user-data named (`stacknet-ping:`): the address its name resolved to and whether it answered. */
  pings: Record<string, { ip: string; ok: boolean }>;
  /** Uptime when the guest had read everything. */
  readyUptime?: number;
  /**
   * Its TSC (`tsc`, ticks) read between two uptimes (`uptimeFrom`, `uptimeTo`, s): the STACKNET-CLOCK line
   * (test-template-init.ts says what it tells under emulation).
   */
  clock?: { tsc: number; uptimeFrom: number; uptimeTo: number };
  errors: string[];
}

function fields(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of s.matchAll(/(\w[\w-]*)=(\S*)/g)) out[m[1]!] = m[2]!;
  return out;
}

/** The report of the guest's latest boot in `text` (a console log may hold several boots: the last one counts). */
export function parseGuestConsole(text: string): GuestReport {
  const boots = text.split(/(?=STACKNET-INIT )/);
  const last = boots.length > 1 ? boots[boots.length - 1]! : text;
  const r: GuestReport = { meta: {}, pings: {}, errors: [] };
  for (const raw of last.split(/\r?\n/)) {
    const line = raw.replace(/\r$/, '');
    // Unanchored: a kernel message may share the line's start (both write to the same console).
    const m = /STACKNET-([A-Z]+) ?(.*)$/.exec(line);
    if (!m) continue;
    const [, kind, rest] = m as unknown as [string, string, string];
    switch (kind) {
      case 'INIT':
        r.initUptime = Number(fields(rest).uptime);
        break;
      case 'DHCP':
        r.dhcpUptime = Number(fields(rest).uptime);
        break;
      case 'LEASE': {
        const f = fields(rest);
        r.lease = {
          ip: f.ip ?? '',
          mask: f.mask ?? '',
          router: f.router ?? '',
          dns: (f.dns ?? '').split(',').filter(Boolean),
          hostname: f.hostname ?? '',
        };
        break;
      }
      case 'TIMING':
        r.leaseUptime = Number(fields(rest).lease);
        break;
      case 'META': {
        const eq = rest.indexOf('=');
        if (eq > 0) r.meta[rest.slice(0, eq)] = rest.slice(eq + 1).replace(/\\n/g, '\n');
        break;
      }
      case 'USERDATA':
        r.userData = Buffer.from(rest.trim(), 'base64').toString();
        break;
      case 'PASSWORD':
        r.password = rest;
        break;
      case 'PING': {
        const f = fields(rest);
        if (f.name) r.pings[f.name] = { ip: f.ip ?? '', ok: /\sok\s*$/.test(rest) };
        break;
      }
      case 'READY':
        r.readyUptime = Number(fields(rest).uptime);
        break;
      case 'CLOCK': {
        const f = fields(rest);
        const [from, to] = (f.uptime ?? '').split('-').map(Number);
        const tsc = Number(f.tsc);
        if (f.tsc && Number.isSafeInteger(tsc) && Number.isFinite(from) && Number.isFinite(to))
          r.clock = { tsc, uptimeFrom: from!, uptimeTo: to! };
        break;
      }
      case 'ERROR':
        r.errors.push(rest);
        break;
    }
  }
  return r;
}
