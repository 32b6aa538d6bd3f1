/**
 * The server side of HTTP shared by the manager's API (src/manager/http.ts, listeners.ts) and the Docker
 * plugin (src/docker/plugin-server.ts): reading a bounded request body, answering JSON, and listening on a
 * unix socket or a TCP port. Each server keeps its own error shape; what a too-large body is, and how it is
 * refused on the wire, is decided here once.
 */
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** The largest request body either server accepts. API bodies are a few KiB; Docker's a few hundred bytes. */
export const MAX_BODY_BYTES = 1024 * 1024;
/** How much of a refused, oversized body is read and discarded before the connection is closed instead. */
const MAX_DISCARD_BYTES = 16 * 1024 * 1024;

/** A request body over MAX_BODY_BYTES; each server turns it into its own refusal (manager: 413). */
export class BodyTooLargeError extends Error {
  constructor() {
    super(`the request body is larger than ${MAX_BODY_BYTES} bytes.`);
    this.name = 'BodyTooLargeError';
  }
}

/**
 * Reads the request body as UTF-8, or rejects with BodyTooLargeError. An oversized body is never kept: up to
 * MAX_DISCARD_BYTES it is still read to the end (and thrown away) before the refusal goes out, so a client
 * busy sending it reads the answer instead of failing on a broken pipe; a larger one is not worth the
 * bandwidth: the answer goes out at once with `connection: close`.
 */
export function readBody(req: IncomingMessage, res: ServerResponse): Promise<string> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_DISCARD_BYTES) {
    res.setHeader('connection', 'close');
    req.resume();
    return Promise.reject(new BodyTooLargeError());
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) over = true;
      else chunks.push(chunk);
      if (size > MAX_DISCARD_BYTES && !res.headersSent) {
        res.setHeader('connection', 'close');
        reject(new BodyTooLargeError());
      }
    });
    req.on('end', () => (over ? reject(new BodyTooLargeError()) : resolve(Buffer.concat(chunks).toString('utf8'))));
    req.on('error', reject);
  });
}

/** Answers `body` as JSON (no body when undefined), unless the connection is gone already. */
export function sendJson(res: ServerResponse, status: number, body: unknown, contentType = 'application/json; charset=utf-8'): void {
  if (res.destroyed) return;
  if (body === undefined) {
    res.writeHead(status);
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export type ListenAddress = { kind: 'tcp'; host: string | undefined; port: number } | { kind: 'unix'; path: string };

/** Parses a listen address (`--listen`, `--metrics-listen`): `ADDR:PORT`, `[V6ADDR]:PORT`, `:PORT` or `unix:/path`. */
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

/**
 * After a manager restart every agent reconnects at once; Node's default accept queue (511) overflowed with
 * 1,000 agents (bench/scale: 40 connections reset). The kernel caps it at net.core.somaxconn.
 */
const LISTEN_BACKLOG = 4096;

/**
 * Binds `server` to `address` and says what was bound ("127.0.0.1:40123", "unix:/run/vxnet.sock"). A unix
 * socket left by an earlier run is replaced (anything else at the path is refused) and gets mode 0600: only
 * the owner may talk to a server that trusts whoever connects there.
 */
export async function listenOn(server: Server, address: ListenAddress): Promise<string> {
  if (address.kind === 'unix') {
    removeStaleSocket(address.path);
    await bind(server, { path: address.path });
    chmodSync(address.path, 0o600);
    return `unix:${address.path}`;
  }
  const backlog = LISTEN_BACKLOG;
  await bind(server, address.host === undefined ? { port: address.port, backlog } : { host: address.host, port: address.port, backlog });
  const info = server.address() as AddressInfo;
  return info.family === 'IPv6' ? `[${info.address}]:${info.port}` : `${info.address}:${info.port}`;
}

function bind(server: Server, options: { path: string } | { host?: string; port: number; backlog: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Stops `server`, ending its open connections (watch streams, idle keep-alives), and removes its socket file. */
export function closeServer(server: Server, address: ListenAddress): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => {
      if (address.kind === 'unix') {
        try {
          removeStaleSocket(address.path);
        } catch {
          // something else took the path meanwhile: not ours to delete
        }
      }
      resolve();
    });
    server.closeAllConnections();
  });
}

/** Removes a socket left by a previous run; refuses to delete anything that is not a socket. */
function removeStaleSocket(path: string): void {
  let stat;
  try {
    stat = lstatSync(path);
  } catch {
    return;
  }
  if (!stat.isSocket()) throw new Error(`cannot listen on unix:${path}: the file exists and is not a socket.`);
  unlinkSync(path);
}
