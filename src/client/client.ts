/**
 * Client of the manager's HTTP API (docs/api.md), used by the CLI, the agent and the demo.
 *
 * Built on node:http rather than fetch because the manager also listens on unix sockets (`unix:/path`),
 * which fetch cannot reach without a dispatcher from undici. One keep-alive agent per client reuses
 * connections for the agent's steady heartbeats; the long-lived watch stream gets a connection of its
 * own so it never pins a pooled socket.
 *
 * Every failure surfaces as a VxnetError: the manager's own `{error: {code, message}}` when it answered,
 * `unavailable` when it could not be reached, `timeout` when it did not answer in time. An aborted signal
 * rejects with the signal's reason, as fetch does.
 */
import http from 'node:http';
import type {
  CreateEndpointRequest,
  CreateNetworkRequest,
  Endpoint,
  EndpointStatusRequest,
  HeartbeatRequest,
  Network,
  NetworkDetail,
  Node,
  NodeStatus,
  RegisterNodeRequest,
  WatchMessage,
} from '../core/model.ts';
import { isErrorCode, VxnetError, type ErrorCode } from '../core/errors.ts';

export interface ClientOptions {
  /** `http://ADDR:PORT` or `unix:/path/to.sock` */
  url: string;
  token: string;
  /** per-request time limit; default 10 s */
  timeoutMs?: number;
}

export const DEFAULT_TIMEOUT_MS = 10_000;
/** The API's own default for `?wait=` (docs/api.md); sent explicitly so the time limit can match it. */
export const DEFAULT_WAIT_SECONDS = 30;
/** Extra time granted beyond `?wait=` for the answer to travel back. */
const WAIT_MARGIN_MS = 5_000;
/** Below the manager's keep-alive timeout (Node's default 5 s), so we close idle sockets before it does. */
const FREE_SOCKET_TIMEOUT_MS = 4_000;

/** Where the manager listens: a TCP host and port, or a unix socket path. */
export type ManagerTarget =
  | { kind: 'tcp'; url: string; host: string; port: number }
  | { kind: 'unix'; url: string; socketPath: string };

const URL_FORMS = 'use http://ADDR:PORT or unix:/path/to.sock';

/** Parses a manager URL, or throws a `bad_request` VxnetError with a sentence saying what is wrong. */
export function parseManagerUrl(url: string): ManagerTarget {
  if (typeof url !== 'string' || url.trim() === '') {
    throw new VxnetError('bad_request', `the manager URL is empty: ${URL_FORMS}.`);
  }
  if (url.startsWith('unix:')) {
    // "unix:/run/vxnet.sock", and the equally common "unix:///run/vxnet.sock"
    const socketPath = url.startsWith('unix://') ? url.slice('unix://'.length) : url.slice('unix:'.length);
    if (!socketPath.startsWith('/') || socketPath.includes('\0')) {
      throw new VxnetError('bad_request', `manager URL "${url}" is invalid: a unix socket needs an absolute path, as in unix:/run/vxnet.sock.`);
    }
    return { kind: 'unix', url, socketPath };
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new VxnetError('bad_request', `manager URL "${url}" is invalid: ${URL_FORMS}.`);
  }
  if (parsed.protocol !== 'http:') {
    throw new VxnetError('bad_request', `manager URL "${url}" is not supported: ${URL_FORMS}.`);
  }
  if (parsed.username !== '' || parsed.password !== '') {
    // Never echo the URL here: it holds a credential.
    throw new VxnetError('bad_request', 'the manager URL must not contain a user or password: pass the token with --token or VXNET_TOKEN.');
  }
  if ((parsed.pathname !== '/' && parsed.pathname !== '') || parsed.search !== '' || parsed.hash !== '') {
    throw new VxnetError('bad_request', `manager URL "${url}" must not have a path or query: ${URL_FORMS}.`);
  }
  const host = parsed.hostname.startsWith('[') ? parsed.hostname.slice(1, -1) : parsed.hostname;
  if (host === '') throw new VxnetError('bad_request', `manager URL "${url}" has no host: ${URL_FORMS}.`);
  const port = parsed.port === '' ? 80 : Number(parsed.port);
  return { kind: 'tcp', url: `http://${parsed.host}`, host, port };
}

