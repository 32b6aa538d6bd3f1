/**
 * The resources vxnet stores and the messages its components exchange. Plain data, no behaviour:
 * the manager persists these, the agent derives kernel state from them, the CLI prints them.
 */

/** RFC 7348: the VNI is 24 bits; 0 is not used by vxnet. */
export const VNI_MIN = 1;
export const VNI_MAX = 0xffffff;
/** First VNI handed out when a network is created without one (Docker's overlay also starts above 4096). */
export const VNI_AUTO_START = 4097;
/** IANA-assigned VXLAN port (RFC 7348 §5). Linux's own default, 8472, predates the assignment. */
export const VXLAN_PORT = 4789;
/** Outer IPv4 20 + outer UDP 8 + VXLAN header 8 + inner Ethernet 14 (RFC 7348 §5). */
export const VXLAN_OVERHEAD = 50;
export const DEFAULT_UNDERLAY_MTU = 1500;
/** Where subnets come from when a network is created without one: /24s out of this pool. */
export const DEFAULT_SUBNET_POOL = '10.200.0.0/16';

export interface Subnet {
  /** "192.168.1.0/24" */
  cidr: string;
  /** "192.168.1.1": the same gateway address (and MAC) on every node's bridge */
  gateway: string;
}

export interface Network {
  name: string;
  vni: number;
  subnets: Subnet[];
  mtu: number;
  port: number;
  internal: boolean;
  /** When set, broadcast and multicast use this underlay group instead of head-end replication. */
  multicastGroup?: string;
  createdAt: string;
}

export type NodeState = 'up' | 'down';

export interface Node {
  name: string;
  /** Underlay address: the VTEP ("local") address of every VXLAN device on this node. */
  address: string;
  /** MTU of the underlay interface that holds `address`. */
  mtu: number;
  registeredAt: string;
}

/** A node as the API shows it: stored fields plus liveness, which the manager tracks in memory. */
export interface NodeStatus extends Node {
  state: NodeState;
  lastSeen: string | null;
  reconciledRevision: number;
}

export type EndpointStatus = 'pending' | 'ready' | 'error';

/**
 * An endpoint's interface goes to exactly one of three kinds of target (see docs/architecture.md, "Docker"):
 * a network namespace (`netns`), a container of the node's Docker engine (`container`, resolved by that
 * node's agent), or a libnetwork endpoint (`docker`: the agent leaves the container end of the veth pair in
 * the host namespace and Docker moves it into the container).
 */
export interface Endpoint {
  id: string;
  network: string;
  node: string;
  /** `vxnet attach --netns`: absolute path of the target network namespace (a bare name means /run/netns/NAME). */
  netns?: string;
  /** `vxnet attach --container`: a container of the node's Docker engine, by name or id, as given. */
  container?: string;
  /** Created by the Docker network plugin for this libnetwork endpoint id (64 hex characters). */
  docker?: string;
  /** name inside the target; for Docker endpoints the prefix Docker numbers ("eth" → eth0, eth1, ...) */
  ifname: string;
  /** "192.168.1.2" */
  ip: string;
  /** prefix length of the subnet the address belongs to */
  prefix: number;
  gateway: string;
  mac: string;
  status: EndpointStatus;
  /** the agent's reason when status is "error" */
  message?: string;
  /** the address belongs to a reservation (Docker's IPAM) and stays reserved when the endpoint goes */
  reserved?: boolean;
  createdAt: string;
}

/**
 * True when two versions of an endpoint differ at most in what its agent reports (status and message) or in
 * bookkeeping no kernel sees (`reserved`): such a change shapes no kernel state, so the manager sends it to
 * the endpoint's own node only and an agent that gets it does not reconcile.
 */
export function differsOnlyInStatus(a: Endpoint, b: Endpoint): boolean {
  return (
    a.id === b.id &&
    a.network === b.network &&
    a.node === b.node &&
    a.netns === b.netns &&
    a.container === b.container &&
    a.docker === b.docker &&
    a.ifname === b.ifname &&
    a.ip === b.ip &&
    a.prefix === b.prefix &&
    a.gateway === b.gateway &&
    a.mac === b.mac &&
    a.createdAt === b.createdAt
  );
}

