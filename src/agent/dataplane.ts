/**
 * The agent's view of a data plane: given the complete desired state for this node, make the kernel match
 * it. Implementations read the actual state back, change only what differs, touch only objects
 * vxnet owns (names starting with OWNED_PREFIX, the nftables table OWNED_NFT_TABLE), and never flush and
 * rebuild. The same call serves start-up, restart adoption and every change.
 */

import type { DesiredTunnel } from './wireguard/render.ts';

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
  /** the bridge's port leading to the gateway, when the network has a namespace of its own (kernel/netns.ts) */
  gatewayPort: (vni: number) => `vxng${vni}`,
};

export interface DesiredNetwork {
  readonly name: string;
  readonly vni: number;
  readonly bridge: string;
  readonly vxlan: string;
  readonly port: number;
  readonly mtu: number;
  /** this node's underlay address: the VXLAN device's `local` */
  readonly localAddress: string;
  /** set for networks using an underlay multicast group for BUM traffic */
  readonly multicastGroup?: string;
  /** underlay device for the multicast group (`dev` of the VXLAN device) */
  readonly underlayDevice?: string;
  /** bridge MAC: derived from the first gateway, identical on every node */
  readonly gatewayMac: string;
  /** gateway addresses with prefix, e.g. "192.168.1.1/24", held by the bridge */
  readonly gatewayAddresses: readonly string[];
  /** subnets in CIDR form, for the firewall */
  readonly subnets: readonly string[];
  readonly internal: boolean;
  /** its VXLAN device sends from this node's tunnel address to the peers' (src/agent/wireguard/) */
  readonly encrypted?: boolean;
}

/** A remote endpoint: one permanent neighbour (ip → mac) and one permanent FDB entry (mac → vtep). */
export interface DesiredPeer {
  readonly vxlan: string;
  readonly ip: string;
  readonly mac: string;
  readonly vtep: string;
}

/** Head-end replication: one all-zero-MAC FDB entry per remote VTEP of the network. */
export interface DesiredFlood {
  readonly vxlan: string;
  readonly vtep: string;
}

/** Where a local endpoint's addresses come from: its first address, and all of them on a dual-stack network. */
export interface EndpointAddressing {
  /** the first address, "192.168.1.2/24" (or "fd00:1::2/64" on an IPv6-only network) */
  readonly address: string;
  readonly gateway: string;
  /** every address with its gateway, IPv4 first; absent: `address` is the only one */
  readonly addresses?: readonly { readonly address: string; readonly gateway: string }[];
  /** other subnets of the same network, reached via the gateway of their family */
  readonly extraRoutes: readonly string[];
}

export interface DesiredEndpoint {
  readonly id: string;
  readonly bridge: string;
  readonly hostVeth: string;
  readonly peerVeth: string;
  /**
   * Absolute path of the target namespace. Absent: a Docker endpoint, whose container end is *handed over*:
   * the peer veth is made with the endpoint's MAC and MTU and left in the host namespace, where Docker's
   * libnetwork takes it (the plugin's Join names it), moves it into the container, renames and addresses it.
   */
  readonly netns?: string;
  readonly ifname: string;
  readonly mac: string;
  /** "192.168.1.2/24" (the first address: see EndpointAddressing) */
  readonly address: string;
  readonly gateway: string;
  /** every address with its gateway when there is more than one (dual stack), IPv4 first */
  readonly addresses?: EndpointAddressing['addresses'];
  readonly mtu: number;
  /** other subnets of the same network, reached via the gateway of their family */
  readonly extraRoutes: readonly string[];
}

/** Every address of a desired endpoint with its gateway. */
export function allAddresses(ep: Pick<DesiredEndpoint, 'address' | 'gateway' | 'addresses'>): readonly { readonly address: string; readonly gateway: string }[] {
  return ep.addresses ?? [{ address: ep.address, gateway: ep.gateway }];
}

/**
 * The VXLAN peer allow-list (docs/security.md): UDP to any of `ports` is accepted only from
 * `allowedSources`, the underlay addresses of the other member nodes, and dropped from anyone else. It is
 * wanted whenever the agent has a view of the cluster, with or without networks, so that it is in place
 * before the first VXLAN device or endpoint exists. Empty `ports` means no filter (nothing else wanted).
 */
export interface VxlanFilter {
  /** UDP destination ports to guard: every VXLAN port the node knows of, plus the IANA default 4789 */
  readonly ports: readonly number[];
  /** underlay addresses allowed to send to those ports (never this node's own address) */
  readonly allowedSources: readonly string[];
  /**
   * The interface holding this node's advertise address: VXLAN is accepted only when it arrives there, and
   * UDP to a member's VXLAN port routed in from any other interface (a container's) is dropped. Without it
   * VXLAN is accepted from any interface but vxnet's own.
   */
  readonly underlayDevice?: string;
  /**
   * This node's WireGuard device (src/agent/wireguard/): VXLAN that arrives through it is accepted (the
   * tunnel authenticated its sender), and nothing is routed into it (only the host's own VXLAN travels there).
   */
  readonly tunnelDevice?: string;
  /** VNIs of the encrypted networks: VXLAN with one of them is dropped unless it came through the tunnel */
  readonly encryptedVnis?: readonly number[];
  /**
   * This node's underlay is IPv6: the filter also goes into table ip6 vxnet_underlay (kernel/underlay6.ts),
   * where `allowedSources`' IPv6 addresses are the members.
   */
  readonly ipv6Underlay?: boolean;
}

/**
 * Immutable, and typed so: a state handed to reconcile, its arrays and their items are never changed
 * afterwards (a new state is made of new arrays where something differs). The renderer hands over the very
 * same array for a list that did not change, and a data plane may rely on that identity to skip work
 * (LinuxDataplane skips the entry diff) until its periodic full check.
 */
export interface DesiredState {
  readonly networks: readonly DesiredNetwork[];
  readonly peers: readonly DesiredPeer[];
  readonly floods: readonly DesiredFlood[];
  readonly endpoints: readonly DesiredEndpoint[];
  readonly vxlanFilter: VxlanFilter;
  /** the WireGuard tunnel the encrypted networks need; absent: none is wanted (src/agent/wireguard/) */
  readonly tunnel?: DesiredTunnel;
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
