/**
 * Validation at the manager's edge, the meaning of requests. Their shape (JSON types, unknown and missing
 * fields) is checked before they get here, by the body schemas of src/core/schema/requests.ts that the
 * route table (routes.ts) declares.
 *
 * `resolveNetwork` turns a CreateNetworkRequest into the Network to store, applying the defaults and rules
 * of docs/api.md against the current cluster. Pure: the caller supplies the cluster view and commits the
 * result with compare-and-swap, so a decision taken on a stale view cannot stick.
 */
import { VxnetError } from '../core/errors.ts';
import {
  type Cidr,
  broadcastOf,
  contains,
  formatCidr,
  formatIPv4,
  overlaps,
  parseCidr,
  parseIPv4,
  requireCidr,
  requireIPv4,
} from '../core/ipv4.ts';
import { type Cidr6, contains6, formatCidr6, formatIPv6, overlaps6, requireCidr6, requireIPv6 } from '../core/ipv6.ts';
import {
  type CreateNetworkRequest,
  DEFAULT_SUBNET_POOL,
  DEFAULT_UNDERLAY_MTU,
  type EndpointStatus,
  type Network,
  type Node,
  type RegisterNodeRequest,
  VNI_AUTO_START,
  VNI_MAX,
  VNI_MIN,
  VXLAN_OVERHEAD,
  VXLAN_PORT,
} from '../core/model.ts';
import { requireName } from '../core/names.ts';
import { requireBody } from '../core/schema/check.ts';
import { EndpointStatusRequestSchema } from '../core/schema/requests.ts';
import { isWireguardKey, WIREGUARD_OVERHEAD_IPV4, WIREGUARD_OVERHEAD_IPV6 } from '../core/wireguard.ts';
import { canonicalUnderlay, underlayFamily, vxlanOverheadOf } from '../core/underlay.ts';

/**
 * An endpoint status from anywhere (the service's own callers too), as the body schema words it:
 * `field "status" must be "pending", "ready" or "error", not string "done".`
 */
export function requireEndpointStatus(value: unknown): EndpointStatus {
  return requireBody(EndpointStatusRequestSchema, { status: value }).status;
}

// ---------------------------------------------------------------------------------------------------
// Meaning

/** Underlay MTUs come from real interfaces: below IPv4's 576 minimum nothing works, above 65535 is not IPv4. */
export const NODE_MTU_MIN = 576;
export const NODE_MTU_MAX = 65535;
/** RFC 791: every IPv4 link must carry 68-byte datagrams. */
export const NETWORK_MTU_MIN = 68;
export const SUBNET_PREFIX_MIN = 8;
export const SUBNET_PREFIX_MAX = 30;
/**
 * IPv6 subnets: from a /48 (a site) down to a /126 (two endpoints and a gateway); a /64 is the usual one.
 * Addresses are handed out sequentially (NetworkAllocator6), so their low 32 bits stay unique well within
 * any of these, which keeps the MACs derived from them (macForIPv6) unique too.
 */
export const SUBNET6_PREFIX_MIN = 48;
export const SUBNET6_PREFIX_MAX = 126;
/** RFC 8200 section 5: every link that carries IPv6 must carry 1280-byte packets. */
export const IPV6_MTU_MIN = 1280;
const MULTICAST = parseCidr('224.0.0.0/4')!;

/**
 * Underlay addresses no node may register (RFC 6890): every peer sends VXLAN to a node's address and lets
 * VXLAN in from it, so it must be a unicast address the others reach, and no one else's. Loopback would
 * make each peer send that node's traffic to itself; the others are not unicast or not routed.
 */
const NOT_UNDERLAY: readonly { cidr: Cidr; what: string }[] = [
  { cidr: parseCidr('0.0.0.0/8')!, what: 'in 0.0.0.0/8 ("this network", not an address of a host)' },
  { cidr: parseCidr('127.0.0.0/8')!, what: 'a loopback address (127.0.0.0/8)' },
  { cidr: parseCidr('169.254.0.0/16')!, what: 'a link-local address (169.254.0.0/16)' },
  { cidr: MULTICAST, what: 'a multicast address (224.0.0.0/4)' },
  { cidr: parseCidr('240.0.0.0/4')!, what: 'a reserved or broadcast address (240.0.0.0/4)' },
];

