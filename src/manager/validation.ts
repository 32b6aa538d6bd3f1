/**
 * Validation at the manager's edge, in two layers:
 *
 * 1. Shape: an HTTP body becomes a typed request or is rejected with `bad_request` naming the field
 *    (wrong JSON type, unknown field, missing field). Strict, so a typo such as `"subnet"` is an error
 *    instead of a silently ignored option.
 * 2. Meaning: `resolveNetwork` turns a CreateNetworkRequest into the Network to store, applying the
 *    defaults and rules of docs/api.md against the current cluster. Pure: the caller supplies the cluster
 *    view and commits the result with compare-and-swap, so a decision taken on a stale view cannot stick.
 */
import { VxnetError, quote } from '../core/errors.ts';
import {
  type Cidr,
  broadcastOf,
  contains,
  formatCidr,
  formatIPv4,
  overlaps,
  parseCidr,
  requireCidr,
  requireIPv4,
} from '../core/ipv4.ts';
import {
  type CreateEndpointRequest,
  type CreateNetworkRequest,
  type CreateReservationRequest,
  DEFAULT_SUBNET_POOL,
  DEFAULT_UNDERLAY_MTU,
  type EndpointStatusRequest,
  type HeartbeatRequest,
  type JoinRequest,
  type Network,
  type Node,
  type RegisterNodeRequest,
  type RenewCertificateRequest,
  VNI_AUTO_START,
  VNI_MAX,
  VNI_MIN,
  VXLAN_OVERHEAD,
  VXLAN_PORT,
} from '../core/model.ts';
import { requireName } from '../core/names.ts';

// ---------------------------------------------------------------------------------------------------
// Shape

type Kind = 'string' | 'integer' | 'boolean';
type FieldSpec = { kind: Kind; required?: boolean } | { kind: 'subnets'; required?: boolean };

