/**
 * The manager's API routes (docs/api.md), each declared once: method, path, the least privileged caller it
 * admits, the schema of its body (src/core/schema/requests.ts) and what it does. A route with a body schema
 * gets its body checked against it, and typed, before it runs; http.ts does the rest (credentials, routing,
 * reading and parsing the body, answering).
 *
 * Permissions in two steps: the role here is checked before a body is read (auth.ts, `authorize`); a worker
 * certificate may then act only for its own node, checked by the route once the body says which node that is
 * (`requireOwnNode`), so a refused request never causes work.
 */
import type * as v from 'valibot';
import { VxnetError, quote } from '../core/errors.ts';
import { DEFAULT_WAIT_SECONDS } from '../core/model.ts';
import { requireName } from '../core/names.ts';
import { requireBody } from '../core/schema/check.ts';
import {
  CreateEndpointRequestSchema,
  CreateNetworkRequestSchema,
  CreateReservationRequestSchema,
  EndpointStatusRequestSchema,
  DockerContainerRequestSchema,
  HeartbeatRequestSchema,
  JoinRequestSchema,
  RegisterNodeRequestSchema,
  RenewCertificateRequestSchema,
  UpdateNodeRequestSchema,
} from '../core/schema/requests.ts';
import { type DiagnoseReport, type DiagnoseRequest, DiagnoseReportSchema, DiagnoseRequestSchema } from '../core/schema/diagnose.ts';
import { type Access, type Principal, actingNode, caResponse, isAdmin, join, renew, requireOwnNode, rotate, type Security } from './auth.ts';
import type { ManagerService } from './service.ts';
import type { WatchHub } from './watch-hub.ts';
import { DiagnoseRelay } from './watch-stream.ts';

const MAX_WAIT_SECONDS = 3600;

export interface ApiContext {
  service: ManagerService;
  hub: WatchHub;
  security: Security;
  log?: (line: string) => void;
  /** told about every answered request (the metrics, metrics.ts): its route ("GET /v1/networks/:name"), status, duration */
  observe?: (route: string, status: number, seconds: number) => void;
  /** `vxnet trace`'s relay to the agents (watch-stream.ts), made on first use */
  diagnose?: DiagnoseRelay<DiagnoseRequest, DiagnoseReport>;
}

export interface ApiResult {
  status: number;
  body?: unknown;
}

export interface Call<Body = unknown> {
  params: Record<string, string>;
  query: URLSearchParams;
  body: Body;
  /** aborts when the client goes away */
  signal: AbortSignal | undefined;
  principal: Principal;
}

export interface Route {
  method: string;
  segments: string[];
  /** the least privileged caller allowed; worker routes check the node themselves (requireOwnNode) */
  role: Access;
  /** the body's schema: the route reads a JSON body and runs only with one that fits it */
  body?: v.GenericSchema;
  /** the watch stream, served by http.ts itself */
  stream?: boolean;
  run?: (ctx: ApiContext, call: Call) => Promise<ApiResult> | ApiResult;
}

