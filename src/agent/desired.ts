/**
 * Renders the desired kernel state of one node from the cluster view. Pure and total: the same view always
 * gives the same state, so start-up, restart adoption and every change go through one code path.
 *
 * Laziness: a network's devices exist on a node only while that node has an endpoint on it (as Docker's
 * overlay does), so a node with no containers on a network carries none of its FDB/ARP entries either.
 *
 * FDB strategy: every remote endpoint gets a permanent neighbour entry (IP → MAC, answered locally by the
 * VXLAN device's ARP proxy) and a permanent FDB entry (MAC → VTEP), so known unicast never floods and ARP
 * never crosses the underlay. Broadcast/multicast goes to every peer VTEP of the network by head-end
 * replication (one all-zero-MAC FDB entry per peer node), or to the network's multicast group.
 *
 * VXLAN peer allow-list: "member" means *registered node* — every node in the view but this one — not
 * "node that shares a network with us". The view holds every registered node (node changes go to all
 * agents) but only the networks this node takes part in, and registration already needs the worker
 * credential, so registered nodes are the trust boundary the cluster has. Sharing a network would be
 * tighter, but the set would then churn with every endpoint elsewhere and a peer's first frames could race
 * its entry. Down nodes stay in the set: liveness is not membership, and a node coming back must not be
 * cut off.
 */
import { contains, macForIPv4, parseCidr, parseIPv4, requireIPv4 } from '../core/ipv4.ts';
import { VXLAN_PORT, type Network } from '../core/model.ts';
import {
  deviceNames,
  type DesiredEndpoint,
  type DesiredFlood,
  type DesiredNetwork,
  type DesiredPeer,
  type DesiredState,
  type VxlanFilter,
} from './dataplane.ts';
import type { ClusterView } from './view.ts';

export interface Self {
  name: string;
  /** underlay (advertise) address: the VTEP */
  address: string;
  /** interface holding the underlay address (for multicast groups) */
  underlayDevice: string;
}

export function gatewayMacOf(network: Network): string {
  const first = network.subnets[0];
  return first ? macForIPv4(requireIPv4(first.gateway)) : '02:78:00:00:00:00';
}

/**
 * `containers`: for endpoints attached to a Docker container (`vxnet attach --container`), the namespace
 * path the agent resolved (`/proc/PID/ns/net`), by container reference; an endpoint whose container is not
 * in it is left out (the agent reports why). Docker endpoints (`docker`) get no namespace: handed over.
 */
export function desiredState(view: ClusterView, self: Self, containers: ReadonlyMap<string, string> = new Map()): DesiredState {
  const networks: DesiredNetwork[] = [];
  const peers: DesiredPeer[] = [];
  const floods: DesiredFlood[] = [];
  const endpoints: DesiredEndpoint[] = [];

  const localNetworks = new Set<string>();
  for (const endpoint of view.endpoints.values()) {
    if (endpoint.node === self.name && view.networks.has(endpoint.network)) localNetworks.add(endpoint.network);
  }

  for (const name of [...localNetworks].sort()) {
    const network = view.networks.get(name)!;
    const bridge = deviceNames.bridge(network.vni);
    const vxlan = deviceNames.vxlan(network.vni);
    const subnetCidrs = network.subnets.map((s) => s.cidr);
    networks.push({
      name,
      vni: network.vni,
      bridge,
      vxlan,
      port: network.port,
      mtu: network.mtu,
      localAddress: self.address,
      ...(network.multicastGroup ? { multicastGroup: network.multicastGroup, underlayDevice: self.underlayDevice } : {}),
      gatewayMac: gatewayMacOf(network),
      gatewayAddresses: network.subnets.map((s) => `${s.gateway}/${parseCidr(s.cidr)?.prefix ?? 32}`),
      subnets: subnetCidrs,
      internal: network.internal,
    });

    const peerVteps = new Set<string>();
    for (const endpoint of view.endpointsOf(name)) {
      if (endpoint.node === self.name) {
        const netns = endpoint.container !== undefined ? containers.get(endpoint.container) : endpoint.netns;
        if (endpoint.docker === undefined && netns === undefined) continue;
        endpoints.push({
          id: endpoint.id,
          bridge,
          hostVeth: deviceNames.hostVeth(endpoint.id),
          peerVeth: deviceNames.peerVeth(endpoint.id),
          ...(endpoint.docker === undefined ? { netns } : {}),
          ifname: endpoint.ifname,
          mac: endpoint.mac,
          address: `${endpoint.ip}/${endpoint.prefix}`,
          gateway: endpoint.gateway,
          mtu: network.mtu,
          extraRoutes: subnetCidrs.filter((cidr) => !isInside(endpoint.ip, cidr)),
        });
        continue;
      }
      const vtep = view.nodes.get(endpoint.node)?.address;
      // A peer on a node we do not know (yet) or that claims our own address cannot be programmed.
      if (!vtep || vtep === self.address) continue;
      peers.push({ vxlan, ip: endpoint.ip, mac: endpoint.mac, vtep });
      peerVteps.add(vtep);
    }
    if (!network.multicastGroup) {
      for (const vtep of [...peerVteps].sort()) floods.push({ vxlan, vtep });
    }
  }
  return { networks, peers, floods, endpoints, vxlanFilter: vxlanFilterOf(view, self) };
}

/**
 * The allow-list: the underlay addresses of every other registered node, for every VXLAN port of the
 * networks this node knows of plus the IANA default, so that the filter exists before the first network.
 */
export function vxlanFilterOf(view: ClusterView, self: Self): VxlanFilter {
  const sources = new Set<string>();
  for (const node of view.nodes.values()) {
    // a node that claims our own address is not a peer: frames "from ourselves" are never accepted
    if (node.name === self.name || node.address === self.address || parseIPv4(node.address) === undefined) continue;
    sources.add(node.address);
  }
  const ports = new Set<number>([VXLAN_PORT]);
  for (const network of view.networks.values()) ports.add(network.port);
  return {
    ports: [...ports].sort((a, b) => a - b),
    allowedSources: [...sources].sort((a, b) => parseIPv4(a)! - parseIPv4(b)!),
  };
}

function isInside(ip: string, cidr: string): boolean {
  const subnet = parseCidr(cidr);
  return subnet !== undefined && contains(subnet, requireIPv4(ip));
}
