/**
 * The addresses of a network and its endpoints as the kernel gets them, for both families (vxnet issue 15:
 * IPv6 inside networks). An endpoint has one address per family of its network's subnets, IPv4 first
 * (`endpointAddresses`); a network's gateway MAC stays the one derived from its first IPv4 gateway, so that
 * adding IPv6 to the model changed nothing on an IPv4 network's bridges, and an IPv6-only network derives
 * it from its IPv6 gateway (02:79:..., core/ipv6.ts).
 */
import { contains, macForIPv4, parseCidr, parseIPv4 } from '../core/ipv4.ts';
import { contains6, macForIPv6, parseCidr6, parseIPv6 } from '../core/ipv6.ts';
import { endpointAddresses, type Endpoint, type Network } from '../core/model.ts';
import type { EndpointAddressing } from './dataplane.ts';

/** The bridge MAC of a network: the same on every node. */
export function gatewayMacOf(network: Network): string {
  const v4 = network.subnets.find((s) => parseIPv4(s.gateway) !== undefined);
  if (v4) return macForIPv4(parseIPv4(v4.gateway)!);
  const v6 = network.subnets.map((s) => parseIPv6(s.gateway)).find((g) => g !== undefined);
  return v6 !== undefined ? macForIPv6(v6) : '02:78:00:00:00:00';
}

const prefixOf = (cidr: string): number | undefined => parseCidr(cidr)?.prefix ?? parseCidr6(cidr)?.prefix;

/** "192.168.1.1/24", "fd00:1::1/64": the gateway addresses a network's bridge holds. */
export function gatewayAddressesOf(network: Network): string[] {
  return network.subnets.map((s) => `${s.gateway}/${prefixOf(s.cidr) ?? (s.cidr.includes(':') ? 128 : 32)}`);
}

function isInside(ip: string, cidr: string): boolean {
  const v4 = parseIPv4(ip);
  if (v4 !== undefined) {
    const subnet = parseCidr(cidr);
    return subnet !== undefined && contains(subnet, v4);
  }
  const v6 = parseIPv6(ip);
  const subnet6 = parseCidr6(cidr);
  return v6 !== undefined && subnet6 !== undefined && contains6(subnet6, v6);
}

/**
 * A local endpoint's addresses for the kernel: the first as `address`/`gateway` (as before IPv6), every one
 * in `addresses` when it has more, and the network's other subnets as routes via the gateway of their family.
 */
export function endpointAddressing(endpoint: Endpoint, network: Network): EndpointAddressing {
  const all = endpointAddresses(endpoint);
  const first = all[0]!;
  return {
    address: `${first.ip}/${first.prefix}`,
    gateway: first.gateway,
    ...(all.length > 1 ? { addresses: all.map((a) => ({ address: `${a.ip}/${a.prefix}`, gateway: a.gateway })) } : {}),
    extraRoutes: network.subnets.map((s) => s.cidr).filter((cidr) => !all.some((a) => isInside(a.ip, cidr))),
  };
}

/** The addresses a remote endpoint gets neighbour entries for: one per family. */
export function peerAddresses(endpoint: Endpoint): readonly string[] {
  return endpoint.addresses === undefined ? [endpoint.ip] : endpoint.addresses.map((a) => a.ip);
}
