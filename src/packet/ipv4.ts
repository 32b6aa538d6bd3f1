/**
 * IPv4 headers (RFC 791). The encoder computes the header checksum; the decoder reports whether it
 * verifies instead of throwing, so a capture with a bad checksum can still be inspected. The payload is
 * cut at Total Length, which drops Ethernet padding.
 *
 * Decoders throw PacketError on truncated or malformed input (see bytes.ts).
 */
import { checkInt, internetChecksum, need, PacketError, readIPv4, view, writeIPv4 } from './bytes.ts';

/** Protocol numbers (IANA "Assigned Internet Protocol Numbers"). */
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

/** Header without options: IHL 5 (RFC 791 section 3.1). */
export const IPV4_MIN_HEADER_LENGTH = 20;
/** IHL is 4 bits of 32-bit words: 15 * 4. */
export const IPV4_MAX_HEADER_LENGTH = 60;
export const IPV4_MAX_TOTAL_LENGTH = 0xffff;

export interface Ipv4Header {
  src: string;
  dst: string;
  protocol: number;
  /** Default 64. */
  ttl?: number;
  /** Whole second byte (DSCP << 2 | ECN). Default 0. */
  tos?: number;
  /** Identification. Default 0. */
  id?: number;
  /** DF flag. Default false. */
  dontFragment?: boolean;
  /** MF flag. Default false. */
  moreFragments?: boolean;
  /** Fragment offset in units of 8 bytes, as on the wire (0..8191). Default 0. */
  fragmentOffset?: number;
  /** Options, already encoded; length must be a multiple of 4 and at most 40. Default none. */
  options?: Uint8Array;
}

export interface Ipv4Packet extends Required<Ipv4Header> {
  /** IHL * 4. */
  headerLength: number;
  totalLength: number;
  checksum: number;
  checksumValid: boolean;
  /** Bytes from the end of the header to Total Length. */
  payload: Uint8Array;
}

export function encodeIpv4(header: Ipv4Header, payload: Uint8Array): Uint8Array {
  const options = header.options ?? new Uint8Array(0);
  if (options.length % 4 !== 0 || options.length > IPV4_MAX_HEADER_LENGTH - IPV4_MIN_HEADER_LENGTH) {
    throw new PacketError(`IPv4 options must be a multiple of 4 bytes and at most 40, got ${options.length}.`);
  }
  const headerLength = IPV4_MIN_HEADER_LENGTH + options.length;
  const totalLength = headerLength + payload.length;
  if (totalLength > IPV4_MAX_TOTAL_LENGTH) {
    throw new PacketError(`IPv4 packet of ${totalLength} bytes exceeds the 65535-byte maximum.`);
  }
  const packet = new Uint8Array(totalLength);
  const dv = view(packet);
  packet[0] = 0x40 | (headerLength / 4);
  packet[1] = checkInt(header.tos ?? 0, 0, 0xff, 'IPv4 TOS');
  dv.setUint16(2, totalLength);
  dv.setUint16(4, checkInt(header.id ?? 0, 0, 0xffff, 'IPv4 identification'));
  const fragmentOffset = checkInt(header.fragmentOffset ?? 0, 0, 0x1fff, 'IPv4 fragment offset');
  dv.setUint16(6, (header.dontFragment ? 0x4000 : 0) | (header.moreFragments ? 0x2000 : 0) | fragmentOffset);
  packet[8] = checkInt(header.ttl ?? 64, 0, 0xff, 'IPv4 TTL');
  packet[9] = checkInt(header.protocol, 0, 0xff, 'IPv4 protocol');
  writeIPv4(packet, 12, header.src, 'IPv4 source');
  writeIPv4(packet, 16, header.dst, 'IPv4 destination');
  packet.set(options, IPV4_MIN_HEADER_LENGTH);
  dv.setUint16(10, internetChecksum(packet.subarray(0, headerLength)));
  packet.set(payload, headerLength);
  return packet;
}

/** Checks version and lengths and returns IHL * 4 and Total Length; throws PacketError otherwise. */
function checkedLengths(bytes: Uint8Array): { headerLength: number; totalLength: number } {
  need(bytes, IPV4_MIN_HEADER_LENGTH, 'IPv4 header');
  const version = bytes[0]! >>> 4;
  if (version !== 4) throw new PacketError(`IPv4 header has version ${version}.`);
  const headerLength = (bytes[0]! & 0x0f) * 4;
  if (headerLength < IPV4_MIN_HEADER_LENGTH) throw new PacketError(`IPv4 header length ${headerLength} is below 20.`);
  need(bytes, headerLength, 'IPv4 header with options');
  const totalLength = view(bytes).getUint16(2);
  if (totalLength < headerLength) {
    throw new PacketError(`IPv4 total length ${totalLength} is shorter than its header (${headerLength}).`);
  }
  need(bytes, totalLength, 'IPv4 packet');
  return { headerLength, totalLength };
}

export function decodeIpv4(bytes: Uint8Array): Ipv4Packet {
  const { headerLength, totalLength } = checkedLengths(bytes);
  const dv = view(bytes);
  const flags = dv.getUint16(6);
  return {
    tos: bytes[1]!,
    totalLength,
    id: dv.getUint16(4),
    dontFragment: (flags & 0x4000) !== 0,
    moreFragments: (flags & 0x2000) !== 0,
    fragmentOffset: flags & 0x1fff,
    ttl: bytes[8]!,
    protocol: bytes[9]!,
    checksum: dv.getUint16(10),
    checksumValid: internetChecksum(bytes.subarray(0, headerLength)) === 0,
    src: readIPv4(bytes, 12),
    dst: readIPv4(bytes, 16),
    headerLength,
    options: bytes.subarray(IPV4_MIN_HEADER_LENGTH, headerLength),
    payload: bytes.subarray(headerLength, totalLength),
  };
}

/** True when the header checksum of the IPv4 packet at the start of `bytes` verifies. */
export function verifyIpv4Checksum(bytes: Uint8Array): boolean {
  const { headerLength } = checkedLengths(bytes);
  return internetChecksum(bytes.subarray(0, headerLength)) === 0;
}
