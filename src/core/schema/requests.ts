/**
 * The bodies the manager's API accepts (docs/api.md), as valibot schemas: strict, so a typo such as
 * `"subnet"` is refused instead of being a silently ignored option, and shape only. What the values mean
 * against the cluster (a name's syntax, a VNI's range, a free address) is checked by the manager's service.
 *
 * Each body carries a title, the words that name it in error sentences ("unknown field "x" in the network
 * request"); see sentence.ts.
 */
import * as v from 'valibot';
import { EndpointStatusSchema, Integer, RoleSchema, TunnelStatusSchema, WireguardReportSchema } from './resources.ts';

export const CreateNetworkRequestSchema = v.pipe(
  v.strictObject({
    name: v.string(),
    vni: v.exactOptional(Integer),
    subnets: v.exactOptional(
      v.pipe(
        v.array(v.strictObject({ cidr: v.string(), gateway: v.exactOptional(v.string()) })),
        v.nonEmpty('must not be empty: omit it to get a default subnet'),
      ),
    ),
    mtu: v.exactOptional(Integer),
    port: v.exactOptional(Integer),
    internal: v.exactOptional(v.boolean()),
    multicastGroup: v.exactOptional(v.string()),
    encrypted: v.exactOptional(v.boolean()),
  }),
  v.title('network request'),
);

export const RegisterNodeRequestSchema = v.pipe(
  v.strictObject({
    name: v.string(),
    address: v.string(),
    mtu: Integer,
    /** absent: no WireGuard on the node (an older agent, or neither the kernel module nor wireguard-go) */
    wireguard: v.exactOptional(v.strictObject(WireguardReportSchema.entries)),
  }),
  v.title('node registration'),
);

/** `PATCH /v1/nodes/:name` (admin): what an administrator changes about a node; absent fields stay. */
export const UpdateNodeRequestSchema = v.pipe(
  v.strictObject({
    /** whether the node may create networks (and delete those it created) with its certificate */
    allowNetworkCreate: v.exactOptional(v.boolean()),
    /** true: the node's agent makes a new WireGuard key pair (`vxnet node rotate-key`) */
    rotateKey: v.exactOptional(v.boolean()),
  }),
  v.title('node update'),
);

export const HeartbeatRequestSchema = v.pipe(
  v.strictObject({
    /** highest store revision the agent has seen and fully applied to its kernel */
    reconciledRevision: v.pipe(Integer, v.minValue(0, 'must not be negative')),
    /** the node's WireGuard peers (encrypted networks), when they changed: kept in memory, never stored; [] none left */
    tunnels: v.exactOptional(v.pipe(v.array(v.strictObject(TunnelStatusSchema.entries)), v.maxLength(100_000, 'must not list more than 100000 peers'))),
  }),
  v.title('heartbeat'),
);

export const CreateEndpointRequestSchema = v.pipe(
  v.strictObject({
    network: v.string(),
    node: v.string(),
    // exactly one of netns, container, docker: the service says so when it is not
    netns: v.exactOptional(v.string()),
    container: v.exactOptional(v.string()),
    docker: v.exactOptional(v.string()),
    /** `vxnet attach --host`: the node itself gets the address (src/agent/host-endpoint.ts) */
    host: v.exactOptional(v.literal(true)),
    ifname: v.exactOptional(v.string()),
    ip: v.exactOptional(v.string()),
    /** beside an IPv4 `ip` on a dual-stack network: the IPv6 address (with `reserved`, also a reservation of `node`) */
    ip6: v.exactOptional(v.string()),
    /** with `netns`: the CNI runtime's container id; a node's own CNI plugin (src/agent/cni-server.ts) sets it */
    cni: v.exactOptional(v.string()),
    /** adopt the reservation of `ip` that `node` holds (the Docker plugin's CreateEndpoint) */
    reserved: v.exactOptional(v.boolean()),
    /** its DNS name on the network, unique there (`vxnet attach --name`) */
    name: v.exactOptional(v.string()),
    /** more DNS names, which endpoints may share (`vxnet attach --alias`) */
    aliases: v.exactOptional(v.array(v.string())),
    /** the interface's MAC (`podman run --mac-address`, CNI_ARGS MAC=); omitted: derived from the address */
    mac: v.exactOptional(v.string()),
  }),
  v.title('endpoint request'),
);

export const CreateReservationRequestSchema = v.pipe(
  v.strictObject({
    network: v.string(),
    node: v.string(),
    /** a specific address (`docker run --ip`, `--ip6`); omitted: the lowest free one */
    ip: v.exactOptional(v.string()),
    /** the family of the address to take when `ip` is omitted (Docker's IPv6 pool: 6); omitted: the network's first */
    family: v.exactOptional(v.picklist([4, 6], 'must be 4 or 6')),
  }),
  v.title('reservation request'),
);

/** The Docker plugin names the container of one of its node's Docker endpoints (PUT /v1/endpoints/:id/docker-container). */
export const DockerContainerRequestSchema = v.pipe(
  v.strictObject({
    name: v.string(),
    /** the container's `--network-alias`es on the endpoint's network (DNS names, src/agent/dns/); absent: unchanged */
    aliases: v.exactOptional(v.array(v.string())),
  }),
  v.title('docker container'),
);

export const EndpointStatusRequestSchema = v.pipe(
  v.strictObject({ status: EndpointStatusSchema, message: v.exactOptional(v.string()) }),
  v.title('endpoint status'),
);

// ---- cluster identity (docs/security.md) ----

/** `POST /v1/join`, authorised by a join token: a certificate for the holder of `publicKey`. */
export const JoinRequestSchema = v.pipe(
  v.strictObject({
    /** node name (worker) or admin name */
    name: v.string(),
    /** the caller's ECDSA P-256 public key, PEM (SubjectPublicKeyInfo); the private key never leaves it */
    publicKey: v.string(),
    /** default worker; admin needs the admin token */
    role: v.exactOptional(RoleSchema),
  }),
  v.title('join request'),
);

/** `POST /v1/certificates/renew` over a connection with a client certificate: same identity, new key. */
export const RenewCertificateRequestSchema = v.pipe(v.strictObject({ publicKey: v.string() }), v.title('renewal request'));
