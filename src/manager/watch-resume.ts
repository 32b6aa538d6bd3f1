/**
 * Resuming a watch from a revision (issue 11): an agent whose stream broke — its manager was killed, restarted,
 * or the connection reset — opens it again with `since=REV`, the revision up to which it holds everything,
 * and gets the changes after it instead of a snapshot. Its view, and so its data plane, stay as they are;
 * only what changed meanwhile is applied. A snapshot of an agent holding 18,000 remote endpoints is megabytes
 * on the manager and a full rendering on the agent, for nothing when little or nothing changed.
 *
 * Why revisions can be carried from one manager to another: on etcd every manager's index follows etcd's
 * watch, so a revision names the same state on every manager (src/manager/store/etcd.ts); on SQLite a
 * manager restarted on its own file carries on at the revision it stopped at.
 *
 * What each hub keeps: the last changes of its index (ChangeHistory), from when it started. A resume is
 * answered from there, or refused when the history does not reach back to `since` (too old, or the manager
 * started after it), when `since` is ahead of this manager (it has not seen that revision yet), or when a
 * change would have sent the node something other than lines (its node joined or left a network, whose
 * burst or `network-forgotten` depended on the index at that moment): the agent then gets a snapshot, as
 * before. Replayed lines are the ones the live stream would have sent; applying one twice changes nothing in
 * the agent's view, so overlapping the revision the agent holds is harmless.
 */
import { differsOnlyInStatus, type Endpoint, type WatchMessage } from '../core/model.ts';
import type { ClusterState, StateChange } from './state.ts';
import { tunnelPeers, withoutTunnel } from './tunnel-scope.ts';

/**
 * Changes a hub keeps for resuming (between this and twice as many): at the bench's steady churn of 20 per
 * second, several minutes; at cold start, when every endpoint reports its status, much less, but then agents
 * are getting snapshots anyway. Each entry is a reference to objects the index holds or just dropped.
 */
export const RESUME_HISTORY_CHANGES = 10_000;

/** The changes of the index after a revision, oldest first. */
export class ChangeHistory {
  readonly #capacity: number;
  #changes: StateChange[] = [];
  /** every change with a revision after this one is kept */
  #from: number;

  constructor(from: number, capacity = RESUME_HISTORY_CHANGES) {
    this.#from = from;
    this.#capacity = capacity;
  }

  /** The revision after which nothing is missing. */
  get from(): number {
    return this.#from;
  }

  record(change: StateChange): void {
    this.#changes.push(change);
    if (this.#changes.length < 2 * this.#capacity) return;
    // drop the older half at once: a copy per capacity changes instead of a shift per change
    const dropped = this.#changes.length - this.#capacity;
    this.#from = Math.max(this.#from, this.#changes[dropped - 1]!.revision);
    this.#changes = this.#changes.slice(dropped);
  }

