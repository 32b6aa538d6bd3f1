/**
 * What a `docker network create -d vxnet` means as a vxnet network: CreateNetwork's pools (IPv4, and IPv6
 * with --ipv6) and options turned into a network request (parseNetworkSpec, requestOf), and whether a Docker network may stand for
 * an existing vxnet network (checkBinding: exactly its subnets and settings). Pure; used by network-driver.ts.
 */
import { VxnetError } from '../core/errors.ts';
import type { CreateNetworkRequest as VxnetNetworkRequest, Network } from '../core/model.ts';
import { ADDRESS_SPACE, OPTION_ENABLE_IPV6, OPTION_GENERIC, OPTION_INTERNAL, OPTION_MTU, type CreateNetworkRequest } from './api.ts';
import { canonical } from './catalogue.ts';

/** The `-o` options a vxnet network takes (`docker network create -d vxnet -o vni=100 ...`). */
export const NETWORK_OPTIONS = ['vni', 'mtu', 'port', 'multicast-group', 'encrypt'] as const;

export interface NetworkSpec {
  subnets: { cidr: string; gateway: string }[];
  vni?: number;
  mtu?: number;
  port?: number;
  multicastGroup?: string;
  /** `-o encrypt`: the network's traffic between hosts goes only through WireGuard (docs/security.md) */
  encrypted?: boolean;
  internal: boolean;
}

/** CreateNetwork's request as a vxnet network: subnets from the pools, options from `-o`, `--internal`. */
export function parseNetworkSpec(req: CreateNetworkRequest): NetworkSpec {
  if (req.IPv4Data.length === 0) throw new VxnetError('bad_request', 'the network has no IPv4 subnet: vxnet networks need the vxnet IPAM driver (--ipam-driver vxnet).');
  // libnetwork asks for IPv6 pools only with --ipv6; pools without it would be a network half made
  if (req.IPv6Data.length > 0 && req.Options[OPTION_ENABLE_IPV6] === false) {
    throw new VxnetError('bad_request', 'the network has IPv6 subnets but IPv6 is off: add --ipv6, or leave out the IPv6 subnets.');
  }
  if (req.IPv6Data.length === 0 && req.Options[OPTION_ENABLE_IPV6] === true) {
    throw new VxnetError('bad_request', 'with --ipv6 the network needs an IPv6 subnet from the vxnet IPAM driver, such as --subnet fd00:1::/64.');
  }
  // a dual-stack network: its IPv4 subnets, then its IPv6 ones, as `vxnet network create` stores them
  const subnets = [...req.IPv4Data.map((d) => ({ data: d, v6: false })), ...req.IPv6Data.map((d) => ({ data: d, v6: true }))].map(({ data, v6 }) => {
    if (data.AddressSpace !== ADDRESS_SPACE) {
      throw new VxnetError(
        'bad_request',
        `vxnet networks take their addresses from vxnet's cluster-wide IPAM: add --ipam-driver vxnet (this one came from address space "${data.AddressSpace}").`,
      );
    }
    if (data.AuxAddresses && Object.keys(data.AuxAddresses).length > 0) {
      throw new VxnetError('bad_request', 'vxnet does not support --aux-address: every address of the subnet is for containers (and the gateway).');
    }
    const cidr = canonical(data.Pool);
    if (cidr === undefined || cidr.includes(':') !== v6) {
      throw new VxnetError('invalid_cidr', `pool ${JSON.stringify(data.Pool)} is not an ${v6 ? 'IPv6' : 'IPv4'} subnet.`);
    }
    const gateway = data.Gateway === undefined ? '' : data.Gateway.split('/')[0]!;
    return { cidr, gateway };
  });
  const generic = req.Options[OPTION_GENERIC];
  const options: Record<string, unknown> = typeof generic === 'object' && generic !== null ? (generic as Record<string, unknown>) : {};
  const spec: NetworkSpec = { subnets, internal: req.Options[OPTION_INTERNAL] === true };
  for (const [key, value] of Object.entries(options)) {
    const text = typeof value === 'string' ? value : String(value);
    switch (key) {
      case 'vni':
        spec.vni = wholeNumber(key, text);
        break;
      case 'mtu':
      case OPTION_MTU:
        spec.mtu = wholeNumber(key, text);
        break;
      case 'port':
        spec.port = wholeNumber(key, text);
        break;
      case 'multicast-group':
        spec.multicastGroup = text;
        break;
      // Swarm's overlay spells it `--opt encrypted`; a user coming from there gets what they meant
      case 'encrypt':
      case 'encrypted':
        spec.encrypted = flag(key, text);
        break;
      default:
        throw new VxnetError('bad_request', `unknown option "-o ${key}" for a vxnet network: use ${NETWORK_OPTIONS.map((o) => (o === 'encrypt' ? '-o encrypt' : `-o ${o}=...`)).join(', ')}.`);
    }
  }
  return spec;
}

