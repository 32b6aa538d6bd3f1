/**
 * Client of the manager's HTTP API (docs/api.md), used by the CLI, the agent and the demo.
 *
 * Built on node:http rather than fetch because the manager also listens on unix sockets (`unix:/path`),
 * which fetch cannot reach without a dispatcher from undici. One keep-alive agent per client reuses
 * connections for the agent's steady heartbeats; the long-lived watch stream gets a connection of its
 * own so it never pins a pooled socket.
 *
 * `https://` (the manager's TCP listeners, docs/security.md): the server must present a certificate of the
 * cluster CA for the URL's host, with the manager's role. The CA is given (`ca`), or pinned by digest
 * (`caDigest`, or the digest inside a vxnet token): then the client fetches `GET /v1/ca` once over an
 * unverified connection, refuses it unless its SHA-256 matches, and verifies every connection against it.
 * A client certificate (`cert`/`key`) authenticates agents; bearer tokens go in the Authorization header.
 *
 * Every failure surfaces as a VxnetError: the manager's own `{error: {code, message}}` when it answered,
 * `unavailable` when it could not be reached, `timeout` when it did not answer in time. An aborted signal
 * rejects with the signal's reason, as fetch does.
 */
import http from 'node:http';
import type * as Https from 'node:https';
import type { PeerCertificate } from 'node:tls';
import type * as v from 'valibot';
import {
  type CertificateResponse,
  type CreateEndpointRequest,
  type CreateNetworkRequest,
  type CreateReservationRequest,
  DEFAULT_WAIT_SECONDS,
  type Endpoint,
  type EndpointStatusRequest,
  type HeartbeatRequest,
  type Info,
  type JoinRequest,
  type Network,
  type NetworkDetail,
  type Node,
  type NodeStatus,
  type RegisterNodeRequest,
  type RenewCertificateRequest,
  type Reservation,
  type TokenResponse,
  type WatchMessage,
} from '../core/model.ts';
import { isErrorCode, VxnetError, type ErrorCode } from '../core/errors.ts';
import { certificateDigest } from '../pki/identity.ts';
import { parseToken } from '../pki/token.ts';
import { parseManagerUrl, type ManagerTarget } from './manager-url.ts';

// node:https and node:tls take ~10 ms to load: only clients of an https:// manager pay for them.
const https = (): typeof Https => process.getBuiltinModule('node:https');

export interface ClientOptions {
  /** `https://ADDR:PORT`, `unix:/path/to.sock`, or `http://ADDR:PORT` (plain, for stand-ins in tests) */
  url: string;
  /** sent as a bearer token; required unless a client certificate is given */
  token?: string;
  /** https: the cluster CA certificate (PEM) to trust */
  ca?: string;
  /** https: hex SHA-256 of the cluster CA certificate; default: the digest inside a vxnet token */
  caDigest?: string;
  /** https: client certificate and its private key (PEM), e.g. an agent's node certificate */
  cert?: string;
  key?: string;
  /** per-request time limit; default 10 s */
  timeoutMs?: number;
  /** pooled connections at most (the watch stream has its own); more requests wait for one. Default 4. */
  maxConnections?: number;
}

export const DEFAULT_TIMEOUT_MS = 10_000;
/** Extra time granted beyond `?wait=` for the answer to travel back. */
const WAIT_MARGIN_MS = 5_000;
/**
 * Below the manager's keep-alive timeout (75 s, src/manager/http.ts), so we close idle sockets before it
 * does; above the agent's heartbeat interval (5 s), so heartbeats reuse one TLS connection.
 */
const FREE_SOCKET_TIMEOUT_MS = 60_000;
/**
 * Why a bound: an agent reports the status of each new local endpoint as soon as it is set up, all at once.
 * Measured with 1,000 simulated agents starting together (bench/scale): unbounded, each opened one
 * connection per endpoint, 100,000 in all, the manager ran out of file descriptors and half the agents'
 * watches were reset. Four keep-alive connections carry an agent's requests just as fast.
 */
