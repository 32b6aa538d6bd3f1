/**
 * Pure views for `vxnet node inspect` and `vxnet endpoint inspect`, built from the manager's lists: where a
 * node's or an endpoint's traffic goes, i.e. per network the other nodes that have endpoints there (the
 * VTEPs this node sends to), with their state.
 */
import type { Endpoint, Network, NodeStatus } from '../../core/model.ts';
import { formatEndpointAddress, formatEndpointTarget } from '../format.ts';

/** Another node of a network: the VTEP frames for its endpoints go to. */
export interface PeerView {
  node: string;
  /** its underlay address: the VTEP */
  address: string;
  state: NodeStatus['state'] | 'unknown';
  endpoints: number;
}

export interface EndpointSummary {
  id: string;
  network: string;
  address: string;
  target: string;
  status: Endpoint['status'];
  message?: string;
}

const summary = (ep: Endpoint): EndpointSummary => ({
  id: ep.id,
  network: ep.network,
  address: formatEndpointAddress(ep),
  target: formatEndpointTarget(ep),
  status: ep.status,
  ...(ep.message !== undefined ? { message: ep.message } : {}),
});

/** The nodes other than `self` with endpoints in `network`, by name. */
function peersIn(network: string, self: string, nodes: readonly NodeStatus[], endpoints: readonly Endpoint[]): PeerView[] {
  const counts = new Map<string, number>();
  for (const ep of endpoints) if (ep.network === network && ep.node !== self) counts.set(ep.node, (counts.get(ep.node) ?? 0) + 1);
  return [...counts]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, count]) => {
      const node = nodes.find((n) => n.name === name);
      return { node: name, address: node?.address ?? '', state: node?.state ?? 'unknown', endpoints: count };
    });
}

export function nodeView(name: string, nodes: readonly NodeStatus[], networks: readonly Network[], endpoints: readonly Endpoint[]) {
  const node = nodes.find((n) => n.name === name);
  if (!node) return undefined;
  const own = endpoints.filter((ep) => ep.node === name);
  const memberOf = [...new Set(own.map((ep) => ep.network))].sort();
  return {
    ...node,
    endpoints: own.map(summary),
    networks: memberOf.map((net) => {
      const network = networks.find((n) => n.name === net);
      return { name: net, vni: network?.vni ?? null, port: network?.port ?? null, peers: peersIn(net, name, nodes, endpoints) };
    }),
  };
}

export function endpointView(id: string, nodes: readonly NodeStatus[], networks: readonly Network[], endpoints: readonly Endpoint[]) {
  const endpoint = endpoints.find((ep) => ep.id === id);
  if (!endpoint) return undefined;
  const node = nodes.find((n) => n.name === endpoint.node);
  const network = networks.find((n) => n.name === endpoint.network);
  return {
    ...endpoint,
    target: formatEndpointTarget(endpoint),
    node: { name: endpoint.node, address: node?.address ?? '', state: node?.state ?? 'unknown', reconciledRevision: node?.reconciledRevision ?? 0 },
    network: { name: endpoint.network, vni: network?.vni ?? null, port: network?.port ?? null, mtu: network?.mtu ?? null },
    peers: peersIn(endpoint.network, endpoint.node, nodes, endpoints),
  };
}
