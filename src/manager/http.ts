/**
 * The manager's HTTP edge (docs/api.md): routing, bearer-token auth, strict JSON bodies, and translation of
 * VxnetError into `{"error": {"code", "message"}}` with the catalogue's status. Nothing here decides
 * anything about networks; that is service.ts.
 *
 * Order of checks, so a refused request never causes work: token (401) → route (404) → role (403) →
 * body size (413) → JSON and field types (400) → the service.
 *
 * `inject()` runs the same pipeline without a socket, for tests; `listenAll()` serves the handler on every
 * `--listen` address (TCP `ADDR:PORT` or `unix:/path`).
 */
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { type IncomingMessage, type RequestListener, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { VxnetError, messageOf } from '../core/errors.ts';
import { requireName } from '../core/names.ts';
import type { ManagerService } from './service.ts';
import { type Role, type Tokens, authenticate } from './tokens.ts';
import {
  parseCreateEndpointRequest,
  parseCreateNetworkRequest,
  parseEndpointStatusRequest,
  parseHeartbeatRequest,
  parseRegisterNodeRequest,
} from './validation.ts';
import type { WatchHub, WatchSink } from './watch-hub.ts';

export const MAX_BODY_BYTES = 1024 * 1024;
/** `?wait=` default for endpoint create and delete (docs/api.md). */
export const DEFAULT_WAIT_SECONDS = 30;
const MAX_WAIT_SECONDS = 3600;

export interface ApiContext {
  service: ManagerService;
  hub: WatchHub;
  tokens: Tokens;
  log?: (line: string) => void;
}

export interface ApiResult {
  status: number;
  body?: unknown;
}

interface Call {
  params: Record<string, string>;
  query: URLSearchParams;
  body: unknown;
  /** aborts when the client goes away */
  signal: AbortSignal | undefined;
}

interface Route {
  method: string;
  segments: string[];
  /** the least privileged role allowed */
  role: Role;
  hasBody?: boolean;
  stream?: boolean;
  run?: (ctx: ApiContext, call: Call) => Promise<ApiResult> | ApiResult;
}

const routes: Route[] = [
  route('GET', '/v1/info', 'worker', (c) => ok(c.service.info())),
  route('GET', '/v1/networks', 'worker', (c) => ok(c.service.listNetworks())),
  route('POST', '/v1/networks', 'admin', async (c, r) => ({ status: 201, body: await c.service.createNetwork(parseCreateNetworkRequest(r.body)) }), true),
  route('GET', '/v1/networks/:name', 'worker', (c, r) => ok(c.service.getNetwork(r.params.name!))),
  route('DELETE', '/v1/networks/:name', 'admin', async (c, r) => {
    await c.service.deleteNetwork(r.params.name!, { force: flag(r.query, 'force') });
    return { status: 204 };
  }),
  route('GET', '/v1/nodes', 'worker', (c) => ok(c.service.listNodes())),
  route('POST', '/v1/nodes', 'worker', async (c, r) => ok(await c.service.registerNode(parseRegisterNodeRequest(r.body))), true),
  route('GET', '/v1/nodes/:name', 'worker', (c, r) => ok(c.service.getNode(r.params.name!))),
  route('POST', '/v1/nodes/:name/heartbeat', 'worker', (c, r) => {
    c.service.heartbeat(r.params.name!, parseHeartbeatRequest(r.body));
    return { status: 204 };
  }, true),
  route('GET', '/v1/endpoints', 'worker', (c, r) => {
    const filter: { network?: string; node?: string } = {};
    const network = r.query.get('network');
    const node = r.query.get('node');
    if (network !== null) filter.network = network;
    if (node !== null) filter.node = node;
    return ok(c.service.listEndpoints(filter));
  }),
  route('POST', '/v1/endpoints', 'admin', async (c, r) => {
    const req = parseCreateEndpointRequest(r.body);
    const endpoint = await c.service.createEndpoint(req, { waitMs: waitOf(r.query), ...(r.signal ? { signal: r.signal } : {}) });
    return { status: 201, body: endpoint };
  }, true),
  route('GET', '/v1/endpoints/:id', 'worker', (c, r) => ok(c.service.getEndpoint(r.params.id!))),
  route('DELETE', '/v1/endpoints/:id', 'admin', async (c, r) => {
    await c.service.deleteEndpoint(r.params.id!, { waitMs: waitOf(r.query), ...(r.signal ? { signal: r.signal } : {}) });
    return { status: 204 };
  }),
  route('PUT', '/v1/endpoints/:id/status', 'worker', async (c, r) => {
    await c.service.setEndpointStatus(r.params.id!, parseEndpointStatusRequest(r.body));
    return { status: 204 };
  }, true),
  { method: 'GET', segments: split('/v1/agent/watch'), role: 'worker', stream: true },
];

function route(method: string, path: string, role: Role, run: NonNullable<Route['run']>, hasBody = false): Route {
  return { method, segments: split(path), role, run, hasBody };
}

function ok(body: unknown): ApiResult {
  return { status: 200, body };
}

function split(path: string): string[] {
  return path.split('/').filter((s) => s !== '');
}

type Resolved = { route: Route; params: Record<string, string>; query: URLSearchParams };

/** Auth, routing and permission: everything decided before a body is read. */
function resolve(ctx: ApiContext, method: string, rawUrl: string, authorization: string | undefined): Resolved {
  const role = authenticate(authorization, ctx.tokens);
  if (!role) throw new VxnetError('unauthorized', 'missing or unknown bearer token: send "Authorization: Bearer TOKEN".');
  const url = new URL(rawUrl, 'http://manager');
  const path = split(url.pathname);
  let pathMatched = false;
  for (const r of routes) {
    const params = matchPath(r.segments, path);
    if (!params) continue;
    pathMatched = true;
    if (r.method !== method) continue;
    if (r.role === 'admin' && role !== 'admin') {
      throw new VxnetError('forbidden', `${method} ${url.pathname} needs the admin token; the worker token cannot do it.`);
    }
    return { route: r, params, query: url.searchParams };
  }
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
        throw new VxnetError('bad_request', `path segment "${s}" is not valid percent-encoding.`);
      }
    } else if (p !== s) {
      return undefined;
    }
  }
  return params;
}

