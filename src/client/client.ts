/**
 * Client of the manager's HTTP API (docs/api.md), used by the CLI, the agent and the demo.
 *
 * The transport is src/http/client.ts (node:http, because the manager also listens on unix sockets, which
 * fetch cannot reach without undici). One keep-alive pool per client reuses connections for the agent's
 * steady heartbeats; the long-lived watch stream gets a connection of its own so it never pins a pooled
 * socket.
 *
 * `https://` (the manager's TCP listeners, docs/security.md): the server must present a certificate of the
 * cluster CA for the URL's host, with the manager's role. The CA is given (`ca`), or pinned by digest
 * (`caDigest`, or the digest inside a vxnet token): then the client fetches `GET /v1/ca` once over an
 * unverified connection, refuses it unless its SHA-256 matches, and verifies every connection against it.
 * A client certificate (`cert`/`key`) authenticates agents; bearer tokens go in the Authorization header.
 *
 * Several managers (sharing one etcd) are given comma-separated; failover.ts picks which one. A request
 * that reached a manager which died before answering may run twice: every write of the API is idempotent
 * or refused the second time (e.g. `endpoint_exists`), never done twice.
 *
 * Every failure surfaces as a VxnetError: the manager's own `{error: {code, message}}` when it answered,
 * `unavailable` when it could not be reached, `timeout` when it did not answer in time. An aborted signal
 * rejects with the signal's reason, as fetch does.
 */
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type * as v from 'valibot';
import {
  type CertificateResponse,
  type CreateEndpointRequest,
  type CreateNetworkRequest,
  type CreateReservationRequest,
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
  type UpdateNodeRequest,
  type RenewCertificateRequest,
  type Reservation,
  type TokenResponse,
  type WatchMessage,
} from '../core/model.ts';
import { VxnetError } from '../core/errors.ts';
import type { DiagnoseReport, DiagnoseRequest } from '../core/schema/diagnose.ts';
import { certificateDigest } from '../pki/identity.ts';
import { parseToken } from '../pki/token.ts';
import { HttpClient, type HttpResponse, type TlsRequestOptions, readBounded } from '../http/client.ts';
import { errorFrom, failure, streamCut } from './failures.ts';
import { Failover, unreachable } from './failover.ts';
import { parseManagerUrls, type ManagerTarget } from './manager-url.ts';
import { checkManagerIdentity, pinnedCa } from './trust.ts';
import { cacheCa, readCachedCa } from './ca-cache.ts';
import { type Schemas, readWatchLines } from './watch-reader.ts';
import { queryString, segment, waitSecondsOf } from './paths.ts';
import { type ClientOptions, DEFAULT_MAX_CONNECTIONS, DEFAULT_TIMEOUT_MS, FREE_SOCKET_TIMEOUT_MS, type RequestOptions, WAIT_MARGIN_MS } from './options.ts';
import { TlsSessionStore } from './tls-session.ts';

export { type ClientOptions, DEFAULT_MAX_CONNECTIONS, DEFAULT_TIMEOUT_MS } from './options.ts';
// The CLI takes both from here: one import of the client on its path, not two.
export { defaultCaCacheDir } from './ca-cache.ts';

/** One manager of the client: its address, its connection pool, and (https, token clients) its kept TLS session. */
interface Member {
  url: string;
  target: ManagerTarget;
  http: HttpClient;
  sessions?: TlsSessionStore | undefined;
}

export class ManagerClient {
  /** every manager given, in order, each with its own connection pool */
  readonly #managers: Failover<Member>;
  readonly #token: string | undefined;
  readonly #timeoutMs: number;
  /** https: the trusted CA (PEM), once given or fetched and checked against #caDigest */
  #ca: string | undefined;
  readonly #caDigest: string | undefined;
  #fetchingCa: Promise<string> | undefined;
  readonly #caCacheDir: string | undefined;
  #clientCertificate: { cert: string; key: string } | undefined;

