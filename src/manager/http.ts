/**
 * The manager's HTTP edge (docs/api.md): routing over the route table (routes.ts), authentication (auth.ts:
 * bearer tokens and TLS client certificates), JSON bodies, and translation of VxnetError into
 * `{"error": {"code", "message"}}` with the catalogue's status. Nothing here decides anything about
 * networks; that is service.ts.
 *
 * Order of checks, so a refused request never causes work: credentials (401) → route (404, or 401 for a
 * caller without credentials) → role (403) → body size (413) → JSON (400) → the route's body schema (400)
 * → the node a worker certificate acts for (403) → the service.
 *
 * `inject()` runs the same pipeline without a socket, for tests; listeners.ts serves the handler on every
 * `--listen` address.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { VxnetError, messageOf, quote } from '../core/errors.ts';
import { warnLine } from '../core/log.ts';
import { requireName } from '../core/names.ts';
import { BodyTooLargeError, MAX_BODY_BYTES, readBody, sendJson } from '../http/server.ts';
import {
  type PresentedCredentials,
  type Principal,
  authenticate,
  authorize,
  presentedBy,
  presentedCertificate,
  requireOwnNode,
} from './auth.ts';
import { type ApiContext, type ApiResult, type Route, routes, split, watchSinceOf } from './routes.ts';
import { NODE_REMOVED, type WatchSink } from './watch-hub.ts';

export type { ApiContext, ApiResult } from './routes.ts';

type Resolved = { route: Route; params: Record<string, string>; query: URLSearchParams; principal: Principal };

/** Auth, routing and permission: everything decided before a body is read. */
function resolve(ctx: ApiContext, method: string, rawUrl: string, presented: PresentedCredentials): Resolved {
  const url = new URL(rawUrl, 'http://manager');
  const principal = authenticate(ctx.security, presented, new Date(), method === 'POST' && url.pathname === '/v1/join');
  const path = split(url.pathname);
  let pathMatched = false;
  for (const r of routes) {
    const params = matchPath(r.segments, path);
    if (!params) continue;
    pathMatched = true;
    if (r.method !== method) continue;
    authorize(r.role, principal, `${method} ${url.pathname}`);
    return { route: r, params, query: url.searchParams, principal };
  }
  // the API's routes are no secret, but a caller without credentials learns nothing more than that
  authorize('worker', principal, `${method} ${url.pathname}`);
  throw new VxnetError(
    'not_found',
    pathMatched ? `method ${method} is not supported on ${url.pathname}.` : `no API route ${method} ${url.pathname}.`,
  );
}

function matchPath(pattern: string[], path: string[]): Record<string, string> | undefined {
  if (pattern.length !== path.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    const s = path[i]!;
    if (p.startsWith(':')) {
      try {
        params[p.slice(1)] = decodeURIComponent(s);
      } catch {
        throw new VxnetError('bad_request', `path segment ${quote(s)} is not valid percent-encoding.`);
      }
    } else if (p !== s) {
      return undefined;
    }
  }
  return params;
}

async function run(ctx: ApiContext, resolved: Resolved, text: string, signal: AbortSignal | undefined): Promise<ApiResult> {
  let body: unknown;
  if (resolved.route.body) {
    if (text.trim() === '') throw new VxnetError('bad_request', 'the request body must be a JSON object.');
    try {
      body = JSON.parse(text);
    } catch (err) {
      throw new VxnetError('bad_request', `the request body is not valid JSON (${messageOf(err)}).`);
    }
  }
  return resolved.route.run!(ctx, { params: resolved.params, query: resolved.query, body, signal, principal: resolved.principal });
}

