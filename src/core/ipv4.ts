/**
 * IPv4 arithmetic on plain numbers (unsigned 32-bit). Pure; used by IPAM, validation and the renderers.
 */
import { VxnetError, quote } from './errors.ts';

export interface Cidr {
  /** network address (host bits zero) */
  readonly network: number;
  readonly prefix: number;
}

const OCTET = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

export function parseIPv4(text: string): number | undefined {
  if (typeof text !== 'string') return undefined;
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => OCTET.test(p))) return undefined;
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

export function formatIPv4(value: number): string {
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join('.');
}

export function requireIPv4(text: string, what = 'address'): number {
  const value = parseIPv4(text);
  if (value === undefined) throw new VxnetError('invalid_address', `${what} ${quote(text)} is not a valid IPv4 address.`);
  return value;
}

export function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** Parses "a.b.c.d/n" strictly: host bits must be zero (a subnet, not an interface address). */
export function parseCidr(text: string): Cidr | undefined {
  if (typeof text !== 'string') return undefined;
  const match = /^([0-9.]+)\/(\d{1,2})$/.exec(text);
  if (!match) return undefined;
  const address = parseIPv4(match[1]!);
  const prefix = Number(match[2]);
  if (address === undefined || prefix > 32) return undefined;
  if (((address & maskOf(prefix)) >>> 0) !== address) return undefined;
  return { network: address, prefix };
}

export function requireCidr(text: string): Cidr {
  const cidr = parseCidr(text);
  if (!cidr) throw new VxnetError('invalid_cidr', `subnet ${quote(text)} is not a valid IPv4 CIDR: ${whyNotCidr(text)}.`);
  return cidr;
}

/**
 * Why `text` is not a subnet parseCidr accepts, the clause after "is not a valid IPv4 subnet: ": one cause
 * each (IPv6, a missing or out-of-range prefix, host bits set, with the subnet meant), since "host bits
 * must be zero" for fd00::/64 sends a user looking for the wrong mistake.
 */
export function whyNotCidr(text: string): string {
  const example = 'such as 192.168.1.0/24';
  if (typeof text !== 'string') return `write it as an address and a prefix length, ${example}`;
  const slash = text.indexOf('/');
  const address = slash === -1 ? text : text.slice(0, slash);
  if (address.includes(':')) return `IPv6 is not supported yet, only IPv4 subnets ${example}`;
  const parsed = parseIPv4(address);
  if (parsed === undefined) return `write it as an IPv4 address and a prefix length, ${example}`;
  if (slash === -1) return `the prefix length is missing, as in ${address}/24`;
  const prefixText = text.slice(slash + 1);
  if (!/^\d{1,2}$/.test(prefixText)) return `the prefix length after "/" must be a number from 0 to 32, as in ${address}/24`;
  const prefix = Number(prefixText);
  if (prefix > 32) return `prefix /${prefix} is out of range, an IPv4 prefix is /0 to /32`;
  const network = (parsed & maskOf(prefix)) >>> 0;
  return `its host bits are set, the subnet of ${address}/${prefix} is ${formatIPv4(network)}/${prefix}`;
}

export function formatCidr(cidr: Cidr): string {
  return `${formatIPv4(cidr.network)}/${cidr.prefix}`;
}

export function broadcastOf(cidr: Cidr): number {
  return (cidr.network | ~maskOf(cidr.prefix)) >>> 0;
}

export function contains(cidr: Cidr, address: number): boolean {
  return ((address & maskOf(cidr.prefix)) >>> 0) === cidr.network;
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  const prefix = Math.min(a.prefix, b.prefix);
  const mask = maskOf(prefix);
  return ((a.network & mask) >>> 0) === ((b.network & mask) >>> 0);
}

/** Number of addresses an endpoint may get: all but network, broadcast (for prefixes up to /30). */
export function usableRange(cidr: Cidr): { first: number; last: number } {
  if (cidr.prefix >= 31) return { first: cidr.network, last: broadcastOf(cidr) };
  return { first: cidr.network + 1, last: broadcastOf(cidr) - 1 };
}

/**
 * Endpoint MAC derived from its IPv4 address: 02:78 ("x", locally administered, unicast) followed by the
 * four address bytes. Stable across restarts and hosts, so a peer's FDB/ARP entries never go stale when
 * an endpoint is recreated with the same address (a known pain with random MACs), and unique within a
 * network because addresses are.
 */
export function macForIPv4(address: number): string {
  const bytes = [0x02, 0x78, address >>> 24, (address >>> 16) & 255, (address >>> 8) & 255, address & 255];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}
