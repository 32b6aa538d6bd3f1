/**
 * Validation of desired objects before anything is rendered: a malformed value would stop a whole batch
 * (or, in an nft script, the whole transaction), so it is rejected with a reason instead and the rest goes
 * ahead. Every value that passes can be written into an `ip`/`bridge` batch line or an nft script as is.
 */
import { parseCidr } from '../../core/ipv4.ts';
import { formatIPv6, parseCidr6, parseIPv6 } from '../../core/ipv6.ts';
import { isIfname, isName, isNetnsPath } from '../../core/names.ts';
import { isMac } from '../../packet/ethernet.ts';
import { allAddresses, type DesiredEndpoint, type DesiredNetwork, type DesiredPeer } from '../dataplane.ts';
import { deviceNames } from '../dataplane.ts';

export const ZERO_MAC = '00:00:00:00:00:00';

// the nftables renderer and the Docker integration check interface names here, with the rest of the kernel's checks
export { isIfname };

const OCTET = '(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const IPV4 = new RegExp(`^${OCTET}(\\.${OCTET}){3}$`);
/** dotted-quad IPv4 (one regular expression: this runs for every entry of every pass) */
export const isIPv4 = (value: unknown): value is string => typeof value === 'string' && IPV4.test(value);
/**
 * An IPv6 address as the kernel prints it (RFC 5952: lower case, compressed), so that it compares equal to
 * the dumps as text: the agent's VTEPs over an IPv6 underlay (docs/architecture.md, "IPv6 underlay").
 */
export const isCanonicalIPv6 = (value: unknown): value is string => {
  if (typeof value !== 'string' || !value.includes(':')) return false;
  const parsed = parseIPv6(value);
  return parsed !== undefined && formatIPv6(parsed) === value;
};
/** A VXLAN endpoint address: IPv4, or IPv6 in canonical text (one family per cluster, core/underlay.ts). */
export const isVtep = (value: unknown): value is string => isIPv4(value) || isCanonicalIPv6(value);
/** a MAC an endpoint or bridge may use: not multicast/broadcast, not all-zero */
export const isUnicastMac = (value: unknown): value is string =>
  isMac(value) && (parseInt(value.slice(0, 2), 16) & 1) === 0 && value !== ZERO_MAC;
export const isInt = (value: unknown, min: number, max: number): value is number =>
  typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;
/** "a.b.c.d/n": an interface address with its prefix length (host bits set) */
export function isInterfaceCidr(value: unknown): value is string {
  if (typeof value !== 'string') return false;
  const slash = value.indexOf('/');
  if (slash < 0) return false;
  const prefix = value.slice(slash + 1);
  return isIPv4(value.slice(0, slash)) && /^\d{1,2}$/.test(prefix) && Number(prefix) <= 32;
}
/**
 * An IPv6 address in the one form the kernel prints (RFC 5952), so that what is written compares equal to
 * what is read back; only addresses inside networks are IPv6 here (issue 15), never the underlay.
 */
export const isIPv6 = (value: unknown): value is string => {
  if (typeof value !== 'string' || !value.includes(':')) return false;
  const parsed = parseIPv6(value);
  return parsed !== undefined && formatIPv6(parsed) === value;
};
/** an address inside a network: IPv4 or (canonical) IPv6 */
export const isNetworkAddress = (value: unknown): value is string => isIPv4(value) || isIPv6(value);
/** "a.b.c.d/n" or "fd00::2/64": an interface address with its prefix length, IPv4 or IPv6 */
export function isNetworkInterfaceCidr(value: unknown): value is string {
  if (isInterfaceCidr(value)) return true;
  if (typeof value !== 'string') return false;
  const slash = value.indexOf('/');
  const prefix = value.slice(slash + 1);
  return slash > 0 && isIPv6(value.slice(0, slash)) && /^\d{1,3}$/.test(prefix) && Number(prefix) <= 128;
}
const isSubnet = (value: unknown): value is string => typeof value === 'string' && (parseCidr(value) !== undefined || parseCidr6(value) !== undefined);
const isMulticast = (value: string): boolean => {
  const first = Number(value.split('.')[0]);
  return first >= 224 && first <= 239;
};

