import type { CliCommand } from './main.js';
import { apiOptions } from './api-command.js';

const HELP = `usage: stacknet doctor vm <id|name> [--json] [--url URL] [--api-key KEY] [--secret-key SECRET]
       stacknet doctor network <id> [--json] [...]

Walks the chain that gives a VM its address and name and names the first broken link, with the evidence and
what to do: the address in the database and its events, the network's router Running, the router's desired
generation holding the VM, that generation applied, dnsmasq's files, a lease, the anti-spoofing rules on the
VM's port, the router answering DNS for the name, the VM's static NAT and port forwards in nftables.
\`doctor network\` checks the network-level links (routers, generation, every VM in the desired state, hosts
files and leases against the database) and names the VMs whose chain breaks.

It asks the management server (API commands diagnoseVirtualMachine / diagnoseNetwork, root admin), which
reaches the routers' agents on the control network; the same credentials as \`stacknet api\`.
One line per step: OK|FAIL|SKIP  <step>  <evidence>, and under a FAIL: -> what to do.
Exit code: 0 all OK, 1 a step failed, 2 usage or the server refused the call.`;

interface Answer {
  target: 'vm' | 'network';
  id: string;
  name: string;
  firstfailure?: string;
  durationms: number;
  steps: { step: string; status: 'OK' | 'FAIL' | 'SKIP'; evidence: string; advice?: string }[];
  brokenvms?: { id: string; name: string; step: string; evidence: string }[];
}

export const doctorCommand: CliCommand = {
  summary: 'name the first broken link of a VM (or network): stacknet doctor vm <id|name>',
  async run(args) {
    const flags = new Map<string, string>();
    const rest: string[] = [];
    let json = false;
    for (let i = 0; i < args.length; i++) {
      const a = args[i]!;
      if (['--url', '--api-key', '--secret-key'].includes(a)) flags.set(a, args[++i] ?? '');
      else if (a === '--json') json = true;
      else if (a === '--help' || a === '-h') {
        console.log(HELP);
        return 0;
      } else rest.push(a);
    }
    const [kind, target] = rest;
    if ((kind !== 'vm' && kind !== 'network') || !target || rest.length > 2) {
      console.error(HELP);
      return 2;
    }
    const opts = apiOptions(flags);
    if (!opts.apiKey || !opts.secretKey) {
      console.error('stacknet doctor: no API key/secret key (see stacknet api --help)');
      return 2;
    }
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(target);
    const command = kind === 'vm' ? 'diagnoseVirtualMachine' : 'diagnoseNetwork';
    const params: Record<string, string> = uuid || kind === 'network' ? { id: target } : { name: target };
    const { callApi } = await import('../api/client.js');
    let r;
    try {
      r = await callApi(opts, command, params, { method: 'GET' });
    } catch (e) {
      console.error(
        `stacknet doctor: cannot reach ${opts.url}: ${e instanceof Error ? e.message : String(e)}`,
      );
      return 2;
    }
    if (r.status !== 200 || typeof r.body !== 'object' || r.body === null) {
      console.error(typeof r.body === 'string' ? r.body : JSON.stringify(r.body, null, 2));
      return 2;
    }
    const d = (r.body as { diagnosis: Answer }).diagnosis;
    if (json) console.log(JSON.stringify(d, null, 2));
    else {
      const { formatDiagnosis } = await import('../doctor/steps.js');
      console.log(
        formatDiagnosis({
          target: d.target,
          id: d.id,
          name: d.name,
          steps: d.steps,
          firstFailure: d.firstfailure ?? null,
          brokenVms: d.brokenvms,
          durationMs: d.durationms,
        }),
      );
    }
    return d.firstfailure ? 1 : 0;
  },
};
