/**
 * The links the VM doctor and the network doctor share: the network's routers exist and run, the desired state
 * as the reconciler builds it, and what each router's agent reports and serves (read-only: the doctor never
 * starts, pushes or reconciles anything).
 */
import type { DesiredState } from '../agent/desired-state.js';
import type { InspectQuery, Inspection } from '../agent/inspect.js';
import type { Driver } from '../drivers/types.js';
import { buildDesiredState } from '../routers/desired-state-builder.js';
import { liveRoutersOfNetwork, loadBuildInput, routerById } from '../routers/repository.js';
import type { RouterRow } from '../routers/repository.js';
import { routerRuntime } from '../routers/runtime.js';
import type { Executor } from '../store/db.js';
import type { Step } from './steps.js';
import { fail, ok } from './steps.js';

export interface RouterView {
  row: RouterRow;
  /** The agent's inspection, or why there is none. */
  inspection: Inspection | null;
  error: string | null;
}

/** Step `router`: the network has a router and every one of them is Running. */
export function routerStep(routers: RouterRow[], networkName: string): Step {
  if (routers.length === 0)
    return fail(
      'router',
      `network ${networkName} has no router`,
      'the network is not implemented: deploy or start a VM in it, or restartNetwork',
    );
  const down = routers.filter((r) => r.state !== 'Running');
  const list = routers.map((r) => `${r.name} ${r.state}`).join(', ');
  if (down.length)
    return fail(
      'router',
      list,
      down.map((r) => `startRouter id=${r.uuid} (${r.name})`).join('; ') +
        (down.some((r) => r.state === 'Error') ? '; see listRouters lasterror' : ''),
    );
  return ok('router', list);
}

/** The desired state the routers of the network should hold now, built as the reconciler builds it. */
export async function desiredStateOf(db: Executor, router: RouterRow): Promise<DesiredState> {
  return buildDesiredState(await loadBuildInput(db, router, Number(router.desired_generation)));
}

/**
 * Each router's inspection. A router behind its desired generation with no refusal on record is given a moment
 * (the reconciler may be pushing right now) before the doctor calls the generation unapplied.
 */
export async function inspectRouters(
  db: Executor,
  driver: Driver,
  routers: RouterRow[],
  q: InspectQuery,
  graceMs = 3000,
): Promise<RouterView[]> {
  if (!driver.inspectRouter) return routers.map((row) => ({ row, inspection: null, error: 'no inspection' }));
  return Promise.all(
    routers.map(async (r0) => {
      const deadline = Date.now() + graceMs;
      let row = r0;
      for (;;) {
        try {
          const inspection = await driver.inspectRouter!(await routerRuntime(db, row), q);
          const desired = Number(row.desired_generation);
          const st = inspection.status;
          const refused = st.lastFailure !== null && st.lastFailure.generation >= desired;
          if ((st.generation ?? -1) >= desired || refused || Date.now() > deadline)
            return { row, inspection, error: null };
        } catch (e) {
          if (Date.now() > deadline) return { row, inspection: null, error: (e as Error).message };
        }
        await new Promise((res) => setTimeout(res, 200));
        row = (await routerById(db, Number(row.id))) ?? row;
      }
    }),
  );
}

export async function networkRouters(db: Executor, networkId: number): Promise<RouterRow[]> {
  return (await liveRoutersOfNetwork(db, networkId)).filter((r) => r.state !== 'Destroyed');
}

/**
 * Step `applied`: every router's agent answers and has applied the desired generation; `quarantinedKeys` are the
 * entries (MACs, addresses) whose quarantine counts as a failure here (the VM doctor: the VM's own).
 */
export function appliedStep(views: RouterView[], quarantinedKeys: 'any' | string[]): Step {
  const parts: string[] = [];
  for (const v of views) {
    const desired = Number(v.row.desired_generation);
    if (!v.inspection)
      return fail(
        'applied',
        `${v.row.name}: the agent does not answer (${v.error}); last error on record: ${v.row.last_error ?? 'none'}`,
        `rebootRouter id=${v.row.uuid} (the router is rebuilt from the database)`,
      );
    const st = v.inspection.status;
    const degraded = st.conditions.find((c) => c.type === 'Degraded' && c.status);
    if ((st.generation ?? -1) < desired) {
      const why = st.lastFailure
        ? `refused generation ${st.lastFailure.generation}: ${st.lastFailure.reason}: ${st.lastFailure.message}`
        : degraded
          ? `Degraded ${degraded.reason}: ${degraded.message}`
          : (v.row.last_error ?? 'no error reported');
      return fail(
        'applied',
        `${v.row.name}: applied generation ${st.generation ?? 'none'}, desired ${desired}; ${why}`,
        st.lastFailure
          ? 'the agent refuses the state: fix what its reason names, then restartNetwork (see getRouterHealthCheckResults)'
          : `the reconciler has not brought it up to date: check the management server's log, then rebootRouter id=${v.row.uuid}`,
      );
    }
    const held = (st.quarantined ?? []).filter(
      (q) => quarantinedKeys === 'any' || quarantinedKeys.includes(q.key.toLowerCase()),
    );
    if (held.length)
      return fail(
        'applied',
        `${v.row.name}: generation ${st.generation} applied without ${held
          .map((q) => `${q.section} ${q.key} (${q.field}: ${q.message})`)
          .join('; ')}`,
        'the agent set the entry aside: correct the clashing or malformed row it names (e.g. a duplicate host name), ' +
          'the next generation applies it',
      );
    parts.push(
      `${v.row.name}: generation ${st.generation} applied (desired ${desired}), hash ${(st.hash ?? '').slice(0, 12)}`,
    );
  }
  return ok('applied', parts.join('; '));
}