async function run(ctx: ApiContext, resolved: Resolved, text: string, signal: AbortSignal | undefined): Promise<ApiResult> {
  let body: unknown;
  if (resolved.route.hasBody) {
    if (text.trim() === '') throw new VxnetError('bad_request', 'the request body must be a JSON object.');
    try {
      body = JSON.parse(text);
    } catch (err) {
      throw new VxnetError('bad_request', `the request body is not valid JSON (${messageOf(err)}).`);
    }
  }
  return resolved.route.run!(ctx, { params: resolved.params, query: resolved.query, body, signal });
}

function toErrorResult(err: unknown, log: ((line: string) => void) | undefined): ApiResult {
  if (err instanceof VxnetError) return { status: err.status, body: { error: err.toJSON() } };
  log?.(`internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  return { status: 500, body: { error: { code: 'internal', message: `internal error: ${messageOf(err)}` } } };
}

function waitOf(query: URLSearchParams): number {
  const text = query.get('wait');
  if (text === null) return DEFAULT_WAIT_SECONDS * 1000;
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value < 0 || value > MAX_WAIT_SECONDS) {
    throw new VxnetError('bad_request', `query parameter "wait" must be a number of seconds from 0 to ${MAX_WAIT_SECONDS}, not "${text}".`);
  }
  return Math.round(value * 1000);
}

function flag(query: URLSearchParams, name: string): boolean {
  const text = query.get(name);
  if (text === null || text === 'false' || text === '0') return false;
  if (text === 'true' || text === '1' || text === '') return true;
  throw new VxnetError('bad_request', `query parameter "${name}" must be true or false, not "${text}".`);
}

// -----------------------------------------------------------------------------------------------------
// In-process

export interface InjectRequest {
  method: string;
  /** path and query, e.g. "/v1/networks?x=1" */
  path: string;
  token?: string;
  /** an object is sent as JSON, a string as is */
  body?: unknown;
}

/** Runs one non-streaming request through the full pipeline without a socket. */
export async function inject(ctx: ApiContext, req: InjectRequest): Promise<{ status: number; body: any }> {
  const text = req.body === undefined ? '' : typeof req.body === 'string' ? req.body : JSON.stringify(req.body);
  try {
    const resolved = resolve(ctx, req.method, req.path, req.token === undefined ? undefined : `Bearer ${req.token}`);
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
  return new VxnetError('payload_too_large', `the request body is larger than ${MAX_BODY_BYTES} bytes.`);
}

// -----------------------------------------------------------------------------------------------------
// node:http

export function createRequestHandler(ctx: ApiContext): RequestListener {
  return (req, res) => {
    void handle(ctx, req, res).catch((err) => {
      ctx.log?.(`request handling failed: ${messageOf(err)}`);
      if (!res.headersSent) send(res, toErrorResult(err, ctx.log));
      else res.destroy();
    });
  };
}

async function handle(ctx: ApiContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  let resolved: Resolved;
  try {
    resolved = resolve(ctx, req.method ?? 'GET', req.url ?? '/', req.headers.authorization);
  } catch (err) {
    req.resume();
    send(res, toErrorResult(err, ctx.log));
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
    const text = await readBody(req, res);
    result = await run(ctx, resolved, text, abort.signal);
  } catch (err) {
    result = toErrorResult(err, ctx.log);
  }
  send(res, result);
}

function readBody(req: IncomingMessage, res: ServerResponse): Promise<string> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) {
    // Do not read (or wait for) a body we will refuse; close the connection after answering.
    res.setHeader('connection', 'close');
    req.resume();
    return Promise.reject(tooLarge());
  }
  return new Promise((resolvePromise, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) over = true;
      else chunks.push(chunk);
    });
    req.on('end', () => (over ? reject(tooLarge()) : resolvePromise(Buffer.concat(chunks).toString('utf8'))));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, result: ApiResult): void {
  if (res.destroyed) return;
  if (result.body === undefined) {
    res.writeHead(result.status);
    res.end();
    return;
  }
  const text = JSON.stringify(result.body);
  res.writeHead(result.status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function openWatch(ctx: ApiContext, resolved: Resolved, req: IncomingMessage, res: ServerResponse): void {
  req.resume();
  let node: string;
  try {
    const name = resolved.query.get('node');
    if (name === null) throw new VxnetError('bad_request', 'query parameter "node" is required: GET /v1/agent/watch?node=NAME.');
    node = requireName(name, 'node');
    ctx.service.getNode(node);
  } catch (err) {
    send(res, toErrorResult(err, ctx.log));
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
    close: (reason) => {
      if (reason === 'manager shutting down') res.end();
      else res.destroy();
    },
  };
  const detach = ctx.hub.attach(node, sink);
  res.on('close', detach);
}

// -----------------------------------------------------------------------------------------------------
// Listening

export type ListenAddress = { kind: 'tcp'; host: string | undefined; port: number } | { kind: 'unix'; path: string };

/** Parses a `--listen` value: `ADDR:PORT`, `[V6ADDR]:PORT`, `:PORT` or `unix:/path`. */
export function parseListen(value: string): ListenAddress {
  if (value.startsWith('unix:')) {
    const path = value.slice('unix:'.length);
    if (path === '') throw new Error(`--listen ${value}: missing socket path after "unix:".`);
    return { kind: 'unix', path };
  }
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]]*)):(\d{1,5})$/.exec(value);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) throw new Error(`--listen ${value}: expected ADDR:PORT or unix:/path.`);
  const host = match[1] ?? match[2];
  return { kind: 'tcp', host: host === '' ? undefined : host, port };
}

export interface Listeners {
  /** what was actually bound, e.g. "127.0.0.1:40123" or "unix:/run/vxnet.sock" */
  addresses: string[];
  close(): Promise<void>;
}

/** Serves `handler` on every address; on failure closes what was already opened. */
export async function listenAll(handler: RequestListener, listen: string[]): Promise<Listeners> {
  const opened: { server: Server; unixPath?: string }[] = [];
  const addresses: string[] = [];
  const close = async () => {
    await Promise.all(
      opened.map(
        ({ server, unixPath }) =>
          new Promise<void>((done) => {
            server.close(() => {
              if (unixPath) removeSocket(unixPath);
              done();
            });
            server.closeAllConnections();
          }),
      ),
    );
  };
  try {
    for (const text of listen) {
      const address = parseListen(text);
      const server = createServer(handler);
      if (address.kind === 'unix') {
        removeSocket(address.path);
        await listenOn(server, { path: address.path });
        opened.push({ server, unixPath: address.path });
        chmodSync(address.path, 0o600);
        addresses.push(`unix:${address.path}`);
      } else {
        await listenOn(server, address.host === undefined ? { port: address.port } : { host: address.host, port: address.port });
        opened.push({ server });
        const info = server.address() as AddressInfo;
        addresses.push(info.family === 'IPv6' ? `[${info.address}]:${info.port}` : `${info.address}:${info.port}`);
      }
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { addresses, close };
}

function listenOn(server: Server, options: { path: string } | { host?: string; port: number }): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(options, () => {
      server.off('error', reject);
      resolvePromise();
    });
  });
}

/** Removes a stale socket left by a previous run; refuses to delete anything that is not a socket. */
function removeSocket(path: string): void {
  let stat;
  try {
    stat = lstatSync(path);
  } catch {
    return;
  }
  if (!stat.isSocket()) throw new Error(`cannot listen on unix:${path}: the file exists and is not a socket.`);
  unlinkSync(path);
}
