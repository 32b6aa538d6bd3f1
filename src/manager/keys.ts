/**
 * The store's key layout. Besides the resources themselves, a few keys exist only to be compared in
 * transactions, because a compare-and-swap on one key is the only atomic decision the store offers (and
 * the only one etcd offers across managers):
 *
 * - `/vnis/<vni>`, `/ipam/<network>/<ip>`, `/attachments/<node>/<netns>/<ifname>` are created "only if
 *   absent" together with the resource that claims them, so two requests can never claim the same VNI,
 *   address or interface even when both passed validation against a stale index.
 * - `/meta/networks` is rewritten by every network create and delete and compared by each: subnet overlap
 *   is a property of the whole set of networks, so two creates with overlapping subnets must serialise.
 * - `/deleting/<network>` is created before a network is deleted; endpoint creates require it absent, so
 *   once it exists the network's endpoint set can only shrink and the delete sees every endpoint.
 * - `/removing-nodes/<node>` does the same for `DELETE /v1/nodes/:name`: no endpoint can be added to a
 *   node that is being removed, so the removal sees (and withdraws) every endpoint it has.
 * - `/node-addresses/<ip>` is created "only if absent" with the node that registers that underlay address
 *   (and moved with it), so two nodes can never both hold one address: every peer would send one of them
 *   the other's traffic (docs/security.md, hole 3).
 * - `/usage/<network>/<node>` is rewritten by every create a node's quota limits, and compared by each, so
 *   that two of them cannot both take the last address the quota allows (service/quota.ts).
 * - `/tunnel-addresses/<ip>` is created "only if absent" with the node that gets that WireGuard tunnel
 *   address (service/tunnels.ts), so two nodes can never share one.
 * - `/names/<network>/<name>` is created "only if absent" with the endpoint that takes that DNS name (in lower
 *   case: DNS compares without case) and deleted with it, so two endpoints of a network never share a name.
 * - `/identities/<node>` is the node's identity record (service/identities.ts): which of its certificates the
 *   manager honours. A join creates it only while the node is not registered; `node rm` deletes it.
 */

export const PREFIX = {
  nodes: '/nodes/',
  networks: '/networks/',
  endpoints: '/endpoints/',
  vnis: '/vnis/',
  ipam: '/ipam/',
  attachments: '/attachments/',
  deleting: '/deleting/',
  removingNodes: '/removing-nodes/',
  reservations: '/reservations/',
  nodeAddresses: '/node-addresses/',
  identities: '/identities/',
  usage: '/usage/',
  tunnelAddresses: '/tunnel-addresses/',
  names: '/names/',
} as const;

export const META_CLUSTER = '/meta/cluster';
export const META_NETWORKS = '/meta/networks';

export const keys = {
  node: (name: string) => PREFIX.nodes + name,
  network: (name: string) => PREFIX.networks + name,
  endpoint: (id: string) => PREFIX.endpoints + id,
  vni: (vni: number) => PREFIX.vnis + String(vni),
  ipam: (network: string, ip: string) => `${PREFIX.ipam}${network}/${ip}`,
  /** netns is a path, so it is percent-encoded to stay one key segment */
  attachment: (node: string, netns: string, ifname: string) =>
    `${PREFIX.attachments}${node}/${encodeURIComponent(netns)}/${ifname}`,
  deleting: (network: string) => PREFIX.deleting + network,
  removingNode: (node: string) => PREFIX.removingNodes + node,
  /** an address Docker's IPAM holds without an endpoint (yet); created together with its `/ipam/` key */
  reservation: (network: string, ip: string) => `${PREFIX.reservations}${network}/${ip}`,
  /** the underlay address a node registered; its value is the node's name */
  nodeAddress: (ip: string) => PREFIX.nodeAddresses + ip,
  identity: (node: string) => PREFIX.identities + node,
  usage: (network: string, node: string) => `${PREFIX.usage}${network}/${node}`,
  /** a node's WireGuard tunnel address (service/tunnels.ts); its value is the node's name */
  tunnelAddress: (ip: string) => PREFIX.tunnelAddresses + ip,
  /** an endpoint's DNS name on its network (service/endpoints.ts); its value is the endpoint's id */
  endpointName: (network: string, name: string) => `${PREFIX.names}${network}/${name.toLowerCase()}`,
};

/**
 * What an endpoint's `/attachments/` key names as its target: the namespace path, `container:REF` or
 * `docker:ENDPOINT-ID` (see Endpoint in core/model.ts); (node, target, ifname) is unique.
 */
export function attachmentTarget(endpoint: { netns?: string; container?: string; docker?: string }): string {
  if (endpoint.docker !== undefined) return `docker:${endpoint.docker}`;
  if (endpoint.container !== undefined) return `container:${endpoint.container}`;
  return endpoint.netns ?? '';
}

/** Splits `/reservations/<network>/<ip>`. */
export function parseReservationKey(key: string): { network: string; ip: string } | undefined {
  const rest = key.slice(PREFIX.reservations.length).split('/');
  if (rest.length !== 2) return undefined;
  return { network: rest[0]!, ip: rest[1]! };
}

/** Splits `/ipam/<network>/<ip>` (names never contain "/"). */
export function parseIpamKey(key: string): { network: string; ip: string } | undefined {
  const rest = key.slice(PREFIX.ipam.length).split('/');
  if (rest.length !== 2) return undefined;
  return { network: rest[0]!, ip: rest[1]! };
}
