/**
 * The agent's DNS responder: every network with an endpoint on this node answers DNS on its gateway
 * addresses, UDP and TCP port 53, from its zone (zone.ts); what the zone does not answer is forwarded to the
 * host's resolvers (forward.ts).
 *
 * Isolation. Every gateway lives on a bridge in the host namespace, and Linux delivers a packet to any local
 * address whatever interface it came in on, so a container of network A can send to B's gateway. Two things
 * keep B's names from it: the firewall drops what enters a vxnet bridge for another network's gateway
 * (table ip vxnet, chain input, kernel/nftables.ts), and each socket answers only sources inside its own
 * network's subnets — which a container of A cannot forge, the bridge's anti-spoofing table checks every
 * source against its port. Each socket is bound to one gateway address (not 0.0.0.0), so it never sees a
 * query for another network's gateway, nor one for the host's own addresses.
 *
 * Sockets follow the zones after each reconcile pass (`sync`): a gateway address only exists once the pass
 * made the network's bridge, so a bind that fails is tried again a second later.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import type { EventEmitter } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { messageOf } from '../../core/errors.ts';
import { decodeDns, dnsId, DnsRcode, DnsType, DNS_PORT, encodeDns, frameTcp, TcpMessageReader, type DnsMessage } from '../../packet/dns.ts';
import { forwardTcp, forwardUdp, ResolvConf } from './forward.ts';
import { reply, type NetworkZone } from './zone.ts';

/** RFC 1035 §4.2.1: without EDNS a UDP answer holds at most 512 bytes. */
const UDP_PLAIN_MAX = 512;
/** the most a UDP answer holds whatever EDNS size the client offers (the DNS flag day 2020 figure) */
const UDP_EDNS_MAX = 1232;
/** forwarded queries in flight at once; beyond, SERVFAIL (the host's resolvers are not ours to flood) */
const MAX_FORWARDS = 256;
/** TCP connections per gateway, and how long an idle one stays (RFC 7766 §6.2.3 suggests seconds) */
const MAX_TCP_CONNECTIONS = 64;
const TCP_IDLE_MS = 10_000;
const RETRY_BIND_MS = 1_000;

export interface DnsResponderOptions {
  /** the host's resolv.conf, whose nameservers get what the zones do not answer (default /etc/resolv.conf) */
  resolvConf?: string;
  /** default 53; tests of the responder alone use another */
  port?: number;
  /** the resolvers' port, default 53 (tests) */
  upstreamPort?: number;
  log?: (line: string) => void;
}

interface Listener {
  gateway: string;
  zone: NetworkZone;
  udp?: UdpSocket;
  tcp?: Server;
  /** its TCP connections, ended with it (they would answer from a zone nobody updates any more) */
  connections: Set<Socket>;
  binding?: boolean;
  failure?: string;
}