interface RequestOptions {
  body?: unknown;
  query?: Record<string, string | number | boolean | undefined>;
  timeoutMs?: number;
  signal?: AbortSignal | undefined;
}

interface RawResponse {
  status: number;
  body: string;
}

export class ManagerClient {
  readonly url: string;
  readonly #target: ManagerTarget;
  readonly #token: string;
  readonly #timeoutMs: number;
  readonly #agent: http.Agent;

  constructor(options: ClientOptions) {
    this.#target = parseManagerUrl(options.url);
    this.url = this.#target.url;
    if (typeof options.token !== 'string' || options.token === '') {
      throw new VxnetError('bad_request', 'a token is required to talk to the manager.');
    }
    // Header values must be visible ASCII; say so without ever showing the token.
    if (!/^[\x21-\x7e]+$/.test(options.token)) {
      throw new VxnetError('bad_request', 'the token contains spaces or characters that cannot be sent in an HTTP header.');
    }
    this.#token = options.token;
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw new VxnetError('bad_request', 'the client timeout must be a positive number of milliseconds.');
    }
    this.#timeoutMs = timeoutMs;
    this.#agent = new http.Agent({ keepAlive: true, timeout: FREE_SOCKET_TIMEOUT_MS });
  }

  /** Closes the pooled connections (aborting any request still using one). The watch stream is not affected. */
  close(): void {
    this.#agent.destroy();
  }

  async info(signal?: AbortSignal): Promise<{ clusterId: string; revision: number }> {
    return this.#json('GET', '/v1/info', { signal });
  }

  async createNetwork(req: CreateNetworkRequest, signal?: AbortSignal): Promise<Network> {
    return this.#json('POST', '/v1/networks', { body: req, signal });
  }

  async listNetworks(signal?: AbortSignal): Promise<Network[]> {
    return this.#json('GET', '/v1/networks', { signal });
  }

  async inspectNetwork(name: string, signal?: AbortSignal): Promise<NetworkDetail> {
    return this.#json('GET', `/v1/networks/${segment(name)}`, { signal });
  }

  async removeNetwork(name: string, options?: { force?: boolean }, signal?: AbortSignal): Promise<void> {
    await this.#call('DELETE', `/v1/networks/${segment(name)}`, {
      query: { force: options?.force === true ? true : undefined },
      signal,
    });
  }

  async listNodes(signal?: AbortSignal): Promise<NodeStatus[]> {
    return this.#json('GET', '/v1/nodes', { signal });
  }

  async registerNode(req: RegisterNodeRequest, signal?: AbortSignal): Promise<Node> {
    return this.#json('POST', '/v1/nodes', { body: req, signal });
  }

  async heartbeat(node: string, req: HeartbeatRequest, signal?: AbortSignal): Promise<void> {
    await this.#call('POST', `/v1/nodes/${segment(node)}/heartbeat`, { body: req, signal });
  }

  async listEndpoints(filter?: { network?: string; node?: string }, signal?: AbortSignal): Promise<Endpoint[]> {
    return this.#json('GET', '/v1/endpoints', { query: { network: filter?.network, node: filter?.node }, signal });
  }

  /** Resolves once the node's agent reports the endpoint ready (unless `waitSeconds` is 0). */
  async createEndpoint(req: CreateEndpointRequest, options?: { waitSeconds?: number }, signal?: AbortSignal): Promise<Endpoint> {
    const wait = waitSecondsOf(options?.waitSeconds);
    return this.#json('POST', '/v1/endpoints', {
      body: req,
      query: { wait },
      timeoutMs: this.#waitTimeoutMs(wait),
      signal,
    });
  }

  /** Resolves once the node's agent has removed the endpoint (unless `waitSeconds` is 0). */
  async deleteEndpoint(id: string, options?: { waitSeconds?: number }, signal?: AbortSignal): Promise<void> {
    const wait = waitSecondsOf(options?.waitSeconds);
    await this.#call('DELETE', `/v1/endpoints/${segment(id)}`, {
      query: { wait },
      timeoutMs: this.#waitTimeoutMs(wait),
      signal,
    });
  }

  async setEndpointStatus(id: string, req: EndpointStatusRequest, signal?: AbortSignal): Promise<void> {
    await this.#call('PUT', `/v1/endpoints/${segment(id)}/status`, { body: req, signal });
  }

  /** Streams the NDJSON watch; calls onMessage per line; resolves when the server ends the stream, rejects on error or abort. */
  watch(node: string, onMessage: (message: WatchMessage) => void, signal: AbortSignal): Promise<void> {
    const path = `/v1/agent/watch${queryString({ node })}`;
    return new Promise<void>((resolve, reject) => {
      if (signal.aborted) {
        reject(signal.reason);
        return;
      }
      let settled = false;
      const finish = (err?: unknown): void => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        if (err === undefined) resolve();
        else {
          req.destroy();
          reject(err);
        }
      };
      const onAbort = (): void => finish(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });

      // A connection of its own (agent: false): the stream lives for hours and must not hold a pooled socket.
      const req = http.request({
        ...this.#endpoint(),
        agent: false,
        method: 'GET',
        path,
        headers: { authorization: `Bearer ${this.#token}`, accept: 'application/x-ndjson' },
      });
      req.on('error', (err) => finish(this.#unreachable(err)));
      req.on('response', (res) => {
        const status = res.statusCode ?? 0;
        if (status < 200 || status > 299) {
          readAll(res).then(
            (body) => finish(this.#errorFrom({ status, body })),
            (err: unknown) => finish(this.#unreachable(err)),
          );
          return;
        }
        // setEncoding keeps a multi-byte character that straddles two chunks intact.
        res.setEncoding('utf8');
        let pending = '';
        const deliver = (line: string): boolean => {
          if (line.trim() === '') return true;
          let message: unknown;
          try {
            message = JSON.parse(line);
          } catch {
            finish(new VxnetError('internal', `the manager at ${this.url} sent a malformed watch line.`));
            return false;
          }
          if (typeof message !== 'object' || message === null || typeof (message as { type?: unknown }).type !== 'string') {
            finish(new VxnetError('internal', `the manager at ${this.url} sent a watch line without a message type.`));
            return false;
          }
          try {
            onMessage(message as WatchMessage);
          } catch (err) {
            finish(err);
            return false;
          }
          return true;
        };
        res.on('data', (chunk: string) => {
          pending += chunk;
          let newline = pending.indexOf('\n');
          while (newline !== -1 && !settled) {
            const line = pending.slice(0, newline);
            pending = pending.slice(newline + 1);
            if (!deliver(line)) return;
            newline = pending.indexOf('\n');
          }
        });
        res.on('end', () => {
          if (settled) return;
          // The last line may lack its newline; anything else incomplete is reported by JSON.parse.
          if (deliver(pending)) finish();
        });
        res.on('error', (err) => finish(this.#streamCut(err)));
        res.on('close', () => {
          if (!res.complete) finish(this.#streamCut(undefined));
        });
      });
      req.end();
    });
  }

  // ---- plumbing -------------------------------------------------------------------------------------

  #waitTimeoutMs(waitSeconds: number): number {
    return Math.max(this.#timeoutMs, waitSeconds * 1000 + WAIT_MARGIN_MS);
  }

  #endpoint(): { host: string; port: number } | { socketPath: string } {
    const target = this.#target;
    return target.kind === 'tcp' ? { host: target.host, port: target.port } : { socketPath: target.socketPath };
  }

  async #json<T>(method: string, path: string, options: RequestOptions): Promise<T> {
    const response = await this.#call(method, path, options);
    try {
      return JSON.parse(response.body) as T;
    } catch {
      throw new VxnetError('internal', `the manager at ${this.url} answered ${method} ${path} with malformed JSON.`);
    }
  }

  /** One request; non-2xx answers become the manager's VxnetError. */
  async #call(method: string, path: string, options: RequestOptions): Promise<RawResponse> {
    const fullPath = path + queryString(options.query ?? {});
    let response: RawResponse;
    try {
      response = await this.#send(method, fullPath, options);
    } catch (err) {
      if (!(err instanceof StaleSocketError)) throw err;
      // A pooled socket the server closed just as we reused it: most likely the request never reached the
      // manager. Repeated once, for idempotent methods only (the pattern Node's http docs recommend).
      if (method !== 'GET' && method !== 'PUT') throw err.error;
      try {
        response = await this.#send(method, fullPath, options);
      } catch (again) {
        throw again instanceof StaleSocketError ? again.error : again;
      }
    }
    if (response.status < 200 || response.status > 299) throw this.#errorFrom(response);
    return response;
  }

  #send(method: string, path: string, options: RequestOptions): Promise<RawResponse> {
    const { signal } = options;
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    return new Promise<RawResponse>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const payload = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body));
      const headers: Record<string, string | number> = {
        authorization: `Bearer ${this.#token}`,
        accept: 'application/json',
      };
      if (payload !== undefined) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = payload.length;
      }
      let settled = false;
      const finish = (err: unknown, value?: RawResponse): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (err === undefined) resolve(value!);
        else {
          req.destroy();
          reject(err);
        }
      };
      const onAbort = (): void => finish(signal?.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      const timer = setTimeout(() => {
        finish(new VxnetError('timeout', `the manager at ${this.url} did not answer within ${formatSeconds(timeoutMs)}.`));
      }, timeoutMs);

      const req = http.request({ ...this.#endpoint(), agent: this.#agent, method, path, headers });
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (req.reusedSocket && err.code === 'ECONNRESET') finish(new StaleSocketError(this.#unreachable(err)));
        else finish(this.#unreachable(err));
      });
      req.on('response', (res) => {
        readAll(res).then(
          (body) => finish(undefined, { status: res.statusCode ?? 0, body }),
          (err: unknown) => finish(this.#unreachable(err)),
        );
      });
      req.end(payload);
    });
  }

  #unreachable(err: unknown): VxnetError {
    if (err instanceof VxnetError) return err;
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    const reason = code ?? (err instanceof Error ? err.message : String(err));
    return new VxnetError('unavailable', `cannot reach the manager at ${this.url}: ${reason}`, { cause: err });
  }

  #streamCut(err: unknown): VxnetError {
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    return new VxnetError('unavailable', `the watch stream from the manager at ${this.url} was cut${code ? `: ${code}` : '.'}`, {
      cause: err,
    });
  }

  #errorFrom(response: RawResponse): VxnetError {
    let parsed: unknown;
    try {
      parsed = JSON.parse(response.body);
    } catch {
      parsed = undefined;
    }
    const error = (parsed as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
    if (error && typeof error.message === 'string' && error.message !== '') {
      return new VxnetError(isErrorCode(error.code) ? error.code : 'internal', error.message);
    }
    const code = isErrorCode(error?.code) ? error.code : codeForStatus(response.status);
    return new VxnetError(code, `the manager at ${this.url} answered HTTP ${response.status} without an error message.`);
  }
}

