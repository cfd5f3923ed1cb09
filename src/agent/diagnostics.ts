/**
 * runDiagnostics and getDiagnosticsData inside the router: `POST /v1/diagnostics/run` runs ping, traceroute or
 * arping from the router's namespace (an argv built by `diagnostics-argv.ts`, never a shell, killed at its
 * timeout, output capped); `POST /v1/diagnostics/data` packs the router's files and the output of a few commands
 * into a tar.gz. Contract: src/agent/README.md, "Diagnostics".
 */
import { spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { RouterAgent } from './agent.js';
import {
  capOutput,
  checkRunRequest,
  diagnosticsArgv,
  DIAGNOSTICS_OUTPUT_CAP,
  DIAGNOSTICS_RUN_TIMEOUT_SECONDS,
} from './diagnostics-argv.js';
import type { DiagnosticsDataResult, DiagnosticsRunResult } from './diagnostics-argv.js';
import { listDir } from './system.js';

/** The archive is refused beyond this (it travels base64 in one JSON answer). */
const ARCHIVE_MAX_BYTES = 32 * 1024 * 1024;
/** How many of the agent's recent log lines the archive carries. */
const LOG_LINES = 2000;

const recentLog: string[] = [];

/** Remember one line of the agent's log (the CLI's `log` calls this): the archive's `agent.log`. */
export function recordAgentLog(line: string): void {
  recentLog.push(line);
  if (recentLog.length > LOG_LINES) recentLog.splice(0, recentLog.length - LOG_LINES);
}

/** Runs argv without a shell; SIGKILL at the timeout (exit code 124, as timeout(1)); each stream capped. */
export function runBounded(argv: string[], timeoutMs: number): Promise<DiagnosticsRunResult> {
  return new Promise((done) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    let errBytes = 0;
    let timedOut = false;
    // Keep a little more than the cap so capOutput can say how much there was.
    const keep = (into: Buffer[], n: number, c: Buffer) => {
      if (n < DIAGNOSTICS_OUTPUT_CAP * 2) into.push(c);
      return n + c.length;
    };
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (c: Buffer) => (outBytes = keep(out, outBytes, c)));
    child.stderr.on('data', (c: Buffer) => (errBytes = keep(err, errBytes, c)));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    const finish = (code: number, extra = '') => {
      clearTimeout(timer);
      done({
        stdout: capOutput(Buffer.concat(out).toString('utf8')),
        stderr: capOutput(Buffer.concat(err).toString('utf8') + extra),
        exitcode: String(code),
      });
    };
    child.on('error', (e) => finish(127, `${argv[0]}: ${e.message}\n`));
    child.on('close', (code, signal) => {
      if (timedOut) finish(124, `[stacknet: ${argv[0]} killed after ${timeoutMs / 1000} s]\n`);
      else finish(code ?? (signal ? 128 : 1));
    });
  });
}

export interface DiagnosticsAnswer {
  code: number;
  body: unknown;
}

const refusal = (code: number, error: string, message: string, field?: string): DiagnosticsAnswer => ({
  code,
  body: { error, message, ...(field ? { field } : {}) },
});

async function run(body: unknown): Promise<DiagnosticsAnswer> {
  const c = checkRunRequest(body);
  if (!c.ok) return refusal(400, 'InvalidDiagnosticsRequest', c.message, c.field);
  const t = c.value.timeoutSeconds ?? DIAGNOSTICS_RUN_TIMEOUT_SECONDS;
  return { code: 200, body: await runBounded(diagnosticsArgv(c.value), t * 1000) };
}

/** A requested extra file as its real path inside the data directory, or why not. */
function extraFile(dataDir: string, f: unknown): { path: string; name: string } | { problem: string } {
  if (typeof f !== 'string' || f === '') return { problem: 'a file name must be a non-empty string' };
  const root = realpathSync(dataDir);
  const wanted = isAbsolute(f) ? f : resolve(root, f);
  let real: string;
  try {
    real = realpathSync(wanted);
  } catch {
    return { problem: `${f} does not exist in the router's state directory` };
  }
  // Symlinks are followed first, so a link pointing outside is refused like a path that is outside.
  if (!real.startsWith(root + sep))
    return { problem: `${f} is outside the router's state directory; only files under it can be collected` };
  if (!statSync(real).isFile()) return { problem: `${f} is not a regular file` };
  return { path: real, name: relative(root, real) };
}