export function validateNodeRequest(req: RegisterNodeRequest): RegisterNodeRequest {
  const name = requireName(req.name, 'node');
  // an IPv6 underlay (docs/architecture.md, "IPv6 underlay"): its own checks and canonical text
  const address = canonicalUnderlay(req.address, 'node address');
  const v4 = parseIPv4(address);
  const refused = v4 === undefined ? undefined : NOT_UNDERLAY.find((range) => contains(range.cidr, v4));
  if (refused) {
    throw new VxnetError(
      'invalid_address',
      `node address ${address} is ${refused.what}: a node registers the unicast address the other nodes reach it at.`,
    );
  }
  if (!Number.isInteger(req.mtu) || req.mtu < NODE_MTU_MIN || req.mtu > NODE_MTU_MAX) {
    throw new VxnetError('invalid_mtu', `node MTU ${req.mtu} is out of range: use ${NODE_MTU_MIN}..${NODE_MTU_MAX}.`);
  }
  const node: RegisterNodeRequest = { name, address, mtu: req.mtu };
  if (req.wireguard !== undefined) {
    const { publicKey, port, implementation } = req.wireguard;
    if (!isWireguardKey(publicKey)) {
      throw new VxnetError('bad_request', 'field "wireguard.publicKey" must be a WireGuard public key: 32 bytes in base64, as "wg pubkey" prints it.');
    }
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new VxnetError('invalid_port', `WireGuard port ${port} is out of range: use 1..65535.`);
    }
    node.wireguard = { publicKey, port, implementation };
  }
  return node;
}

/** What resolveNetwork needs to know about the rest of the cluster. */
export interface NetworkContext {
  networks: Iterable<{ name: string; cidrs: Cidr[]; cidrs6?: Cidr6[] }>;
  vnis: ReadonlyMap<number, string>;
  nodes: Iterable<Node>;
  now: Date;
}

/**
 * The largest MTU a network may have given the registered nodes, and the node that sets the bound. An
 * encrypted network's frames carry WireGuard's header around VXLAN's: both come off the underlay's MTU
 * (IPv4 underlays only, so WireGuard's 60 bytes).
 */
export function mtuBound(nodes: Iterable<Node>, encrypted = false): { limit: number; node?: Node; overhead: number } {
  // Over an IPv6 underlay VXLAN takes 70 bytes instead of 50 (core/underlay.ts); an encrypted network's VXLAN
  // runs between IPv4 tunnel addresses (50) inside WireGuard over the underlay (60 over IPv4, 80 over IPv6).
  const overheadOf = (address: string | undefined) => {
    const v6 = address !== undefined && underlayFamily(address) === 'IPv6';
    if (encrypted) return VXLAN_OVERHEAD + (v6 ? WIREGUARD_OVERHEAD_IPV6 : WIREGUARD_OVERHEAD_IPV4);
    return v6 ? vxlanOverheadOf('IPv6') : VXLAN_OVERHEAD;
  };
  let smallest: Node | undefined;
  for (const node of nodes) if (!smallest || node.mtu - overheadOf(node.address) < smallest.mtu - overheadOf(smallest.address)) smallest = node;
  if (!smallest) return { limit: DEFAULT_UNDERLAY_MTU - overheadOf(undefined), overhead: overheadOf(undefined) };
  const overhead = overheadOf(smallest.address);
  return { limit: smallest.mtu - overhead, node: smallest, overhead };
}

/** Multicast groups are IPv4 (224.0.0.0/4): a VXLAN device cannot send to one from an IPv6 `local` address. */
function refuseMulticastOverIPv6(nodes: Iterable<Node>, group: string): void {
  for (const node of nodes) {
    if (underlayFamily(node.address) !== 'IPv6') continue;
    throw new VxnetError(
      'bad_request',
      `a network cannot use multicast group ${group} in this cluster: its nodes have IPv6 underlay addresses (node ${node.name} has ${node.address}) and multicast groups work over an IPv4 underlay only; omit the group, and broadcasts go to each member by unicast.`,
    );
  }
}

