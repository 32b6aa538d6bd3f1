/**
 * IPv6 arithmetic on bigints (unsigned 128-bit), the counterpart of ipv4.ts. Pure. Text is read in every form
 * RFC 4291 section 2.2 allows (leading zeros, one "::", an embedded IPv4 tail) and written in the one form
 * RFC 5952 prescribes (lower case, no leading zeros, the longest run of two or more zero groups as "::"), so
 * that two spellings of one address compare equal as text once formatted.
 */
import { VxnetError, quote } from './errors.ts';
import { parseIPv4 } from './ipv4.ts';

export interface Cidr6 {
  /** network address (host bits zero) */
  readonly network: bigint;
  readonly prefix: number;
}

const ALL_ONES = (1n << 128n) - 1n;
const GROUP = /^[0-9a-fA-F]{1,4}$/;

/** The 16-bit groups of one side of "::" (empty text: none); undefined when a group is malformed. */
function groupsOf(text: string, allowIPv4Tail: boolean): number[] | undefined {
  if (text === '') return [];
  const parts = text.split(':');
  const groups: number[] = [];
  for (const [i, part] of parts.entries()) {
    if (allowIPv4Tail && i === parts.length - 1 && part.includes('.')) {
      const v4 = parseIPv4(part);
      if (v4 === undefined) return undefined;
      groups.push(v4 >>> 16, v4 & 0xffff);
    } else if (GROUP.test(part)) {
      groups.push(parseInt(part, 16));
    } else {
      return undefined;
    }
  }
  return groups;
}

export function parseIPv6(text: string): bigint | undefined {
  if (typeof text !== 'string' || text.length > 45 || text.includes('%')) return undefined;
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  let groups: number[];
  if (halves.length === 2) {
    const head = groupsOf(halves[0]!, false);
    const tail = groupsOf(halves[1]!, true);
    // "::" stands for at least one zero group (RFC 4291 section 2.2, form 2)
    if (!head || !tail || head.length + tail.length > 7) return undefined;
    groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  } else {
    const all = groupsOf(text, true);
    if (!all || all.length !== 8) return undefined;
    groups = all;
  }
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
}

export function formatIPv6(value: bigint): string {
  const groups = Array.from({ length: 8 }, (_, i) => Number((value >> BigInt(112 - 16 * i)) & 0xffffn));
  // The longest run of zero groups, the first when two are as long; a single zero group stays "0" (RFC 5952 4.2).
  let best = { start: -1, length: 1 };
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > best.length) best = { start: i, length: j - i };
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best.start === -1) return hex.join(':');
  return `${hex.slice(0, best.start).join(':')}::${hex.slice(best.start + best.length).join(':')}`;
}

export function requireIPv6(text: string, what = 'address'): bigint {
  const value = parseIPv6(text);
  if (value === undefined) throw new VxnetError('invalid_address', `${what} ${quote(text)} is not a valid IPv6 address.`);
  return value;
}

/** True for text that is an IPv6 address in any RFC 4291 form. */
export const isIPv6 = (text: string): boolean => parseIPv6(text) !== undefined;

export function maskOf6(prefix: number): bigint {
  return prefix === 0 ? 0n : (ALL_ONES << BigInt(128 - prefix)) & ALL_ONES;
}

/** Parses "addr/n" strictly: host bits must be zero (a subnet, not an interface address). */
export function parseCidr6(text: string): Cidr6 | undefined {
  if (typeof text !== 'string') return undefined;
  const slash = text.lastIndexOf('/');
  if (slash === -1 || !/^\d{1,3}$/.test(text.slice(slash + 1))) return undefined;
  const address = parseIPv6(text.slice(0, slash));
  const prefix = Number(text.slice(slash + 1));
  if (address === undefined || prefix > 128) return undefined;
  if ((address & maskOf6(prefix)) !== address) return undefined;
  return { network: address, prefix };
}

/**
 * Why `text` is not a subnet parseCidr6 accepts, the clause after "is not a valid IPv6 subnet: ", one cause
 * each, as whyNotCidr does for IPv4.
 */
export function whyNotCidr6(text: string): string {
  const example = 'such as fd00:1::/64';
  if (typeof text !== 'string') return `write it as an address and a prefix length, ${example}`;
  const slash = text.lastIndexOf('/');
  const address = slash === -1 ? text : text.slice(0, slash);
  const parsed = parseIPv6(address);
  if (parsed === undefined) return `write it as an IPv6 address and a prefix length, ${example}`;
  if (slash === -1) return `the prefix length is missing, as in ${address}/64`;
  const prefixText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > 128) return `the prefix length after "/" must be a number from 0 to 128, as in ${address}/64`;
  const prefix = Number(prefixText);
  return `its host bits are set, the subnet of ${address}/${prefix} is ${formatIPv6(parsed & maskOf6(prefix))}/${prefix}`;
}

export function requireCidr6(text: string): Cidr6 {
  const cidr = parseCidr6(text);
  if (!cidr) throw new VxnetError('invalid_cidr', `subnet ${quote(text)} is not a valid IPv6 subnet: ${whyNotCidr6(text)}.`);
  return cidr;
}

export function formatCidr6(cidr: Cidr6): string {
  return `${formatIPv6(cidr.network)}/${cidr.prefix}`;
}

export function contains6(cidr: Cidr6, address: bigint): boolean {
  return (address & maskOf6(cidr.prefix)) === cidr.network;
}

export function overlaps6(a: Cidr6, b: Cidr6): boolean {
  const mask = maskOf6(Math.min(a.prefix, b.prefix));
  return (a.network & mask) === (b.network & mask);
}

/**
 * The addresses an endpoint may get: all but the network address itself, which is the Subnet-Router anycast
 * address (RFC 4291 section 2.6.1). IPv6 has no broadcast address to keep free.
 */
export function usableRange6(cidr: Cidr6): { first: bigint; last: bigint } {
  const last = cidr.network | (~maskOf6(cidr.prefix) & ALL_ONES);
  if (cidr.prefix === 128) return { first: cidr.network, last };
  return { first: cidr.network + 1n, last };
}

/**
 * Solicited-node multicast address of `address` (RFC 4291 section 2.7.1): ff02::1:ffXX:XXXX with the low 24
 * bits, where neighbour solicitations for it are sent.
 */
export function solicitedNodeAddress(address: bigint): bigint {
  return 0xff020000000000000000000000000000n | 0x1ff000000n | (address & 0xffffffn);
}

/**
 * A MAC for an endpoint without an IPv4 address: 02:79 (locally administered, unicast; one above the IPv4
 * form's 02:78, so the two never collide) and the address's low 32 bits. Stable across restarts and hosts like
 * the IPv4 form; unique within a network as long as its endpoints' addresses differ in their low 32 bits.
 */
export function macForIPv6(address: bigint): string {
  const low = Number(address & 0xffffffffn);
  const bytes = [0x02, 0x79, low >>> 24, (low >>> 16) & 255, (low >>> 8) & 255, low & 255];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** 16 bytes, network order. */
export function ipv6Bytes(value: bigint): Uint8Array {
  const bytes = new Uint8Array(16);
  for (let i = 15, v = value; i >= 0; i--, v >>= 8n) bytes[i] = Number(v & 0xffn);
  return bytes;
}

export function ipv6FromBytes(bytes: Uint8Array, offset = 0): bigint {
  let value = 0n;
  for (let i = 0; i < 16; i++) value = (value << 8n) | BigInt(bytes[offset + i]!);
  return value;
}
