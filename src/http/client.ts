/**
 * The client side of HTTP shared by the manager's client (src/client/client.ts) and the Docker Engine client
 * (src/docker/engine-client.ts): one keep-alive pool per server (a unix socket, TCP, or TLS with the caller's
 * trust and client certificate), a deadline per request that an AbortSignal can cut short, one retry of an
 * idempotent request that met a pooled connection the server had just closed, and answers read up to a bound.
 *
 * Built on node:http rather than undici: importing undici costs ~100 ms on our machines (node:https 14 ms),
 * two thirds of a CLI round trip's budget. Failures of the transport are HttpFailure, for each client to
 * word in its own errors; an aborted signal rejects with the signal's reason, as fetch does.
 */
import http from 'node:http';
import type * as Https from 'node:https';
import type { PeerCertificate, TLSSocket } from 'node:tls';

// node:https and node:tls take ~10 ms to load: only clients of an https:// manager pay for them (CLI startup).
const https = (): typeof Https => process.getBuiltinModule('node:https');

/**
 * Milliseconds on a monotonic clock. Not performance.now(): the global `performance` loads perf_hooks and
 * eleven modules behind it on first use, ~3 ms of every CLI call.
 */
const monotonicMs = (): number => Number(process.hrtime.bigint()) / 1e6;

export type HttpTarget = { kind: 'unix'; socketPath: string } | { kind: 'tcp' | 'tls'; host: string; port: number };

export interface HttpClientOptions {
  target: HttpTarget;
  /** pooled connections at most; more requests wait for one (default: no bound) */
  maxSockets?: number;
  /** an idle pooled connection is closed after this */
  freeSocketTimeoutMs: number;
  /** tls: checks the server's certificate beyond its chain, on pooled connections and own ones alike */
  checkServerIdentity?: (host: string, cert: PeerCertificate) => Error | undefined;
}

/** Trust and identity for one TLS request; an https.Agent keys its pooled connections by them. */
export interface TlsRequestOptions {
  ca?: string[];
  cert?: string;
  key?: string;
  rejectUnauthorized?: boolean;
  minVersion?: 'TLSv1.3';
  /** a session of an earlier connection to offer a new one for resumption (not part of the pool's key) */
  session?: Buffer;
}

export interface HttpRequest {
  method: string;
  /** path and query */
  path: string;
  headers?: Record<string, string | number>;
  body?: Buffer | undefined;
  /** the whole request, queueing for a pooled connection and reading the answer included */
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  tls?: TlsRequestOptions;
  /** a connection of its own, outside the pool */
  ownConnection?: boolean;
  /** tls: called with the connection this request opens, before its handshake (not with a pooled one it reuses) */
  onTlsConnection?: (socket: TLSSocket) => void;
}

export interface HttpResponse {
  status: number;
  body: string;
}

/**
 * An answer larger than this is refused. The largest answers are the manager's lists: 100,000 endpoints
 * (bench/scale) are ~35 MB of JSON.
 */
export const MAX_RESPONSE_BYTES = 256 * 1024 * 1024;

/**
 * `timeout`: no answer within the request's time; `closed`: the client was closed first; `too_large`: the
 * answer exceeded MAX_RESPONSE_BYTES; `transport`: the connection failed (`cause` has Node's error and code).
 */
export class HttpFailure extends Error {
  readonly kind: 'timeout' | 'closed' | 'too_large' | 'transport';
  constructor(kind: HttpFailure['kind'], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'HttpFailure';
    this.kind = kind;
  }
  /** Node's error code of a transport failure (ECONNREFUSED, CERT_HAS_EXPIRED, ...) */
  get code(): string | undefined {
    return (this.cause as NodeJS.ErrnoException | undefined)?.code;
  }
}

/** Methods whose repetition does no harm when the first attempt may or may not have reached the server. */
const RETRIABLE = new Set(['GET', 'HEAD', 'PUT']);

export class HttpClient {
  readonly #target: HttpTarget;
  readonly #agent: http.Agent;
  readonly #checkServerIdentity: HttpClientOptions['checkServerIdentity'];
  /** ends each request not yet answered (close) */
  readonly #inFlight = new Set<() => void>();

