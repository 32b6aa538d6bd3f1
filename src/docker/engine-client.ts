/**
 * The Docker Engine API over the engine's unix socket (the agent's `--docker-socket`): only the calls vxnet
 * makes — list, inspect, create and remove networks, disconnect a container, inspect a container.
 *
 * Paths are unversioned: an engine serves them at its own API version, and the fields used here have not
 * changed since API 1.24. Failures are EngineError with the engine's own message and HTTP status (a
 * missing object is `undefined` from the inspect calls, not an error). The transport (a keep-alive pool on
 * the socket, deadlines, the retry of a GET on a stale connection) is src/http/client.ts.
 */
import type { ErrorCode } from '../core/errors.ts';
import { HttpClient, HttpFailure, MAX_RESPONSE_BYTES } from '../http/client.ts';

export interface EngineNetwork {
  Id: string;
  Name: string;
  Driver: string;
  Internal?: boolean;
  EnableIPv6?: boolean;
  IPAM?: { Driver?: string; Config?: { Subnet?: string; Gateway?: string }[] | null };
  Options?: Record<string, string> | null;
  Labels?: Record<string, string> | null;
  /** only from inspect: container id → its endpoint on the network */
  Containers?: Record<string, { Name?: string; EndpointID?: string; IPv4Address?: string }> | null;
}

export interface EngineContainer {
  Id: string;
  Name: string;
  State: { Running: boolean; Pid: number; Status: string };
  /** its networks, with its aliases on each (`--network-alias`) */
  NetworkSettings?: { Networks?: Record<string, { EndpointID?: string; Aliases?: string[] | null }> | null };
}

export interface NetworkCreateSpec {
  Name: string;
  Driver: string;
  CheckDuplicate: boolean;
  Internal: boolean;
  /** with IPv6 subnets: libnetwork then asks the IPAM driver for IPv6 pools too */
  EnableIPv6?: boolean;
  IPAM: { Driver: string; Config: { Subnet: string; Gateway?: string }[] };
  Options: Record<string, string>;
  Labels: Record<string, string>;
}

/** Not a VxnetError, for the same reason as HostToolError: the edges answer it as an internal failure. */
export class EngineError extends Error {
  readonly code = 'docker_engine_failed' satisfies ErrorCode;
  /** the engine's HTTP status (502 malformed answer, 503 unreachable, 504 no answer in time: ours) */
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = 'EngineError';
    this.status = status;
  }
}

export interface EngineClientOptions {
  /** the engine's API socket, e.g. /run/docker.sock */
  socketPath: string;
  /** per-request time limit (default 10 s) */
  timeoutMs?: number;
}

/** How long an idle connection to the engine is kept for the next call (the plugin's and sync's calls come in bursts). */
const FREE_SOCKET_TIMEOUT_MS = 30_000;

export class DockerEngineClient {
  readonly socketPath: string;
  readonly #timeoutMs: number;
  readonly #http: HttpClient;

  constructor(options: EngineClientOptions) {
    this.socketPath = options.socketPath;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#http = new HttpClient({ target: { kind: 'unix', socketPath: options.socketPath }, freeSocketTimeoutMs: FREE_SOCKET_TIMEOUT_MS });
  }

  async ping(signal?: AbortSignal): Promise<void> {
    await this.#call('GET', '/_ping', undefined, signal);
  }

  async listNetworks(filter: { driver?: string } = {}, signal?: AbortSignal): Promise<EngineNetwork[]> {
    const filters = filter.driver === undefined ? '' : `?filters=${encodeURIComponent(JSON.stringify({ driver: { [filter.driver]: true } }))}`;
    return (await this.#json<EngineNetwork[]>('GET', `/networks${filters}`, undefined, signal)) ?? [];
  }

  inspectNetwork(idOrName: string, signal?: AbortSignal): Promise<EngineNetwork | undefined> {
    return this.#json<EngineNetwork>('GET', `/networks/${encodeURIComponent(idOrName)}`, undefined, signal, true);
  }

  async createNetwork(spec: NetworkCreateSpec, signal?: AbortSignal): Promise<{ Id: string }> {
    return (await this.#json<{ Id: string }>('POST', '/networks/create', spec, signal))!;
  }

  /** Removes a network; one that is gone already counts as removed. */
  async removeNetwork(idOrName: string, signal?: AbortSignal): Promise<void> {
    try {
      await this.#call('DELETE', `/networks/${encodeURIComponent(idOrName)}`, undefined, signal);
    } catch (err) {
      if (!(err instanceof EngineError && err.status === 404)) throw err;
    }
  }

  async disconnect(network: string, container: string, force: boolean, signal?: AbortSignal): Promise<void> {
    await this.#call('POST', `/networks/${encodeURIComponent(network)}/disconnect`, { Container: container, Force: force }, signal);
  }

  inspectContainer(idOrName: string, signal?: AbortSignal): Promise<EngineContainer | undefined> {
    return this.#json<EngineContainer>('GET', `/containers/${encodeURIComponent(idOrName)}/json`, undefined, signal, true);
  }

  async #json<T>(method: string, path: string, body: unknown, signal: AbortSignal | undefined, missingOk = false): Promise<T | undefined> {
    let text: string;
    try {
      text = await this.#call(method, path, body, signal);
    } catch (err) {
      if (missingOk && err instanceof EngineError && err.status === 404) return undefined;
      throw err;
    }
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new EngineError(502, `the Docker engine at ${this.socketPath} answered ${method} ${path} with malformed JSON.`);
    }
  }

  async #call(method: string, path: string, body: unknown, signal: AbortSignal | undefined): Promise<string> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    let response;
    try {
      response = await this.#http.request({
        method,
        path,
        headers: { host: 'docker', ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}) },
        body: payload,
        timeoutMs: this.#timeoutMs,
        signal,
      });
    } catch (err) {
      if (!(err instanceof HttpFailure)) throw err; // an abort's reason
      if (err.kind === 'timeout') throw new EngineError(504, `the Docker engine at ${this.socketPath} did not answer ${method} ${path} within ${this.#timeoutMs} ms.`);
      if (err.kind === 'too_large') throw new EngineError(502, `the Docker engine at ${this.socketPath} answered ${method} ${path} with more than ${MAX_RESPONSE_BYTES} bytes.`);
      throw new EngineError(503, `cannot reach the Docker engine at ${this.socketPath}: ${err.code ?? err.message}`);
    }
    const { status, body: text } = response;
    if (status >= 200 && status < 300) return text;
    let message = text.trim();
    try {
      const parsed = JSON.parse(text) as { message?: unknown };
      if (typeof parsed.message === 'string') message = parsed.message;
    } catch {
      // not JSON: the text as it is
    }
    throw new EngineError(status, message || `HTTP ${status}`);
  }
}
