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
import { parseIPv4 } from '../core/ipv4.ts';
import { VXLAN_PORT, type Endpoint, type Network } from '../core/model.ts';
import { underlayFamily } from '../core/underlay.ts';
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
import { NetworkZone } from './dns/zone.ts';
import { endpointAddressing, gatewayAddressesOf, gatewayMacOf, peerAddresses } from './desired-addresses.ts';
import { desiredTunnel } from './wireguard/render.ts';
import { Concatenation, MAX_PEER_EDITS, PeerConcatenation, type PeerEdit, type PeerSource } from './desired-peers.ts';

export interface Self {
  name: string;
  /** underlay (advertise) address: the VTEP */
  address: string;
  /** interface holding the underlay address (for multicast groups) */
  underlayDevice: string;
}

export { gatewayMacOf };

/**
 * `containers`: for endpoints attached to a Docker container (`vxnet attach --container`), the namespace
 * path the agent resolved (`/proc/PID/ns/net`), by container reference; an endpoint whose container is not
 * in it is left out (the agent reports why). Docker endpoints (`docker`) get no namespace: handed over.
 */
export function desiredState(view: ClusterView, self: Self, containers: ReadonlyMap<string, string> = new Map()): DesiredState {
  const networks: DesiredNetwork[] = [];
  const peerSources: PeerSource[] = [];
  const floodLists: (readonly DesiredFlood[])[] = [];
  const endpointLists: (readonly DesiredEndpoint[])[] = [];

  const cache = renderCacheOf(view, self);

  for (const name of cache.sync(view, self)) {
    const rendered = cache.networks.get(name)!;
    networks.push(rendered.desiredNetwork(self));
    endpointLists.push(rendered.endpointList(view, containers));
    peerSources.push(rendered);
    if (!rendered.network.multicastGroup) floodLists.push(rendered.floodList());
  }
  return {
    networks,
    peers: cache.peers.of(peerSources),
    floods: cache.floods.of(floodLists),
    endpoints: cache.endpoints.of(endpointLists),
    vxlanFilter: cache.filter(view, self),
    ...withTunnel(desiredTunnel(view.nodes.values(), self.name, networks, cache.floods.of(floodLists))),
  };
}

const withTunnel = (tunnel: ReturnType<typeof desiredTunnel>) => (tunnel ? { tunnel } : {});

/**
 * The VXLAN `local` of a network on this node: the underlay address, or for an encrypted network the node's
 * tunnel address (absent until the manager gave it one: the network is then not set up here).
 */
function localAddressOf(view: ClusterView, self: Self, network: Network): string | undefined {
  return network.encrypted === true ? view.nodes.get(self.name)?.tunnelAddress : self.address;
}

/**
 * This node's endpoints attached to Docker containers (`vxnet attach --container`), whose namespaces the
 * agent resolves before each pass. The renderer keeps them per network, so a node without any costs nothing:
 * a scan of every endpoint per pass cost an agent with 18,000 remote endpoints more than the whole
 * incremental rendering (bench/scale).
 */
export function containerEndpoints(view: ClusterView, self: Self): Endpoint[] {
  const cache = renderCacheOf(view, self);
  const out: Endpoint[] = [];
  for (const name of cache.sync(view, self)) {
    for (const id of cache.networks.get(name)!.containerLocals) {
      const endpoint = view.endpoints.get(id);
      if (endpoint) out.push(endpoint);
    }
  }
  return out;
}

/**
 * The DNS zone of every network with an endpoint on this node (src/agent/dns/), by network name: the same
 * objects from pass to pass, brought up to date with the rest of the rendering.
 */
export function dnsZones(view: ClusterView, self: Self): Map<string, NetworkZone> {
  const cache = renderCacheOf(view, self);
  const zones = new Map<string, NetworkZone>();
  for (const name of cache.sync(view, self)) zones.set(name, cache.networks.get(name)!.zone);
  return zones;
}

/** This node's endpoints on each network where it has one (the renderer keeps them; no scan of the view). */
export function localEndpoints(view: ClusterView, self: Self): Map<string, Endpoint[]> {
  const cache = renderCacheOf(view, self);
  const out = new Map<string, Endpoint[]>();
  for (const name of cache.sync(view, self)) {
    const ids = cache.networks.get(name)!.locals;
    out.set(name, [...ids].map((id) => view.endpoints.get(id)).filter((e): e is Endpoint => e !== undefined));
  }
  return out;
}