/** Marks a failure on a reused keep-alive socket, which #call may retry once. */
class StaleSocketError extends Error {
  readonly error: VxnetError;
  constructor(error: VxnetError) {
    super(error.message);
    this.error = error;
  }
}

function waitSecondsOf(value: number | undefined): number {
  const wait = value ?? DEFAULT_WAIT_SECONDS;
  if (!Number.isSafeInteger(wait) || wait < 0) {
    throw new VxnetError('bad_request', `the wait time must be a whole number of seconds, 0 or more (got ${String(value)}).`);
  }
  return wait;
}

function codeForStatus(status: number): ErrorCode {
  switch (status) {
    case 400:
      return 'bad_request';
    case 401:
      return 'unauthorized';
    case 403:
      return 'forbidden';
    case 404:
      return 'not_found';
    case 504:
      return 'timeout';
    default:
      return 'internal';
  }
}

function segment(value: string): string {
  return encodeURIComponent(value);
}

function queryString(query: Record<string, string | number | boolean | undefined>): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined) params.set(key, String(value));
  }
  const text = params.toString();
  return text === '' ? '' : `?${text}`;
}

function readAll(res: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (chunk: Buffer) => chunks.push(chunk));
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
    res.on('close', () => {
      if (!res.complete) reject(Object.assign(new Error('the connection closed mid-answer'), { code: 'ECONNRESET' }));
    });
  });
}

function formatSeconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}
