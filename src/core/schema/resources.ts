/**
 * The resources the manager stores and answers with, as valibot schemas: the one definition of each shape.
 * model.ts derives the TypeScript types from these; the client checks every answer and watch line against
 * them, so a manager that sends something else is caught at the edge instead of deep in the agent.
 *
 * Shape only (JSON types and which fields exist). What the values mean (a valid address, a free VNI) is the
 * manager's business: it checked them before storing. Objects are not strict here: a newer manager may add
 * a field, which an older client drops instead of refusing the whole answer.
 */
import * as v from 'valibot';
import { WIREGUARD_IMPLEMENTATIONS } from '../wireguard.ts';

/** JSON numbers that must be whole: `Number.isSafeInteger`, so 1.5 and 2^60 are refused alike. */
export const Integer = v.pipe(v.number(), v.safeInteger());

export const EndpointStatusSchema = v.picklist(['pending', 'ready', 'error']);
export const NodeStateSchema = v.picklist(['up', 'down']);
export const RoleSchema = v.picklist(['worker', 'admin']);

export const SubnetSchema = v.object({
  /** "192.168.1.0/24" or "fd00:1::/64": a network has IPv4 subnets, IPv6 ones, or both */
  cidr: v.string(),
  /** "192.168.1.1": the same gateway address (and MAC) on every node's bridge */
  gateway: v.string(),
});

const networkEntries = {
  name: v.string(),
  vni: Integer,
  subnets: v.array(SubnetSchema),
  mtu: Integer,
  port: Integer,
  internal: v.boolean(),
  /** When set, broadcast and multicast use this underlay group instead of head-end replication. */
  multicastGroup: v.exactOptional(v.string()),
  /** Its frames travel between hosts only inside WireGuard tunnels (vxnet issue 10); absent: plain VXLAN. */
  encrypted: v.exactOptional(v.boolean()),
  /** the node whose certificate created it (from Docker, with `--allow-network-create`); absent: an admin */
  createdBy: v.exactOptional(v.string()),
  createdAt: v.string(),
};
export const NetworkSchema = v.object(networkEntries);

export const WireguardImplementationSchema = v.picklist(WIREGUARD_IMPLEMENTATIONS);

/** What a node's agent reports about its WireGuard; the private key never leaves the node. */
export const WireguardReportSchema = v.object({
  publicKey: v.string(),
  /** UDP port on the node's underlay address */
  port: Integer,
  implementation: WireguardImplementationSchema,
});

const nodeEntries = {
  name: v.string(),
  /** Underlay address: the VTEP ("local") address of every VXLAN device on this node. */
  address: v.string(),
  /** MTU of the underlay interface that holds `address`. */
  mtu: Integer,
  registeredAt: v.string(),
  /** granted by an admin (`vxnet node update NAME --allow-network-create`): the node may create networks */
  allowNetworkCreate: v.exactOptional(v.boolean()),
  /** absent: the node's agent found no WireGuard, and the node cannot take part in encrypted networks */
  wireguard: v.exactOptional(WireguardReportSchema),
  /**
   * Given by the manager out of TUNNEL_POOL to a node with `wireguard`: the `local` of the node's encrypted
   * VXLAN devices and its peers' FDB destination for it.
   */
  tunnelAddress: v.exactOptional(v.string()),
  /** moved by `vxnet node rotate-key`: the node's agent makes a new key pair when it exceeds the one it has */
  keyRotation: v.exactOptional(Integer),
};
export const NodeSchema = v.object(nodeEntries);

/**
 * One WireGuard peer of a node as its agent last reported it (with its heartbeat, kept in the manager's
 * memory): `up` while the last handshake is younger than WireGuard's 180 s session lifetime.
 */
export const TunnelStatusSchema = v.object({
  /** the peer node */
  node: v.string(),
  up: v.boolean(),
  /** ISO 8601; null: never */
  latestHandshake: v.nullable(v.string()),
});

/** A node as the API shows it: stored fields plus liveness, which the manager tracks in memory. */
export const NodeStatusSchema = v.object({
  ...nodeEntries,
  state: NodeStateSchema,
  lastSeen: v.nullable(v.string()),
  reconciledRevision: Integer,
  /** its WireGuard peers, as its agent last reported them; absent: no report (no encrypted network there) */
  tunnels: v.exactOptional(v.array(TunnelStatusSchema)),
});

/** One address of an endpoint, with the prefix and gateway of the subnet it lies in. */
export const EndpointAddressSchema = v.object({
  ip: v.string(),
  prefix: Integer,
  gateway: v.string(),
});

/**
 * Where an endpoint is: its network and node, and its target, as the endpoint request asks for them
 * (requests.ts) and the endpoint keeps them. The service checks that exactly one of netns, container,
 * docker and host is given.
 */