/**
 * An address held in a network's cluster-wide IPAM without an endpoint: Docker allocates addresses (IPAM
 * RequestAddress) before it creates the endpoint, and releases them after deleting it. An endpoint created
 * with `reserved: true` adopts the reservation; deleting the reservation deletes that endpoint too.
 */
export interface Reservation {
  network: string;
  ip: string;
  prefix: number;
  gateway: string;
  /** the node whose agent asked for it (its Docker engine's IPAM); only that node's agent releases it */
  node: string;
  /** the endpoint that adopted the address, while it exists */
  endpoint?: string;
  createdAt: string;
}

export interface CreateReservationRequest {
  network: string;
  node: string;
  /** a specific address (`docker run --ip`); omitted: the lowest free one */
  ip?: string;
}

export interface CreateNetworkRequest {
  name: string;
  vni?: number;
  subnets?: { cidr: string; gateway?: string }[];
  mtu?: number;
  port?: number;
  internal?: boolean;
  multicastGroup?: string;
}

export interface CreateEndpointRequest {
  network: string;
  node: string;
  /** exactly one of netns, container, docker */
  netns?: string;
  container?: string;
  docker?: string;
  ifname?: string;
  ip?: string;
  /** adopt the reservation of `ip` that `node` holds (the Docker plugin's CreateEndpoint) */
  reserved?: boolean;
}

export interface RegisterNodeRequest {
  name: string;
  address: string;
  mtu: number;
}

export interface HeartbeatRequest {
  /** highest store revision the agent has seen and fully applied to its kernel */
  reconciledRevision: number;
}

export interface EndpointStatusRequest {
  status: EndpointStatus;
  message?: string;
}

export interface NetworkDetail extends Network {
  endpoints: Endpoint[];
}

/**
 * The agent's watch stream (newline-delimited JSON). The manager sends each agent only what concerns its
 * node: every node (the VTEP list is cluster-wide and small), and the networks in which the node has at
 * least one endpoint together with all endpoints of those networks. An agent linked to a Docker engine
 * asks for every network (`networks=all`): it then also gets every network and `network-deleted`, while
 * endpoints stay filtered as before.
 */
export type WatchMessage =
  | { type: 'snapshot'; revision: number; nodes: Node[]; networks: Network[]; endpoints: Endpoint[] }
  | { type: 'node'; revision: number; node: Node }
  | { type: 'node-deleted'; revision: number; name: string }
  | { type: 'network'; revision: number; network: Network }
  /** the node no longer has endpoints on this network: drop its endpoints (and the network, unless all are watched) */
  | { type: 'network-forgotten'; revision: number; name: string }
  /** only with `networks=all`: the network was deleted */
  | { type: 'network-deleted'; revision: number; name: string }
  | { type: 'endpoint'; revision: number; endpoint: Endpoint }
  | { type: 'endpoint-deleted'; revision: number; id: string; network: string }
  /** keeps idle connections alive and tells the agent the current revision */
  | { type: 'ping'; revision: number };

// ---- cluster identity (docs/security.md) ----

/** `POST /v1/join`, authorised by a join token: a certificate for the holder of `publicKey`. */
export interface JoinRequest {
  /** node name (worker) or admin name */
  name: string;
  /** the caller's ECDSA P-256 public key, PEM (SubjectPublicKeyInfo); the private key never leaves it */
  publicKey: string;
  /** default worker; admin needs the admin token */
  role?: 'worker' | 'admin';
}

/** `POST /v1/certificates/renew` over a connection with a client certificate: same identity, new key. */
export interface RenewCertificateRequest {
  publicKey: string;
}

/** The answer to a join or a renewal. */
export interface CertificateResponse {
  /** PEM */
  certificate: string;
  /** the cluster CA, PEM */
  ca: string;
  role: 'worker' | 'admin';
  name: string;
  /** ISO 8601 */
  notAfter: string;
}

/** `POST /v1/tokens/:role/rotate` (admin): the new token, shown once. */
export interface TokenResponse {
  role: 'worker' | 'admin';
  token: string;
}
