/**
 * The agent's copy of what the manager says concerns this node, built from the watch stream. A snapshot
 * replaces everything (after a reconnect the agent cannot know what it missed); later messages patch it.
 * Pure: no I/O, so the reconcile logic can be tested from scripted message sequences.
 *
 * The maps are read-only for everyone else: every change goes through apply(), which also keeps the
 * bookkeeping that lets desired.ts render only what changed (bench/scale: an agent holding 18,000 remote
 * endpoints re-rendered all of them for every change on any of its networks).
 */
import { differsOnlyInStatus, type Endpoint, type Network, type Node, type WatchMessage } from '../core/model.ts';

export interface ClusterViewOptions {
  /**
   * The stream carries every network (`networks=all`, agents linked to Docker): a network stays in the view
   * when the node's last endpoint on it goes (`network-forgotten`) and leaves it on `network-deleted`.
   */
  allNetworks?: boolean;
}

export class ClusterView {
  readonly allNetworks: boolean;
  revision = 0;
  /** false until the first snapshot: the agent never touches the kernel before it knows the desired state */
  synced = false;
  readonly nodes = new Map<string, Node>();
  readonly networks = new Map<string, Network>();
  readonly endpoints = new Map<string, Endpoint>();
  readonly #endpointsByNetwork = new Map<string, Set<string>>();
  /** per network, the endpoints added, changed or removed since the renderer last took them */
  readonly #changed = new Map<string, Set<string>>();
  /** networks whose definition changed or that were dropped: rendered again from scratch */
  readonly #redo = new Set<string>();
  /** moves at every snapshot: everything is rendered again */
  epoch = 0;
  /** moves when the set of nodes or an address changes (the VXLAN allow-list) */
  nodesVersion = 0;
  /** moves when a node that may have endpoints here changes address or goes (peers' VTEPs) */
  vtepsVersion = 0;
  /** moves when a network is added, changed or dropped */
  networksVersion = 0;

  constructor(options: ClusterViewOptions = {}) {
    this.allNetworks = options.allNetworks ?? false;
  }

  /** Applies one message; returns true when something that shapes kernel state may have changed. */
  apply(message: WatchMessage): boolean {
    this.revision = Math.max(this.revision, message.revision);
    switch (message.type) {
      case 'snapshot':
        this.epoch++;
        this.nodesVersion++;
        this.vtepsVersion++;
        this.networksVersion++;
        this.nodes.clear();
        this.networks.clear();
        this.endpoints.clear();
        this.#endpointsByNetwork.clear();
        for (const node of message.nodes) this.nodes.set(node.name, node);
        for (const network of message.networks) this.networks.set(network.name, network);
        for (const endpoint of message.endpoints) this.#putEndpoint(endpoint);
        // a new epoch means everything is rendered again: nothing to track from before or from the load
        this.#changed.clear();
        this.#redo.clear();
        this.revision = message.revision;
        this.synced = true;
        return true;
      case 'node': {
        const previous = this.nodes.get(message.node.name);
        this.nodes.set(message.node.name, message.node);
        if (previous?.address !== message.node.address) this.nodesVersion++;
        // a node new to the view has no endpoints here yet: only an address change moves peers
        if (previous && previous.address !== message.node.address) this.vtepsVersion++;
        // an encrypted network's VTEPs are tunnel addresses (src/agent/wireguard/)
        else if (previous && previous.tunnelAddress !== message.node.tunnelAddress) this.vtepsVersion++;
        return true;
      }
      case 'node-deleted':
        if (!this.nodes.delete(message.name)) return false;
        this.nodesVersion++;
        this.vtepsVersion++;
        return true;
      case 'network':
        this.networks.set(message.network.name, message.network);
        this.networksVersion++;
        this.#redo.add(message.network.name);
        return true;
      case 'network-forgotten':
      case 'network-deleted': {
        const ids = this.#endpointsByNetwork.get(message.name);
        for (const id of ids ?? []) this.endpoints.delete(id);
        this.#endpointsByNetwork.delete(message.name);
        this.networksVersion++;
        this.#changed.delete(message.name);
        const keep = this.allNetworks && message.type === 'network-forgotten';
        // a network that leaves the view is dropped by the renderer; one that stays is rendered again
        if (keep) this.#redo.add(message.name);
        else this.#redo.delete(message.name);
        return (!keep && this.networks.delete(message.name)) || (ids?.size ?? 0) > 0;
      }
      case 'endpoint': {
        const previous = this.endpoints.get(message.endpoint.id);
        this.#putEndpoint(message.endpoint);
        // The agent's own status reports come back on the stream; they do not change kernel state.
        return !previous || !differsOnlyInStatus(previous, message.endpoint);
      }
      case 'endpoint-deleted': {
        const existing = this.endpoints.get(message.id);
        if (!existing) return false;
        this.endpoints.delete(message.id);
        this.#endpointsByNetwork.get(existing.network)?.delete(message.id);
        this.#touch(existing.network, message.id);
        return true;
      }
      case 'ping':
      case 'diagnose':
        return false;
    }
  }

  endpointsOf(network: string): Endpoint[] {
    const ids = this.#endpointsByNetwork.get(network);
    if (!ids) return [];
    const result: Endpoint[] = [];
    for (const id of ids) {
      const endpoint = this.endpoints.get(id);
      if (endpoint) result.push(endpoint);
    }
    return result;
  }

  /**
   * For the renderer: the endpoints of `network` changed since the last call (`all`: render the network
   * from scratch), and forgets them. Only one renderer may take them (desired.ts keeps one cache per view).
   */
  takeChanges(network: string): { all: boolean; ids: ReadonlySet<string> } {
    const all = this.#redo.delete(network);
    const ids = this.#changed.get(network) ?? EMPTY;
    this.#changed.delete(network);
    return { all, ids };
  }

  #touch(network: string, id: string): void {
    // a network not (yet) in the view is rendered from scratch when it arrives
    if (!this.networks.has(network)) return;
    let ids = this.#changed.get(network);
    if (!ids) this.#changed.set(network, (ids = new Set()));
    ids.add(id);
  }

  #putEndpoint(endpoint: Endpoint): void {
    const previous = this.endpoints.get(endpoint.id);
    if (previous) this.#touch(previous.network, endpoint.id);
    this.#touch(endpoint.network, endpoint.id);
    if (previous && previous.network !== endpoint.network) this.#endpointsByNetwork.get(previous.network)?.delete(endpoint.id);
    this.endpoints.set(endpoint.id, endpoint);
    let ids = this.#endpointsByNetwork.get(endpoint.network);
    if (!ids) this.#endpointsByNetwork.set(endpoint.network, (ids = new Set()));
    ids.add(endpoint.id);
  }
}

const EMPTY: ReadonlySet<string> = new Set();
