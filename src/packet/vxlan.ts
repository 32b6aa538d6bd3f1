/**
 * VXLAN (RFC 7348). The 8-byte header of section 5:
 *
 *   byte 0     flags: R R R R I R R R (I = 0x08: the VNI is valid)
 *   bytes 1-3  reserved
 *   bytes 4-6  VXLAN Network Identifier (24 bits)
 *   byte 7     reserved
 *
 * Reserved bits are sent as zero and ignored on receipt, as the RFC requires; a frame without the I flag
 * carries no valid VNI and is not decapsulated. encapsulate()/decapsulate() add or remove the whole outer
 * Ethernet/IPv4/UDP/VXLAN stack (the 50 bytes of overhead) around an inner Ethernet frame.
 *
 * decodeVxlan throws PacketError on truncated input (see bytes.ts). decapsulate returns undefined for
 * frames that are not VXLAN (not IPv4, not UDP, an IP fragment, another port, I flag clear) and throws
 * PacketError when a layer it must read is truncated or malformed. It checks no checksum: the outer IPv4
 * result carries checksumValid, and verifyUdpChecksum() is there for callers that want it (a capture made
 * on the sending host holds offloaded, unfinished UDP checksums).
 */
import { checkInt, need, PacketError, view } from './bytes.ts';
import { decodeEthernet, encodeEthernet, ETHERTYPE_IPV4, type EthernetFrame } from './ethernet.ts';
import { decodeIpv4, encodeIpv4, IPPROTO_UDP, type Ipv4Packet } from './ipv4.ts';
import { decodeUdp, encodeUdp, type UdpDatagram } from './udp.ts';

// the port (IANA, RFC 7348 section 5), the 24-bit VNI range and the 50-byte overhead are the model's (core/model.ts)
import { VNI_MAX, VXLAN_PORT } from '../core/model.ts';
export { VNI_MAX, VXLAN_OVERHEAD, VXLAN_PORT } from '../core/model.ts';
/** The Linux kernel's VXLAN port when none is given; it predates the IANA assignment. */
export const LINUX_DEFAULT_VXLAN_PORT = 8472;
export const VXLAN_HEADER_LENGTH = 8;
/** The I flag: the VNI field is valid (RFC 7348 section 5). */
export const VXLAN_FLAG_I = 0x08;

export interface VxlanHeader {
  /** The whole flags byte as received. */
  flags: number;
  /** The I flag. */
  vniValid: boolean;
  vni: number;
}

export interface VxlanPacket extends VxlanHeader {
  /** The inner Ethernet frame. */
  payload: Uint8Array;
}

function checkVni(vni: number): number {
  if (!Number.isInteger(vni) || vni < 0 || vni > VNI_MAX) {
    throw new PacketError(`VXLAN VNI must be an integer in 0..16777215 (24 bits), got ${vni}.`);
  }
  return vni;
}

/** The 8-byte header with the I flag set and every reserved bit zero. */
export function encodeVxlan(vni: number): Uint8Array {
  const bytes = new Uint8Array(VXLAN_HEADER_LENGTH);
  bytes[0] = VXLAN_FLAG_I;
  view(bytes).setUint32(4, checkVni(vni) * 0x100);
  return bytes;
}

/** Decodes the header, ignoring reserved bits; everything after it is the payload. */
export function decodeVxlan(bytes: Uint8Array): VxlanPacket {
  need(bytes, VXLAN_HEADER_LENGTH, 'VXLAN header');
  const flags = bytes[0]!;
  return {
    flags,
    vniValid: (flags & VXLAN_FLAG_I) !== 0,
    vni: view(bytes).getUint32(4) >>> 8,
    payload: bytes.subarray(VXLAN_HEADER_LENGTH),
  };
}

export interface VxlanOuter {
  srcMac: string;
  dstMac: string;
  srcIp: string;
  dstIp: string;
  /** RFC 7348 recommends a hash of the inner headers, for ECMP entropy. */
  srcPort: number;
  /** Default VXLAN_PORT (4789). */
  dstPort?: number;
  /** Default 64. */
  ttl?: number;
  /** Outer IPv4 identification. Default 0. */
  id?: number;
  /** Default false. */
  dontFragment?: boolean;
  /** Compute the outer UDP checksum. Default false: RFC 7348 section 5 says it SHOULD be sent as zero. */
  udpChecksum?: boolean;
}

export interface EncapsulateOptions {
  outer: VxlanOuter;
  vni: number;
  /** The inner Ethernet frame, without FCS. */
  inner: Uint8Array;
}

/** Wraps an inner Ethernet frame into a whole outer Ethernet/IPv4/UDP/VXLAN frame. */
export function encapsulate({ outer, vni, inner }: EncapsulateOptions): Uint8Array {
  const vxlan = new Uint8Array(VXLAN_HEADER_LENGTH + inner.length);
  vxlan.set(encodeVxlan(vni), 0);
  vxlan.set(inner, VXLAN_HEADER_LENGTH);
  const ports = { srcPort: outer.srcPort, dstPort: checkInt(outer.dstPort ?? VXLAN_PORT, 1, 0xffff, 'VXLAN port') };
  const udp = encodeUdp(ports, vxlan, outer.udpChecksum ? { src: outer.srcIp, dst: outer.dstIp } : undefined);
  const ip = encodeIpv4(
    {
      src: outer.srcIp,
      dst: outer.dstIp,
      protocol: IPPROTO_UDP,
      ttl: outer.ttl ?? 64,
      id: outer.id ?? 0,
      dontFragment: outer.dontFragment ?? false,
    },
    udp,
  );
  return encodeEthernet({ dst: outer.dstMac, src: outer.srcMac, ethertype: ETHERTYPE_IPV4 }, ip);
}

export interface DecapsulatedIpv4 {
  outerIp: Ipv4Packet;
  outerUdp: UdpDatagram;
  vni: number;
  /** The whole flags byte, reserved bits included. */
  flags: number;
  /** The inner Ethernet frame (a view into the input). */
  inner: Uint8Array;
}

export interface Decapsulated extends DecapsulatedIpv4 {
  outerEthernet: EthernetFrame;
}

/**
 * Like decapsulate() but starting at the outer IPv4 header, for captures without an Ethernet header
 * (Linux cooked captures, raw IP).
 */
export function decapsulateIpv4(packet: Uint8Array, port = VXLAN_PORT): DecapsulatedIpv4 | undefined {
  const outerIp = decodeIpv4(packet);
  if (outerIp.protocol !== IPPROTO_UDP) return undefined;
  // Only an unfragmented datagram holds the UDP header and the whole VXLAN payload.
  if (outerIp.moreFragments || outerIp.fragmentOffset !== 0) return undefined;
  const outerUdp = decodeUdp(outerIp.payload);
  if (outerUdp.dstPort !== port) return undefined;
  const vxlan = decodeVxlan(outerUdp.payload);
  if (!vxlan.vniValid) return undefined;
  return { outerIp, outerUdp, vni: vxlan.vni, flags: vxlan.flags, inner: vxlan.payload };
}

/** Unwraps an outer Ethernet frame sent to UDP `port`; undefined when it is not VXLAN. */
export function decapsulate(frame: Uint8Array, port = VXLAN_PORT): Decapsulated | undefined {
  const outerEthernet = decodeEthernet(frame);
  if (outerEthernet.ethertype !== ETHERTYPE_IPV4) return undefined;
  const rest = decapsulateIpv4(outerEthernet.payload, port);
  return rest && { outerEthernet, ...rest };
}