export const endpointTargetEntries = {
  network: v.string(),
  node: v.string(),
  /** `vxnet attach --netns`: absolute path of the target network namespace (a bare name means /run/netns/NAME). */
  netns: v.exactOptional(v.string()),
  /** `vxnet attach --container`: a container of the node's Docker engine, by name or id, as given. */
  container: v.exactOptional(v.string()),
  /** Created by the Docker network plugin for this libnetwork endpoint id (64 hex characters). */
  docker: v.exactOptional(v.string()),
  /** `vxnet attach --host`: the node's own network namespace, on interface `ifname` (vxh<VNI>); src/agent/host-endpoint.ts. */
  host: v.exactOptional(v.literal(true)),
  /**
   * Made by the node's CNI plugin for this runtime container id (CNI_CONTAINERID), in `netns`; in a request,
   * only a node's own CNI plugin (src/agent/cni-server.ts) sets it.
   */
  cni: v.exactOptional(v.string()),
};

/**
 * An endpoint's interface goes to exactly one of three kinds of target (see docs/architecture.md, "Docker"):
 * a network namespace (`netns`), a container of the node's Docker engine (`container`, resolved by that
 * node's agent), or a libnetwork endpoint (`docker`: the agent leaves the container end of the veth pair in
 * the host namespace and Docker moves it into the container).
 */
export const EndpointSchema = v.object({
  id: v.string(),
  ...endpointTargetEntries,
  /** For display: the name of the container Docker connected through `docker`, as its engine tells after Join. */
  dockerContainer: v.exactOptional(v.string()),
  /** its DNS name on the network (unique there, without regard to case): `NAME` and `NAME.NETWORK` resolve to `ip` */
  name: v.exactOptional(v.string()),
  /** more DNS names, which other endpoints of the network may share (all of them answer) */
  aliases: v.exactOptional(v.array(v.string())),
  /** name inside the target; for Docker endpoints the prefix Docker numbers ("eth" → eth0, eth1, ...) */
  ifname: v.string(),
  /** "192.168.1.2" */
  ip: v.string(),
  /** prefix length of the subnet the address belongs to */
  prefix: Integer,
  gateway: v.string(),
  /**
   * Every address of the endpoint, one per address family of its network's subnets (IPv4 first), present
   * only when there is more than one. `ip`, `prefix` and `gateway` always repeat the first, so a reader that
   * knows one address per endpoint keeps working on a dual-stack network.
   */
  addresses: v.exactOptional(v.array(EndpointAddressSchema)),
  mac: v.string(),
  status: EndpointStatusSchema,
  /** the agent's reason when status is "error" */
  message: v.exactOptional(v.string()),
  /** the address belongs to a reservation (Docker's IPAM) and stays reserved when the endpoint goes */
  reserved: v.exactOptional(v.boolean()),
  createdAt: v.string(),
});

export const NetworkDetailSchema = v.object({
  ...networkEntries,
  endpoints: v.array(EndpointSchema),
  /** encrypted networks: each member node's tunnel to each other member, as last reported */
  tunnels: v.exactOptional(
    v.array(v.object({ from: v.string(), to: v.string(), up: v.boolean(), latestHandshake: v.nullable(v.string()) })),
  ),
  /** encrypted networks: the WireGuard implementation of each member node, by node name */
  implementations: v.exactOptional(v.record(v.string(), WireguardImplementationSchema)),
  /** encrypted networks: one sentence per tunnel between members that is down; absent while all are up */
  warnings: v.exactOptional(v.array(v.string())),
});

/**
 * An address held in a network's cluster-wide IPAM without an endpoint: Docker allocates addresses (IPAM
 * RequestAddress) before it creates the endpoint, and releases them after deleting it. An endpoint created
 * with `reserved: true` adopts the reservation; deleting the reservation deletes that endpoint too.
 */
export const ReservationSchema = v.object({
  network: v.string(),
  ip: v.string(),
  prefix: Integer,
  gateway: v.string(),
  /** the node whose agent asked for it (its Docker engine's IPAM); only that node's agent releases it */
  node: v.string(),
  /** the endpoint that adopted the address, while it exists */
  endpoint: v.exactOptional(v.string()),
  createdAt: v.string(),
});

/** `GET /v1/info` */
export const InfoSchema = v.object({ clusterId: v.string(), revision: Integer });

/** The answer to a join or a renewal. */
export const CertificateResponseSchema = v.object({
  /** PEM */
  certificate: v.string(),
  /** the cluster CA, PEM */
  ca: v.string(),
  role: RoleSchema,
  name: v.string(),
  /** ISO 8601 */
  notAfter: v.string(),
});

/** `POST /v1/tokens/:role/rotate` (admin): the new token, shown once. */
export const TokenResponseSchema = v.object({ role: RoleSchema, token: v.string() });

/** `GET /v1/ca`: the cluster CA, fetched unverified and trusted only if its digest matches the pinned one. */
export const CaResponseSchema = v.object({ certificate: v.string(), digest: v.string() });

// The lists the API answers with.
export const NetworkListSchema = v.array(NetworkSchema);
export const NodeStatusListSchema = v.array(NodeStatusSchema);
export const EndpointListSchema = v.array(EndpointSchema);
export const ReservationListSchema = v.array(ReservationSchema);
