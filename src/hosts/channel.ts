/**
 * The host agents' channel on the server's API port (protocol.ts): `POST /v1/hosts/register`,
 * `POST /v1/hosts/<uuid>/heartbeat`, `GET /v1/hosts/<uuid>/desired?after=&waitMs=`. JSON in and out; refusals
 * are `{error, message}` with 400 (malformed), 401 (no or wrong token or secret, unknown host) or 403
 * (registration closed: `host.registration.token` empty).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Store } from '../store/db.js';
import { transaction } from '../store/db.js';
import { getSetting } from '../configuration/repository.js';
import type { HostDesiredState, HostHeartbeat, HostRegistration, HostStatus } from './protocol.js';
import { hostSecret, liveHostByUuid, registerHost, RegistrationRefused, sameSecret } from './repository.js';
import type { HostRow } from './repository.js';
import { bumpedState, onHostBumped, refreshAllHosts, refreshHostDesired } from './desired-state.js';
import { hostEvent, hostHeartbeat } from './service.js';

/** The longest a desired-state long-poll is held (the agent asks again). */
const MAX_WAIT_MS = 120_000;
/** How often a held long-poll looks for a bump made by another server. */
const SHORT_POLL_MS = 1_000;

class Refusal extends Error {
  constructor(
    readonly httpStatus: number,
    readonly error: string,
    message: string,
  ) {
    super(message);
  }
}

function parseJson(body: unknown): Record<string, unknown> {
  if (typeof body !== 'string' || body === '')
    throw new Refusal(400, 'BadRequest', 'a JSON body is required');
  try {
    const v = JSON.parse(body) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // answered below
  }
  throw new Refusal(400, 'BadRequest', 'the body is not a JSON object');
}

function checkRegistration(b: Record<string, unknown>): HostRegistration {
  const bad = (field: string, why: string) => new Refusal(400, 'BadRequest', `${field}: ${why}`);
  const str = (k: string, max = 255) => {
    const v = b[k];
    if (typeof v !== 'string' || v === '' || v.length > max)
      throw bad(k, `a string of 1 to ${max} characters`);
    return v;
  };
  const opt = (k: string) => (b[k] === undefined || b[k] === null ? undefined : str(k, 36));
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(str('name'))) throw bad('name', 'letters, digits, dots, dashes');
  if (!/^[0-9a-fA-F:.]+$/.test(str('address', 64))) throw bad('address', 'an IPv4 or IPv6 address');
  const port = b.port;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535)
    throw bad('port', 'an integer from 1 to 65535');
  const c = b.capabilities as Record<string, unknown> | undefined;
  if (!c || typeof c !== 'object') throw bad('capabilities', 'an object (protocol.ts HostCapabilities)');
  for (const k of ['cpus', 'cpuSpeedMhz', 'memoryMiB'])
    if (typeof c[k] !== 'number' || !((c[k] as number) >= 0)) throw bad(`capabilities.${k}`, 'a number ≥ 0');
  const labels = c.trafficLabels as Record<string, unknown> | undefined;
  if (!labels || typeof labels.guest !== 'string') throw bad('capabilities.trafficLabels.guest', 'a string');
  if (!Array.isArray(c.vmBackends)) throw bad('capabilities.vmBackends', "a list ('libvirt', 'netns')");
  return {
    token: typeof b.token === 'string' ? b.token : '',
    name: b.name as string,
    zoneId: opt('zoneId'),
    podId: opt('podId'),
    clusterId: opt('clusterId'),
    address: b.address as string,
    port,
    capabilities: c as unknown as HostRegistration['capabilities'],
  };
}

/** The host named in the path, when the request carries its secret. */
async function authenticate(
  store: Store,
  req: FastifyRequest<{ Params: { uuid: string } }>,
): Promise<HostRow> {
  const auth = req.headers.authorization;
  const m = typeof auth === 'string' ? /^Bearer (.+)$/.exec(auth) : null;
  if (!m) throw new Refusal(401, 'Unauthorized', 'missing Authorization: Bearer <host secret>');
  const h = await liveHostByUuid(store.db, req.params.uuid);
  const secret = h ? await hostSecret(store.db, h) : null;
  // The same comparison whether or not the host exists, so timing tells nothing about which hosts do.
  const ok = sameSecret(m[1]!, secret ?? '\u0000no host');
  if (!h)
    throw new Refusal(
      401,
      'Unauthorized',
      `no host ${req.params.uuid} is registered (deleted?); register again`,
    );
  if (!secret || !ok)
    throw new Refusal(
      401,
      'Unauthorized',
      `the secret is not host ${h.name}'s (re-registered since?); register again`,
    );
  return h;
}

function checkStatus(v: unknown): HostStatus {
  const s = v as HostStatus | undefined;
  if (
    !s ||
    typeof s !== 'object' ||
    !Array.isArray(s.vms) ||
    !Array.isArray(s.routers) ||
    !Array.isArray(s.errors)
  )
    throw new Refusal(
      400,
      'BadRequest',
      'status: an object with vms, routers and errors (protocol.ts HostStatus)',
    );
  if (s.appliedGeneration !== null && typeof s.appliedGeneration !== 'number')
    throw new Refusal(400, 'BadRequest', 'status.appliedGeneration: a number or null');
  return s;
}