export const routes: Route[] = [
  route('GET', '/v1/info', 'worker', (c) => ok(c.service.info())),
  route('GET', '/v1/ca', 'public', (c) => ok(caResponse(c.security))),
  withBody('POST', '/v1/join', 'join', JoinRequestSchema, async (c, r) => ok(await join(c.security, c.service, r.principal, r.body, c.log))),
  withBody('POST', '/v1/certificates/renew', 'worker', RenewCertificateRequestSchema, async (c, r) => ok(await renew(c.security, c.service, r.principal, r.body, c.log))),
  route('POST', '/v1/tokens/:role/rotate', 'admin', (c, r) => ok(rotate(c.security, r.params.role!, c.log))),
  // Network definitions are no secret from a node: its Docker engine shows every network (a `networks=all`
  // watch), and VNIs cross the underlay in clear. Their endpoints are another matter (requirePart).
  route('GET', '/v1/networks', 'worker', (c) => ok(c.service.listNetworks())),
  // a node creates networks (and deletes those it created) only with the right an admin grants it
  withBody('POST', '/v1/networks', 'worker', CreateNetworkRequestSchema, async (c, r) => ({
    status: 201,
    body: await c.service.createNetwork(r.body, byNode(r.principal)),
  })),
  route('GET', '/v1/networks/:name', 'worker', (c, r) => {
    requirePart(c, r.principal, r.params.name!);
    return ok(c.service.getNetwork(r.params.name!));
  }),
  route('DELETE', '/v1/networks/:name', 'worker', async (c, r) => {
    await c.service.deleteNetwork(r.params.name!, { force: flag(r.query, 'force'), ...byNode(r.principal) });
    return { status: 204 };
  }),
  route('GET', '/v1/nodes', 'worker', (c) => ok(c.service.listNodes())),
  withBody('POST', '/v1/nodes', 'worker', RegisterNodeRequestSchema, async (c, r) => {
    requireOwnNode(r.principal, r.body.name, 'register the node');
    const certificate = actingNode(r.principal) !== undefined && r.principal.kind === 'certificate' ? r.principal : undefined;
    return ok(await c.service.registerNode(r.body, certificate ? { certificate } : {}));
  }),
  route('GET', '/v1/nodes/:name', 'worker', (c, r) => ok(c.service.getNode(r.params.name!))),
  withBody('PATCH', '/v1/nodes/:name', 'admin', UpdateNodeRequestSchema, async (c, r) => {
    await c.service.updateNode(requireName(r.params.name!, 'node'), r.body);
    return ok(c.service.getNode(r.params.name!));
  }),
  route('DELETE', '/v1/nodes/:name', 'admin', async (c, r) => {
    await c.service.deleteNode(r.params.name!, { drain: flag(r.query, 'drain') });
    return { status: 204 };
  }),
  withBody('POST', '/v1/nodes/:name/heartbeat', 'worker', HeartbeatRequestSchema, (c, r) => {
    requireOwnNode(r.principal, r.params.name!, 'send the heartbeat');
    c.service.heartbeat(r.params.name!, r.body);
    return { status: 204 };
  }),
  route('GET', '/v1/endpoints', 'worker', (c, r) => {
    const filter = filterOf(r.query);
    const self = actingNode(r.principal);
    if (self !== undefined && filter.node !== self && !(filter.network !== undefined && takesPart(c, self, filter.network))) {
      throw new VxnetError(
        'forbidden',
        `node ${self} may list its own endpoints (?node=${self}) and those of the networks it takes part in (?network=NAME), no others.`,
      );
    }
    return ok(c.service.listEndpoints(filter));
  }),
  // nodes create and delete the Docker and CNI endpoints of their own node (the agent's Docker and CNI plugins)
  withBody('POST', '/v1/endpoints', 'worker', CreateEndpointRequestSchema, async (c, r) => {
    if (!isAdmin(r.principal)) {
      if (r.body.docker === undefined && r.body.cni === undefined) throw adminOnly('POST /v1/endpoints', 'create Docker and CNI endpoints');
      requireOwnNode(r.principal, r.body.node, 'create the Docker endpoints');
    }
    const endpoint = await c.service.createEndpoint(r.body, {
      waitMs: waitOf(r.query),
      ...(r.signal ? { signal: r.signal } : {}),
      ...(actingNode(r.principal) !== undefined ? { limited: true } : {}),
    });
    return { status: 201, body: endpoint };
  }),
  route('GET', '/v1/endpoints/:id', 'worker', (c, r) => {
    const endpoint = c.service.getEndpoint(r.params.id!);
    if (endpoint.node !== actingNode(r.principal)) requirePart(c, r.principal, endpoint.network);
    return ok(endpoint);
  }),
  route('DELETE', '/v1/endpoints/:id', 'worker', async (c, r) => {
    if (!isAdmin(r.principal)) {
      const endpoint = c.service.getEndpoint(r.params.id!);
      if (endpoint.docker === undefined && endpoint.cni === undefined) throw adminOnly(`DELETE /v1/endpoints/${r.params.id!}`, 'delete Docker and CNI endpoints');
      requireOwnNode(r.principal, endpoint.node, 'delete the Docker endpoints');
    }
    await c.service.deleteEndpoint(r.params.id!, { waitMs: waitOf(r.query), ...(r.signal ? { signal: r.signal } : {}) });
    return { status: 204 };
  }),
  withBody('PUT', '/v1/endpoints/:id/status', 'worker', EndpointStatusRequestSchema, async (c, r) => {
    requireOwnNode(r.principal, c.service.getEndpoint(r.params.id!).node, 'report the status of endpoints');
    await c.service.setEndpointStatus(r.params.id!, r.body);
    return { status: 204 };
  }),
  withBody('PUT', '/v1/endpoints/:id/docker-container', 'worker', DockerContainerRequestSchema, async (c, r) => {
    requireOwnNode(r.principal, c.service.getEndpoint(r.params.id!).node, 'name the containers of Docker endpoints');
    await c.service.setDockerContainer(r.params.id!, r.body.name, r.body.aliases);
    return { status: 204 };
  }),
  // Docker's IPAM on a node: addresses held before the endpoint exists (docs/api.md, "Reservations")
  withBody('POST', '/v1/reservations', 'worker', CreateReservationRequestSchema, async (c, r) => {
    requireOwnNode(r.principal, r.body.node, 'reserve addresses');
    return { status: 201, body: await c.service.createReservation(r.body, { limited: actingNode(r.principal) !== undefined }) };
  }),
  route('GET', '/v1/reservations', 'worker', (c, r) => {
    const filter = filterOf(r.query);
    const self = actingNode(r.principal);
    if (self !== undefined && filter.node !== self) {
      throw new VxnetError('forbidden', `node ${self} may list its own reservations (?node=${self}), no others.`);
    }
    return ok(c.service.listReservations(filter));
  }),
  route('DELETE', '/v1/reservations/:network/:ip', 'worker', async (c, r) => {
    const node = r.query.get('node');
    if (node !== null) requireName(node, 'node');
    const self = actingNode(r.principal);
    if (self !== undefined && node !== self) {
      throw new VxnetError('forbidden', `node ${self} may only release its own reservations: add ?node=${self}.`);
    }
    await c.service.deleteReservation(r.params.network!, r.params.ip!, node === null ? {} : { node });
    return { status: 204 };
  }),
  { method: 'GET', segments: split('/v1/agent/watch'), role: 'worker', stream: true },
  // `vxnet trace`: an admin asks a node's agent to read its kernel; the agent answers with its certificate
  withBody('POST', '/v1/nodes/:name/diagnose', 'admin', DiagnoseRequestSchema, async (c, r) => {
    const node = requireName(r.params.name!, 'node');
    c.service.getNode(node);
    const timeout = r.query.get('timeout');
    const seconds = timeout === null ? DIAGNOSE_TIMEOUT_SECONDS : Number(timeout);
    if (timeout !== null && (timeout.trim() === '' || !Number.isFinite(seconds) || seconds <= 0 || seconds > MAX_DIAGNOSE_TIMEOUT_SECONDS)) {
      throw new VxnetError('bad_request', `query parameter "timeout" must be a number of seconds above 0 and at most ${MAX_DIAGNOSE_TIMEOUT_SECONDS}, not ${quote(timeout)}.`);
    }
    return ok(await relayOf(c).ask(node, r.body, Math.round(seconds * 1000), r.signal));
  }),
  withBody('PUT', '/v1/nodes/:name/diagnose/:id', 'worker', DiagnoseReportSchema, (c, r) => {
    requireOwnNode(r.principal, r.params.name!, 'answer diagnose requests');
    relayOf(c).answer(r.params.name!, r.params.id!, r.body);
    return { status: 204 };
  }),
];