  constructor(options: HttpClientOptions) {
    this.#target = options.target;
    this.#checkServerIdentity = options.checkServerIdentity;
    const Agent = options.target.kind === 'tls' ? https().Agent : http.Agent;
    this.#agent = new Agent({
      keepAlive: true,
      timeout: options.freeSocketTimeoutMs,
      ...(options.maxSockets === undefined ? {} : { maxSockets: options.maxSockets }),
      // Given to the agent, not per request: Node never reuses a pooled TLS connection for a request that
      // brings a checkServerIdentity of its own, so every call was a new TLS handshake (bench/scale: ~1 ms of
      // manager CPU per request, 370 instead of 3,900 endpoint creations a second).
      ...(options.checkServerIdentity ? { checkServerIdentity: options.checkServerIdentity } : {}),
    });
  }

  /**
   * One request, its answer read whole. A failure on a reused pooled connection (the server closed it just
   * as we sent) most likely never reached the server: it is repeated once, for idempotent methods only (the
   * pattern Node's http docs recommend).
   */
  async request(req: HttpRequest): Promise<HttpResponse> {
    const deadline = monotonicMs() + req.timeoutMs;
    try {
      return await this.#attempt(req, deadline);
    } catch (err) {
      if (!(err instanceof StaleSocket)) throw err;
      if (!RETRIABLE.has(req.method)) throw err.failure;
      try {
        return await this.#attempt(req, deadline);
      } catch (again) {
        throw again instanceof StaleSocket ? again.failure : again;
      }
    }
  }

  /**
   * Opens a long-lived answer (a stream) on a connection of its own, so it never pins a pooled one; resolves
   * with the answer as soon as its head arrives, and has no deadline. The caller ends it (res.destroy()).
   * Not ended by close().
   */
  stream(req: Omit<HttpRequest, 'timeoutMs' | 'ownConnection'>): Promise<http.IncomingMessage> {
    return new Promise((resolve, reject) => {
      const { signal } = req;
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      let answered = false;
      let response: http.IncomingMessage | undefined;
      const onAbort = (): void => {
        if (answered) return;
        answered = true;
        request.destroy();
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const request = this.#open({ ...req, ownConnection: true });
      request.on('error', (err) => {
        if (answered) {
          response?.destroy(err); // its reader learns it from the answer's 'error' and 'close'
          return;
        }
        answered = true;
        signal?.removeEventListener('abort', onAbort);
        reject(new HttpFailure('transport', err.message, { cause: err }));
      });
      request.on('response', (res) => {
        answered = true;
        response = res;
        signal?.removeEventListener('abort', onAbort);
        resolve(res);
      });
      request.end(req.body);
    });
  }

  /**
   * Closes the pooled connections and ends every request still going, those waiting for a connection
   * included (destroying the pool leaves them queued until their own timeout). Streams are not affected.
   */
  close(): void {
    for (const end of [...this.#inFlight]) end();
    this.#agent.destroy();
  }

  #open(req: Omit<HttpRequest, 'timeoutMs'>): http.ClientRequest {
    const target = this.#target;
    const options: Https.RequestOptions = {
      agent: req.ownConnection ? false : this.#agent,
      method: req.method,
      path: req.path,
      headers: req.headers ?? {},
    };
    // servername '' spares http.Agent its IP check of the unused host name (a ~6 ms regex on every CLI call).
    if (target.kind === 'unix') return http.request({ ...options, socketPath: target.socketPath, servername: '' } as http.RequestOptions);
    if (target.kind === 'tcp') return http.request({ ...options, host: target.host, port: target.port });
    const identity = req.ownConnection && this.#checkServerIdentity ? { checkServerIdentity: this.#checkServerIdentity } : {};
    return https().request({ ...options, host: target.host, port: target.port, ...req.tls, ...identity });
  }

  #attempt(req: HttpRequest, deadline: number): Promise<HttpResponse> {
    const { signal } = req;
    return new Promise<HttpResponse>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      let settled = false;
      const finish = (err: unknown, value?: HttpResponse): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.#inFlight.delete(onClose);
        signal?.removeEventListener('abort', onAbort);
        if (err === undefined) resolve(value!);
        else {
          request.destroy();
          reject(err);
        }
      };
      const onAbort = (): void => finish(signal?.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      const onClose = (): void => finish(new HttpFailure('closed', 'the client was closed before the server answered.'));
      this.#inFlight.add(onClose);
      const timer = setTimeout(
        () => finish(new HttpFailure('timeout', `no answer within ${req.timeoutMs} ms.`)),
        Math.max(0, deadline - monotonicMs()),
      );

      const request = this.#open(req);
      const onTlsConnection = req.onTlsConnection;
      if (onTlsConnection && this.#target.kind === 'tls') {
        request.once('socket', (socket) => {
          if (!request.reusedSocket) onTlsConnection(socket as TLSSocket);
        });
      }
      request.on('error', (err: NodeJS.ErrnoException) => {
        const failure = new HttpFailure('transport', err.message, { cause: err });
        finish(request.reusedSocket && err.code === 'ECONNRESET' ? new StaleSocket(failure) : failure);
      });
      request.on('response', (res) => {
        readBounded(res).then(
          (body) => finish(undefined, { status: res.statusCode ?? 0, body }),
          (err: unknown) => finish(err),
        );
      });
      request.end(req.body);
    });
  }
}

/** Marks a failure on a reused keep-alive socket, which request() may repeat once. */
class StaleSocket extends Error {
  readonly failure: HttpFailure;
  constructor(failure: HttpFailure) {
    super(failure.message);
    this.failure = failure;
  }
}

/** Reads an answer whole as UTF-8, up to MAX_RESPONSE_BYTES; rejects with an HttpFailure. */
export function readBounded(res: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_RESPONSE_BYTES) chunks.push(chunk);
      else {
        reject(new HttpFailure('too_large', `the answer is larger than ${MAX_RESPONSE_BYTES} bytes.`));
        res.destroy();
      }
    });
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', (err) => reject(new HttpFailure('transport', err.message, { cause: err })));
    res.on('close', () => {
      if (!res.complete) {
        const cut = Object.assign(new Error('the connection closed mid-answer'), { code: 'ECONNRESET' });
        reject(new HttpFailure('transport', cut.message, { cause: cut }));
      }
    });
  });
}
