/**
 * The bodies the manager's API accepts (docs/api.md), as valibot schemas: strict, so a typo such as
 * `"subnet"` is refused instead of being a silently ignored option, and shape only. What the values mean
 * against the cluster (a name's syntax, a VNI's range, a free address) is checked by the manager's service.
 *
 * Each body carries a title, the words that name it in error sentences ("unknown field "x" in the network
 * request"); see sentence.ts.
 */
import * as v from 'valibot';
import { endpointTargetEntries, EndpointStatusSchema, Integer, RoleSchema, TunnelStatusSchema, WireguardReportSchema } from './resources.ts';

/** A request body: these fields and no others, named `title` in error sentences. */
function body<const Entries extends v.ObjectEntries>(title: string, entries: Entries) {
  return v.pipe(v.strictObject(entries), v.title(title));
}

export const CreateNetworkRequestSchema = body('network request', {
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
});

export const RegisterNodeRequestSchema = body('node registration', {
  name: v.string(),
  address: v.string(),
  mtu: Integer,
  /** absent: no WireGuard on the node (an older agent, or neither the kernel module nor wireguard-go) */
  wireguard: v.exactOptional(v.strictObject(WireguardReportSchema.entries)),
});

/** `PATCH /v1/nodes/:name` (admin): what an administrator changes about a node; absent fields stay. */
export const UpdateNodeRequestSchema = body('node update', {
  /** whether the node may create networks (and delete those it created) with its certificate */
  allowNetworkCreate: v.exactOptional(v.boolean()),
  /** true: the node's agent makes a new WireGuard key pair (`vxnet node rotate-key`) */
  rotateKey: v.exactOptional(v.boolean()),
});

export const HeartbeatRequestSchema = body('heartbeat', {
  /** highest store revision the agent has seen and fully applied to its kernel */
  reconciledRevision: v.pipe(Integer, v.minValue(0, 'must not be negative')),
  /** the node's WireGuard peers (encrypted networks), when they changed: kept in memory, never stored; [] none left */
  tunnels: v.exactOptional(v.pipe(v.array(v.strictObject(TunnelStatusSchema.entries)), v.maxLength(100_000, 'must not list more than 100000 peers'))),
});

export const CreateEndpointRequestSchema = body('endpoint request', {
  ...endpointTargetEntries,
  ifname: v.exactOptional(v.string()),
  ip: v.exactOptional(v.string()),
  /** beside an IPv4 `ip` on a dual-stack network: the IPv6 address (with `reserved`, also a reservation of `node`) */
  ip6: v.exactOptional(v.string()),
  /** adopt the reservation of `ip` that `node` holds (the Docker plugin's CreateEndpoint) */
  reserved: v.exactOptional(v.boolean()),
  /** its DNS name on the network, unique there (`vxnet attach --name`) */
  name: v.exactOptional(v.string()),
  /** more DNS names, which endpoints may share (`vxnet attach --alias`) */
  aliases: v.exactOptional(v.array(v.string())),
  /** the interface's MAC (`podman run --mac-address`, CNI_ARGS MAC=); omitted: derived from the address */
  mac: v.exactOptional(v.string()),
});

export const CreateReservationRequestSchema = body('reservation request', {
  network: v.string(),
  node: v.string(),
  /** a specific address (`docker run --ip`, `--ip6`); omitted: the lowest free one */
  ip: v.exactOptional(v.string()),
  /** the family of the address to take when `ip` is omitted (Docker's IPv6 pool: 6); omitted: the network's first */
  family: v.exactOptional(v.picklist([4, 6], 'must be 4 or 6')),
});

/** The Docker plugin names the container of one of its node's Docker endpoints (PUT /v1/endpoints/:id/docker-container). */
export const DockerContainerRequestSchema = body('docker container', {
  name: v.string(),
  /** the container's `--network-alias`es on the endpoint's network (DNS names, src/agent/dns/); absent: unchanged */
  aliases: v.exactOptional(v.array(v.string())),
});

export const EndpointStatusRequestSchema = body('endpoint status', { status: EndpointStatusSchema, message: v.exactOptional(v.string()) });

// ---- cluster identity (docs/security.md) ----

/** `POST /v1/join`, authorised by a join token: a certificate for the holder of `publicKey`. */
export const JoinRequestSchema = body('join request', {
  /** node name (worker) or admin name */
  name: v.string(),
  /** the caller's ECDSA P-256 public key, PEM (SubjectPublicKeyInfo); the private key never leaves it */
  publicKey: v.string(),
  /** default worker; admin needs the admin token */
  role: v.exactOptional(RoleSchema),
});

/** `POST /v1/certificates/renew` over a connection with a client certificate: same identity, new key. */
export const RenewCertificateRequestSchema = body('renewal request', { publicKey: v.string() });
