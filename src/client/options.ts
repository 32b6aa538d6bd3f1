/** What a ManagerClient is made with (client.ts), and the defaults of its timing and connection pool. */

export interface ClientOptions {
  /** `https://ADDR:PORT`, `unix:/path/to.sock`, or `http://ADDR:PORT` (plain, for stand-ins in tests); several comma-separated */
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
  /** https with a pinned digest: a folder where the fetched CA is kept for the next client (ca-cache.ts) */
  caCacheDir?: string;
  /** https with a token and no client certificate: a folder where the TLS session is kept, sealed, for the next client (tls-session.ts) */
  sessionCacheDir?: string;
  /** per-request time limit; default 10 s */
  timeoutMs?: number;
  /** pooled connections at most (the watch stream has its own); more requests wait for one. Default 4. */
  maxConnections?: number;
}

export const DEFAULT_TIMEOUT_MS = 10_000;
/** Extra time granted beyond `?wait=` for the answer to travel back. */
export const WAIT_MARGIN_MS = 5_000;
/**
 * Below the manager's keep-alive timeout (75 s, src/manager/listeners.ts), so we close idle sockets before it
 * does; above the agent's heartbeat interval (5 s), so heartbeats reuse one TLS connection.
 */
export const FREE_SOCKET_TIMEOUT_MS = 60_000;
/**
 * Why a bound: an agent reports the status of each new local endpoint as soon as it is set up, all at once.
 * Measured with 1,000 simulated agents starting together (bench/scale): unbounded, each opened one
 * connection per endpoint, 100,000 in all, the manager ran out of file descriptors and half the agents'
 * watches were reset. Four keep-alive connections carry an agent's requests just as fast.
 */
export const DEFAULT_MAX_CONNECTIONS = 4;

export interface RequestOptions {
  body?: unknown;
  query?: Record<string, string | number | boolean | undefined>;
  timeoutMs?: number;
  signal?: AbortSignal | undefined;
  /** https: an unverified connection without credentials, only to fetch the CA whose digest is then checked */
  bootstrap?: boolean;
}