export function validateNetwork(net: DesiredNetwork): string | undefined {
  if (!isName(net.name)) return `network name ${JSON.stringify(net.name)} is invalid`;
  if (!isInt(net.vni, 1, 0xffffff)) return `VNI ${net.vni} is outside 1..16777215`;
  if (net.bridge !== deviceNames.bridge(net.vni)) return `bridge must be named ${deviceNames.bridge(net.vni)}, not ${net.bridge}`;
  if (net.vxlan !== deviceNames.vxlan(net.vni)) return `VXLAN device must be named ${deviceNames.vxlan(net.vni)}, not ${net.vxlan}`;
  if (!isInt(net.port, 1, 65535)) return `UDP port ${net.port} is outside 1..65535`;
  if (!isInt(net.mtu, 68, 65535)) return `MTU ${net.mtu} is outside 68..65535`;
  if (!isVtep(net.localAddress)) return `local address ${JSON.stringify(net.localAddress)} is not an IPv4 or IPv6 address`;
  if (net.multicastGroup !== undefined && !isIPv4(net.localAddress)) {
    return `multicast group ${JSON.stringify(net.multicastGroup)} needs an IPv4 underlay, but this node's underlay address ${net.localAddress} is IPv6`;
  }
  if (net.multicastGroup !== undefined) {
    if (!isIPv4(net.multicastGroup) || !isMulticast(net.multicastGroup)) {
      return `multicast group ${JSON.stringify(net.multicastGroup)} is not an IPv4 multicast address`;
    }
    if (!isIfname(net.underlayDevice)) return `a multicast network needs a valid underlay device, got ${JSON.stringify(net.underlayDevice)}`;
  }
  if (!isUnicastMac(net.gatewayMac)) return `gateway MAC ${JSON.stringify(net.gatewayMac)} is not a unicast MAC address`;
  const badGateway = net.gatewayAddresses.find((a) => !isNetworkInterfaceCidr(a));
  if (badGateway !== undefined) return `gateway address ${JSON.stringify(badGateway)} is not of the form a.b.c.d/n or an IPv6 address/n`;
  const badSubnet = net.subnets.find((s) => !isSubnet(s));
  if (badSubnet !== undefined) return `subnet ${JSON.stringify(badSubnet)} is not an IPv4 or IPv6 CIDR`;
  return undefined;
}

export function validatePeer(peer: DesiredPeer): string | undefined {
  if (!isNetworkAddress(peer.ip)) return `peer address ${JSON.stringify(peer.ip)} is not an IPv4 or IPv6 address`;
  if (!isUnicastMac(peer.mac)) return `peer MAC ${JSON.stringify(peer.mac)} is not a unicast MAC address`;
  if (!isVtep(peer.vtep)) return `VTEP ${JSON.stringify(peer.vtep)} is not an IPv4 or IPv6 address`;
  return undefined;
}

export function validateEndpoint(ep: DesiredEndpoint): string | undefined {
  if (typeof ep.id !== 'string' || ep.id.length < 10) return `endpoint id ${JSON.stringify(ep.id)} is too short`;
  if (ep.hostVeth !== deviceNames.hostVeth(ep.id)) return `host veth must be named ${deviceNames.hostVeth(ep.id)}`;
  if (ep.peerVeth !== deviceNames.peerVeth(ep.id)) return `peer veth must be named ${deviceNames.peerVeth(ep.id)}`;
  // no namespace: a handed-over Docker endpoint
  if (ep.netns !== undefined && !isNetnsPath(ep.netns)) {
    return `network namespace ${JSON.stringify(ep.netns)} is not an absolute path`;
  }
  if (!isIfname(ep.ifname) || ep.ifname === 'lo') return `interface name ${JSON.stringify(ep.ifname)} is invalid`;
  if (!isUnicastMac(ep.mac)) return `MAC ${JSON.stringify(ep.mac)} is not a unicast MAC address`;
  for (const { address, gateway } of allAddresses(ep)) {
    if (!isNetworkInterfaceCidr(address)) return `address ${JSON.stringify(address)} is not of the form a.b.c.d/n or an IPv6 address/n`;
    if (!isNetworkAddress(gateway) || isIPv4(gateway) !== isIPv4(address.split('/')[0])) {
      return `gateway ${JSON.stringify(gateway)} is not an address of the family of ${address}`;
    }
  }
  if (ep.addresses !== undefined && ep.addresses[0]?.address !== ep.address) return `address ${ep.address} is not the first of its addresses`;
  if (!isInt(ep.mtu, 68, 65535)) return `MTU ${ep.mtu} is outside 68..65535`;
  const badRoute = ep.extraRoutes.find((r) => !isSubnet(r));
  if (badRoute !== undefined) return `route ${JSON.stringify(badRoute)} is not an IPv4 or IPv6 CIDR`;
  return undefined;
}