export const DEFAULT_MAX_CONNECTIONS = 4;

/** The organisation (role) of the manager's server certificate (src/pki/identity.ts). */
const MANAGER_ORGANIZATION = 'vxnet-manager';

interface RequestOptions {
  body?: unknown;
  query?: Record<string, string | number | boolean | undefined>;
  timeoutMs?: number;
  signal?: AbortSignal | undefined;
  /** https: an unverified connection without credentials, only to fetch the CA whose digest is then checked */
  bootstrap?: boolean;
}

interface RawResponse {
  status: number;
  body: string;
}

export class ManagerClient {
  readonly url: string;
  readonly #target: ManagerTarget;
  readonly #token: string | undefined;
  readonly #timeoutMs: number;
  /** ends each request not yet answered (close) */
  readonly #inFlight = new Set<() => void>();
  readonly #agent: http.Agent;
  /** https: the trusted CA (PEM), once given or fetched and checked against #caDigest */
  #ca: string | undefined;
  readonly #caDigest: string | undefined;
  #fetchingCa: Promise<string> | undefined;
  #clientCertificate: { cert: string; key: string } | undefined;

  constructor(options: ClientOptions) {
    this.#target = parseManagerUrl(options.url);
    this.url = this.#target.url;
    if (options.token !== undefined) {
      if (typeof options.token !== 'string' || options.token === '') {
        throw new VxnetError('bad_request', 'a token is required to talk to the manager.');
      }
      // Header values must be visible ASCII; say so without ever showing the token.
      if (!/^[\x21-\x7e]+$/.test(options.token)) {
        throw new VxnetError('bad_request', 'the token contains spaces or characters that cannot be sent in an HTTP header.');
      }
    }
    this.#token = options.token;
    if ((options.cert === undefined) !== (options.key === undefined)) {
      throw new VxnetError('bad_request', 'a client certificate needs its private key, and the other way round.');
    }
    if (options.cert !== undefined && options.key !== undefined) this.#clientCertificate = { cert: options.cert, key: options.key };
    if (this.#token === undefined && this.#clientCertificate === undefined) {
      throw new VxnetError('bad_request', 'a token (or a client certificate) is required to talk to the manager.');
    }
    this.#caDigest = options.caDigest ?? (this.#token === undefined ? undefined : parseToken(this.#token)?.caDigest);
    if (this.#target.kind === 'tls') {
      if (options.ca !== undefined) {
        let digest: string;
        try {
          digest = certificateDigest(options.ca);
        } catch {
          throw new VxnetError('bad_request', 'the CA certificate given is not a PEM certificate.');
        }
        if (this.#caDigest !== undefined && digest !== this.#caDigest) {
          throw new VxnetError('bad_request', "the CA certificate given is not the one whose digest the token carries: they belong to different clusters.");
        }
        this.#ca = options.ca;
      } else if (this.#caDigest === undefined) {
        throw new VxnetError(
          'bad_request',
          `${this.url} needs the cluster CA to be trusted: pass a vxnet token (it carries the CA digest) or the CA certificate (--ca FILE).`,
        );
      }
    }
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw new VxnetError('bad_request', 'the client timeout must be a positive number of milliseconds.');
    }
    this.#timeoutMs = timeoutMs;
    // An https.Agent keys its pooled connections by CA and client certificate, so a renewed certificate
    // (setClientCertificate) gets new connections while requests in flight finish on the old ones.
    const Agent = this.#target.kind === 'tls' ? https().Agent : http.Agent;
    this.#agent = new Agent({
      keepAlive: true,
      timeout: FREE_SOCKET_TIMEOUT_MS,
      maxSockets: options.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
      // Given here, not per request: Node never reuses a pooled TLS connection for a request that brings a
      // checkServerIdentity of its own, so every call was a new TLS handshake (measured by bench/scale:
      // ~1 ms of manager CPU per request, 370 instead of 3,900 endpoint creations a second).
      ...(this.#target.kind === 'tls' ? { checkServerIdentity: checkManagerIdentity } : {}),
    });
  }

  /** https: the cluster CA this client trusts (PEM), fetched and checked against the pinned digest first if need be. */
  async trustedCa(signal?: AbortSignal): Promise<string | undefined> {
    await this.#ready(signal);
    return this.#ca;
  }

  /** https: the client certificate for connections opened from now on (after a renewal). */
  setClientCertificate(credentials: { cert: string; key: string }): void {
    this.#clientCertificate = { cert: credentials.cert, key: credentials.key };
  }

  /** `POST /v1/join` with the join token this client was made with. */
  async join(req: JoinRequest, signal?: AbortSignal): Promise<CertificateResponse> {
    return this.#json((s) => s.CertificateResponseSchema, 'POST', '/v1/join', { body: req, signal });
  }

  /** `POST /v1/certificates/renew`: a new certificate for this connection's client certificate identity. */
  async renewCertificate(req: RenewCertificateRequest, signal?: AbortSignal): Promise<CertificateResponse> {
    return this.#json((s) => s.CertificateResponseSchema, 'POST', '/v1/certificates/renew', { body: req, signal });
  }

  /** `POST /v1/tokens/:role/rotate` (admin): the new token; the old one stops working. */
  async rotateToken(role: 'worker' | 'admin', signal?: AbortSignal): Promise<TokenResponse> {
    return this.#json((s) => s.TokenResponseSchema, 'POST', `/v1/tokens/${segment(role)}/rotate`, { signal });
  }

  /**
   * Closes the pooled connections and ends every request still going, those waiting for a connection
   * included (destroying the pool leaves them queued until their own timeout). The watch stream is not
   * affected.
   */
  close(): void {
    for (const end of [...this.#inFlight]) end();
    this.#agent.destroy();
  }

  async info(signal?: AbortSignal): Promise<Info> {
    return this.#json((s) => s.InfoSchema, 'GET', '/v1/info', { signal });
  }

  async createNetwork(req: CreateNetworkRequest, signal?: AbortSignal): Promise<Network> {
    return this.#json((s) => s.NetworkSchema, 'POST', '/v1/networks', { body: req, signal });
  }

  async listNetworks(signal?: AbortSignal): Promise<Network[]> {
    return this.#json((s) => s.NetworkListSchema, 'GET', '/v1/networks', { signal });
  }

  async inspectNetwork(name: string, signal?: AbortSignal): Promise<NetworkDetail> {
    return this.#json((s) => s.NetworkDetailSchema, 'GET', `/v1/networks/${segment(name)}`, { signal });
  }

  async removeNetwork(name: string, options?: { force?: boolean }, signal?: AbortSignal): Promise<void> {
    await this.#call('DELETE', `/v1/networks/${segment(name)}`, {
      query: { force: options?.force === true ? true : undefined },
      signal,
    });
  }

  async listNodes(signal?: AbortSignal): Promise<NodeStatus[]> {
    return this.#json((s) => s.NodeStatusListSchema, 'GET', '/v1/nodes', { signal });
  }

  /** Removes a node; with `drain`, its endpoints first (refused with node_in_use otherwise). */
  async removeNode(name: string, options?: { drain?: boolean }, signal?: AbortSignal): Promise<void> {
    await this.#call('DELETE', `/v1/nodes/${segment(name)}`, {
      query: { drain: options?.drain === true ? true : undefined },
      signal,
    });
  }

  async registerNode(req: RegisterNodeRequest, signal?: AbortSignal): Promise<Node> {
    return this.#json((s) => s.NodeSchema, 'POST', '/v1/nodes', { body: req, signal });
  }

  async heartbeat(node: string, req: HeartbeatRequest, signal?: AbortSignal): Promise<void> {
    await this.#call('POST', `/v1/nodes/${segment(node)}/heartbeat`, { body: req, signal });
  }

  async listEndpoints(filter?: { network?: string; node?: string }, signal?: AbortSignal): Promise<Endpoint[]> {
    return this.#json((s) => s.EndpointListSchema, 'GET', '/v1/endpoints', { query: { network: filter?.network, node: filter?.node }, signal });
  }

  /** Resolves once the node's agent reports the endpoint ready (unless `waitSeconds` is 0). */
  async createEndpoint(req: CreateEndpointRequest, options?: { waitSeconds?: number }, signal?: AbortSignal): Promise<Endpoint> {
    const wait = waitSecondsOf(options?.waitSeconds);
    return this.#json((s) => s.EndpointSchema, 'POST', '/v1/endpoints', {
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

  /** Holds an address for `node` without an endpoint (Docker's IPAM); see docs/api.md, "Reservations". */
  async createReservation(req: CreateReservationRequest, signal?: AbortSignal): Promise<Reservation> {
    return this.#json((s) => s.ReservationSchema, 'POST', '/v1/reservations', { body: req, signal });
  }

  async listReservations(filter?: { network?: string; node?: string }, signal?: AbortSignal): Promise<Reservation[]> {
    return this.#json((s) => s.ReservationListSchema, 'GET', '/v1/reservations', { query: { network: filter?.network, node: filter?.node }, signal });
  }

  /** Releases a reservation (and deletes the endpoint that adopted it); with `node`, only that node's. */
  async deleteReservation(network: string, ip: string, options?: { node?: string }, signal?: AbortSignal): Promise<void> {
    await this.#call('DELETE', `/v1/reservations/${segment(network)}/${segment(ip)}`, { query: { node: options?.node }, signal });
  }

  /**
   * Streams the NDJSON watch; calls onMessage per line; resolves when the server ends the stream, rejects on
   * error or abort. `allNetworks`: every network, not only those where the node has endpoints; `onData`:
   * called whenever bytes arrive (a liveness signal that does not wait for a whole line).
   */
  watch(
    node: string,
    onMessage: (message: WatchMessage) => void,
    signal: AbortSignal,
    options?: { allNetworks?: boolean; onData?: () => void },
  ): Promise<void> {
    const path = `/v1/agent/watch${queryString({ node, networks: options?.allNetworks ? 'all' : undefined })}`;
    return Promise.all([this.#ready(signal), loadSchemas()]).then(([, schemas]) => new Promise<void>((resolve, reject) => {
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
      const req = this.#request({
        ...this.#connection(false, true),
        agent: false,
        method: 'GET',
        path,
        headers: { ...this.#authorization(), accept: 'application/x-ndjson' },
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
        // The start of a line still incomplete, in pieces: a snapshot is one line of megabytes, and appending
        // to one string and searching it again from the start at every chunk cost O(n²) (bench/scale: seconds
        // of an agent's CPU for a 15 MB snapshot). Only each new chunk is searched.
        let pending: string[] = [];
        const deliver = (line: string): boolean => {
          if (line.trim() === '') return true;
          let message: unknown;
          try {
            message = JSON.parse(line);
          } catch {
            const excerpt = line.length > 80 ? `${line.slice(0, 40)}…${line.slice(-40)}` : line;
            finish(new VxnetError('internal', `the manager at ${this.url} sent a malformed watch line (${line.length} characters: ${JSON.stringify(excerpt)}).`));
            return false;
          }
          const type = typeof message === 'object' && message !== null ? (message as { type?: unknown }).type : undefined;
          if (typeof type !== 'string') {
            finish(new VxnetError('internal', `the manager at ${this.url} sent a watch line without a message type.`));
            return false;
          }
          // a message type this client does not know comes from a newer manager: nothing here can act on it
          if (!schemas.WATCH_MESSAGE_TYPES.has(type)) return true;
          const checked = schemas.check(schemas.WatchMessageSchema, message, `${type} message`);
          if (!checked.ok) {
            finish(new VxnetError('internal', `the manager at ${this.url} sent a watch line that does not fit the API: ${checked.sentence}`));
            return false;
          }
          try {
            onMessage(checked.value);
          } catch (err) {
            finish(err);
            return false;
          }
          return true;
        };
        const onData = options?.onData;
        res.on('data', (chunk: string) => {
          onData?.();
          let start = 0;
          let newline = chunk.indexOf('\n');
          while (newline !== -1 && !settled) {
            const piece = chunk.slice(start, newline);
            const line = pending.length === 0 ? piece : pending.join('') + piece;
            pending = [];
            if (!deliver(line)) return;
            start = newline + 1;
            newline = chunk.indexOf('\n', start);
          }
          if (start < chunk.length && !settled) pending.push(start === 0 ? chunk : chunk.slice(start));
        });
        res.on('end', () => {
          if (settled) return;
          // The last line may lack its newline; anything else incomplete is reported by JSON.parse.
          if (deliver(pending.join(''))) finish();
        });
        res.on('error', (err) => finish(this.#streamCut(err)));
        res.on('close', () => {
          if (!res.complete) finish(this.#streamCut(undefined));
        });
      });
      req.end();
    }));
  }

  // ---- plumbing -------------------------------------------------------------------------------------

  #waitTimeoutMs(waitSeconds: number): number {
    return Math.max(this.#timeoutMs, waitSeconds * 1000 + WAIT_MARGIN_MS);
  }

  /** https: makes sure the CA is known, fetching it once (and checking its digest) when only pinned. */
  async #ready(signal: AbortSignal | undefined): Promise<void> {
    if (this.#target.kind !== 'tls' || this.#ca !== undefined) return;
    this.#fetchingCa ??= this.#fetchCa(signal).finally(() => (this.#fetchingCa = undefined));
    this.#ca = await this.#fetchingCa;
  }

  async #fetchCa(signal: AbortSignal | undefined): Promise<string> {
    const [response, schemas] = await Promise.all([this.#call('GET', '/v1/ca', { signal, bootstrap: true }), loadSchemas()]);
    let certificate: string | undefined;
    let digest: string | undefined;
    try {
      const checked = schemas.check(schemas.CaResponseSchema, JSON.parse(response.body), 'response');
      if (checked.ok) {
        certificate = checked.value.certificate;
        digest = certificateDigest(certificate);
      }
    } catch {
      // reported below
    }
    if (certificate === undefined || digest === undefined) {
      throw new VxnetError('untrusted_manager', `the manager at ${this.url} did not send a CA certificate.`);
    }
    if (digest !== this.#caDigest) {
      throw new VxnetError(
        'untrusted_manager',
        `the manager at ${this.url} presented a CA that does not match the token (CA sha256 ${digest}, the token pins ${this.#caDigest}): refusing to trust it.`,
      );
    }
    return certificate;
  }

  /**
   * Where to connect and, for https, whom to trust and who we are. `ownConnection`: not from the pool, whose
   * agent checks the manager's identity itself (see the constructor).
   */
  #connection(bootstrap = false, ownConnection = false): Https.RequestOptions {
    const target = this.#target;
    // servername '' spares http.Agent its IP check of the unused host name (a ~6 ms regex on every CLI call).
    if (target.kind === 'unix') return { socketPath: target.socketPath, servername: '' };
    if (target.kind === 'tcp') return { host: target.host, port: target.port };
    // The CA is not known yet: only GET /v1/ca goes here, and its answer is checked against the digest.
    if (bootstrap) return { host: target.host, port: target.port, rejectUnauthorized: false, minVersion: 'TLSv1.3' };
    return {
      host: target.host,
      port: target.port,
      ca: [this.#ca!],
      ...(this.#clientCertificate ?? {}),
      ...(ownConnection ? { checkServerIdentity: checkManagerIdentity } : {}),
      minVersion: 'TLSv1.3',
    };
  }

  #request(options: Https.RequestOptions): http.ClientRequest {
    return this.#target.kind === 'tls' ? https().request(options) : http.request(options);
  }

  #authorization(): Record<string, string> {
    return this.#token === undefined ? {} : { authorization: `Bearer ${this.#token}` };
  }

  /** One request whose answer must fit the schema `pick` chooses (it is checked, never trusted). */
  async #json<S extends v.GenericSchema>(pick: (schemas: Schemas) => S, method: string, path: string, options: RequestOptions): Promise<v.InferOutput<S>> {
    const [response, schemas] = await Promise.all([this.#call(method, path, options), loadSchemas()]);
    let body: unknown;
    try {
      body = JSON.parse(response.body);
    } catch {
      throw new VxnetError('internal', `the manager at ${this.url} answered ${method} ${path} with malformed JSON.`);
    }
    const checked = schemas.check(pick(schemas), body, 'response');
    if (!checked.ok) {
      throw new VxnetError('internal', `the manager at ${this.url} answered ${method} ${path} with a body that does not fit the API: ${checked.sentence}`);
    }
    return checked.value;
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

  async #send(method: string, path: string, options: RequestOptions): Promise<RawResponse> {
    const { signal } = options;
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    if (!options.bootstrap) await this.#ready(signal);
    return new Promise<RawResponse>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const payload = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body));
      const headers: Record<string, string | number> = {
        ...(options.bootstrap ? {} : this.#authorization()),
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
        this.#inFlight.delete(onClose);
        signal?.removeEventListener('abort', onAbort);
        if (err === undefined) resolve(value!);
        else {
          req.destroy();
          reject(err);
        }
      };
      const onAbort = (): void => finish(signal?.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      const onClose = (): void => finish(new VxnetError('unavailable', `the client of the manager at ${this.url} was closed before it answered.`));
      this.#inFlight.add(onClose);
      const timer = setTimeout(() => {
        finish(new VxnetError('timeout', `the manager at ${this.url} did not answer within ${formatSeconds(timeoutMs)}.`));
      }, timeoutMs);

      const req = this.#request({
        ...this.#connection(options.bootstrap),
        agent: options.bootstrap ? false : this.#agent,
        method,
        path,
        headers,
      });
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
    if (code !== undefined && TLS_TRUST_FAILURE.test(code)) {
      const detail = err instanceof Error && err.message !== code ? `${code}: ${err.message}` : code;
      return new VxnetError('untrusted_manager', `the manager at ${this.url} presented a certificate this client does not trust (${detail}).`, {
        cause: err,
      });
    }
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

/** OpenSSL's certificate verification failures and Node's host name check, as error codes. */
const TLS_TRUST_FAILURE = /^(UNABLE_TO_|CERT_|DEPTH_ZERO_|SELF_SIGNED_|INVALID_CA|INVALID_PURPOSE|HOSTNAME_MISMATCH|ERR_TLS_CERT_|NOT_A_MANAGER_CERT)/;

/**
 * The host name check plus the role: a certificate of the cluster CA that is not the manager's (a node's,
 * say) must never pass for the manager, whatever names it carries.
 */
function checkManagerIdentity(host: string, cert: PeerCertificate): Error | undefined {
  const mismatch = process.getBuiltinModule('node:tls').checkServerIdentity(host, cert);
  if (mismatch) return mismatch;
  const organization = cert.subject?.O;
  if (organization !== MANAGER_ORGANIZATION) {
    return Object.assign(new Error(`the certificate is not a vxnet manager's (O=${String(organization)})`), { code: 'NOT_A_MANAGER_CERT' });
  }
  return undefined;
}

/** Marks a failure on a reused keep-alive socket, which #call may retry once. */
class StaleSocketError extends Error {
  readonly error: VxnetError;
  constructor(error: VxnetError) {
    super(error.message);
    this.error = error;
  }
}

type Schemas = typeof import('../core/schema/index.ts');
let schemasLoading: Promise<Schemas> | undefined;

/**
 * The schemas every answer and watch line is checked against, loaded on first use: the CLI constructs a
 * client on every command, and its --version and --help must not pay for loading valibot.
 */
function loadSchemas(): Promise<Schemas> {
  return (schemasLoading ??= import('../core/schema/index.ts'));
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