/** `-o encrypt` alone (Docker passes ""), or with true/false, yes/no, 1/0. */
function flag(key: string, text: string): boolean {
  const value = text.toLowerCase();
  if (['', 'true', 'yes', '1'].includes(value)) return true;
  if (['false', 'no', '0'].includes(value)) return false;
  throw new VxnetError('bad_request', `option "-o ${key}" takes no value or true/false, not "${text}".`);
}

function wholeNumber(key: string, text: string): number {
  if (!/^(0|[1-9][0-9]{0,9})$/.test(text)) throw new VxnetError('bad_request', `option "-o ${key}" must be a whole number, not "${text}".`);
  return Number(text);
}

export function requestOf(spec: NetworkSpec): Omit<VxnetNetworkRequest, 'name'> {
  const request: Omit<VxnetNetworkRequest, 'name'> = {
    subnets: spec.subnets.map((s) => (s.gateway === '' ? { cidr: s.cidr } : { cidr: s.cidr, gateway: s.gateway })),
  };
  if (spec.vni !== undefined) request.vni = spec.vni;
  if (spec.mtu !== undefined) request.mtu = spec.mtu;
  if (spec.port !== undefined) request.port = spec.port;
  if (spec.multicastGroup !== undefined) request.multicastGroup = spec.multicastGroup;
  if (spec.encrypted === true) request.encrypted = true;
  if (spec.internal) request.internal = true;
  return request;
}

/** A Docker network may stand for an existing vxnet network only with exactly its subnets and settings. */
export function checkBinding(network: Network, spec: NetworkSpec, networksMatched: number): void {
  const given = spec.subnets.map((s) => s.cidr);
  const theirs = network.subnets.map((s) => s.cidr);
  if (networksMatched > 1 || !sameSubnets(network, given)) {
    throw new VxnetError(
      'subnet_overlap',
      `the subnets ${given.join(', ')} must be exactly those of one vxnet network; network ${network.name} has ${theirs.join(', ')}.`,
    );
  }
  const differs: string[] = [];
  for (const s of spec.subnets) {
    const gateway = network.subnets.find((t) => t.cidr === s.cidr)?.gateway;
    if (s.gateway !== '' && s.gateway !== gateway) differs.push(`the gateway of ${s.cidr} is ${gateway}, not ${s.gateway}`);
  }
  if (spec.vni !== undefined && spec.vni !== network.vni) differs.push(`its VNI is ${network.vni}, not ${spec.vni}`);
  if (spec.mtu !== undefined && spec.mtu !== network.mtu) differs.push(`its MTU is ${network.mtu}, not ${spec.mtu}`);
  if (spec.port !== undefined && spec.port !== network.port) differs.push(`its port is ${network.port}, not ${spec.port}`);
  if (spec.multicastGroup !== undefined && spec.multicastGroup !== network.multicastGroup) {
    differs.push(`its multicast group is ${network.multicastGroup ?? 'none'}, not ${spec.multicastGroup}`);
  }
  if (spec.encrypted !== undefined && spec.encrypted !== (network.encrypted === true)) {
    differs.push(network.encrypted === true ? 'it is encrypted (add -o encrypt)' : 'it is not encrypted (drop -o encrypt)');
  }
  if (spec.internal !== network.internal) differs.push(network.internal ? 'it is internal (add --internal)' : 'it is not internal (drop --internal)');
  if (differs.length > 0) throw new VxnetError('bad_request', `the subnets are those of vxnet network ${network.name}, but ${differs.join('; ')}.`);
}

export function sameSubnets(network: Network, cidrs: readonly string[]): boolean {
  const theirs = new Set(network.subnets.map((s) => s.cidr));
  const mine = new Set(cidrs.map((c) => canonical(c) ?? c));
  return theirs.size === mine.size && [...mine].every((c) => theirs.has(c));
}