function bad(message: string): VxnetError {
  return new VxnetError('bad_request', message);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${quote(value)}`;
}

function checkObject(value: unknown, what: string, fields: Record<string, FieldSpec>, path = ''): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw bad(`${path ? `field "${path}"` : `the ${what} body`} must be a JSON object, not ${describe(value)}.`);
  }
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!Object.hasOwn(fields, key)) {
      const known = Object.keys(fields).join(', ');
      throw bad(`unknown field ${quote(`${path ? `${path}.` : ''}${key}`)} in the ${what} (known fields: ${known}).`);
    }
  }
  for (const [key, spec] of Object.entries(fields)) {
    const name = path ? `${path}.${key}` : key;
    const v = record[key];
    if (v === undefined) {
      if (spec.required) throw bad(`field "${name}" is required in the ${what}.`);
      continue;
    }
    switch (spec.kind) {
      case 'string':
        if (typeof v !== 'string') throw bad(`field "${name}" must be a string, not ${describe(v)}.`);
        break;
      case 'integer':
        if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw bad(`field "${name}" must be an integer, not ${describe(v)}.`);
        break;
      case 'boolean':
        if (typeof v !== 'boolean') throw bad(`field "${name}" must be true or false, not ${describe(v)}.`);
        break;
      case 'subnets':
        if (!Array.isArray(v)) throw bad(`field "${name}" must be an array of {cidr, gateway}, not ${describe(v)}.`);
        if (v.length === 0) throw bad(`field "${name}" must not be empty: omit it to get a default subnet.`);
        v.forEach((item, i) => checkObject(item, what, { cidr: { kind: 'string', required: true }, gateway: { kind: 'string' } }, `${name}[${i}]`));
        break;
    }
  }
  return record;
}

export function parseCreateNetworkRequest(body: unknown): CreateNetworkRequest {
  return checkObject(body, 'network request', {
    name: { kind: 'string', required: true },
    vni: { kind: 'integer' },
    subnets: { kind: 'subnets' },
    mtu: { kind: 'integer' },
    port: { kind: 'integer' },
    internal: { kind: 'boolean' },
    multicastGroup: { kind: 'string' },
  }) as unknown as CreateNetworkRequest;
}

export function parseRegisterNodeRequest(body: unknown): RegisterNodeRequest {
  return checkObject(body, 'node registration', {
    name: { kind: 'string', required: true },
    address: { kind: 'string', required: true },
    mtu: { kind: 'integer', required: true },
  }) as unknown as RegisterNodeRequest;
}

export function parseHeartbeatRequest(body: unknown): HeartbeatRequest {
  const req = checkObject(body, 'heartbeat', { reconciledRevision: { kind: 'integer', required: true } }) as unknown as HeartbeatRequest;
  if (req.reconciledRevision < 0) throw bad('field "reconciledRevision" must not be negative.');
  return req;
}

export function parseCreateEndpointRequest(body: unknown): CreateEndpointRequest {
  return checkObject(body, 'endpoint request', {
    network: { kind: 'string', required: true },
    node: { kind: 'string', required: true },
    // exactly one of netns, container, docker (the service says so when it is not)
    netns: { kind: 'string' },
    container: { kind: 'string' },
    docker: { kind: 'string' },
    ifname: { kind: 'string' },
    ip: { kind: 'string' },
    reserved: { kind: 'boolean' },
  }) as unknown as CreateEndpointRequest;
}

export function parseCreateReservationRequest(body: unknown): CreateReservationRequest {
  return checkObject(body, 'reservation request', {
    network: { kind: 'string', required: true },
    node: { kind: 'string', required: true },
    ip: { kind: 'string' },
  }) as unknown as CreateReservationRequest;
}

export function parseEndpointStatusRequest(body: unknown): EndpointStatusRequest {
  const req = checkObject(body, 'endpoint status', {
    status: { kind: 'string', required: true },
    message: { kind: 'string' },
  }) as unknown as EndpointStatusRequest;
  requireEndpointStatus(req.status);
  return req;
}

export function parseJoinRequest(body: unknown): JoinRequest {
  return checkObject(body, 'join request', {
    name: { kind: 'string', required: true },
    publicKey: { kind: 'string', required: true },
    role: { kind: 'string' },
  }) as unknown as JoinRequest;
}

export function parseRenewCertificateRequest(body: unknown): RenewCertificateRequest {
  return checkObject(body, 'renewal request', { publicKey: { kind: 'string', required: true } }) as unknown as RenewCertificateRequest;
}

export function requireEndpointStatus(value: unknown): 'pending' | 'ready' | 'error' {
  if (value !== 'pending' && value !== 'ready' && value !== 'error') {
    throw bad(`field "status" must be "pending", "ready" or "error", not ${describe(value)}.`);
  }
  return value;
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
const MULTICAST = parseCidr('224.0.0.0/4')!;

export function validateNodeRequest(req: RegisterNodeRequest): RegisterNodeRequest {
  const name = requireName(req.name, 'node');
  const address = requireIPv4(req.address, 'node address');
  if (address === 0 || address >= 0xe0000000) {
    throw new VxnetError('invalid_address', `node address ${req.address} is not a unicast address.`);
  }
  if (!Number.isInteger(req.mtu) || req.mtu < NODE_MTU_MIN || req.mtu > NODE_MTU_MAX) {
    throw new VxnetError('invalid_mtu', `node MTU ${req.mtu} is out of range: use ${NODE_MTU_MIN}..${NODE_MTU_MAX}.`);
  }
  return { name, address: formatIPv4(address), mtu: req.mtu };
}

/** What resolveNetwork needs to know about the rest of the cluster. */
export interface NetworkContext {
  networks: Iterable<{ name: string; cidrs: Cidr[] }>;
  vnis: ReadonlyMap<number, string>;
  nodes: Iterable<Node>;
  now: Date;
}

/** The largest MTU a network may have given the registered nodes, and the node that sets the bound. */
export function mtuBound(nodes: Iterable<Node>): { limit: number; node?: Node } {
  let smallest: Node | undefined;
  for (const node of nodes) if (!smallest || node.mtu < smallest.mtu) smallest = node;
  if (!smallest) return { limit: DEFAULT_UNDERLAY_MTU - VXLAN_OVERHEAD };
  return { limit: smallest.mtu - VXLAN_OVERHEAD, node: smallest };
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
  if (req.subnets !== undefined) {
    if (req.subnets.length === 0) throw bad('field "subnets" must not be empty: omit it to get a default subnet.');
    for (const spec of req.subnets) {
      const cidr = requireCidr(spec.cidr);
      const text = formatCidr(cidr);
      if (cidr.prefix < SUBNET_PREFIX_MIN || cidr.prefix > SUBNET_PREFIX_MAX) {
        throw new VxnetError('invalid_cidr', `subnet ${text} has prefix /${cidr.prefix}: use /${SUBNET_PREFIX_MIN} to /${SUBNET_PREFIX_MAX}.`);
      }
      for (const own of subnets) {
        if (overlaps(own.cidr, cidr)) {
          throw new VxnetError('subnet_overlap', `subnets ${formatCidr(own.cidr)} and ${text} of network ${name} overlap.`);
        }
      }
      for (const other of existing) {
        const hit = other.cidrs.find((c) => overlaps(c, cidr));
        if (hit) throw new VxnetError('subnet_overlap', `subnet ${text} overlaps ${formatCidr(hit)} of network ${other.name}.`);
      }
      let gateway: number;
      if (spec.gateway !== undefined) {
        gateway = requireIPv4(spec.gateway, 'gateway');
        if (!contains(cidr, gateway)) {
          throw new VxnetError('gateway_outside_subnet', `gateway ${spec.gateway} is not inside subnet ${text}.`);
        }
        if (gateway === cidr.network || gateway === broadcastOf(cidr)) {
          const what = gateway === cidr.network ? 'network' : 'broadcast';
          throw new VxnetError('address_reserved', `gateway ${spec.gateway} is the ${what} address of ${text}; pick a usable address.`);
        }
      } else {
        gateway = cidr.network + 1;
      }
      subnets.push({ cidr, gateway });
    }
  } else {
    subnets.push(defaultSubnet(existing));
  }

  const bound = mtuBound(ctx.nodes);
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
        `MTU ${req.mtu} is larger than the underlay allows: at most ${bound.limit} (${why}, minus ${VXLAN_OVERHEAD} bytes of VXLAN overhead).`,
      );
    }
    mtu = req.mtu;
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
  }

  const network: Network = {
    name,
    vni,
    subnets: subnets.map((s) => ({ cidr: formatCidr(s.cidr), gateway: formatIPv4(s.gateway) })),
    mtu,
    port,
    internal: req.internal ?? false,
    createdAt: ctx.now.toISOString(),
  };
  if (multicastGroup !== undefined) network.multicastGroup = multicastGroup;
  return network;
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