async function answer(
  res: FastifyReply,
  fn: () => Promise<{ code?: number; body?: unknown }>,
  log?: (m: string) => void,
) {
  try {
    const r = await fn();
    if (r.code === 304) return res.code(304).send();
    return res
      .code(r.code ?? 200)
      .type('application/json')
      .send(JSON.stringify(r.body));
  } catch (e) {
    if (e instanceof Refusal || e instanceof RegistrationRefused) {
      const error = e instanceof Refusal ? e.error : e.httpStatus === 400 ? 'BadRequest' : 'Forbidden';
      return res
        .code(e.httpStatus)
        .type('application/json')
        .send(JSON.stringify({ error, message: e.message }));
    }
    log?.(`host channel: ${(e as Error).stack ?? String(e)}`);
    return res
      .code(500)
      .type('application/json')
      .send(
        JSON.stringify({ error: 'InternalError', message: 'the server failed; its log has the details' }),
      );
  }
}

/** Waits until the host's generation passes `after`, or `waitMs` pass. */
async function generationAfter(
  store: Store,
  hostId: number,
  after: number,
  waitMs: number,
): Promise<boolean> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const h = await store.db
      .selectFrom('hosts')
      .select('desired_generation')
      .where('id', '=', hostId)
      .executeTakeFirst();
    if (!h) return false;
    if (Number(h.desired_generation) > after) return true;
    const left = deadline - Date.now();
    if (left <= 0) return false;
    await new Promise<void>((resolve) => {
      const t = setTimeout(done, Math.min(left, SHORT_POLL_MS));
      const off = onHostBumped(hostId, done);
      function done() {
        clearTimeout(t);
        off();
        resolve();
      }
    });
  }
}

export function serveHostChannel(app: FastifyInstance, store: Store, log?: (m: string) => void): void {
  app.post('/v1/hosts/register', (req, res) =>
    answer(
      res,
      async () => {
        const reg = checkRegistration(parseJson(req.body));
        const token = String(await getSetting(store.db, 'host.registration.token'));
        if (token === '')
          throw new Refusal(
            403,
            'RegistrationClosed',
            'no registration token is set: run `stacknet host token` on the server (or set host.registration.token)',
          );
        if (!sameSecret(reg.token, token))
          throw new Refusal(
            401,
            'Unauthorized',
            "the registration token is not the server's (stacknet host token)",
          );
        const now = Date.now();
        const r = await transaction(store, (tx) => registerHost(tx, reg, now));
        await hostEvent(
          store,
          r.host,
          r.created ? 'HOST.ADD' : 'HOST.RECONNECT',
          `Host ${r.host.name} (${r.host.address}:${r.host.port}) registered${r.created ? '' : ' again'}`,
        );
        await refreshAllHosts(store.db, Number(r.host.zone_id));
        return {
          body: {
            id: Number(r.host.id),
            uuid: r.host.uuid,
            secret: r.secret,
            pingInterval: Number(await getSetting(store.db, 'ping.interval')),
          },
        };
      },
      log,
    ),
  );

  app.post<{ Params: { uuid: string } }>('/v1/hosts/:uuid/heartbeat', (req, res) =>
    answer(
      res,
      async () => {
        const h = await authenticate(store, req);
        const hb = parseJson(req.body) as unknown as HostHeartbeat;
        const status = checkStatus(hb.status);
        await hostHeartbeat(store, h, status, Date.now());
        const now = await store.db
          .selectFrom('hosts')
          .select('desired_generation')
          .where('id', '=', h.id)
          .executeTakeFirstOrThrow();
        return {
          body: {
            desiredGeneration: Number(now.desired_generation),
            pingInterval: Number(await getSetting(store.db, 'ping.interval')),
          },
        };
      },
      log,
    ),
  );

  app.get<{ Params: { uuid: string }; Querystring: { after?: string; waitMs?: string } }>(
    '/v1/hosts/:uuid/desired',
    (req, res) =>
      answer(
        res,
        async () => {
          const h = await authenticate(store, req);
          const int = (v: string | undefined, name: string) => {
            if (v === undefined || v === '') return undefined;
            if (!/^\d{1,15}$/.test(v))
              throw new Refusal(400, 'BadRequest', `${name}: a non-negative integer`);
            return Number(v);
          };
          const after = int(req.query.after, 'after');
          const waitMs = Math.min(int(req.query.waitMs, 'waitMs') ?? 30_000, MAX_WAIT_MS);
          let d: HostDesiredState | null = await refreshHostDesired(store.db, Number(h.id));
          if (after !== undefined && d && d.generation <= after) {
            if (!(await generationAfter(store, Number(h.id), after, waitMs))) return { code: 304 };
            // Woken by a bump of this process: its state as bumped, not computed again.
            d =
              (await bumpedState(store.db, Number(h.id))) ??
              (await refreshHostDesired(store.db, Number(h.id)));
          }
          if (!d) throw new Refusal(401, 'Unauthorized', `host ${h.name} was deleted`);
          return { body: d };
        },
        log,
      ),
  );
}