export function resolveNetwork(req: CreateNetworkRequest, ctx: NetworkContext): Network {
  const name = requireName(req.name, 'network');
  const existing = [...ctx.networks];

  let vni: number;
  if (req.vni !== undefined) {
    if (!Number.isInteger(req.vni) || req.vni < VNI_MIN || req.vni > VNI_MAX) {
      throw new VxnetError('invalid_vni', `VNI ${req.vni} is out of range: use ${VNI_MIN}..${VNI_MAX}.`);
    }
    const owner = ctx.vnis.get(req.vni);
    if (owner !== undefined) throw new VxnetError('vni_in_use', `VNI ${req.vni} is already used by network ${owner}.`);
    vni = req.vni;
  } else {
    vni = VNI_AUTO_START;
    while (ctx.vnis.has(vni)) vni++;
    if (vni > VNI_MAX) throw new VxnetError('vni_in_use', `no free VNI left above ${VNI_AUTO_START - 1}.`);
  }

  const subnets: { cidr: Cidr; gateway: number }[] = [];
  const subnets6: { cidr: Cidr6; gateway: bigint }[] = [];
  if (req.subnets !== undefined) {
    if (req.subnets.length === 0) {
      throw new VxnetError('bad_request', 'field "subnets" must not be empty: omit it to get a default subnet.');
    }
    for (const spec of req.subnets) {
      // an IPv6 subnet is told by its colon; everything else is read (and refused) as IPv4, as before
      if (typeof spec.cidr === 'string' && spec.cidr.includes(':')) subnets6.push(resolveSubnet6(name, spec, subnets6, existing));
      else subnets.push(resolveSubnet4(name, spec, subnets, existing));
    }
  } else {
    subnets.push(defaultSubnet(existing));
  }

  const encrypted = req.encrypted === true;
  const bound = mtuBound(ctx.nodes, encrypted);
  let mtu = bound.limit;
  if (req.mtu !== undefined) {
    if (!Number.isInteger(req.mtu) || req.mtu < NETWORK_MTU_MIN) {
      throw new VxnetError('invalid_mtu', `MTU ${req.mtu} is out of range: use ${NETWORK_MTU_MIN}..${bound.limit}.`);
    }
    if (req.mtu > bound.limit) {
      const why = bound.node
        ? `node ${bound.node.name} has an underlay MTU of ${bound.node.mtu}`
        : `no node is registered yet, so an underlay MTU of ${DEFAULT_UNDERLAY_MTU} is assumed`;
      throw new VxnetError(
        'mtu_too_large',
        `MTU ${req.mtu} is larger than the underlay allows: at most ${bound.limit} (${why}, minus ${encrypted ? `${VXLAN_OVERHEAD} bytes of VXLAN overhead and ${bound.overhead - VXLAN_OVERHEAD} of WireGuard` : `${bound.overhead} bytes of VXLAN overhead`}).`,
      );
    }
    mtu = req.mtu;
  }
  if (subnets6.length > 0 && mtu < IPV6_MTU_MIN) {
    throw new VxnetError(
      'invalid_mtu',
      `MTU ${mtu} is too small for IPv6 subnet ${formatCidr6(subnets6[0]!.cidr)}: IPv6 needs at least ${IPV6_MTU_MIN} bytes on every link (RFC 8200).`,
    );
  }

  const port = req.port ?? VXLAN_PORT;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new VxnetError('invalid_port', `port ${port} is out of range: use 1..65535.`);
  }

  let multicastGroup: string | undefined;
  if (req.multicastGroup !== undefined) {
    const group = requireIPv4(req.multicastGroup, 'multicastGroup');
    if (!contains(MULTICAST, group)) {
      throw new VxnetError('invalid_address', `multicastGroup ${req.multicastGroup} is not a multicast address (224.0.0.0/4).`);
    }
    multicastGroup = formatIPv4(group);
    if (encrypted) {
      throw new VxnetError(
        'bad_request',
        'an encrypted network cannot use a multicast group: WireGuard carries unicast only, so its broadcast goes to each member through its tunnel.',
      );
    }
    refuseMulticastOverIPv6(ctx.nodes, multicastGroup);
  }

  const network: Network = {
    name,
    vni,
    subnets: [
      ...subnets.map((s) => ({ cidr: formatCidr(s.cidr), gateway: formatIPv4(s.gateway) })),
      ...subnets6.map((s) => ({ cidr: formatCidr6(s.cidr), gateway: formatIPv6(s.gateway) })),
    ],
    mtu,
    port,
    internal: req.internal ?? false,
    createdAt: ctx.now.toISOString(),
  };
  if (multicastGroup !== undefined) network.multicastGroup = multicastGroup;
  // stored only when set, so a plain network looks as it always did
  if (encrypted) network.encrypted = true;
  return network;
}

type SubnetSpec = { cidr: string; gateway?: string };
type Existing = { name: string; cidrs: Cidr[]; cidrs6?: Cidr6[] }[];