  constructor(options: ClientOptions) {
    const targets = parseManagerUrls(options.url);
    const first = targets[0]!;
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
    this.#caCacheDir = options.caCacheDir;
    let pin = this.#caDigest;
    if (first.kind === 'tls') {
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
        pin = digest;
      } else if (this.#caDigest === undefined) {
        throw new VxnetError(
          'bad_request',
          `${first.url} needs the cluster CA to be trusted: pass a vxnet token (it carries the CA digest) or the CA certificate (--ca FILE).`,
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
    const { sessionCacheDir } = options;
    const token = this.#clientCertificate === undefined ? this.#token : undefined;
    this.#managers = new Failover(targets.map((target): Member => ({
      url: target.url,
      target,
      sessions: target.kind === 'tls' && sessionCacheDir !== undefined && token !== undefined && pin !== undefined
        ? new TlsSessionStore(sessionCacheDir, { url: target.url, pin, token })
        : undefined,
      http: new HttpClient({
        target: target.kind === 'unix' ? { kind: 'unix', socketPath: target.socketPath } : { kind: target.kind, host: target.host, port: target.port },
        freeSocketTimeoutMs: FREE_SOCKET_TIMEOUT_MS,
        maxSockets: options.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
        ...(target.kind === 'tls' ? { checkServerIdentity: checkManagerIdentity } : {}),
      }),
    })));
  }

  /** The URL of the manager this client talks to now (the one that answered last). */
  get url(): string {
    return this.#managers.current.url;
  }

  /** https: the cluster CA this client trusts (PEM), fetched and checked against the pinned digest first if need be. */
  async trustedCa(signal?: AbortSignal): Promise<string | undefined> {
    await this.#ready(signal);
    return this.#ca;
  }

  /** https: the client certificate for connections opened from now on (after a renewal); no more kept TLS sessions. */
  setClientCertificate(credentials: { cert: string; key: string }): void {
    this.#clientCertificate = { cert: credentials.cert, key: credentials.key };
    for (const member of this.#managers.members) member.sessions = undefined;
  }

  /** https with a session cache: whether the last connection opened to the current manager resumed a kept TLS session. */
  get tlsSessionResumed(): boolean | undefined {
    return this.#managers.current.sessions?.resumed;
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
    for (const { http } of this.#managers.members) http.close();
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

  /** `PATCH /v1/nodes/:name` (admin): e.g. whether the node may create networks. */
  async updateNode(name: string, req: UpdateNodeRequest, signal?: AbortSignal): Promise<NodeStatus> {
    return this.#json((s) => s.NodeStatusSchema, 'PATCH', `/v1/nodes/${segment(name)}`, { body: req, signal });
  }

  async registerNode(req: RegisterNodeRequest, signal?: AbortSignal): Promise<Node> {
    return this.#json((s) => s.NodeSchema, 'POST', '/v1/nodes', { body: req, signal });
  }

  async heartbeat(node: string, req: HeartbeatRequest, signal?: AbortSignal): Promise<void> {
    await this.#call('POST', `/v1/nodes/${segment(node)}/heartbeat`, { body: req, signal });
  }

  /** `vxnet trace` (admin, docs/api.md "Diagnose"): node `node`'s agent reads its kernel; answerDiagnose is that agent's answer. */
  async diagnose(node: string, req: DiagnoseRequest, timeoutSeconds?: number, signal?: AbortSignal): Promise<DiagnoseReport> {
    const timeout = timeoutSeconds === undefined ? {} : { query: { timeout: timeoutSeconds }, timeoutMs: timeoutSeconds * 1000 + this.#timeoutMs };
    return this.#json((s) => s.DiagnoseReportSchema, 'POST', `/v1/nodes/${segment(node)}/diagnose`, { body: req, ...timeout, signal });
  }

  async answerDiagnose(node: string, id: string, report: DiagnoseReport, signal?: AbortSignal): Promise<void> {
    await this.#call('PUT', `/v1/nodes/${segment(node)}/diagnose/${segment(id)}`, { body: report, signal });
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

  /** The Docker plugin: the name of the container behind one of this node's Docker endpoints. */
  async setDockerContainer(id: string, name: string, signal?: AbortSignal, aliases?: string[]): Promise<void> {
    await this.#call('PUT', `/v1/endpoints/${segment(id)}/docker-container`, { body: aliases === undefined ? { name } : { name, aliases }, signal });
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
   * called whenever bytes arrive (a liveness signal that does not wait for a whole line); `since`: the
   * revision up to which the caller holds everything, to get the changes after it rather than a snapshot
   * when the manager still has them (src/manager/watch-resume.ts).
   */
  watch(
    node: string,
    onMessage: (message: WatchMessage) => void,
    signal: AbortSignal,
    options?: { allNetworks?: boolean; onData?: () => void; since?: number },
  ): Promise<void> {
    const path = `/v1/agent/watch${queryString({ node, networks: options?.allNetworks ? 'all' : undefined, since: options?.since })}`;
    return Promise.all([this.#ready(signal), loadSchemas()]).then(async ([, schemas]) => {
      // opening the stream fails over; after a cut, the caller's next watch() starts at the next manager
      const { member, res } = await this.#managers.run(async (member) => ({ member, res: await this.#openStream(member, path, signal) }), signal);
      const cut = (err: unknown) => (this.#managers.movePast(member), streamCut(member.url, err));
      return readWatchLines(res, signal, { url: member.url, schemas, onMessage, ...(options?.onData ? { onData: options.onData } : {}), cut });
    });
  }

  async #openStream({ http, url }: { http: HttpClient; url: string }, path: string, signal: AbortSignal): Promise<IncomingMessage> {
    let res;
    try {
      res = await http.stream({ method: 'GET', path, headers: { ...this.#authorization(), accept: 'application/x-ndjson' }, signal, ...this.#tls() });
    } catch (err) {
      throw unreachable(failure(url, err, undefined));
    }
    const status = res.statusCode ?? 0;
    if (status >= 200 && status <= 299) return res;
    let body: string;
    try {
      body = await readBounded(res);
    } catch (err) {
      throw failure(url, err, undefined);
    }
    throw errorFrom(url, { status, body });
  }

  // ---- plumbing -------------------------------------------------------------------------------------

  #waitTimeoutMs(waitSeconds: number): number {
    return Math.max(this.#timeoutMs, waitSeconds * 1000 + WAIT_MARGIN_MS);
  }

  /** https: makes sure the CA is known, fetching it once (and checking its digest) when only pinned. */
  async #ready(signal: AbortSignal | undefined): Promise<void> {
    if (this.#managers.current.target.kind !== 'tls' || this.#ca !== undefined) return;
    if (this.#caCacheDir !== undefined && this.#caDigest !== undefined) {
      this.#ca = readCachedCa(this.#caCacheDir, this.#caDigest);
      if (this.#ca !== undefined) return;
    }
    this.#fetchingCa ??= this.#fetchCa(signal).finally(() => (this.#fetchingCa = undefined));
    this.#ca = await this.#fetchingCa;
  }

  async #fetchCa(signal: AbortSignal | undefined): Promise<string> {
    const [response, schemas] = await Promise.all([this.#call('GET', '/v1/ca', { signal, bootstrap: true }), schemasAfterIo()]);
    const ca = pinnedCa(this.url, response.body, this.#caDigest, schemas);
    if (this.#caCacheDir !== undefined) cacheCa(this.#caCacheDir, this.#caDigest!, ca);
    return ca;
  }

  /**
   * https: whom to trust and who we are; `bootstrap`: nobody yet, only for GET /v1/ca (its answer is checked);
   * `session`: a kept session to offer (tls-session.ts), whose handshake was verified against the same CA.
   */
  #tls(bootstrap = false, session?: Buffer): { tls?: TlsRequestOptions } {
    if (this.#managers.current.target.kind !== 'tls') return {};
    if (bootstrap) return { tls: { rejectUnauthorized: false, minVersion: 'TLSv1.3' } };
    return { tls: { ca: [this.#ca!], ...(this.#clientCertificate ?? {}), minVersion: 'TLSv1.3', ...(session ? { session } : {}) } };
  }

  #authorization(): Record<string, string> {
    return this.#token === undefined ? {} : { authorization: `Bearer ${this.#token}` };
  }

  /** One request whose answer must fit the schema `pick` chooses (it is checked, never trusted). */
  async #json<S extends v.GenericSchema>(pick: (schemas: Schemas) => S, method: string, path: string, options: RequestOptions): Promise<v.InferOutput<S>> {
    const [response, schemas] = await Promise.all([this.#call(method, path, options), schemasAfterIo()]);
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
  async #call(method: string, path: string, options: RequestOptions): Promise<HttpResponse> {
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    if (!options.bootstrap) await this.#ready(options.signal);
    const body = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body));
    const headers: Record<string, string | number> = { ...(options.bootstrap ? {} : this.#authorization()), accept: 'application/json' };
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = body.length;
    }
    return this.#managers.run(async ({ http, url, sessions }) => {
      // Kept sessions only on verified connections, never on the bootstrap one.
      const keep = options.bootstrap ? undefined : sessions;
      let response: HttpResponse;
      try {
        response = await http.request({
          method,
          path: path + queryString(options.query ?? {}),
          headers, body, timeoutMs, signal: options.signal,
          // bootstrap: an unverified connection of its own, never pooled with the verified ones
          ownConnection: options.bootstrap === true,
          ...this.#tls(options.bootstrap, keep?.offer()),
          ...(keep ? { onTlsConnection: (socket: TLSSocket) => keep.watch(socket) } : {}),
        });
      } catch (err) {
        throw unreachable(failure(url, err, timeoutMs));
      }
      if (response.status < 200 || response.status > 299) throw errorFrom(url, response);
      return response;
    }, options.signal);
  }
}

let schemasLoading: Promise<Schemas> | undefined;

/**
 * The schemas every answer and watch line is checked against, loaded on first use: the CLI constructs a
 * client on every command, and its --version and --help must not pay for loading valibot.
 */
function loadSchemas(): Promise<Schemas> {
  return (schemasLoading ??= import('../core/schema/index.ts'));
}

/**
 * The schemas for the answer of a request started just before: loaded only once the event loop has done its
 * I/O, when the request (or its TLS ClientHello) is on the wire, so that loading them (valibot and the API's
 * schemas, milliseconds of a CLI call) overlaps the manager's work instead of delaying the request.
 */
function schemasAfterIo(): Promise<Schemas> {
  return schemasLoading ?? new Promise<void>((resolve) => setImmediate(resolve)).then(loadSchemas);
}