async function collect(agent: RouterAgent, body: unknown): Promise<DiagnosticsAnswer> {
  const b = (body ?? {}) as { files?: unknown; timeoutSeconds?: unknown };
  if (b.files !== undefined && !Array.isArray(b.files))
    return refusal(400, 'InvalidDiagnosticsRequest', 'files must be a list of file names', 'files');
  const dataDir = agent.options.dataDir;
  const extras: { path: string; name: string }[] = [];
  for (const f of (b.files ?? []) as unknown[]) {
    const x = extraFile(dataDir, f);
    if ('problem' in x) return refusal(400, 'FileNotAllowed', x.problem, 'files');
    extras.push(x);
  }
  const t = typeof b.timeoutSeconds === 'number' && b.timeoutSeconds > 0 ? b.timeoutSeconds : 60;
  const staging = mkdtempSync(join(dataDir, '.diagnostics-'));
  try {
    const entries: string[] = [];
    const missing: string[] = [];
    const put = (name: string, text: string) => {
      mkdirSync(dirname(join(staging, name)), { recursive: true });
      writeFileSync(join(staging, name), text);
      entries.push(name);
    };
    const copy = (from: string, name: string) => {
      if (!existsSync(from)) return void missing.push(name);
      mkdirSync(dirname(join(staging, name)), { recursive: true });
      copyFileSync(from, join(staging, name));
      entries.push(name);
    };
    // The services' files (each applier's, README "Files in the data dir"); haproxy/keepalived only when used.
    for (const f of [
      'dnsmasq.conf',
      'dhcphosts.txt',
      'names.txt',
      'dnsmasq.log',
      'nftables.nft',
      'netfilter.nft',
      'keepalived.conf',
      'haproxy.cfg',
      'quarantined.json',
    ]) {
      const optional = f === 'keepalived.conf' || f === 'haproxy.cfg' || f === 'netfilter.nft';
      if (optional && !existsSync(join(dataDir, f))) continue;
      copy(join(dataDir, f), f);
    }
    for (const d of ['dhcphosts.d', 'names.d'])
      for (const f of listDir(join(dataDir, d))) copy(join(dataDir, d, f), `${d}/${f}`);
    copy(join(agent.leaseDir, 'dnsmasq.leases'), 'dnsmasq.leases');
    put('agent-status.json', `${JSON.stringify(agent.status(true), null, 2)}\n`);
    put('agent.log', recentLog.length ? `${recentLog.join('\n')}\n` : '');
    const commands: [string, string[]][] = [
      ['nft-list-ruleset.txt', ['nft', 'list', 'ruleset']],
      ['ip-addr.txt', ['ip', 'addr']],
      ['ip-route.txt', ['ip', 'route']],
      ['ip6-route.txt', ['ip', '-6', 'route']],
    ];
    for (const [name, argv] of commands) {
      const r = await runBounded(argv, t * 1000);
      put(name, `$ ${argv.join(' ')}\n# exit code ${r.exitcode}\n${r.stdout}${r.stderr}`);
    }
    for (const x of extras) copy(x.path, `files/${x.name}`);
    put('MANIFEST.txt', `${entries.join('\n')}\n${missing.map((m) => `${m} (absent)`).join('\n')}\n`);
    const out = `${staging}.tar.gz`;
    try {
      const r = await runBounded(['tar', '-czf', out, '-C', staging, '.'], t * 1000);
      if (r.exitcode !== '0')
        return refusal(500, 'ArchiveFailed', `tar exited ${r.exitcode}: ${r.stderr.trim()}`);
      const bytes = statSync(out).size;
      if (bytes > ARCHIVE_MAX_BYTES)
        return refusal(
          413,
          'ArchiveTooLarge',
          `the archive is ${bytes} bytes, more than ${ARCHIVE_MAX_BYTES}; ask for fewer files`,
        );
      const result: DiagnosticsDataResult = {
        archive: readFileSync(out).toString('base64'),
        bytes,
        entries,
        missing,
      };
      return { code: 200, body: result };
    } finally {
      rmSync(out, { force: true });
    }
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/** The `/v1/diagnostics/*` endpoints (control-server.ts routes them here once authenticated). */
export async function diagnosticsEndpoint(
  agent: RouterAgent,
  method: string | undefined,
  path: string,
  body: unknown,
): Promise<DiagnosticsAnswer> {
  if (method !== 'POST') return refusal(405, 'MethodNotAllowed', 'use POST');
  if (path === '/v1/diagnostics/run') return run(body);
  if (path === '/v1/diagnostics/data') return collect(agent, body);
  return refusal(404, 'NotFound', `no such endpoint ${method} ${path}`);
}