export class DnsResponder {
  readonly #port: number;
  readonly #upstreamPort: number;
  readonly #log: (line: string) => void;
  readonly #upstream: ResolvConf;
  /** by `network gateway` */
  readonly #listeners = new Map<string, Listener>();
  #forwards = 0;
  #retry: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: DnsResponderOptions = {}) {
    this.#port = options.port ?? DNS_PORT;
    this.#upstreamPort = options.upstreamPort ?? DNS_PORT;
    this.#log = options.log ?? (() => {});
    this.#upstream = new ResolvConf(options.resolvConf ?? '/etc/resolv.conf');
  }

  /** Answers for exactly these zones (the networks with an endpoint here), after each pass. */
  sync(zones: ReadonlyMap<string, NetworkZone>): void {
    if (this.#closed) return;
    const wanted = new Map<string, { gateway: string; zone: NetworkZone }>();
    for (const zone of zones.values()) for (const gateway of zone.gateways) wanted.set(`${zone.network} ${gateway}`, { gateway, zone });
    for (const [key, listener] of this.#listeners) {
      if (!wanted.has(key)) {
        this.#listeners.delete(key);
        closeListener(listener);
      }
    }
    for (const [key, { gateway, zone }] of wanted) {
      const listener = this.#listeners.get(key);
      // the renderer makes a new zone when a network is rendered from scratch: answer from that one
      if (listener) listener.zone = zone;
      else this.#listeners.set(key, { gateway, zone, connections: new Set() });
    }
    this.#bindMissing();
  }

  /** The gateways answering now, as `NETWORK GATEWAY` (for tests and logs). */
  get serving(): string[] {
    return [...this.#listeners].filter(([, l]) => l.udp && l.tcp).map(([key]) => key);
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retry);
    for (const listener of this.#listeners.values()) closeListener(listener);
    this.#listeners.clear();
  }

  #bindMissing(): void {
    clearTimeout(this.#retry);
    let missing = false;
    for (const [key, listener] of this.#listeners) {
      if (listener.udp && listener.tcp) continue;
      missing = true;
      if (!listener.binding) void this.#bind(key, listener);
    }
    if (missing) this.#retry = setTimeout(() => this.#bindMissing(), RETRY_BIND_MS);
  }

  async #bind(key: string, listener: Listener): Promise<void> {
    listener.binding = true;
    try {
      listener.udp ??= await this.#bindUdp(listener);
      listener.tcp ??= await this.#bindTcp(listener);
      if (this.#listeners.get(key) !== listener) return closeListener(listener);
      if (listener.failure !== undefined) this.#log(`DNS: answering on ${listener.gateway}:${this.#port} for network ${listener.zone.network} now`);
      listener.failure = undefined;
      if (this.serving.length === this.#listeners.size) clearTimeout(this.#retry);
    } catch (err) {
      const failure = messageOf(err);
      // said once per reason: a bridge not made yet fails the same way every second until it is
      if (failure !== listener.failure) this.#log(`warning: DNS: cannot answer on ${listener.gateway}:${this.#port} for network ${listener.zone.network} yet: ${failure}`);
      listener.failure = failure;
      if (this.#listeners.get(key) !== listener) closeListener(listener);
    } finally {
      listener.binding = false;
    }
  }

  async #bindUdp(listener: Listener): Promise<UdpSocket> {
    // an IPv6 network's gateway (issue 15) answers on a UDP6 socket
    const socket = createSocket({ type: listener.gateway.includes(':') ? 'udp6' : 'udp4' });
    socket.on('message', (message, from) => {
      if (!listener.zone.covers(from.address)) return;
      void this.#answer(new Uint8Array(message), listener, false).then((answer) => {
        // the socket may have closed meanwhile (its network left the node): then there is nobody to answer
        if (answer && listener.udp === socket) socket.send(answer, from.port, from.address, () => {});
      });
    });
    return this.#opened(socket, listener, (bound) => socket.bind({ address: listener.gateway, port: this.#port, exclusive: true }, bound));
  }

  #bindTcp(listener: Listener): Promise<Server> {
    const server = createServer((socket) => this.#serveTcp(socket, listener));
    server.maxConnections = MAX_TCP_CONNECTIONS;
    return this.#opened(server, listener, (bound) => server.listen({ host: listener.gateway, port: this.#port, exclusive: true }, bound));
  }

  /**
   * `handle` once `open` has bound it to the gateway. An error before that closes it and rejects (the
   * gateway's address may not be on the node yet); one after it is logged, and the handle keeps serving.
   */
  #opened<T extends UdpSocket | Server>(handle: T, listener: Listener, open: (bound: () => void) => void): Promise<T> {
    const events = handle as EventEmitter & { close(): unknown };
    return new Promise((resolve, reject) => {
      events.once('error', (err: Error) => {
        events.close();
        reject(err);
      });
      open(() => {
        events.removeAllListeners('error');
        events.on('error', (err: Error) => this.#log(`warning: DNS on ${listener.gateway}: ${messageOf(err)}`));
        resolve(handle);
      });
    });
  }

  #serveTcp(socket: Socket, listener: Listener): void {
    if (!listener.zone.covers(socket.remoteAddress ?? '')) {
      socket.destroy();
      return;
    }
    listener.connections.add(socket);
    socket.on('close', () => listener.connections.delete(socket));
    const reader = new TcpMessageReader();
    socket.setTimeout(TCP_IDLE_MS, () => socket.destroy());
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk) => {
      for (const query of reader.push(new Uint8Array(chunk))) {
        void this.#answer(query, listener, true).then((answer) => {
          if (answer && !socket.destroyed) socket.write(frameTcp(answer));
        });
      }
    });
  }

  /**
   * The bytes to send back for `bytes`, or undefined to stay silent (nothing readable to answer to). Never
   * rejects: whatever a container sends must not end the agent.
   */
  async #answer(bytes: Uint8Array, listener: Listener, tcp: boolean): Promise<Uint8Array | undefined> {
    try {
      return await this.#answerOrThrow(bytes, listener, tcp);
    } catch {
      // e.g. a question our encoder cannot write back (a label of non-ASCII bytes): no answer
      return undefined;
    }
  }

  async #answerOrThrow(bytes: Uint8Array, listener: Listener, tcp: boolean): Promise<Uint8Array | undefined> {
    let query: DnsMessage;
    try {
      query = decodeDns(bytes);
    } catch {
      const id = dnsId(bytes);
      return id === undefined ? undefined : encodeDns(reply(emptyQuery(id), DnsRcode.FORMERR, []));
    }
    if (query.response) return undefined;
    const decision = listener.zone.decide(query);
    if (decision !== 'forward') return tcp ? encodeDns(decision.answer) : fitUdp(decision.answer, query);
    // a resolver named in resolv.conf that is one of our own gateways would send the query back to us
    const servers = this.#upstream.servers().filter((server) => !this.#isGateway(server));
    if (servers.length === 0 || this.#forwards >= MAX_FORWARDS) return encodeDns(reply(query, DnsRcode.SERVFAIL, []));
    this.#forwards++;
    try {
      const answer = tcp ? await forwardTcp(bytes, servers, this.#upstreamPort) : await forwardUdp(bytes, servers, this.#upstreamPort);
      return answer ?? encodeDns(reply(query, DnsRcode.SERVFAIL, []));
    } finally {
      this.#forwards--;
    }
  }

  #isGateway(address: string): boolean {
    for (const listener of this.#listeners.values()) if (listener.gateway === address) return true;
    return false;
  }
}

/** The answer as bytes, truncated (TC set, no records) when it exceeds what the client takes over UDP. */
function fitUdp(answer: DnsMessage, query: DnsMessage): Uint8Array {
  const opt = query.additionals.find((r) => r.type === DnsType.OPT);
  const max = opt ? Math.min(Math.max(opt.class, UDP_PLAIN_MAX), UDP_EDNS_MAX) : UDP_PLAIN_MAX;
  const bytes = encodeDns(answer);
  return bytes.length <= max ? bytes : encodeDns({ ...answer, truncated: true, answers: [] });
}

function emptyQuery(id: number): DnsMessage {
  return { id, response: false, opcode: 0, authoritative: false, truncated: false, recursionDesired: false, recursionAvailable: false, rcode: 0, questions: [], answers: [], authorities: [], additionals: [] };
}

function closeListener(listener: Listener): void {
  try {
    listener.udp?.close();
  } catch {
    // already closed
  }
  listener.tcp?.close();
  for (const socket of listener.connections) socket.destroy();
  listener.connections.clear();
  listener.udp = undefined;
  listener.tcp = undefined;
}
