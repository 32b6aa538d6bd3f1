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

export interface Endpoint {
  id: string;
  network: string;
  node: string;
  /** Absolute path of the target network namespace (a bare name means /run/netns/NAME). */
  netns: string;
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
  createdAt: string;
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
  netns: string;
  ifname?: string;
  ip?: string;
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
 * least one endpoint together with all endpoints of those networks.
 */
export type WatchMessage =
  | { type: 'snapshot'; revision: number; nodes: Node[]; networks: Network[]; endpoints: Endpoint[] }
  | { type: 'node'; revision: number; node: Node }
  | { type: 'node-deleted'; revision: number; name: string }
  | { type: 'network'; revision: number; network: Network }
  /** the node no longer has endpoints on this network: drop it and its endpoints */
  | { type: 'network-forgotten'; revision: number; name: string }
  | { type: 'endpoint'; revision: number; endpoint: Endpoint }
  | { type: 'endpoint-deleted'; revision: number; id: string; network: string }
  /** keeps idle connections alive and tells the agent the current revision */
  | { type: 'ping'; revision: number };
