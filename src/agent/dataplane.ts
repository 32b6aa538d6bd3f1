/**
 * The agent's view of a data plane: given the complete desired state for this node, make the kernel (or
 * OVS) match it. Implementations read the actual state back, change only what differs, touch only objects
 * vxnet owns (names starting with OWNED_PREFIX, the nftables table OWNED_NFT_TABLE), and never flush and
 * rebuild. The same call serves start-up, restart adoption and every change.
 */

export const OWNED_PREFIX = 'vxn';
export const OWNED_NFT_TABLE = 'vxnet';

/** Kernel device names, all within IFNAMSIZ (15 characters). */
export const deviceNames = {
  bridge: (vni: number) => `vxnb${vni}`,
  vxlan: (vni: number) => `vxnv${vni}`,
  /** host end of an endpoint's veth pair; the id is 12 hex characters, we use the first 10 */
  hostVeth: (endpointId: string) => `vxnh${endpointId.slice(0, 10)}`,
  /** container end before it is moved and renamed inside the target namespace */
  peerVeth: (endpointId: string) => `vxnc${endpointId.slice(0, 10)}`,
};

export interface DesiredNetwork {
  name: string;
  vni: number;
  bridge: string;
  vxlan: string;
  port: number;
  mtu: number;
  /** this node's underlay address: the VXLAN device's `local` */
  localAddress: string;
  /** set for networks using an underlay multicast group for BUM traffic */
  multicastGroup?: string;
  /** underlay device for the multicast group (`dev` of the VXLAN device) */
  underlayDevice?: string;
  /** bridge MAC: derived from the first gateway, identical on every node */
  gatewayMac: string;
  /** gateway addresses with prefix, e.g. "192.168.1.1/24", held by the bridge */
  gatewayAddresses: string[];
  /** subnets in CIDR form, for the firewall */
  subnets: string[];
  internal: boolean;
}

/** A remote endpoint: one permanent neighbour (ip → mac) and one permanent FDB entry (mac → vtep). */
export interface DesiredPeer {
  vxlan: string;
  ip: string;
  mac: string;
  vtep: string;
}

/** Head-end replication: one all-zero-MAC FDB entry per remote VTEP of the network. */
export interface DesiredFlood {
  vxlan: string;
  vtep: string;
}

export interface DesiredEndpoint {
  id: string;
  bridge: string;
  hostVeth: string;
  peerVeth: string;
  /**
   * Absolute path of the target namespace. Absent: a Docker endpoint, whose container end is *handed over*:
   * the peer veth is made with the endpoint's MAC and MTU and left in the host namespace, where Docker's
   * libnetwork takes it (the plugin's Join names it), moves it into the container, renames and addresses it.
   */
  netns?: string;
  ifname: string;
  mac: string;
  /** "192.168.1.2/24" */
  address: string;
  gateway: string;
  mtu: number;
  /** other subnets of the same network, reached via this endpoint's gateway */
  extraRoutes: string[];
}

/**
 * The VXLAN peer allow-list (docs/security.md): UDP to any of `ports` is accepted only from
 * `allowedSources`, the underlay addresses of the other member nodes, and dropped from anyone else. It is
 * wanted whenever the agent has a view of the cluster, with or without networks, so that it is in place
 * before the first VXLAN device or endpoint exists. Empty `ports` means no filter (nothing else wanted).
 */
export interface VxlanFilter {
  /** UDP destination ports to guard: every VXLAN port the node knows of, plus the IANA default 4789 */
  ports: number[];
  /** underlay addresses allowed to send to those ports (never this node's own address) */
  allowedSources: string[];
  /**
   * The interface holding this node's advertise address: VXLAN is accepted only when it arrives there, and
   * UDP to a member's VXLAN port routed in from any other interface (a container's) is dropped. Without it
   * VXLAN is accepted from any interface but vxnet's own.
   */
  underlayDevice?: string;
}

/**
 * Treated as immutable: a state handed to reconcile, its arrays and their items are never changed afterwards
 * (a new state is made of new arrays where something differs). The renderer hands over the very same array
 * for a list that did not change, and a data plane may rely on that identity to skip work (LinuxDataplane
 * skips the entry diff) until its periodic full check.
 */
export interface DesiredState {
  networks: DesiredNetwork[];
  peers: DesiredPeer[];
  floods: DesiredFlood[];
  endpoints: DesiredEndpoint[];
  vxlanFilter: VxlanFilter;
}

export interface ReconcileResult {
  /** number of kernel objects (links, addresses, entries, rule sets) changed by this pass */
  changes: number;
  /** local endpoints that could not be set up, with the reason; they are retried on the next pass */
  endpointErrors: Map<string, string>;
  /** endpoints that are fully set up */
  readyEndpoints: Set<string>;
  /** a failure not tied to one endpoint (the pass is retried with backoff) */
  error?: string;
}

export interface Dataplane {
  reconcile(desired: DesiredState, signal?: AbortSignal): Promise<ReconcileResult>;
}
