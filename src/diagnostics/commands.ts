/**
 * runDiagnostics and getDiagnosticsData (CloudStack 4.12 / 4.14, root admin only, async): run inside a router
 * through its agent's control API (`src/agent/diagnostics.ts`). Any router row is a target, whatever its role
 * (a network's router, a VPC tier's, an internal LB appliance).
 */
import { defineCommand, objectResult, refParams, rootAdminOnly } from '../api/command.js';
import type { AnyCommand, CommandContext } from '../api/command.js';
import { AgentUnreachableError, collectDiagnostics, runDiagnostics } from '../agent/control-client.js';
import type { ControlError } from '../agent/control-client.js';
import { checkRunRequest } from '../agent/diagnostics-argv.js';
import { CloudStackError, invalidParameter } from '../errors/catalogue.js';
import { formatIp, parseIp } from '../ipam/index.js';
import { getSetting } from '../configuration/repository.js';
import type { RouterRow } from '../routers/repository.js';
import { routerRuntime } from '../routers/runtime.js';
import { vmRuntimeFor } from '../vms/runtime-services.js';
import { keepArchive } from './archives.js';

/** The router a command diagnoses, running on a driver that has a real one, and the address of its agent. */
async function target(ctx: CommandContext, uuid: string, command: string) {
  const r: RouterRow | undefined = await ctx.store.db
    .selectFrom('routers')
    .selectAll()
    .where('uuid', '=', uuid)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!r) throw invalidParameter('targetid', uuid, `Unable to find a system vm with id ${uuid}`);
  // CloudStack: a stopped system VM has no host, and that is what it answers.
  if (r.state !== 'Running')
    throw new CloudStackError(
      'InternalError',
      `Unable to find host for virtual machine instance: ${r.name} (the router is ${r.state}; start it with startRouter)`,
    );
  const { driver } = vmRuntimeFor(ctx.store);
  if (driver.name === 'simulator')
    throw new CloudStackError(
      'UnsupportedService',
      `${command} is not supported on a simulated router: ${r.name} runs on the simulator driver, which runs no ` +
        `ping, traceroute or arping and holds no nftables ruleset or interfaces; run the server with --driver netns`,
    );
  const rt = await routerRuntime(ctx.store.db, r);
  return { row: r, addr: `${rt.controlIp}:${rt.controlPort}`, secret: rt.secret };
}

/** What the agent's refusal or silence means to the caller. */
type AgentAnswer<T> = ({ ok: true } & T) | ({ ok: false; httpStatus: number } & ControlError);

async function agentCall<T>(name: string, call: () => Promise<AgentAnswer<T>>): Promise<T> {
  let r: AgentAnswer<T>;
  try {
    r = await call();
  } catch (e) {
    if (e instanceof AgentUnreachableError)
      throw new CloudStackError('ResourceUnavailable', `router ${name}: ${e.message}; retry once it is back`);
    throw e;
  }
  if (r.ok) return r;
  if (r.httpStatus === 400)
    throw new CloudStackError(
      'InvalidParameterValue',
      `Invalid value for parameter ${r.field ?? 'params'}: the router ${name} refused it: ${r.message}`,
    );
  throw new CloudStackError(
    'InternalError',
    `Diagnostics command execution failed on router ${name}: ${r.error}: ${r.message}`,
  );
}

const runDiagnosticsCommand = defineCommand({
  name: 'runDiagnostics',
  roles: rootAdminOnly,
  params: refParams('runDiagnostics', ['targetid', 'type', 'ipaddress', 'params']),
  jobInstance: (p) => ({ type: 'SystemVm', id: p.targetid }),
  async handler(p, ctx) {
    // Checked before the router is looked at, so a bad request is a 431 whatever the target.
    const ip = formatIp(parseIp(p.ipaddress.trim(), 'ipaddress'));
    const c = checkRunRequest({ type: p.type.trim().toLowerCase(), ipaddress: ip, params: p.params });
    if (!c.ok) {
      const given = c.field === 'type' ? p.type : c.field === 'params' ? p.params : p.ipaddress;
      throw invalidParameter(c.field, given, c.message);
    }
    const t = await target(ctx, p.targetid, 'runDiagnostics');
    const r = await agentCall(t.row.name, () => runDiagnostics(t.addr, t.secret, c.value));
    return objectResult('diagnostics', { exitcode: r.exitcode, stderr: r.stderr, stdout: r.stdout });
  },
});

/** A requested file: relative to the router's state directory, never climbing out of it. */
function checkFile(f: string): string {
  const name = f.trim();
  const why =
    'only files under the router\'s own state directory can be collected: give a path relative to it, without ".."';
  if (name === '' || name.startsWith('/') || name.includes('\0') || name.split('/').includes('..'))
    throw invalidParameter('files', f, why);
  return name;
}

const getDiagnosticsDataCommand = defineCommand({
  name: 'getDiagnosticsData',
  roles: rootAdminOnly,
  params: refParams('getDiagnosticsData', ['targetid', 'files']),
  jobInstance: (p) => ({ type: 'SystemVm', id: p.targetid }),
  async handler(p, ctx) {
    const files = (p.files ?? []).filter((f) => f.trim() !== '').map(checkFile);
    const t = await target(ctx, p.targetid, 'getDiagnosticsData');
    const timeoutSeconds = Number(await getSetting(ctx.store.db, 'diagnostics.data.retrieval.timeout'));
    const r = await agentCall(t.row.name, () =>
      collectDiagnostics(t.addr, t.secret, { files, timeoutSeconds }),
    );
    const url = await keepArchive(ctx.store, Buffer.from(r.archive, 'base64'), ctx.now());
    return objectResult('diagnostics', { url });
  },
});

export const commands: AnyCommand[] = [runDiagnosticsCommand, getDiagnosticsDataCommand];
