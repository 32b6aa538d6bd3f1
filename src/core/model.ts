/**
 * The resources vxnet stores and the messages its components exchange. Plain data, no behaviour:
 * the manager persists these, the agent derives kernel state from them, the CLI prints them.
 */
import type * as v from 'valibot';
import type * as requests from './schema/requests.ts';
import type * as resources from './schema/resources.ts';
import type * as watch from './schema/watch.ts';

/** RFC 7348: the VNI is 24 bits; 0 is not used by vxnet. */
export const VNI_MIN = 1;
export const VNI_MAX = 0xffffff;
/** First VNI handed out when a network is created without one (Docker's overlay also starts above 4096). */
export const VNI_AUTO_START = 4097;
/** IANA-assigned VXLAN port (RFC 7348 §5). Linux's own default, 8472, predates the assignment. */
export const VXLAN_PORT = 4789;
/** Outer IPv4 20 + outer UDP 8 + VXLAN header 8 + inner Ethernet 14 (RFC 7348 §5). */
export const VXLAN_OVERHEAD = 50;
/** The same over an IPv6 underlay: the outer IPv6 header is 40 bytes instead of 20 (RFC 8200), so 70. */
export const VXLAN_OVERHEAD_IPV6 = 70;
export const DEFAULT_UNDERLAY_MTU = 1500;
/** Where subnets come from when a network is created without one: /24s out of this pool. */
export const DEFAULT_SUBNET_POOL = '10.200.0.0/16';
/** `?wait=` default for endpoint create and delete, in seconds (docs/api.md). */
export const DEFAULT_WAIT_SECONDS = 30;

// The shapes are defined once, as schemas (src/core/schema/); these types are derived from them. Imported as
// types only, so loading the constants below never loads valibot (the CLI's --version and --help stay fast).

export type Subnet = v.InferOutput<typeof resources.SubnetSchema>;
export type Network = v.InferOutput<typeof resources.NetworkSchema>;
export type NodeState = v.InferOutput<typeof resources.NodeStateSchema>;
export type Node = v.InferOutput<typeof resources.NodeSchema>;
/** A node as the API shows it: stored fields plus liveness, which the manager tracks in memory. */
export type NodeStatus = v.InferOutput<typeof resources.NodeStatusSchema>;
export type EndpointStatus = v.InferOutput<typeof resources.EndpointStatusSchema>;
/** See EndpointSchema: exactly one of `netns`, `container`, `docker` says where its interface goes. */
export type Endpoint = v.InferOutput<typeof resources.EndpointSchema>;
/** One address of an endpoint (see EndpointSchema's `addresses`). */
export type EndpointAddress = v.InferOutput<typeof resources.EndpointAddressSchema>;
export type NetworkDetail = v.InferOutput<typeof resources.NetworkDetailSchema>;
/** An address held in a network's IPAM without an endpoint (Docker's IPAM); see ReservationSchema. */
export type Reservation = v.InferOutput<typeof resources.ReservationSchema>;
export type Info = v.InferOutput<typeof resources.InfoSchema>;
/** A node's WireGuard as its agent reports it (src/core/wireguard.ts). */
export type WireguardReport = v.InferOutput<typeof resources.WireguardReportSchema>;
/** One WireGuard peer of a node, as its agent last reported it. */
export type TunnelStatus = v.InferOutput<typeof resources.TunnelStatusSchema>;

export type CreateNetworkRequest = v.InferOutput<typeof requests.CreateNetworkRequestSchema>;
export type RegisterNodeRequest = v.InferOutput<typeof requests.RegisterNodeRequestSchema>;
export type UpdateNodeRequest = v.InferOutput<typeof requests.UpdateNodeRequestSchema>;
export type HeartbeatRequest = v.InferOutput<typeof requests.HeartbeatRequestSchema>;
export type CreateEndpointRequest = v.InferOutput<typeof requests.CreateEndpointRequestSchema>;
export type CreateReservationRequest = v.InferOutput<typeof requests.CreateReservationRequestSchema>;
export type EndpointStatusRequest = v.InferOutput<typeof requests.EndpointStatusRequestSchema>;
export type DockerContainerRequest = v.InferOutput<typeof requests.DockerContainerRequestSchema>;

/** The agent's watch stream (newline-delimited JSON); see src/core/schema/watch.ts. */
export type WatchMessage = v.InferOutput<typeof watch.WatchMessageSchema>;

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
    addressesText(a) === addressesText(b) &&
    a.mac === b.mac &&
    a.createdAt === b.createdAt &&
    // DNS names are answered on every node of the network (src/agent/dns/); a Docker container's is its name
    a.name === b.name &&
    a.dockerContainer === b.dockerContainer &&
    (a.aliases ?? []).join() === (b.aliases ?? []).join()
  );
}

/** Every address of an endpoint: its `addresses`, or the one `ip` when it has only that. */
export function endpointAddresses(endpoint: Pick<Endpoint, 'ip' | 'prefix' | 'gateway' | 'addresses'>): readonly EndpointAddress[] {
  return endpoint.addresses ?? [{ ip: endpoint.ip, prefix: endpoint.prefix, gateway: endpoint.gateway }];
}

const addressesText = (e: Endpoint): string => (e.addresses ?? []).map((a) => `${a.ip}/${a.prefix} ${a.gateway}`).join();

// ---- cluster identity (docs/security.md) ----

export type JoinRequest = v.InferOutput<typeof requests.JoinRequestSchema>;
export type RenewCertificateRequest = v.InferOutput<typeof requests.RenewCertificateRequestSchema>;
/** The answer to a join or a renewal. */
export type CertificateResponse = v.InferOutput<typeof resources.CertificateResponseSchema>;
/** `POST /v1/tokens/:role/rotate` (admin): the new token, shown once. */
export type TokenResponse = v.InferOutput<typeof resources.TokenResponseSchema>;
