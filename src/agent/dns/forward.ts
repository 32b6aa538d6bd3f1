/**
 * Forwarding what a network's zone does not answer to the resolvers of the agent's host, unchanged: the
 * query's bytes go out as they came and the first answer with the same id comes back as it is, so whatever
 * the client asked (EDNS, DNSSEC bits, a type vxnet does not know) is between it and the host's resolver.
 *
 * The resolvers are the `nameserver` lines of the host's resolv.conf (an agent option, so a simulated host
 * can name a test resolver), read again whenever the file changes. Each UDP query goes out from a fresh
 * socket on a random port, so an answer can only come from the server it was sent to (node:dgram connects
 * the socket); servers are tried in order, as the C library's stub resolver does.
 */
import { createSocket } from 'node:dgram';
import { readFileSync, statSync } from 'node:fs';
import { isIP, connect as tcpConnect } from 'node:net';
import { DNS_PORT, dnsId, frameTcp, TcpMessageReader } from '../../packet/dns.ts';

/** How long one server gets to answer before the next is asked (glibc's default is 5 s for all of them). */
export const FORWARD_TIMEOUT_MS = 2_000;
/** resolv.conf lists at most three (resolv.conf(5), MAXNS) */
const MAX_SERVERS = 3;

/** The `nameserver` addresses of a resolv.conf, in order (at most three, as the C library reads). */
export function parseResolvConf(text: string): string[] {
  const servers: string[] = [];
  for (const line of text.split('\n')) {
    const match = /^\s*nameserver\s+(\S+)/.exec(line);
    if (!match) continue;
    const address = match[1]!.replace(/%.*$/, '');
    if (isIP(address) !== 0 && servers.length < MAX_SERVERS) servers.push(address);
  }
  return servers;
}

/** The host's resolvers, read from `path` again when it changes; none when it cannot be read. */
export class ResolvConf {
  readonly path: string;
  #mtimeMs = -1;
  #servers: string[] = [];

  constructor(path: string) {
    this.path = path;
  }

  servers(): string[] {
    let mtimeMs: number;
    try {
      mtimeMs = statSync(this.path).mtimeMs;
    } catch {
      this.#mtimeMs = -1;
      return (this.#servers = []);
    }
    if (mtimeMs !== this.#mtimeMs) {
      this.#mtimeMs = mtimeMs;
      try {
        this.#servers = parseResolvConf(readFileSync(this.path, 'utf8'));
      } catch {
        this.#servers = [];
      }
    }
    return this.#servers;
  }
}

/** Sends `query` to each server in turn over UDP; the first answer with its id, or undefined. */
export async function forwardUdp(query: Uint8Array, servers: readonly string[], port = DNS_PORT, timeoutMs = FORWARD_TIMEOUT_MS): Promise<Uint8Array | undefined> {
  const id = dnsId(query);
  for (const server of servers) {
    const answer = await askUdp(query, id, server, port, timeoutMs);
    if (answer) return answer;
  }
  return undefined;
}

function askUdp(query: Uint8Array, id: number | undefined, server: string, port: number, timeoutMs: number): Promise<Uint8Array | undefined> {
  return new Promise((resolve) => {
    const socket = createSocket(isIP(server) === 6 ? 'udp6' : 'udp4');
    let finished = false;
    const done = (answer: Uint8Array | undefined): void => {
      // once only: closing a closed socket throws, outside any promise
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.close();
      resolve(answer);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    socket.on('error', () => done(undefined));
    socket.on('message', (message) => {
      if (dnsId(message) === id) done(new Uint8Array(message));
    });
    socket.connect(port, server, () => socket.send(query, (err) => err && done(undefined)));
  });
}

/** The same over TCP (a client that asked over TCP, most likely after a truncated UDP answer). */
export async function forwardTcp(query: Uint8Array, servers: readonly string[], port = DNS_PORT, timeoutMs = FORWARD_TIMEOUT_MS): Promise<Uint8Array | undefined> {
  for (const server of servers) {
    const answer = await askTcp(query, server, port, timeoutMs);
    if (answer) return answer;
  }
  return undefined;
}

function askTcp(query: Uint8Array, server: string, port: number, timeoutMs: number): Promise<Uint8Array | undefined> {
  return new Promise((resolve) => {
    const reader = new TcpMessageReader();
    const socket = tcpConnect({ host: server, port });
    const done = (answer: Uint8Array | undefined): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    socket.on('error', () => done(undefined));
    socket.on('close', () => done(undefined));
    socket.on('connect', () => socket.write(frameTcp(query)));
    socket.on('data', (chunk) => {
      const [answer] = reader.push(new Uint8Array(chunk));
      if (answer) done(answer);
    });
  });
}
