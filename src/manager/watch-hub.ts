/**
 * Fans store changes out to the connected agents, each getting only what concerns its node.
 *
 * Why filter: an agent programs one FDB + one neighbour entry per remote endpoint of the networks it takes
 * part in, and nothing else. Sending every change to every agent would make each change cost O(cluster)
 * on the manager and on every node, and wake hundreds of agents for a container on a network they do not
 * have. So the hub keeps, per network, the nodes with at least one endpoint there (ClusterState.nodeCounts)
 * and a change to that network costs O(nodes in the network). Node changes go to everyone: the VTEP list
 * is cluster-wide and small; a node's WireGuard key and tunnel address only to the nodes it shares an
 * encrypted network with (tunnel-scope.ts).
 *
 * Rules (docs/api.md, "Watch stream"):
 * - a node's first endpoint on a network: that node gets the `network`, then every endpoint of it; the
 *   others interested get the new `endpoint`;
 * - a node's last endpoint there goes: that node gets `network-forgotten`, the others `endpoint-deleted`;
 * - a status-only change goes to the endpoint's own node only (it is the one that reported it);
 * - a session opened with `networks=all` (an agent linked to Docker, which keeps a Docker network for every
 *   vxnet network) also gets every `network` change, and `network-deleted` instead of `network-forgotten`
 *   when a network goes; endpoints are filtered exactly as for the others;
 * - a `ping` every 10 s carries the current revision, so an agent knows it has seen everything up to it
 *   even when nothing concerned it (it reports that revision in heartbeats; endpoint delete waits on it).
 *
 * A connection whose unsent output grows past a bound is closed rather than buffered without limit; the
 * agent reconnects and starts again from a snapshot (the writing side of a session: watch-stream.ts).
 *
 * At scale (measured by bench/scale, 1,000 agents): a snapshot is one line of up to megabytes (an agent
 * holding 50,000 endpoints gets ~15 MB), and when every agent connects at once, as after a manager restart,
 * their snapshots together are gigabytes. So a snapshot (and a network burst) is taken at once — the
 * endpoints' stored JSON, held by reference — and then streamed in pieces of 64 KiB, the next when the
 * connection has sent the last; lines for the session made meanwhile wait behind it, and only they count
 * against the bound. Written whole, each one sat in the connection's TLS buffers until its agent had read it,
 * and the manager's memory grew with the sum of all of them. On top of that, snapshots being streamed are
 * limited by a budget (default 64 MiB): a session over it waits and gets its snapshot — taken at that
 * moment, so it misses nothing — when earlier ones are written (meanwhile its pings carry revision 0, keeping
 * the connection alive without claiming anything was seen). Endpoint lines reuse the stored JSON too instead
 * of serialising the endpoint again per message.
 */
import { differsOnlyInStatus, type Endpoint, type Network, type WatchMessage } from '../core/model.ts';
import type { ClusterState, StateChange } from './state.ts';
import { NodeRecordsJson, tunnelPeers, withoutTunnel } from './tunnel-scope.ts';
import { SessionOutput, pieces, type Session, type WatchSink } from './watch-stream.ts';
import { ChangeHistory, lineOf, replay } from './watch-resume.ts';

export { pieces, type WatchSink } from './watch-stream.ts';

export interface WatchHubOptions {
  /** default 10 000 */
  pingIntervalMs?: number;
  /** a session with more unsent output than this is closed (default 8 MiB) */
  maxBufferedBytes?: number;
  /** unsent snapshot bytes over all sessions beyond which new snapshots wait (default 64 MiB) */
  snapshotBudgetBytes?: number;
  log?: (line: string) => void;
}

export const PING_INTERVAL_MS = 10_000;
/** The reason a removed node's stream is closed with; the sink ends it cleanly, after what is buffered. */
export const NODE_REMOVED = 'node removed';

export class WatchHub {
  #state: ClusterState;
  #pingIntervalMs: number;
  #output: SessionOutput;
  /** node → its open sessions (usually one; two briefly while an agent reconnects) */
  #sessions = new Map<string, Set<Session>>();
  /** the sessions that asked for every network */
  #allNetworkSessions = new Set<Session>();
  #unsubscribe: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #snapshotBudget: number;
  /** sessions whose snapshot is partly unsent → its size */
  #sending = new Map<Session, number>();
  #sendingBytes = 0;
  /** sessions waiting for their snapshot, oldest first */
  #waiting: Session[] = [];
  /** the `nodes` array of snapshots as JSON, per recipient's tunnel peers, until a node changes */
  #nodesJson: NodeRecordsJson;
  /** the recent changes, for agents resuming their watch (watch-resume.ts); from start() on */
  #history: ChangeHistory | undefined;
  #log: (line: string) => void;
  /** snapshots taken and watches resumed since the hub was made (tests, bench/scale) */
  snapshots = 0;
  resumes = 0;

