/**
 * The underlay: the network between hosts that carries VXLAN. A node's advertise address is IPv4 or IPv6,
 * and every node of a cluster uses the same family (a VXLAN device sends from one `local` address to FDB
 * destinations of that address's family only; an IPv4 node and an IPv6 node could never reach each other).
 * Pure: the family of an address, the overhead VXLAN adds on top of it, and which underlay addresses a node
 * may register.
 */
import { VxnetError, quote } from './errors.ts';
import { formatIPv4, parseIPv4, requireIPv4 } from './ipv4.ts';
import { contains6, formatIPv6, parseCidr6, parseIPv6, type Cidr6 } from './ipv6.ts';
import { VXLAN_OVERHEAD, VXLAN_OVERHEAD_IPV6 } from './model.ts';

export type UnderlayFamily = 'IPv4' | 'IPv6';

/** The family of an address in its text form; undefined for text that is neither. */
export function underlayFamily(address: string): UnderlayFamily | undefined {
  if (parseIPv4(address) !== undefined) return 'IPv4';
  if (parseIPv6(address) !== undefined) return 'IPv6';
  return undefined;
}

/** Bytes VXLAN adds to an inner frame on an underlay of this family: 50 over IPv4, 70 over IPv6. */
export function vxlanOverheadOf(family: UnderlayFamily): number {
  return family === 'IPv6' ? VXLAN_OVERHEAD_IPV6 : VXLAN_OVERHEAD;
}

/** The overhead on the underlay `address` belongs to (IPv4's for text of no family: the only one it had). */
export const vxlanOverheadAt = (address: string): number => vxlanOverheadOf(underlayFamily(address) ?? 'IPv4');

/**
 * IPv6 addresses no node may register as its underlay address (RFC 4291, RFC 6890): each peer sends VXLAN to
 * it and lets VXLAN in from it, so it must be a global or unique-local unicast address that the others reach
 * without naming an interface (a link-local one would need a zone on every peer).
 */
const NOT_UNDERLAY6: readonly { cidr: Cidr6; what: string }[] = [
  { cidr: parseCidr6('::/128')!, what: 'the unspecified address (::)' },
  { cidr: parseCidr6('::1/128')!, what: 'the loopback address (::1)' },
  { cidr: parseCidr6('::ffff:0:0/96')!, what: 'an IPv4-mapped address (::ffff:0:0/96): register the IPv4 address itself' },
  { cidr: parseCidr6('::/96')!, what: 'an IPv4-compatible address (::/96, deprecated by RFC 4291)' },
  { cidr: parseCidr6('fe80::/10')!, what: 'a link-local address (fe80::/10), which peers can only reach with a zone' },
  { cidr: parseCidr6('ff00::/8')!, what: 'a multicast address (ff00::/8)' },
];

/**
 * The canonical text of an IPv6 underlay address (RFC 5952, as iproute2 prints it, so that it compares equal
 * to the kernel's dumps), or a coded error with one sentence.
 */
export function requireUnderlayIPv6(text: string, what: string): string {
  const value = parseIPv6(text);
  if (value === undefined) throw new VxnetError('invalid_address', `${what} ${quote(text)} is not a valid IPv6 address.`);
  const refused = NOT_UNDERLAY6.find((range) => contains6(range.cidr, value));
  if (refused) {
    throw new VxnetError('invalid_address', `${what} ${formatIPv6(value)} is ${refused.what}: a node registers the unicast address the other nodes reach it at.`);
  }
  return formatIPv6(value);
}

/**
 * An underlay address in canonical text: text with a colon is read as IPv6 (with requireUnderlayIPv6's
 * checks), anything else as IPv4 (the caller keeps its IPv4-only checks).
 */
export function canonicalUnderlay(text: string, what: string): string {
  return typeof text === 'string' && text.includes(':') ? requireUnderlayIPv6(text, what) : formatIPv4(requireIPv4(text, what));
}

/**
 * The sentence that refuses a node whose underlay family differs from the cluster's: `other` is a registered
 * node of the cluster's family.
 */
export function mixedFamilyMessage(node: { name: string; address: string }, other: { name: string; address: string }): string {
  const theirs = underlayFamily(other.address) ?? 'IPv4';
  const mine = underlayFamily(node.address) ?? 'IPv4';
  return (
    `node ${node.name} advertises the ${mine} underlay address ${node.address}, but this cluster's nodes use ${theirs} underlay addresses ` +
    `(node ${other.name} has ${other.address}): every node of a cluster needs an underlay address of the same family, so advertise an ${theirs} address.`
  );
}
