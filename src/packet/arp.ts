/**
 * ARP for IPv4 over Ethernet (RFC 826): the only combination an overlay bridge sees. The decoder rejects
 * other hardware/protocol types rather than guessing at their address lengths.
 *
 * Decoders throw PacketError on truncated or unsupported input (see bytes.ts).
 */
import { checkInt, need, PacketError, readIPv4, view, writeIPv4 } from './bytes.ts';
import { ETHERTYPE_IPV4, formatMac, parseMac } from './ethernet.ts';

/** Operation codes, RFC 826 (ares_op$REQUEST, ares_op$REPLY). */
export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;
/** Hardware type Ethernet (IANA ARP parameters). */
export const ARP_HTYPE_ETHERNET = 1;
/** htype 2 + ptype 2 + hlen 1 + plen 1 + op 2 + 2 * (MAC 6 + IPv4 4). */
export const ARP_LENGTH = 28;

export interface ArpPacket {
  /** ARP_REQUEST or ARP_REPLY (other values are decoded as they are). */
  op: number;
  senderMac: string;
  senderIp: string;
  /** 00:00:00:00:00:00 in a request. */
  targetMac: string;
  targetIp: string;
}

export function encodeArp(packet: ArpPacket): Uint8Array {
  const bytes = new Uint8Array(ARP_LENGTH);
  const dv = view(bytes);
  dv.setUint16(0, ARP_HTYPE_ETHERNET);
  dv.setUint16(2, ETHERTYPE_IPV4);
  bytes[4] = 6;
  bytes[5] = 4;
  dv.setUint16(6, checkInt(packet.op, 0, 0xffff, 'ARP operation'));
  bytes.set(parseMac(packet.senderMac), 8);
  writeIPv4(bytes, 14, packet.senderIp, 'ARP sender address');
  bytes.set(parseMac(packet.targetMac), 18);
  writeIPv4(bytes, 24, packet.targetIp, 'ARP target address');
  return bytes;
}

/** Decodes the first 28 bytes; anything after (Ethernet padding) is ignored. */
export function decodeArp(bytes: Uint8Array): ArpPacket {
  need(bytes, ARP_LENGTH, 'ARP packet');
  const dv = view(bytes);
  const htype = dv.getUint16(0);
  const ptype = dv.getUint16(2);
  if (htype !== ARP_HTYPE_ETHERNET || ptype !== ETHERTYPE_IPV4 || bytes[4] !== 6 || bytes[5] !== 4) {
    throw new PacketError(
      `ARP packet is not Ethernet/IPv4 (htype ${htype}, ptype 0x${ptype.toString(16)}, hlen ${bytes[4]}, plen ${bytes[5]}).`,
    );
  }
  return {
    op: dv.getUint16(6),
    senderMac: formatMac(bytes, 8),
    senderIp: readIPv4(bytes, 14),
    targetMac: formatMac(bytes, 18),
    targetIp: readIPv4(bytes, 24),
  };
}
