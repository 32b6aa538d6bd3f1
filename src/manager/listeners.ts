/**
 * The manager's listeners: every `--listen` address served with the API handler, TCP over TLS (client
 * certificates requested) and unix sockets in plain HTTP; with the limits that keep a flood of connections
 * from one host from shutting everyone else out (docs/security.md, "Connection limits").
 *
 * What is bounded is the time a connection may take to *start* — finish the TLS handshake, send its request
 * head, send its request body — and how many connections the TCP listeners hold, in all and per remote
 * address. An answer is never cut: the watch stream is a response that lives for hours. The unix socket
 * (mode 0600, the manager's own user) has no connection caps: it is how an operator gets in during a flood.
 */
import { type RequestListener, type Server, createServer } from 'node:http';
import { type Server as TlsServer, createServer as createTlsServer } from 'node:https';
import type { Socket } from 'node:net';
import { type ListenAddress, closeServer, listenOn, parseListen } from '../http/server.ts';

export type { ListenAddress } from '../http/server.ts';

/**
 * How long an idle client connection is kept open (Node's default is 5 s). Agents heartbeat every 5 s: with
 * the default, each heartbeat opened a new TLS connection, a handshake each — measured with 1,000 agents
 * (bench/scale), 1.2 ms of manager CPU per heartbeat and a quarter of a core with nothing happening. Clients
 * close idle connections before this (src/client/client.ts), so they never reuse one the manager is closing.
 */
export const KEEP_ALIVE_TIMEOUT_MS = 75_000;

/** Connection limits of the manager's listeners; every field has a default (DEFAULT_CONNECTION_LIMITS). */
export interface ConnectionLimits {
  /** a TCP connection must finish its TLS handshake within this */
  handshakeTimeoutMs: number;
  /** a request's head (request line and headers) must arrive within this of its first byte */
  headersTimeoutMs: number;
  /** a whole request, head and body, must arrive within this (the answer is not limited) */
  requestTimeoutMs: number;
  /** open connections on all TCP listeners together; more are closed as they arrive */
  maxConnections: number;
  /**
   * open connections from one remote address on the TCP listeners. Loopback addresses are exempt (they count
   * towards maxConnections only): whoever is on the manager's host reaches it anyway, and the scale harness
   * runs 1,000 agents there.
   */
  maxConnectionsPerAddress: number;
}

/**
 * Node's defaults held a connection that never completed a handshake 120 s and one that never sent a request
 * 60–90 s; an audit filled the manager with 450 such connections from one address. An agent needs at most
 * five connections (four pooled, src/client/client.ts, and its watch); 64 leaves room for hosts behind one
 * NAT address. 20,000 admits the scale harness (1,000 agents, 5,000 connections) four times over and stays
 * far below the descriptors Node raises its limit to.
 */
export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  handshakeTimeoutMs: 5_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  maxConnections: 20_000,
  maxConnectionsPerAddress: 64,
};

/** Node checks the head and request timeouts on a timer; its default (30 s) would let them run late by that much. */
const TIMEOUT_CHECK_INTERVAL_MS = 1_000;

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
export async function listenAll(
  handler: RequestListener,
  listen: string[],
  tls?: TlsCredentials,
  limits: Partial<ConnectionLimits> = {},
): Promise<Listeners> {
  const bounds = { ...DEFAULT_CONNECTION_LIMITS, ...limits };
  const admission = new Admission(bounds);
  const opened: { server: Server | TlsServer; address: ListenAddress }[] = [];
  const addresses: string[] = [];
  const close = async () => {
    await Promise.all(opened.map(({ server, address }) => closeServer(server, address)));
  };
  try {
    for (const text of listen) {
      const address = parseListen(text);
      const http = {
        keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
        headersTimeout: bounds.headersTimeoutMs,
        requestTimeout: bounds.requestTimeoutMs,
        connectionsCheckingInterval: TIMEOUT_CHECK_INTERVAL_MS,
      };
      const server: Server | TlsServer =
        address.kind === 'tcp' && tls
          ? createTlsServer({ ...tlsOptions(tls), ...http, handshakeTimeout: bounds.handshakeTimeoutMs }, handler)
          : createServer(http, handler);
      if (address.kind === 'tcp') server.on('connection', (socket: Socket) => admission.admit(socket));
      addresses.push(await listenOn(server, address));
      opened.push({ server, address });
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

/**
 * Counts the TCP listeners' open connections, in all and per remote address, and closes those over a cap as
 * they arrive — before any TLS work is spent on them.
 */
class Admission {
  readonly #limits: ConnectionLimits;
  #open = 0;
  readonly #byAddress = new Map<string, number>();

  constructor(limits: ConnectionLimits) {
    this.#limits = limits;
  }

  admit(socket: Socket): void {
    if (socket.destroyed) return; // gone before it was counted: no 'close' would uncount it
    const remote = socket.remoteAddress ?? '';
    const counted = !isLoopback(remote);
    const fromRemote = counted ? (this.#byAddress.get(remote) ?? 0) : 0;
    if (this.#open >= this.#limits.maxConnections || fromRemote >= this.#limits.maxConnectionsPerAddress) {
      socket.destroy();
      return;
    }
    this.#open++;
    if (counted) this.#byAddress.set(remote, fromRemote + 1);
    socket.once('close', () => {
      this.#open--;
      if (!counted) return;
      const left = (this.#byAddress.get(remote) ?? 1) - 1;
      if (left === 0) this.#byAddress.delete(remote);
      else this.#byAddress.set(remote, left);
    });
  }
}

function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.');
}
