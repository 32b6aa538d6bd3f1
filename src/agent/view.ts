/**
 * The agent's copy of what the manager says concerns this node, built from the watch stream. A snapshot
 * replaces everything (after a reconnect the agent cannot know what it missed); later messages patch it.
 * Pure: no I/O, so the reconcile logic can be tested from scripted message sequences.
 */
import type { Endpoint, Network, Node, WatchMessage } from '../core/model.ts';

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

  constructor(options: ClusterViewOptions = {}) {
    this.allNetworks = options.allNetworks ?? false;
  }

  /** Applies one message; returns true when something that shapes kernel state may have changed. */
  apply(message: WatchMessage): boolean {
    this.revision = Math.max(this.revision, message.revision);
    switch (message.type) {
      case 'snapshot':
        this.nodes.clear();
        this.networks.clear();
        this.endpoints.clear();
        this.#endpointsByNetwork.clear();
        for (const node of message.nodes) this.nodes.set(node.name, node);
        for (const network of message.networks) this.networks.set(network.name, network);
        for (const endpoint of message.endpoints) this.#putEndpoint(endpoint);
        this.revision = message.revision;
        this.synced = true;
        return true;
      case 'node':
        this.nodes.set(message.node.name, message.node);
        return true;
      case 'node-deleted':
        return this.nodes.delete(message.name);
      case 'network':
        this.networks.set(message.network.name, message.network);
        return true;
      case 'network-forgotten':
      case 'network-deleted': {
        const ids = this.#endpointsByNetwork.get(message.name);
        for (const id of ids ?? []) this.endpoints.delete(id);
        this.#endpointsByNetwork.delete(message.name);
        const keep = this.allNetworks && message.type === 'network-forgotten';
        return (!keep && this.networks.delete(message.name)) || (ids?.size ?? 0) > 0;
      }
      case 'endpoint': {
        const previous = this.endpoints.get(message.endpoint.id);
        this.#putEndpoint(message.endpoint);
        // The agent's own status reports come back on the stream; they do not change kernel state.
        return !previous || !sameExceptStatus(previous, message.endpoint);
      }
      case 'endpoint-deleted': {
        const existing = this.endpoints.get(message.id);
        if (!existing) return false;
        this.endpoints.delete(message.id);
        this.#endpointsByNetwork.get(existing.network)?.delete(message.id);
        return true;
      }
      case 'ping':
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

  #putEndpoint(endpoint: Endpoint): void {
    const previous = this.endpoints.get(endpoint.id);
    if (previous && previous.network !== endpoint.network) this.#endpointsByNetwork.get(previous.network)?.delete(endpoint.id);
    this.endpoints.set(endpoint.id, endpoint);
    let ids = this.#endpointsByNetwork.get(endpoint.network);
    if (!ids) this.#endpointsByNetwork.set(endpoint.network, (ids = new Set()));
    ids.add(endpoint.id);
  }
}

function sameExceptStatus(a: Endpoint, b: Endpoint): boolean {
  return (
    a.network === b.network &&
    a.node === b.node &&
    a.netns === b.netns &&
    a.container === b.container &&
    a.docker === b.docker &&
    a.ifname === b.ifname &&
    a.ip === b.ip &&
    a.prefix === b.prefix &&
    a.gateway === b.gateway &&
    a.mac === b.mac
  );
}