/** How long a diagnose request waits for the agent by default: its reads take well under a second. */
const DIAGNOSE_TIMEOUT_SECONDS = 5;
const MAX_DIAGNOSE_TIMEOUT_SECONDS = 60;

function relayOf(ctx: ApiContext): DiagnoseRelay<DiagnoseRequest, DiagnoseReport> {
  return (ctx.diagnose ??= new DiagnoseRelay((node, line) => ctx.hub.sendToNode(node, line)));
}

function route(method: string, path: string, role: Access, run: NonNullable<Route['run']>): Route {
  return { method, segments: split(path), role, run };
}

/** A route whose body must fit `schema`; `run` gets it checked and typed. */
function withBody<S extends v.GenericSchema>(
  method: string,
  path: string,
  role: Access,
  schema: S,
  run: (ctx: ApiContext, call: Call<v.InferOutput<S>>) => Promise<ApiResult> | ApiResult,
): Route {
  return { method, segments: split(path), role, body: schema, run: (ctx, call) => run(ctx, { ...call, body: requireBody(schema, call.body) }) };
}

export function split(path: string): string[] {
  return path.split('/').filter((s) => s !== '');
}

function ok(body: unknown): ApiResult {
  return { status: 200, body };
}

/** The node a worker certificate acts for, as the service's `by` option; nothing for admins. */
function byNode(principal: Principal): { by?: string } {
  const self = actingNode(principal);
  return self === undefined ? {} : { by: self };
}