function resolveSubnet4(name: string, spec: SubnetSpec, own: readonly { cidr: Cidr }[], existing: Existing): { cidr: Cidr; gateway: number } {
  const cidr = requireCidr(spec.cidr);
  const text = formatCidr(cidr);
  if (cidr.prefix < SUBNET_PREFIX_MIN || cidr.prefix > SUBNET_PREFIX_MAX) {
    throw new VxnetError('invalid_cidr', `subnet ${text} has prefix /${cidr.prefix}: use /${SUBNET_PREFIX_MIN} to /${SUBNET_PREFIX_MAX}.`);
  }
  for (const mine of own) {
    if (overlaps(mine.cidr, cidr)) {
      throw new VxnetError('subnet_overlap', `subnets ${formatCidr(mine.cidr)} and ${text} of network ${name} overlap.`);
    }
  }
  for (const other of existing) {
    const hit = other.cidrs.find((c) => overlaps(c, cidr));
    if (hit) throw new VxnetError('subnet_overlap', `subnet ${text} overlaps ${formatCidr(hit)} of network ${other.name}.`);
  }
  if (spec.gateway === undefined) return { cidr, gateway: cidr.network + 1 };
  const gateway = requireIPv4(spec.gateway, 'gateway');
  if (!contains(cidr, gateway)) {
    throw new VxnetError('gateway_outside_subnet', `gateway ${spec.gateway} is not inside subnet ${text}.`);
  }
  if (gateway === cidr.network || gateway === broadcastOf(cidr)) {
    const what = gateway === cidr.network ? 'network' : 'broadcast';
    throw new VxnetError('address_reserved', `gateway ${spec.gateway} is the ${what} address of ${text}; pick a usable address.`);
  }
  return { cidr, gateway };
}

/** An IPv6 subnet of a network, with the rules and sentences of the IPv4 one; its gateway defaults to the first host address. */
function resolveSubnet6(name: string, spec: SubnetSpec, own: readonly { cidr: Cidr6 }[], existing: Existing): { cidr: Cidr6; gateway: bigint } {
  const cidr = requireCidr6(spec.cidr);
  const text = formatCidr6(cidr);
  if (cidr.prefix < SUBNET6_PREFIX_MIN || cidr.prefix > SUBNET6_PREFIX_MAX) {
    throw new VxnetError('invalid_cidr', `subnet ${text} has prefix /${cidr.prefix}: use /${SUBNET6_PREFIX_MIN} to /${SUBNET6_PREFIX_MAX} for IPv6.`);
  }
  for (const mine of own) {
    if (overlaps6(mine.cidr, cidr)) {
      throw new VxnetError('subnet_overlap', `subnets ${formatCidr6(mine.cidr)} and ${text} of network ${name} overlap.`);
    }
  }
  for (const other of existing) {
    const hit = (other.cidrs6 ?? []).find((c) => overlaps6(c, cidr));
    if (hit) throw new VxnetError('subnet_overlap', `subnet ${text} overlaps ${formatCidr6(hit)} of network ${other.name}.`);
  }
  if (spec.gateway === undefined) return { cidr, gateway: cidr.network + 1n };
  const gateway = requireIPv6(spec.gateway, 'gateway');
  if (!contains6(cidr, gateway)) {
    throw new VxnetError('gateway_outside_subnet', `gateway ${spec.gateway} is not inside subnet ${text}.`);
  }
  if (gateway === cidr.network) {
    throw new VxnetError('address_reserved', `gateway ${spec.gateway} is the Subnet-Router anycast address of ${text} (RFC 4291); pick a usable address.`);
  }
  return { cidr, gateway };
}

/** The first /24 of DEFAULT_SUBNET_POOL that overlaps no existing subnet. */
function defaultSubnet(existing: { cidrs: Cidr[] }[]): { cidr: Cidr; gateway: number } {
  const pool = parseCidr(DEFAULT_SUBNET_POOL)!;
  const count = 2 ** (24 - pool.prefix);
  const used = existing.flatMap((n) => n.cidrs).filter((c) => overlaps(c, pool));
  for (let i = 0; i < count; i++) {
    const cidr: Cidr = { network: pool.network + i * 256, prefix: 24 };
    if (!used.some((c) => overlaps(c, cidr))) return { cidr, gateway: cidr.network + 1 };
  }
  throw new VxnetError(
    'subnet_pool_exhausted',
    `no free /24 is left in ${DEFAULT_SUBNET_POOL}; give the network an explicit subnet.`,
  );
}

/** Endpoint ids are 12 lowercase hex characters. */
export function isEndpointId(value: string): boolean {
  return /^[0-9a-f]{12}$/.test(value);
}