/**
 * What desiredState keeps between passes, one per view: per network, the remote endpoints already rendered
 * as peers (and their VTEPs, for the flood entries) and the local endpoint ids, brought up to date from
 * ClusterView.takeChanges. A pass then costs what changed plus copying references into the result, instead
 * of rendering every remote endpoint again (bench/scale, agents with up to 18,000 remote endpoints: see
 * bench/results/scale-fixes.md). The result is the same as rendering from scratch, in the same order.
 */
class RenderCache {
  readonly selfKey: string;
  readonly networks = new Map<string, NetworkRender>();
  readonly peers = new PeerConcatenation();
  readonly floods = new Concatenation<DesiredFlood>();
  readonly endpoints = new Concatenation<DesiredEndpoint>();
  #epoch = -1;
  #vtepsVersion = -1;
  #nodesVersion = -1;
  #filterKey = '';
  #filter: VxlanFilter | undefined;

  constructor(self: Self) {
    this.selfKey = selfKeyOf(self);
  }

  /** Brings every network of the view up to date; the names of those with a local endpoint, sorted. */
  sync(view: ClusterView, self: Self): string[] {
    if (this.#epoch !== view.epoch || this.#vtepsVersion !== view.vtepsVersion) {
      this.networks.clear();
      this.#epoch = view.epoch;
      this.#vtepsVersion = view.vtepsVersion;
    }
    const nodesMoved = this.#nodesVersion !== view.nodesVersion;
    this.#nodesVersion = view.nodesVersion;
    for (const name of this.networks.keys()) if (!view.networks.has(name)) this.networks.delete(name);
    const local: string[] = [];
    for (const [name, network] of view.networks) {
      const changes = view.takeChanges(name);
      let rendered = this.networks.get(name);
      if (!rendered || changes.all || rendered.network !== network) {
        rendered = new NetworkRender(name, network, localAddressOf(view, self, network));
        for (const endpoint of view.endpointsOf(name)) rendered.put(view, self, endpoint);
        this.networks.set(name, rendered);
      } else {
        for (const id of changes.ids) rendered.update(view, self, id);
        if (nodesMoved) rendered.retryUnknown(view, self);
      }
      if (rendered.locals.size > 0 && rendered.local !== undefined) local.push(name);
    }
    return local.sort();
  }

  /** vxlanFilterOf, computed again only when nodes or networks changed. */
  filter(view: ClusterView, self: Self): VxlanFilter {
    const key = `${view.epoch}/${view.nodesVersion}/${view.networksVersion}`;
    if (this.#filter === undefined || this.#filterKey !== key) {
      this.#filter = vxlanFilterOf(view, self);
      this.#filterKey = key;
    }
    return this.#filter;
  }
}

class NetworkRender implements PeerSource {
  readonly name: string;
  readonly network: Network;
  readonly vxlan: string;
  /** the VXLAN device's `local` (localAddressOf) */
  readonly local: string | undefined;
  /** remote endpoint id → its peer entry, in the view's order */
  readonly peers = new Map<string, DesiredPeer>();
  /** the further addresses of dual-stack remote endpoints, by id (IPv6 beside IPv4) */
  readonly #extraPeers = new Map<string, DesiredPeer[]>();
  /** this node's endpoints here, in the view's order */
  readonly locals = new Set<string>();
  /** VTEP → how many peers it carries */
  readonly vteps = new Map<string, number>();
  /** remote endpoints whose node is not (yet) known, by id → node */
  readonly #unknown = new Map<string, string>();
  /** the rendering of each local endpoint, for as long as the endpoint and its namespace stay the same */
  readonly #locals = new Map<string, { endpoint: Endpoint; netns: string | undefined; desired: DesiredEndpoint }>();
  /** this node's endpoints here attached to a Docker container (resolved by the agent before each pass) */
  readonly containerLocals = new Set<string>();
  #peerList: readonly DesiredPeer[] | undefined;
  /** the peer list as last built held dual-stack extras (after the other peers): edits cannot be replayed */
  #builtWithExtras = false;
  /** the changes to the peers since PeerConcatenation last took them; undefined: build the list again */
  #peerEdits: PeerEdit[] | undefined;
  #floodList: readonly DesiredFlood[] | undefined;
  #endpointList: readonly DesiredEndpoint[] | undefined;
  #desiredNetwork: DesiredNetwork | undefined;
  /** the names its gateway answers (src/agent/dns/), kept with the peers one endpoint at a time */
  readonly zone: NetworkZone;

  constructor(name: string, network: Network, local: string | undefined) {
    this.name = name;
    this.network = network;
    this.local = local;
    this.vxlan = deviceNames.vxlan(network.vni);
    this.zone = new NetworkZone(network);
  }

