/**
 * Who is sent a node's WireGuard public key and tunnel address (vxnet issue 10): the node itself and the nodes
 * it shares an encrypted network with, the ones that build a tunnel to it. Every other agent gets the node's
 * record without them: it needs the node's VTEP address for plain networks, never its key. A public key is not
 * a secret, but an agent then holds (and could configure) peers only for the tunnels it is meant to have.
 *
 * What the watch hub does with it: node changes go out in two forms (full to the tunnel peers, without the
 * tunnel fields to the rest); a snapshot holds each node in the form its recipient may see; and when a node
 * joins an encrypted network (its first endpoint there), it and the network's other members are sent each
 * other's full records, before the lines that make them peers.
 */
import type { Node } from '../core/model.ts';
import type { ClusterState } from './state.ts';

/** The node's record without its WireGuard report and tunnel address (the same object when it has neither). */
export function withoutTunnel(node: Node): Node {
  if (node.wireguard === undefined && node.tunnelAddress === undefined) return node;
  const { wireguard: _key, tunnelAddress: _address, ...rest } = node;
  return rest;
}

/** `node` and every node that shares an encrypted network with it (has an endpoint on one where it has one). */
export function tunnelPeers(state: ClusterState, node: string): Set<string> {
  const peers = new Set<string>([node]);
  for (const name of state.networksOfNode(node)) {
    if (state.networks.get(name)?.network.encrypted !== true) continue;
    for (const peer of state.nodesOf(name)) peers.add(peer);
  }
  return peers;
}

/**
 * The `nodes` array of snapshots as JSON, per recipient: each node in full for the recipient's tunnel peers
 * and itself, without the tunnel fields for the rest. The JSON of every node is kept in both forms until a
 * node changes; a recipient without tunnel peers (no encrypted network, the usual case) gets one shared string.
 */
export class NodeRecordsJson {
  readonly #state: ClusterState;
  #entries: { name: string; full: string; scoped: string }[] | undefined;
  #scopedAll: string | undefined;

  constructor(state: ClusterState) {
    this.#state = state;
  }

  /** A node changed: the next snapshot serialises the nodes again. */
  invalidate(): void {
    this.#entries = undefined;
    this.#scopedAll = undefined;
  }

  /** The nodes, sorted by name, as `recipient` may see them. `cache: false` keeps nothing (not subscribed). */
  jsonFor(recipient: string, cache = true): string {
    const entries = this.#entries ?? this.#build();
    if (cache) this.#entries = entries;
    const peers = tunnelPeers(this.#state, recipient);
    const own = entries.find((e) => e.name === recipient);
    if (peers.size === 1 && (own === undefined || own.full === own.scoped)) {
      const all = this.#scopedAll ?? `[${entries.map((e) => e.scoped).join(',')}]`;
      if (cache) this.#scopedAll = all;
      return all;
    }
    return `[${entries.map((e) => (peers.has(e.name) ? e.full : e.scoped)).join(',')}]`;
  }

  #build(): { name: string; full: string; scoped: string }[] {
    return [...this.#state.nodes.values()]
      .map((e) => e.node)
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .map((node) => {
        const full = JSON.stringify(node);
        const scoped = withoutTunnel(node);
        return { name: node.name, full, scoped: scoped === node ? full : JSON.stringify(scoped) };
      });
  }
}
