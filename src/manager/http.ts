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
 * `inject()` runs the same pipeline without a socket, for tests; `listenAll()` serves the handler on every
 * `--listen` address: TCP `ADDR:PORT` with TLS (client certificates requested), or plain `unix:/path`.
 */
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { type IncomingMessage, type RequestListener, type Server, type ServerResponse, createServer } from 'node:http';
import { type Server as TlsServer, createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { VxnetError, messageOf, quote } from '../core/errors.ts';
import { requireName } from '../core/names.ts';
import {
  type PresentedCredentials,
  type Principal,
  authenticate,
  authorize,
  presentedBy,
  presentedCertificate,
  requireOwnNode,
} from './auth.ts';
import { type ApiContext, type ApiResult, type Route, routes, split } from './routes.ts';
import { NODE_REMOVED, type WatchSink } from './watch-hub.ts';

export type { ApiContext, ApiResult } from './routes.ts';

export const MAX_BODY_BYTES = 1024 * 1024;
/**
 * How long an idle client connection is kept open (Node's default is 5 s). Agents heartbeat every 5 s: with
 * the default, each heartbeat opened a new TLS connection, a handshake each — measured with 1,000 agents
 * (bench/scale), 1.2 ms of manager CPU per heartbeat and a quarter of a core with nothing happening. Clients
 * close idle connections before this (src/client/client.ts), so they never reuse one the manager is closing.
 */
export const KEEP_ALIVE_TIMEOUT_MS = 75_000;
/** How much of a refused, oversized body is read and discarded before the connection is closed instead. */
const MAX_DISCARD_BYTES = 16 * 1024 * 1024;

type Resolved = { route: Route; params: Record<string, string>; query: URLSearchParams; principal: Principal };

/** Auth, routing and permission: everything decided before a body is read. */
function resolve(ctx: ApiContext, method: string, rawUrl: string, presented: PresentedCredentials): Resolved {
  const principal = authenticate(ctx.security, presented);
  const url = new URL(rawUrl, 'http://manager');
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
  log?.(`internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
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
    resolved = resolve(ctx, req.method ?? 'GET', req.url ?? '/', presentedBy(req));
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
  // An oversized body is refused without being kept. Up to MAX_DISCARD_BYTES it is still read to the end
  // (and thrown away) before the 413 goes out, so a client that is busy sending it reads the answer instead
  // of failing on a broken pipe; a larger one is not worth the bandwidth: answer and close at once.
  if (declared > MAX_DISCARD_BYTES) {
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
      if (size > MAX_DISCARD_BYTES && !res.headersSent) {
        res.setHeader('connection', 'close');
        reject(tooLarge());
      }
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
  let allNetworks = false;
  try {
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
  const detach = ctx.hub.attach(node, sink, { allNetworks });
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
  /** replaces the server certificate of the TLS listeners (new connections get it) */
  setTlsCredentials(credentials: TlsCredentials): void;
  close(): Promise<void>;
}

/** The manager's server key and certificate chain (PEM), and the CA its clients' certificates must chain to. */
export interface TlsCredentials {
  key: string;
  cert: string;
  ca: string;
}

/**
 * TLS for the TCP listeners. A client certificate is requested but not required, because joining agents
 * and admins with a bearer token have none: OpenSSL verifies whatever is presented against the cluster CA
 * and auth.ts refuses the request when that failed. Both ends are vxnet, so TLS 1.3 only.
 */
function tlsOptions(credentials: TlsCredentials) {
  return {
    key: credentials.key,
    cert: credentials.cert,
    ca: [credentials.ca],
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: 'TLSv1.3' as const,
  };
}

/**
 * Serves `handler` on every address, TCP ones over TLS when `tls` is given; on failure closes what was
 * already opened.
 */
export async function listenAll(handler: RequestListener, listen: string[], tls?: TlsCredentials): Promise<Listeners> {
  const opened: { server: Server | TlsServer; unixPath?: string }[] = [];
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
      const server = address.kind === 'tcp' && tls ? createTlsServer(tlsOptions(tls), handler) : createServer(handler);
      server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
      if (address.kind === 'unix') {
        removeSocket(address.path);
        await listenOn(server, { path: address.path });
        opened.push({ server, unixPath: address.path });
        chmodSync(address.path, 0o600);
        addresses.push(`unix:${address.path}`);
      } else {
        // After a manager restart every agent reconnects at once; Node's default accept queue (511) overflowed
        // with 1,000 agents (bench/scale: 40 connections reset). The kernel caps it at net.core.somaxconn.
        const backlog = LISTEN_BACKLOG;
        await listenOn(server, address.host === undefined ? { port: address.port, backlog } : { host: address.host, port: address.port, backlog });
        opened.push({ server });
        const info = server.address() as AddressInfo;
        addresses.push(info.family === 'IPv6' ? `[${info.address}]:${info.port}` : `${info.address}:${info.port}`);
      }
    }
  } catch (err) {
    await close();
    throw err;
  }
  const setTlsCredentials = (credentials: TlsCredentials): void => {
    for (const { server } of opened) if ('setSecureContext' in server) server.setSecureContext(tlsOptions(credentials));
  };
  return { addresses, setTlsCredentials, close };
}

const LISTEN_BACKLOG = 4096;

function listenOn(server: Server | TlsServer, options: { path: string } | { host?: string; port: number; backlog: number }): Promise<void> {
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
