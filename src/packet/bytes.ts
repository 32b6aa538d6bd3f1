/**
 * Shared helpers for the packet codecs: the decode error, bounds checks, big-endian field access, the
 * Internet checksum (RFC 1071) and IPv4 addresses as 4 bytes.
 *
 * Convention for every decoder in src/packet: input that is too short or malformed throws a PacketError
 * naming the layer and what is wrong; nothing is ever read out of bounds. Decoders return views
 * (subarray) into the input instead of copies, so callers must copy if they keep data past the buffer's
 * lifetime. Encoders return a fresh Uint8Array.
 */
import { formatIPv4, parseIPv4 } from '../core/ipv4.ts';
import { formatIPv6, ipv6Bytes, ipv6FromBytes, parseIPv6 } from '../core/ipv6.ts';

/**
 * Not in the error catalogue: the codecs read what the tests and tools capture, never a user's request, so
 * there is no answer to translate it into.
 */
export class PacketError extends Error {
  override name = 'PacketError';
}

/** Throws unless `bytes` holds at least `length` bytes starting at `offset`. */
export function need(bytes: Uint8Array, length: number, what: string, offset = 0): void {
  if (bytes.length < offset + length) {
    throw new PacketError(`${what} is truncated: need ${offset + length} bytes, have ${bytes.length}.`);
  }
}

export function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Throws unless `value` is an integer in min..max. */
export function checkInt(value: number, min: number, max: number, what: string): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new PacketError(`${what} must be an integer in ${min}..${max}, got ${value}.`);
  }
  return value;
}

/**
 * One's complement sum of 16-bit big-endian words, folded to 16 bits but not complemented (RFC 1071
 * section 4.1). An odd trailing byte is padded with zero. `initial` chains sums across several blocks
 * (e.g. a pseudo-header and a segment); every block but the last must have even length.
 */
export function onesComplementSum(bytes: Uint8Array, initial = 0): number {
  let sum = initial;
  const even = bytes.length & ~1;
  for (let i = 0; i < even; i += 2) sum += (bytes[i]! << 8) | bytes[i + 1]!;
  if (even !== bytes.length) sum += bytes[even]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** The Internet checksum: complement of the one's complement sum. Over data including a correct checksum it is 0. */
export function internetChecksum(bytes: Uint8Array, initial = 0): number {
  return ~onesComplementSum(bytes, initial) & 0xffff;
}

/** "a.b.c.d" -> 4 bytes written at `offset`. */
export function writeIPv4(target: Uint8Array, offset: number, address: string, what: string): void {
  const value = parseIPv4(address);
  if (value === undefined) throw new PacketError(`${what} "${address}" is not a valid IPv4 address.`);
  view(target).setUint32(offset, value);
}

export function readIPv4(source: Uint8Array, offset: number): string {
  return formatIPv4(view(source).getUint32(offset));
}

/** Any RFC 4291 text form -> 16 bytes written at `offset`. */
export function writeIPv6(target: Uint8Array, offset: number, address: string, what: string): void {
  const value = parseIPv6(address);
  if (value === undefined) throw new PacketError(`${what} "${address}" is not a valid IPv6 address.`);
  target.set(ipv6Bytes(value), offset);
}

/** 16 bytes at `offset` -> the RFC 5952 text form. */
export function readIPv6(source: Uint8Array, offset: number): string {
  return formatIPv6(ipv6FromBytes(source, offset));
}