  /** The devices of this network on this node; the same object while the network stays the same. */
  desiredNetwork(self: Self): DesiredNetwork {
    const network = this.network;
    return (this.#desiredNetwork ??= {
      name: this.name,
      vni: network.vni,
      bridge: deviceNames.bridge(network.vni),
      vxlan: this.vxlan,
      port: network.port,
      mtu: network.mtu,
      localAddress: this.local ?? self.address,
      ...(network.encrypted === true ? { encrypted: true } : {}),
      ...(network.multicastGroup ? { multicastGroup: network.multicastGroup, underlayDevice: self.underlayDevice } : {}),
      gatewayMac: gatewayMacOf(network),
      gatewayAddresses: gatewayAddressesOf(network),
      subnets: network.subnets.map((s) => s.cidr),
      internal: network.internal,
    });
  }

  /**
   * The local endpoints to set up, in the view's order; the same array while none of them changed and none
   * is attached to a container (whose namespace `containers` resolves anew each pass).
   */
  endpointList(view: ClusterView, containers: ReadonlyMap<string, string>): readonly DesiredEndpoint[] {
    if (this.#endpointList && this.containerLocals.size === 0) return this.#endpointList;
    const list: DesiredEndpoint[] = [];
    for (const id of this.locals) {
      const endpoint = view.endpoints.get(id);
      if (!endpoint) continue;
      const netns = endpoint.container !== undefined ? containers.get(endpoint.container) : endpoint.netns;
      if (endpoint.docker === undefined && netns === undefined) continue;
      list.push(this.#local(endpoint, netns));
    }
    return (this.#endpointList = list);
  }

  /** The local endpoint rendered, reused while `endpoint` (the same object) and `netns` stay. */
  #local(endpoint: Endpoint, netns: string | undefined): DesiredEndpoint {
    const cached = this.#locals.get(endpoint.id);
    if (cached && cached.endpoint === endpoint && cached.netns === netns) return cached.desired;
    const network = this.network;
    const desired: DesiredEndpoint = {
      id: endpoint.id,
      bridge: deviceNames.bridge(network.vni),
      hostVeth: deviceNames.hostVeth(endpoint.id),
      peerVeth: deviceNames.peerVeth(endpoint.id),
      ...(endpoint.docker === undefined ? { netns } : {}),
      ifname: endpoint.ifname,
      mac: endpoint.mac,
      ...endpointAddressing(endpoint, network),
      mtu: network.mtu,
    };
    this.#locals.set(endpoint.id, { endpoint, netns, desired });
    return desired;
  }

  peerList(): readonly DesiredPeer[] {
    if (this.#peerList) return this.#peerList;
    const list = [...this.peers.values()];
    for (const extra of this.#extraPeers.values()) for (const peer of extra) list.push(peer);
    this.#builtWithExtras = this.#extraPeers.size > 0;
    return (this.#peerList = list);
  }

  takePeerEdits(): readonly PeerEdit[] | undefined {
    const edits = this.#peerEdits;
    this.#peerEdits = [];
    return edits;
  }

  /** A peer came (`old` undefined), changed or went (`peer` undefined). */
  #peerEdited(old: DesiredPeer | undefined, peer: DesiredPeer | undefined): void {
    this.#peerList = undefined;
    const edits = this.#peerEdits;
    if (edits === undefined) return;
    if (this.#builtWithExtras || this.#extraPeers.size > 0 || edits.length >= MAX_PEER_EDITS) this.#peerEdits = undefined;
    else edits.push({ old, peer });
  }

  floodList(): readonly DesiredFlood[] {
    return (this.#floodList ??= [...this.vteps.keys()].sort().map((vtep) => ({ vxlan: this.vxlan, vtep })));
  }

  update(view: ClusterView, self: Self, id: string): void {
    const endpoint = view.endpoints.get(id);
    if (endpoint && endpoint.network === this.name) {
      this.put(view, self, endpoint);
      return;
    }
    this.#dropLocal(id);
    this.#unknown.delete(id);
    this.#dropPeer(id);
    this.zone.remove(id);
  }

  put(view: ClusterView, self: Self, endpoint: Endpoint): void {
    const id = endpoint.id;
    this.zone.put(endpoint);
    if (endpoint.node === self.name) {
      this.#dropPeer(id);
      this.locals.add(id);
      if (endpoint.container !== undefined) this.containerLocals.add(id);
      else this.containerLocals.delete(id);
      // the object itself may be new (the view replaces it on every change): rendered again if so
      if (this.#locals.get(id)?.endpoint !== endpoint) this.#endpointList = undefined;
      return;
    }
    this.#dropLocal(id);
    const node = view.nodes.get(endpoint.node);
    // an encrypted network reaches the peer at its tunnel address, through WireGuard only
    const vtep = this.network.encrypted === true ? node?.tunnelAddress : node?.address;
    // A peer on a node we do not know (yet) or that claims our own address cannot be programmed.
    if (!vtep || vtep === self.address || vtep === this.local) {
      if (!vtep) this.#unknown.set(id, endpoint.node);
      this.#dropPeer(id);
      return;
    }
    this.#unknown.delete(id);
    const old = this.peers.get(id);
    const ips = peerAddresses(endpoint);
    const extra = this.#extraPeers.get(id);
    const sameExtra = ips.length === 1 ? extra === undefined : extra !== undefined && extra.map((p) => p.ip).join() === ips.slice(1).join();
    if (old && old.ip === ips[0] && old.mac === endpoint.mac && old.vtep === vtep && sameExtra) return;
    if (old) this.#release(old.vtep);
    const peer: DesiredPeer = { vxlan: this.vxlan, ip: ips[0]!, mac: endpoint.mac, vtep };
    this.peers.set(id, peer);
    // a dual-stack endpoint's further addresses: one more neighbour entry each, same MAC and VTEP
    if (ips.length > 1) this.#extraPeers.set(id, ips.slice(1).map((ip) => ({ vxlan: this.vxlan, ip, mac: endpoint.mac, vtep })));
    else this.#extraPeers.delete(id);
    const carried = this.vteps.get(vtep) ?? 0;
    this.vteps.set(vtep, carried + 1);
    this.#peerEdited(old, peer);
    // the flood entries change only when a VTEP comes or goes, not with every endpoint behind one
    if (carried === 0) this.#floodList = undefined;
  }

  #dropLocal(id: string): void {
    if (!this.locals.delete(id)) return;
    this.containerLocals.delete(id);
    this.#locals.delete(id);
    this.#endpointList = undefined;
  }

  /** Endpoints that waited for their node: the node may be known now. */
  retryUnknown(view: ClusterView, self: Self): void {
    for (const [id, node] of [...this.#unknown]) {
      const endpoint = view.endpoints.get(id);
      if (!endpoint) this.#unknown.delete(id);
      else if (view.nodes.has(node)) this.put(view, self, endpoint);
    }
  }

  #dropPeer(id: string): void {
    const old = this.peers.get(id);
    if (!old) return;
    this.peers.delete(id);
    this.#extraPeers.delete(id);
    this.#release(old.vtep);
    this.#peerEdited(old, undefined);
  }

  #release(vtep: string): void {
    const n = (this.vteps.get(vtep) ?? 1) - 1;
    if (n > 0) {
      this.vteps.set(vtep, n);
    } else {
      this.vteps.delete(vtep);
      this.#floodList = undefined;
    }
  }
}

const renderCaches = new WeakMap<ClusterView, RenderCache>();

const selfKeyOf = (self: Self): string => `${self.name} ${self.address} ${self.underlayDevice}`;

function renderCacheOf(view: ClusterView, self: Self): RenderCache {
  let cache = renderCaches.get(view);
  if (!cache || cache.selfKey !== selfKeyOf(self)) {
    cache = new RenderCache(self);
    renderCaches.set(view, cache);
  }
  return cache;
}

/**
 * The allow-list: the underlay addresses of every other registered node, for every VXLAN port of the
 * networks this node knows of plus the IANA default, so that the filter exists before the first network; and
 * the underlay interface, the only one VXLAN is accepted from.
 */
export function vxlanFilterOf(view: ClusterView, self: Self): VxlanFilter {
  const sources = new Set<string>();
  for (const node of view.nodes.values()) {
    // a node that claims our own address is not a peer: frames "from ourselves" are never accepted
    if (node.name === self.name || node.address === self.address || underlayFamily(node.address) === undefined) continue;
    sources.add(node.address);
  }
  const ports = new Set<number>([VXLAN_PORT]);
  for (const network of view.networks.values()) ports.add(network.port);
  // IPv4 members in numeric order, then IPv6 ones (an IPv6 underlay, kernel/underlay6.ts) as text
  const v4 = [...sources].filter((a) => parseIPv4(a) !== undefined).sort((a, b) => parseIPv4(a)! - parseIPv4(b)!);
  const v6 = [...sources].filter((a) => parseIPv4(a) === undefined).sort();
  return {
    ports: [...ports].sort((a, b) => a - b),
    allowedSources: [...v4, ...v6],
    underlayDevice: self.underlayDevice,
    ...(underlayFamily(self.address) === 'IPv6' ? { ipv6Underlay: true } : {}),
  };
}

