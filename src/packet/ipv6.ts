/**
 * IPv6 fixed headers (RFC 8200 section 3) and the pseudo-header sum upper-layer checksums cover (section 8.1).
 * Extension headers are not walked: the decoder reports Next Header as it is and returns everything after the
 * fixed header as the payload, which is what vxnet's own traffic (ICMPv6, UDP, TCP) looks like. The payload is
 * cut at Payload Length, which drops Ethernet padding.
 *
 * Decoders throw PacketError on truncated or malformed input (see bytes.ts).
 */
import { checkInt, need, onesComplementSum, PacketError, readIPv6, view, writeIPv6 } from './bytes.ts';

/** Next Header values (IANA "Assigned Internet Protocol Numbers"); TCP and UDP share IPv4's numbers. */
export const IPPROTO_ICMPV6 = 58;
export const IPPROTO_IPV6_FRAGMENT = 44;

export const IPV6_HEADER_LENGTH = 40;
export const IPV6_MAX_PAYLOAD_LENGTH = 0xffff;

export interface Ipv6Header {
  src: string;
  dst: string;
  nextHeader: number;
  /** Default 64. */
  hopLimit?: number;
  /** Default 0. */
  trafficClass?: number;
  /** 20 bits. Default 0. */
  flowLabel?: number;
}

export interface Ipv6Packet extends Required<Ipv6Header> {
  payloadLength: number;
  /** Bytes after the fixed header, up to Payload Length. */
  payload: Uint8Array;
}

export function encodeIpv6(header: Ipv6Header, payload: Uint8Array): Uint8Array {
  if (payload.length > IPV6_MAX_PAYLOAD_LENGTH) {
    throw new PacketError(`IPv6 payload of ${payload.length} bytes exceeds the 65535-byte maximum (jumbograms are not supported).`);
  }
  const packet = new Uint8Array(IPV6_HEADER_LENGTH + payload.length);
  const dv = view(packet);
  const trafficClass = checkInt(header.trafficClass ?? 0, 0, 0xff, 'IPv6 traffic class');
  const flowLabel = checkInt(header.flowLabel ?? 0, 0, 0xfffff, 'IPv6 flow label');
  dv.setUint32(0, ((6 << 28) | (trafficClass << 20) | flowLabel) >>> 0);
  dv.setUint16(4, payload.length);
  packet[6] = checkInt(header.nextHeader, 0, 0xff, 'IPv6 next header');
  packet[7] = checkInt(header.hopLimit ?? 64, 0, 0xff, 'IPv6 hop limit');
  writeIPv6(packet, 8, header.src, 'IPv6 source');
  writeIPv6(packet, 24, header.dst, 'IPv6 destination');
  packet.set(payload, IPV6_HEADER_LENGTH);
  return packet;
}

export function decodeIpv6(bytes: Uint8Array): Ipv6Packet {
  need(bytes, IPV6_HEADER_LENGTH, 'IPv6 header');
  const dv = view(bytes);
  const first = dv.getUint32(0);
  const version = first >>> 28;
  if (version !== 6) throw new PacketError(`IPv6 header has version ${version}.`);
  const payloadLength = dv.getUint16(4);
  need(bytes, IPV6_HEADER_LENGTH + payloadLength, 'IPv6 packet');
  return {
    trafficClass: (first >>> 20) & 0xff,
    flowLabel: first & 0xfffff,
    payloadLength,
    nextHeader: bytes[6]!,
    hopLimit: bytes[7]!,
    src: readIPv6(bytes, 8),
    dst: readIPv6(bytes, 24),
    payload: bytes.subarray(IPV6_HEADER_LENGTH, IPV6_HEADER_LENGTH + payloadLength),
  };
}

/**
 * Folded one's complement sum (not complemented) of the IPv6 pseudo-header: source, destination, the
 * upper-layer packet length as 32 bits, three zero bytes and the Next Header (RFC 8200 section 8.1).
 */
export function ipv6PseudoHeaderSum(src: string, dst: string, upperLayerLength: number, nextHeader: number): number {
  const pseudo = new Uint8Array(40);
  writeIPv6(pseudo, 0, src, 'pseudo-header source');
  writeIPv6(pseudo, 16, dst, 'pseudo-header destination');
  view(pseudo).setUint32(32, upperLayerLength);
  pseudo[39] = nextHeader;
  return onesComplementSum(pseudo);
}
