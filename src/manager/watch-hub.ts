/**
 * Fans store changes out to the connected agents, each getting only what concerns its node.
 *
 * Why filter: an agent programs one FDB + one neighbour entry per remote endpoint of the networks it takes
 * part in, and nothing else. Sending every change to every agent would make each change cost O(cluster)
 * on the manager and on every node, and wake hundreds of agents for a container on a network they do not
 * have. So the hub keeps, per network, the nodes with at least one endpoint there (ClusterState.nodeCounts)
 * and a change to that network costs O(nodes in the network). Node changes go to everyone: the VTEP list
 * is cluster-wide and small.
 *
 * Rules (docs/api.md, "Watch stream"):
 * - a node's first endpoint on a network: that node gets the `network`, then every endpoint of it; the
 *   others interested get the new `endpoint`;
 * - a node's last endpoint there goes: that node gets `network-forgotten`, the others `endpoint-deleted`;
 * - a status-only change goes to the endpoint's own node only (it is the one that reported it);
 * - a `ping` every 10 s carries the current revision, so an agent knows it has seen everything up to it
 *   even when nothing concerned it (it reports that revision in heartbeats; endpoint delete waits on it).
 *
 * A connection whose unsent output grows past a bound is closed rather than buffered without limit; the
 * agent reconnects and starts again from a snapshot.
 */
import type { Endpoint, WatchMessage } from '../core/model.ts';
import type { ClusterState, StateChange } from './state.ts';

/** Where a session's lines go (an HTTP response in production, an array in tests). */
export interface WatchSink {
  write(line: string): void;
  /** bytes accepted by write() but not yet sent */
  readonly bufferedBytes: number;
  /** ends the connection; the hub has already forgotten the session */
  close(reason: string): void;
}

export interface WatchHubOptions {
  /** default 10 000 */
  pingIntervalMs?: number;
  /** a session with more unsent output than this is closed (default 8 MiB) */
  maxBufferedBytes?: number;
  log?: (line: string) => void;
}

interface Session {
  node: string;
  sink: WatchSink;
  open: boolean;
}

export const PING_INTERVAL_MS = 10_000;