function toErrorResult(err: unknown, log: ((line: string) => void) | undefined): ApiResult {
  if (err instanceof VxnetError) return { status: err.status, body: { error: err.toJSON() } };
  log?.(`error: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  return { status: 500, body: { error: { code: 'internal', message: `internal error: ${messageOf(err)}` } } };
}

// -----------------------------------------------------------------------------------------------------
// In-process

export interface InjectRequest {
  method: string;
  /** path and query, e.g. "/v1/networks?x=1" */
  path: string;
  token?: string;
  /** a client certificate (PEM), checked against the cluster CA as a TLS handshake would */
  certificate?: string;
  /** an object is sent as JSON, a string as is */
  body?: unknown;
}

/** Runs one non-streaming request through the full pipeline without a socket. */
export async function inject(ctx: ApiContext, req: InjectRequest): Promise<{ status: number; body: any }> {
  const text = req.body === undefined ? '' : typeof req.body === 'string' ? req.body : JSON.stringify(req.body);
  try {
    const presented: PresentedCredentials = {
      authorization: req.token === undefined ? undefined : `Bearer ${req.token}`,
      ...(req.certificate === undefined ? {} : presentedCertificate(ctx.security, req.certificate)),
    };
    const resolved = resolve(ctx, req.method, req.path, presented);
    if (resolved.route.stream) throw new Error('inject() cannot open a watch stream; use a real connection.');
    if (Buffer.byteLength(text) > MAX_BODY_BYTES) throw tooLarge();
    const result = await run(ctx, resolved, text, undefined);
    return { status: result.status, body: result.body };
  } catch (err) {
    const result = toErrorResult(err, ctx.log);
    return { status: result.status, body: result.body };
  }
}

function tooLarge(): VxnetError {
  return new VxnetError('payload_too_large', new BodyTooLargeError().message);
}

// -----------------------------------------------------------------------------------------------------
// node:http

export function createRequestHandler(ctx: ApiContext): RequestListener {
  return (req, res) => {
    void handle(ctx, req, res).catch((err) => {
      ctx.log?.(`error: request handling failed: ${messageOf(err)}`);
      if (!res.headersSent) send(res, toErrorResult(err, ctx.log));
      else res.destroy();
    });
  };
}

async function handle(ctx: ApiContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  let resolved: Resolved;
  const presented = presentedBy(req);
  const started = performance.now();
  try {
    resolved = resolve(ctx, req.method ?? 'GET', req.url ?? '/', presented);
  } catch (err) {
    req.resume();
    const result = toErrorResult(err, ctx.log);
    logRefusal(ctx, req, result, callerOf(principalOrNone(ctx, presented), presented));
    send(res, result);
    ctx.observe?.('unmatched', result.status, (performance.now() - started) / 1000);
    return;
  }
  if (resolved.route.stream) {
    openWatch(ctx, resolved, req, res);
    return;
  }
  const abort = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) abort.abort();
  });
  let result: ApiResult;
  try {
    const text = await readJsonText(req, res);
    result = await run(ctx, resolved, text, abort.signal);
  } catch (err) {
    result = toErrorResult(err, ctx.log);
  }
  logRefusal(ctx, req, result, callerOf(resolved.principal, presented));
  send(res, result);
  ctx.observe?.(`${resolved.route.method} /${resolved.route.segments.join('/')}`, result.status, (performance.now() - started) / 1000);
}

/**
 * A 401 or 403 is logged as a warning with who asked and from where — the identity a credential proves,
 * never the credential — so an operator sees a node with a stale token or a probe from an unknown address.
 */
function logRefusal(ctx: ApiContext, req: IncomingMessage, result: ApiResult, caller: string): void {
  if (result.status !== 401 && result.status !== 403) return;
  const path = (req.url ?? '/').split('?')[0];
  const from = req.socket.remoteAddress === undefined ? 'a local socket' : `${req.socket.remoteAddress}:${req.socket.remotePort}`;
  const message = (result.body as { error?: { message?: string } }).error?.message ?? '';
  ctx.log?.(warnLine(`refused ${req.method} ${path} (${result.status}) from ${caller} at ${from}: ${message}`));
}

/** The principal of refused credentials that were valid (a refusal for the route), or undefined. */
function principalOrNone(ctx: ApiContext, presented: PresentedCredentials): Principal | undefined {
  try {
    return authenticate(ctx.security, presented);
  } catch {
    return undefined;
  }
}

/** Who a request says it is, in words: a certificate's role and name, a token's role, or nobody. */
function callerOf(principal: Principal | undefined, presented: PresentedCredentials): string {
  if (principal?.kind === 'certificate') return `the ${principal.role === 'worker' ? 'node' : principal.role} certificate of ${principal.name}`;
  if (principal?.kind === 'token') return `the ${principal.role} token`;
  if (presented.authorization !== undefined) return 'a bearer token that is not valid here';
  if (presented.certificate) return `a client certificate (${presented.certificate.subject.replace(/\n/g, ', ')})`;
  return 'a caller without credentials';
}

async function readJsonText(req: IncomingMessage, res: ServerResponse): Promise<string> {
  try {
    return await readBody(req, res);
  } catch (err) {
    throw err instanceof BodyTooLargeError ? tooLarge() : err;
  }
}

function send(res: ServerResponse, result: ApiResult): void {
  sendJson(res, result.status, result.body);
}

function openWatch(ctx: ApiContext, resolved: Resolved, req: IncomingMessage, res: ServerResponse): void {
  req.resume();
  let node: string;
  let allNetworks = false;
  let since: number | undefined;
  try {
    since = watchSinceOf(resolved.query);
    const name = resolved.query.get('node');
    if (name === null) throw new VxnetError('bad_request', 'query parameter "node" is required: GET /v1/agent/watch?node=NAME.');
    node = requireName(name, 'node');
    requireOwnNode(resolved.principal, node, 'watch the state');
    ctx.service.getNode(node);
    const networks = resolved.query.get('networks');
    if (networks !== null && networks !== 'all') {
      throw new VxnetError('bad_request', `query parameter "networks" can only be "all", not "${networks}".`);
    }
    allNetworks = networks === 'all';
  } catch (err) {
    const result = toErrorResult(err, ctx.log);
    logRefusal(ctx, req, result, callerOf(resolved.principal, presentedBy(req)));
    send(res, result);
    return;
  }
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
  req.socket.setNoDelay(true);
  req.socket.setKeepAlive(true, 30_000);
  const sink: WatchSink = {
    write: (line) => {
      res.write(line);
    },
    get bufferedBytes() {
      return res.writableLength;
    },
    // snapshots and bursts are streamed in pieces, the next when the connection has sent the last
    onDrain: (listener) => {
      if (res.writableLength === 0) setImmediate(listener);
      else res.once('drain', listener);
    },
    close: (reason) => {
      if (reason === 'manager shutting down' || reason === NODE_REMOVED) res.end();
      else res.destroy();
    },
  };
  const detach = ctx.hub.attach(node, sink, { allNetworks, ...(since === undefined ? {} : { since }) });
  res.on('close', detach);
}