  constructor(state: ClusterState, options: WatchHubOptions = {}) {
    this.#state = state;
    this.#nodesJson = new NodeRecordsJson(state);
    this.#pingIntervalMs = options.pingIntervalMs ?? PING_INTERVAL_MS;
    this.#snapshotBudget = options.snapshotBudgetBytes ?? 64 * 1024 * 1024;
    this.#log = options.log ?? (() => {});
    this.#output = new SessionOutput({
      maxBufferedBytes: options.maxBufferedBytes ?? 8 * 1024 * 1024,
      log: options.log ?? (() => {}),
      drop: (session) => this.#drop(session),
      sendingSnapshot: (session) => this.#sending.has(session),
      snapshotWritten: (session) => this.#snapshotDone(session),
    });
  }

  start(): void {
    if (this.#unsubscribe) return;
    const history = new ChangeHistory(this.#state.revision);
    this.#history = history;
    this.#unsubscribe = this.#state.subscribe((change) => {
      history.record(change);
      this.#onChange(change);
    });
    this.#timer = setInterval(() => this.pingAll(), this.#pingIntervalMs);
    this.#timer.unref();
  }

  /** Closes every session and stops listening. */
  stop(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    this.#history = undefined;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#output.stop();
    this.#waiting = [];
    this.#sending.clear();
    this.#sendingBytes = 0;
    this.#nodesJson.invalidate();
    for (const sessions of this.#sessions.values()) {
      for (const session of sessions) {
        session.open = false;
        session.sink.close('manager shutting down');
      }
    }
    this.#sessions.clear();
    this.#allNetworkSessions.clear();
  }

  get sessionCount(): number {
    let n = 0;
    for (const s of this.#sessions.values()) n += s.size;
    return n;
  }

  /**
   * Sends `node` its snapshot and then every later change that concerns it. Returns the function to call
   * when the connection ends. Snapshot and registration happen in one synchronous step, so no change can
   * fall between them; a session over the snapshot budget gets nothing until its snapshot, which is then
   * taken when it is sent and so holds every change made while it waited.
   *
   * `since`: the revision up to which the agent holds everything (watch-resume.ts); it gets the changes after
   * it instead of a snapshot when this hub still has them, a snapshot otherwise.
   */
  attach(node: string, sink: WatchSink, options: { allNetworks?: boolean; since?: number } = {}): () => void {
    const allNetworks = options.allNetworks ?? false;
    const session: Session = { node, sink, open: true, allNetworks };
    let set = this.#sessions.get(node);
    if (!set) this.#sessions.set(node, (set = new Set()));
    set.add(session);
    if (allNetworks) this.#allNetworkSessions.add(session);
    if (options.since !== undefined && this.#resume(session, options.since)) return () => this.#drop(session);
    if (this.#sendingBytes < this.#snapshotBudget) {
      this.#sendSnapshot(session);
    } else {
      session.waiting = true;
      this.#waiting.push(session);
    }
    return () => this.#drop(session);
  }

  /** The changes after `since` and a ping, in the step that registered the session; false: it needs a snapshot. */
  #resume(session: Session, since: number): boolean {
    const current = this.#state.revision;
    const history = this.#history;
    let why, changes;
    if (!history) why = 'the manager is not following its store yet';
    else if (since > current) why = `this manager is at revision ${current} only`;
    else if ((changes = history.after(since)) === undefined) why = `this manager keeps the changes after revision ${history.from} only`;
    if (changes === undefined) {
      this.#log(`watch of node ${session.node} from revision ${since}: ${why}; sending a snapshot`);
      return false;
    }
    const outcome = replay(this.#state, session.node, session.allNetworks, changes, (revision, endpoint) => this.#endpointLine(revision, endpoint));
    if ('refused' in outcome) {
      this.#log(`watch of node ${session.node} from revision ${since}: ${outcome.refused}; sending a snapshot`);
      return false;
    }
    this.resumes++;
    this.#log(`watch of node ${session.node} resumed from revision ${since} at ${current}: ${outcome.lines.length - 1} changes sent, no snapshot`);
    this.#output.stream(session, pieces('', outcome.lines, '', ''));
    return true;
  }

  /** Sessions waiting for their snapshot because of the snapshot budget. */
  get waitingCount(): number {
    return this.#waiting.filter((s) => s.open).length;
  }

  /**
   * Takes the snapshot now — lineOf(snapshot(node)), built from the endpoints' stored JSON (held by reference,
   * not copied) and a cached `nodes` array — and streams it; it counts against the budget until written.
   */
  #sendSnapshot(session: Session): void {
    this.snapshots++;
    const { networks, ids } = this.#contents(session.node, session.allNetworks);
    // the cache is kept current by node changes, which only arrive while subscribed
    const nodesJson = this.#nodesJson.jsonFor(session.node, this.#unsubscribe !== undefined);
    const parts: string[] = [];
    let size = 0;
    for (const id of ids) {
      const entry = this.#state.endpoints.get(id);
      if (!entry) continue;
      parts.push(entry.json);
      size += entry.json.length + 1;
    }
    const head = `{"type":"snapshot","revision":${this.#state.revision},"nodes":${nodesJson},"networks":${JSON.stringify(networks)},"endpoints":[`;
    size += head.length;
    this.#sending.set(session, size);
    this.#sendingBytes += size;
    this.#output.stream(session, pieces(head, parts, ',', ']}\n'));
  }

  /** The snapshot of `session` is written (or the session is gone): its budget goes to those waiting. */
  #snapshotDone(session: Session): void {
    const bytes = this.#sending.get(session);
    if (bytes === undefined) return;
    this.#sending.delete(session);
    this.#sendingBytes -= bytes;
    while (this.#waiting.length > 0 && this.#sendingBytes < this.#snapshotBudget) {
      const next = this.#waiting.shift()!;
      if (!next.open) continue;
      next.waiting = false;
      this.#sendSnapshot(next);
    }
  }

  #endpointJson(endpoint: Endpoint): string {
    const entry = this.#state.endpoints.get(endpoint.id);
    return entry?.endpoint === endpoint ? entry.json : JSON.stringify(endpoint);
  }

  #endpointLine(revision: number, endpoint: Endpoint): string {
    return `{"type":"endpoint","revision":${revision},"endpoint":${this.#endpointJson(endpoint)}}\n`;
  }

  #sortedNodes() {
    return [...this.#state.nodes.values()].map((e) => e.node).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /**
   * What concerns `node` now: all nodes, its networks, every endpoint of those networks; with
   * `allNetworks` every network (the endpoints are the same).
   */
  snapshot(node: string, options: { allNetworks?: boolean } = {}): Extract<WatchMessage, { type: 'snapshot' }> {
    const { networks, ids } = this.#contents(node, options.allNetworks ?? false);
    const endpoints: Endpoint[] = [];
    for (const id of ids) {
      const entry = this.#state.endpoints.get(id);
      if (entry) endpoints.push(entry.endpoint);
    }
    const peers = tunnelPeers(this.#state, node);
    const nodes = this.#sortedNodes().map((n) => (peers.has(n.name) ? n : withoutTunnel(n)));
    return { type: 'snapshot', revision: this.#state.revision, nodes, networks, endpoints };
  }

  /** The networks a snapshot holds and the ids of their endpoints, in order. */
  #contents(node: string, allNetworks: boolean): { networks: Network[]; ids: string[] } {
    const state = this.#state;
    const networks: Network[] = [];
    const ids: string[] = [];
    for (const name of [...state.networksOfNode(node)].sort()) {
      const entry = state.networks.get(name);
      if (!entry) continue;
      networks.push(entry.network);
      // one by one: spreading a network of 100,000 endpoints into push() would overflow the stack
      for (const id of state.endpointsByNetwork.get(name) ?? []) ids.push(id);
    }
    if (allNetworks) {
      networks.length = 0;
      for (const entry of state.networks.values()) networks.push(entry.network);
      networks.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    }
    return { networks, ids };
  }

  pingAll(): void {
    const line = lineOf({ type: 'ping', revision: this.#state.revision });
    for (const sessions of this.#sessions.values()) for (const session of [...sessions]) this.#output.send(session, line);
    // a session waiting for its snapshot has seen nothing yet: revision 0 keeps it alive and promises nothing
    const waiting = lineOf({ type: 'ping', revision: 0 });
    for (const session of this.#waiting) if (session.open) this.#output.send(session, waiting, true);
  }

  #onChange(change: StateChange): void {
    const state = this.#state;
    switch (change.kind) {
      case 'node': {
        this.#nodesJson.invalidate();
        const full = lineOf({ type: 'node', revision: change.revision, node: change.node });
        const scoped = withoutTunnel(change.node);
        if (scoped === change.node) {
          this.#toAll(full);
          return;
        }
        const peers = tunnelPeers(state, change.node.name);
        const others = lineOf({ type: 'node', revision: change.revision, node: scoped });
        for (const [node, sessions] of this.#sessions) for (const session of [...sessions]) this.#output.send(session, peers.has(node) ? full : others);
        return;
      }
      case 'node-deleted':
        this.#nodesJson.invalidate();
        this.#toAll(lineOf({ type: 'node-deleted', revision: change.revision, name: change.node.name }));
        this.#closeNode(change.node.name, NODE_REMOVED);
        return;
      case 'network': {
        const line = lineOf({ type: 'network', revision: change.revision, network: change.network });
        for (const session of this.#audience(change.network.name)) this.#output.send(session, line);
        return;
      }
      case 'network-deleted': {
        const { revision, network } = change;
        const forgotten = lineOf({ type: 'network-forgotten', revision, name: network.name });
        const deleted = lineOf({ type: 'network-deleted', revision, name: network.name });
        for (const session of this.#audience(network.name)) this.#output.send(session, session.allNetworks ? deleted : forgotten);
        return;
      }
      case 'endpoint': {
        const { endpoint, prev, revision } = change;
        const line = this.#endpointLine(revision, endpoint);
        if (prev && differsOnlyInStatus(prev, endpoint)) {
          this.#toNode(endpoint.node, line);
          return;
        }
        const own = endpoint.node;
        const first = !prev && state.nodeCounts.get(endpoint.network)?.get(own) === 1;
        if (first) {
          if (state.networks.get(endpoint.network)?.network.encrypted === true) this.#introduceTunnelPeers(own, endpoint.network, revision);
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

  /**
   * `node` just joined encrypted `network`: it and the network's other members are sent each other's full
   * node records (key, tunnel address), which they were not sent while they shared no encrypted network.
   */
  #introduceTunnelPeers(node: string, network: string, revision: number): void {
    const record = (name: string) => this.#state.nodes.get(name)?.node;
    const joiner = record(node);
    const joinerLine = joiner && withoutTunnel(joiner) !== joiner ? lineOf({ type: 'node', revision, node: joiner }) : undefined;
    for (const member of this.#state.nodesOf(network)) {
      if (member === node) continue;
      if (joinerLine) this.#toNode(member, joinerLine);
      const peer = record(member);
      if (peer && withoutTunnel(peer) !== peer) this.#toNode(node, lineOf({ type: 'node', revision, node: peer }));
    }
  }

  /** The network and all its endpoints, for a node that just got its first endpoint there. */
  #burst(node: string, network: string, revision: number): void {
    const sessions = this.#sessions.get(node);
    if (!sessions) return;
    const entry = this.#state.networks.get(network);
    if (!entry) return;
    const jsons: string[] = [];
    for (const id of this.#state.endpointsByNetwork.get(network) ?? []) {
      const json = this.#state.endpoints.get(id)?.json;
      if (json !== undefined) jsons.push(json);
    }
    const head = lineOf({ type: 'network', revision, network: entry.network });
    const before = `{"type":"endpoint","revision":${revision},"endpoint":`;
    for (const session of [...sessions]) {
      if (!session.open || session.waiting) continue;
      // one line per endpoint: each piece is whole lines joined
      this.#output.stream(session, pieces(head + before, jsons, `}\n${before}`, '}\n', jsons.length === 0 ? head : undefined));
    }
  }

  /** Ends the streams of a node that was removed: its agent reconnects and is told the node is unknown. */
  #closeNode(node: string, reason: string): void {
    const sessions = this.#sessions.get(node);
    if (!sessions) return;
    for (const session of [...sessions]) {
      this.#drop(session);
      session.sink.close(reason);
    }
  }

  /** The sessions of the nodes with endpoints on `network`, and every `networks=all` session, once each. */
  #audience(network: string): Set<Session> {
    const out = new Set<Session>(this.#allNetworkSessions);
    for (const node of this.#state.nodesOf(network)) for (const session of this.#sessions.get(node) ?? []) out.add(session);
    return out;
  }

  #toAll(line: string): void {
    for (const sessions of this.#sessions.values()) for (const session of [...sessions]) this.#output.send(session, line);
  }

  #toNodes(nodes: Iterable<string>, line: string, except?: string): void {
    for (const node of nodes) if (node !== except) this.#toNode(node, line);
  }

  /**
   * Writes `line` to the node's sessions that have their snapshot (the diagnose relay, watch-stream.ts);
   * returns how many that was, 0 when the node's agent has no stream open.
   */
  sendToNode(node: string, line: string): number {
    let sent = 0;
    for (const session of [...(this.#sessions.get(node) ?? [])]) {
      if (!session.open || session.waiting) continue;
      this.#output.send(session, line);
      sent++;
    }
    return sent;
  }

  #toNode(node: string, line: string): void {
    const sessions = this.#sessions.get(node);
    if (!sessions) return;
    for (const session of [...sessions]) this.#output.send(session, line);
  }

  #drop(session: Session): void {
    if (!session.open) return;
    session.open = false;
    session.queue = undefined;
    this.#output.forget(session);
    this.#snapshotDone(session);
    this.#allNetworkSessions.delete(session);
    const set = this.#sessions.get(session.node);
    if (!set) return;
    set.delete(session);
    if (set.size === 0) this.#sessions.delete(session.node);
  }
}