export class WatchHub {
  #state: ClusterState;
  #pingIntervalMs: number;
  #maxBuffered: number;
  #log: (line: string) => void;
  /** node → its open sessions (usually one; two briefly while an agent reconnects) */
  #sessions = new Map<string, Set<Session>>();
  #unsubscribe: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(state: ClusterState, options: WatchHubOptions = {}) {
    this.#state = state;
    this.#pingIntervalMs = options.pingIntervalMs ?? PING_INTERVAL_MS;
    this.#maxBuffered = options.maxBufferedBytes ?? 8 * 1024 * 1024;
    this.#log = options.log ?? (() => {});
  }

  start(): void {
    if (this.#unsubscribe) return;
    this.#unsubscribe = this.#state.subscribe((change) => this.#onChange(change));
    this.#timer = setInterval(() => this.pingAll(), this.#pingIntervalMs);
    this.#timer.unref();
  }

  /** Closes every session and stops listening. */
  stop(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    for (const sessions of this.#sessions.values()) {
      for (const session of sessions) {
        session.open = false;
        session.sink.close('manager shutting down');
      }
    }
    this.#sessions.clear();
  }

  get sessionCount(): number {
    let n = 0;
    for (const s of this.#sessions.values()) n += s.size;
    return n;
  }

  /**
   * Sends `node` its snapshot and then every later change that concerns it. Returns the function to call
   * when the connection ends. Snapshot and registration happen in one synchronous step, so no change can
   * fall between them.
   */
  attach(node: string, sink: WatchSink): () => void {
    const session: Session = { node, sink, open: true };
    let set = this.#sessions.get(node);
    if (!set) this.#sessions.set(node, (set = new Set()));
    set.add(session);
    this.#send(session, lineOf(this.snapshot(node)));
    return () => this.#drop(session);
  }

  /** What concerns `node` now: all nodes, its networks, every endpoint of those networks. */
  snapshot(node: string): Extract<WatchMessage, { type: 'snapshot' }> {
    const state = this.#state;
    const networks = [];
    const endpoints: Endpoint[] = [];
    for (const name of [...state.networksOfNode(node)].sort()) {
      const entry = state.networks.get(name);
      if (!entry) continue;
      networks.push(entry.network);
      endpoints.push(...state.endpointsOf(name));
    }
    const nodes = [...state.nodes.values()].map((e) => e.node).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { type: 'snapshot', revision: state.revision, nodes, networks, endpoints };
  }

  pingAll(): void {
    const line = lineOf({ type: 'ping', revision: this.#state.revision });
    for (const sessions of this.#sessions.values()) for (const session of [...sessions]) this.#send(session, line);
  }

  #onChange(change: StateChange): void {
    const state = this.#state;
    switch (change.kind) {
      case 'node':
        this.#toAll(lineOf({ type: 'node', revision: change.revision, node: change.node }));
        return;
      case 'node-deleted':
        this.#toAll(lineOf({ type: 'node-deleted', revision: change.revision, name: change.node.name }));
        return;
      case 'network':
        this.#toNodes(state.nodesOf(change.network.name), lineOf({ type: 'network', revision: change.revision, network: change.network }));
        return;
      case 'network-deleted':
        this.#toNodes(state.nodesOf(change.network.name), lineOf({ type: 'network-forgotten', revision: change.revision, name: change.network.name }));
        return;
      case 'endpoint': {
        const { endpoint, prev, revision } = change;
        const line = lineOf({ type: 'endpoint', revision, endpoint });
        if (prev && statusOnly(prev, endpoint)) {
          this.#toNode(endpoint.node, line);
          return;
        }
        const own = endpoint.node;
        const first = !prev && state.nodeCounts.get(endpoint.network)?.get(own) === 1;
        if (first) {
          this.#toNodes(state.nodesOf(endpoint.network), line, own);
          this.#burst(own, endpoint.network, revision);
        } else {
          this.#toNodes(state.nodesOf(endpoint.network), line);
        }
        return;
      }
      case 'endpoint-deleted': {
        const { endpoint, revision } = change;
        const own = endpoint.node;
        const line = lineOf({ type: 'endpoint-deleted', revision, id: endpoint.id, network: endpoint.network });
        const ownStillThere = (state.nodeCounts.get(endpoint.network)?.get(own) ?? 0) > 0;
        this.#toNodes(state.nodesOf(endpoint.network), line);
        if (!ownStillThere && state.networks.has(endpoint.network)) {
          this.#toNode(own, lineOf({ type: 'network-forgotten', revision, name: endpoint.network }));
        }
        return;
      }
    }
  }

  /** The network and all its endpoints, for a node that just got its first endpoint there. */
  #burst(node: string, network: string, revision: number): void {
    const sessions = this.#sessions.get(node);
    if (!sessions) return;
    const entry = this.#state.networks.get(network);
    if (!entry) return;
    const lines = [lineOf({ type: 'network', revision, network: entry.network })];
    for (const endpoint of this.#state.endpointsOf(network)) lines.push(lineOf({ type: 'endpoint', revision, endpoint }));
    const text = lines.join('');
    for (const session of [...sessions]) this.#send(session, text);
  }

  #toAll(line: string): void {
    for (const sessions of this.#sessions.values()) for (const session of [...sessions]) this.#send(session, line);
  }

  #toNodes(nodes: Iterable<string>, line: string, except?: string): void {
    for (const node of nodes) if (node !== except) this.#toNode(node, line);
  }

  #toNode(node: string, line: string): void {
    const sessions = this.#sessions.get(node);
    if (!sessions) return;
    for (const session of [...sessions]) this.#send(session, line);
  }

  #send(session: Session, text: string): void {
    if (!session.open) return;
    try {
      session.sink.write(text);
    } catch (err) {
      this.#log(`watch stream of node ${session.node} failed: ${String(err)}`);
      this.#drop(session);
      session.sink.close('write failed');
      return;
    }
    if (session.sink.bufferedBytes > this.#maxBuffered) {
      this.#log(`watch stream of node ${session.node} is not keeping up (${session.sink.bufferedBytes} bytes unsent); closing it`);
      this.#drop(session);
      session.sink.close('too slow');
    }
  }

  #drop(session: Session): void {
    if (!session.open) return;
    session.open = false;
    const set = this.#sessions.get(session.node);
    if (!set) return;
    set.delete(session);
    if (set.size === 0) this.#sessions.delete(session.node);
  }
}

function lineOf(message: WatchMessage): string {
  return JSON.stringify(message) + '\n';
}

/** True when only the agent-reported fields differ. */
function statusOnly(a: Endpoint, b: Endpoint): boolean {
  return (
    a.id === b.id &&
    a.network === b.network &&
    a.node === b.node &&
    a.netns === b.netns &&
    a.ifname === b.ifname &&
    a.ip === b.ip &&
    a.prefix === b.prefix &&
    a.gateway === b.gateway &&
    a.mac === b.mac &&
    a.createdAt === b.createdAt
  );
}
