import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { CliCommand } from './main.js';

const HELP = `usage: stacknet api <command> [key=value ...] [--url URL] [--api-key KEY] [--secret-key SECRET]
                   [--no-wait] [--xml] [--post]

Calls the CloudStack API with a signed request and prints the JSON response. Async commands are waited for
and their job result printed (--no-wait prints the jobid at once).

Credentials, first found wins: flags; STACKNET_URL / STACKNET_API_KEY / STACKNET_SECRET_KEY; the profile file
STACKNET_CONFIG or ~/.stacknet/config.json: {"url": "...", "apiKey": "...", "secretKey": "..."}.
Default URL: http://127.0.0.1:8080/client/api

example: stacknet api listAccounts listall=true
         stacknet api createDomain name=engineering`;

interface Profile {
  url?: string;
  apiKey?: string;
  secretKey?: string;
}

function readProfile(): Profile {
  const path = process.env.STACKNET_CONFIG ?? join(homedir(), '.stacknet', 'config.json');
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Profile;
  } catch {
    return {};
  }
}

/** URL and keys from `--url`/`--api-key`/`--secret-key`, the environment, then the profile file (see HELP). */
export function apiOptions(flags: Map<string, string>): { url: string; apiKey: string; secretKey: string } {
  const profile = readProfile();
  const env = process.env;
  // Empty values count as unset, so an exported-but-empty variable does not hide the profile file.
  return {
    url: flags.get('--url') || env.STACKNET_URL || profile.url || 'http://127.0.0.1:8080/client/api',
    apiKey: flags.get('--api-key') || env.STACKNET_API_KEY || profile.apiKey || '',
    secretKey: flags.get('--secret-key') || env.STACKNET_SECRET_KEY || profile.secretKey || '',
  };
}

export const apiCommand: CliCommand = {
  summary: 'call the CloudStack API (signed), e.g. stacknet api listAccounts listall=true',
  async run(args) {
    if (args.length === 0 || args.includes('--help')) {
      console.log(HELP);
      return args.length === 0 ? 2 : 0;
    }
    const flags = new Map<string, string>();
    const switches = new Set<string>();
    const rest: string[] = [];
    for (let i = 0; i < args.length; i++) {
      const a = args[i]!;
      if (['--url', '--api-key', '--secret-key'].includes(a)) flags.set(a, args[++i] ?? '');
      else if (a.startsWith('--') && a.includes('='))
        flags.set(a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1));
      else if (a.startsWith('--')) switches.add(a);
      else rest.push(a);
    }
    const [command, ...pairs] = rest;
    if (!command) {
      console.error('stacknet api: give a command name');
      return 2;
    }
    const params: Record<string, string> = {};
    for (const p of pairs) {
      const i = p.indexOf('=');
      if (i <= 0) {
        console.error(`stacknet api: '${p}' is not key=value`);
        return 2;
      }
      params[p.slice(0, i)] = p.slice(i + 1);
    }
    const opts = apiOptions(flags);
    if (!opts.apiKey || !opts.secretKey) {
      console.error('stacknet api: no API key/secret key (see stacknet api --help)');
      return 2;
    }
    const { callApi, waitForJob } = await import('../api/client.js');
    if (switches.has('--xml')) params.response = 'xml';
    let r;
    try {
      r = await callApi(opts, command, params, { method: switches.has('--post') ? 'POST' : 'GET' });
    } catch (e) {
      console.error(`stacknet api: cannot reach ${opts.url}: ${e instanceof Error ? e.message : String(e)}`);
      return 1;
    }
    if (typeof r.body === 'string') {
      (r.status === 200 ? console.log : console.error)(r.body);
      return r.status === 200 ? 0 : 1;
    }
    if (r.status !== 200) {
      console.error(JSON.stringify(r.body, null, 2));
      return 1;
    }
    const body = r.body as Record<string, unknown>;
    const jobid =
      typeof body.jobid === 'string' && Object.keys(body).every((k) => k === 'jobid' || k === 'id');
    if (!jobid || switches.has('--no-wait')) {
      console.log(JSON.stringify(body, null, 2));
      return 0;
    }
    const job = await waitForJob(opts, body.jobid as string);
    if (job.jobstatus === 1) {
      console.log(JSON.stringify(job.jobresult ?? {}, null, 2));
      return 0;
    }
    console.error(JSON.stringify(job.jobresult ?? job, null, 2));
    return 1;
  },
};