  /** The changes after `revision`, or undefined when some of them are no longer kept. */
  after(revision: number): StateChange[] | undefined {
    if (revision < this.#from) return undefined;
    let low = 0;
    let high = this.#changes.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.#changes[mid]!.revision <= revision) low = mid + 1;
      else high = mid;
    }
    return this.#changes.slice(low);
  }
}

export type Replay = { lines: string[] } | { refused: string };

/**
 * The lines the live stream sent `node` for `changes` (the changes after the revision it holds), ending with
 * a ping at the index's revision; or why they cannot be replayed. `endpointLine` is the hub's (it reuses the
 * stored JSON of endpoints still current).
 */
export function replay(
  state: ClusterState,
  node: string,
  allNetworks: boolean,
  changes: readonly StateChange[],
  endpointLine: (revision: number, endpoint: Endpoint) => string,
): Replay {
  const held = heldCounts(state, node, changes);
  if (typeof held === 'string') return { refused: held };
  const member = (network: string): boolean => (held.get(network) ?? state.nodeCounts.get(network)?.get(node) ?? 0) > 0;
  const lines: string[] = [];
  let tunnelsMoved = false;
  for (const change of changes) {
    switch (change.kind) {
      case 'node': {
        const scoped = withoutTunnel(change.node);
        const full = scoped === change.node || tunnelPeers(state, change.node.name).has(node);
        lines.push(lineOf({ type: 'node', revision: change.revision, node: full ? change.node : scoped }));
        break;
      }
      case 'node-deleted':
        if (change.node.name === node) return { refused: 'the node was removed meanwhile' };
        lines.push(lineOf({ type: 'node-deleted', revision: change.revision, name: change.node.name }));
        break;
      case 'network':
        if (allNetworks || member(change.network.name)) lines.push(lineOf({ type: 'network', revision: change.revision, network: change.network }));
        break;
      case 'network-deleted':
        // the node's own endpoints there were deleted before, which heldCounts refuses; others are told as live
        if (allNetworks) lines.push(lineOf({ type: 'network-deleted', revision: change.revision, name: change.network.name }));
        break;
      case 'endpoint': {
        const { endpoint, prev } = change;
        // a status report goes to the endpoint's own node only
        if (prev && differsOnlyInStatus(prev, endpoint)) {
          if (endpoint.node === node) lines.push(endpointLine(change.revision, endpoint));
        } else if (member(endpoint.network)) {
          lines.push(endpointLine(change.revision, endpoint));
          if (endpoint.node !== node && state.networks.get(endpoint.network)?.network.encrypted === true) tunnelsMoved = true;
        }
        break;
      }
      case 'endpoint-deleted':
        if (member(change.endpoint.network)) {
          lines.push(lineOf({ type: 'endpoint-deleted', revision: change.revision, id: change.endpoint.id, network: change.endpoint.network }));
        }
        break;
    }
  }
  // Another node that joined one of this node's encrypted networks was introduced with its full record (key,
  // tunnel address): the current records of every tunnel peer say the same.
  if (tunnelsMoved) {
    for (const peer of tunnelPeers(state, node)) {
      const record = state.nodes.get(peer)?.node;
      if (record && withoutTunnel(record) !== record) lines.push(lineOf({ type: 'node', revision: state.revision, node: record }));
    }
  }
  lines.push(lineOf({ type: 'ping', revision: state.revision }));
  return { lines };
}

/**
 * How many endpoints `node` had on each network it added or removed endpoints on, at the start of
 * `changes` (the index's count now, walked back); a sentence when its membership of a network changed in
 * between (the live stream then sent a burst or `network-forgotten` made from the index of that moment).
 */
function heldCounts(state: ClusterState, node: string, changes: readonly StateChange[]): Map<string, number> | string {
  const own: { network: string; delta: 1 | -1 }[] = [];
  for (const change of changes) {
    if (change.kind === 'endpoint' && change.endpoint.node === node) {
      const { endpoint, prev } = change;
      if (prev && (prev.network !== endpoint.network || prev.node !== endpoint.node)) return `endpoint ${endpoint.id} moved meanwhile`;
      if (!prev) own.push({ network: endpoint.network, delta: 1 });
    } else if (change.kind === 'endpoint-deleted' && change.endpoint.node === node) {
      own.push({ network: change.endpoint.network, delta: -1 });
    }
  }
  const held = new Map<string, number>();
  for (const { network } of own) held.set(network, state.nodeCounts.get(network)?.get(node) ?? 0);
  for (const { network, delta } of own) held.set(network, held.get(network)! - delta);
  const running = new Map(held);
  for (const { network, delta } of own) {
    const before = running.get(network)!;
    const after = before + delta;
    if (before === 0 || after === 0) return `the node ${delta > 0 ? 'joined' : 'left'} network ${network} meanwhile`;
    running.set(network, after);
  }
  return held;
}

export function lineOf(message: WatchMessage): string {
  return JSON.stringify(message) + '\n';
}