/** What a node certificate may not do on a route it otherwise may use. */
function adminOnly(what: string, exception: string): VxnetError {
  return new VxnetError('forbidden', `${what} needs the admin token or an admin certificate; a node may only ${exception} of its own node.`);
}

/** Whether `node` has an endpoint on `network`: then its watch stream shows it the network anyway. */
function takesPart(ctx: ApiContext, node: string, network: string): boolean {
  try {
    return ctx.service.listEndpoints({ network }).some((e) => e.node === node);
  } catch {
    return false; // an unknown network: no part in it
  }
}

/** For worker certificates: refuses a read about a network the caller's node takes no part in. */
function requirePart(ctx: ApiContext, principal: Principal, network: string): void {
  const self = actingNode(principal);
  if (self !== undefined && !takesPart(ctx, self, network)) {
    throw new VxnetError('forbidden', `node ${self} has no endpoint on network ${network}, so it may not read about it.`);
  }
}

function filterOf(query: URLSearchParams): { network?: string; node?: string } {
  const filter: { network?: string; node?: string } = {};
  const network = query.get('network');
  const node = query.get('node');
  if (network !== null) filter.network = network;
  if (node !== null) filter.node = node;
  return filter;
}

function waitOf(query: URLSearchParams): number {
  const text = query.get('wait');
  if (text === null) return DEFAULT_WAIT_SECONDS * 1000;
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value < 0 || value > MAX_WAIT_SECONDS) {
    throw new VxnetError('bad_request', `query parameter "wait" must be a number of seconds from 0 to ${MAX_WAIT_SECONDS}, not ${quote(text)}.`);
  }
  return Math.round(value * 1000);
}

function flag(query: URLSearchParams, name: string): boolean {
  const text = query.get(name);
  if (text === null || text === 'false' || text === '0') return false;
  if (text === 'true' || text === '1' || text === '') return true;
  throw new VxnetError('bad_request', `query parameter "${name}" must be true or false, not ${quote(text)}.`);
}

/**
 * The watch route's `since=REV` (src/manager/watch-resume.ts): the revision up to which the agent holds
 * everything, absent when it wants a snapshot.
 */
export function watchSinceOf(query: URLSearchParams): number | undefined {
  const text = query.get('since');
  if (text === null) return undefined;
  if (!/^\d{1,15}$/.test(text)) throw new VxnetError('bad_request', `query parameter "since" must be a revision (a whole number), not ${quote(text)}.`);
  return Number(text);
}
