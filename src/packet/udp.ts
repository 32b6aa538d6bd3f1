/**
 * UDP (RFC 768) over IPv4. The checksum covers a pseudo-header (source and destination address, zero,
 * protocol 17, UDP length), the UDP header and the data. Over IPv4 a checksum of 0 means "not computed"
 * and must be accepted; a computed value of 0 is therefore sent as 0xffff. VXLAN senders usually send 0
 * (RFC 7348 section 5).
 *
 * Note for captures: a datagram captured on the sending host, leaving through a device with checksum
 * offload, carries only the folded pseudo-header sum (the kernel's CHECKSUM_PARTIAL; the NIC finishes
 * it). udpPseudoHeaderSum() gives exactly that value.
 *
 * Decoders throw PacketError on truncated or malformed input (see bytes.ts).
 */
import { checkInt, internetChecksum, need, onesComplementSum, PacketError, view, writeIPv4 } from './bytes.ts';
import { IPPROTO_UDP } from './ipv4.ts';

export const UDP_HEADER_LENGTH = 8;

export interface UdpHeader {
  srcPort: number;
  dstPort: number;
}

/** The addresses of the enclosing IPv4 header, for the pseudo-header. */
export interface UdpPseudoHeader {
  src: string;
  dst: string;
}

export interface UdpDatagram extends UdpHeader {
  /** The Length field: header plus data. */
  length: number;
  /** 0 when the sender did not compute one. */
  checksum: number;
  /** Bytes from the end of the header to Length. */
  payload: Uint8Array;
}

/** Folded one's complement sum of the IPv4 pseudo-header (not complemented). */
export function udpPseudoHeaderSum(src: string, dst: string, udpLength: number): number {
  const pseudo = new Uint8Array(12);
  writeIPv4(pseudo, 0, src, 'UDP pseudo-header source');
  writeIPv4(pseudo, 4, dst, 'UDP pseudo-header destination');
  pseudo[9] = IPPROTO_UDP;
  view(pseudo).setUint16(10, udpLength);
  return onesComplementSum(pseudo);
}

/**
 * Encodes a datagram. With `ip`, the checksum is computed over the pseudo-header; without it, the
 * checksum field is 0 ("none").
 */
export function encodeUdp(header: UdpHeader, payload: Uint8Array, ip?: UdpPseudoHeader): Uint8Array {
  const length = UDP_HEADER_LENGTH + payload.length;
  if (length > 0xffff) throw new PacketError(`UDP datagram of ${length} bytes exceeds the 65535-byte maximum.`);
  const bytes = new Uint8Array(length);
  const dv = view(bytes);
  dv.setUint16(0, checkInt(header.srcPort, 0, 0xffff, 'UDP source port'));
  dv.setUint16(2, checkInt(header.dstPort, 0, 0xffff, 'UDP destination port'));
  dv.setUint16(4, length);
  bytes.set(payload, UDP_HEADER_LENGTH);
  if (ip) dv.setUint16(6, udpChecksum(bytes, ip));
  return bytes;
}

function checkedLength(bytes: Uint8Array): number {
  need(bytes, UDP_HEADER_LENGTH, 'UDP header');
  const length = view(bytes).getUint16(4);
  if (length < UDP_HEADER_LENGTH) throw new PacketError(`UDP length ${length} is shorter than its 8-byte header.`);
  need(bytes, length, 'UDP datagram');
  return length;
}

export function decodeUdp(bytes: Uint8Array): UdpDatagram {
  const length = checkedLength(bytes);
  const dv = view(bytes);
  return {
    srcPort: dv.getUint16(0),
    dstPort: dv.getUint16(2),
    length,
    checksum: dv.getUint16(6),
    payload: bytes.subarray(UDP_HEADER_LENGTH, length),
  };
}

/**
 * The checksum the datagram at the start of `bytes` should carry (whatever its checksum field holds now),
 * never 0: a computed 0 is returned as 0xffff.
 */
export function udpChecksum(bytes: Uint8Array, ip: UdpPseudoHeader): number {
  const length = checkedLength(bytes);
  const header = bytes.slice(0, UDP_HEADER_LENGTH);
  header[6] = 0;
  header[7] = 0;
  let sum = udpPseudoHeaderSum(ip.src, ip.dst, length);
  sum = onesComplementSum(header, sum);
  return internetChecksum(bytes.subarray(UDP_HEADER_LENGTH, length), sum) || 0xffff;
}

/** True when the datagram's checksum is 0 ("none", accepted over IPv4) or verifies. */
export function verifyUdpChecksum(bytes: Uint8Array, ip: UdpPseudoHeader): boolean {
  const length = checkedLength(bytes);
  if (view(bytes).getUint16(6) === 0) return true;
  return internetChecksum(bytes.subarray(0, length), udpPseudoHeaderSum(ip.src, ip.dst, length)) === 0;
}
