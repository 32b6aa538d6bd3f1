/**
 * Ethernet II frames (IEEE 802.3 with an EtherType, as every IP stack sends them), with an optional single
 * IEEE 802.1Q tag. Frames here carry no preamble and no FCS, exactly what a packet socket, a tap device or
 * a pcap file holds. The encoder does not pad to the 60-byte minimum; the kernel or NIC does that, and the
 * decoders of the upper layers use their own length fields, so padding is harmless on decode.
 *
 * Decoders throw PacketError on truncated input (see bytes.ts).
 */
import { checkInt, need, PacketError, view } from './bytes.ts';

/** EtherTypes, IEEE registry (https://standards-oui.ieee.org/ethertype/). */
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV6 = 0x86dd;
/** Tag Protocol Identifier of an 802.1Q (VLAN) tag. */
export const ETHERTYPE_VLAN = 0x8100;

/** Destination 6 + source 6 + EtherType 2. */
export const ETHERNET_HEADER_LENGTH = 14;
/** TPID 2 + TCI 2, inserted before the EtherType. */
export const VLAN_TAG_LENGTH = 4;
export const BROADCAST_MAC = 'ff:ff:ff:ff:ff:ff';

export interface VlanTag {
  /** VLAN identifier, 0..4095 (0 = priority tag only, 4095 reserved). */
  vid: number;
  /** Priority code point, 0..7. Default 0. */
  pcp?: number;
  /** Drop eligible indicator. Default false. */
  dei?: boolean;
}

export interface EthernetHeader {
  dst: string;
  src: string;
  /** EtherType of the payload (after the VLAN tag when there is one). */
  ethertype: number;
  vlan?: VlanTag;
}

export interface EthernetFrame extends EthernetHeader {
  /** Everything after the header, including any padding. */
  payload: Uint8Array;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** "aa:bb:cc:dd:ee:ff" in either case. */
export const isMac = (value: unknown): value is string => typeof value === 'string' && MAC.test(value);

/** "aa:bb:cc:dd:ee:ff" (either case) -> 6 bytes. Throws PacketError on anything else. */
export function parseMac(text: string): Uint8Array {
  if (!isMac(text)) {
    throw new PacketError(`MAC address "${text}" is not of the form aa:bb:cc:dd:ee:ff.`);
  }
  return Uint8Array.from(text.split(':'), (part) => parseInt(part, 16));
}

/** 6 bytes at `offset` -> "aa:bb:cc:dd:ee:ff" (lower case). */
export function formatMac(bytes: Uint8Array, offset = 0): string {
  need(bytes, 6, 'MAC address', offset);
  return Array.from(bytes.subarray(offset, offset + 6), (b) => b.toString(16).padStart(2, '0')).join(':');
}

export function ethernetHeaderLength(header: EthernetHeader): number {
  return ETHERNET_HEADER_LENGTH + (header.vlan ? VLAN_TAG_LENGTH : 0);
}

export function encodeEthernet(header: EthernetHeader, payload: Uint8Array): Uint8Array {
  const headerLength = ethernetHeaderLength(header);
  const frame = new Uint8Array(headerLength + payload.length);
  const dv = view(frame);
  frame.set(parseMac(header.dst), 0);
  frame.set(parseMac(header.src), 6);
  let offset = 12;
  if (header.vlan) {
    const vid = checkInt(header.vlan.vid, 0, 4095, 'VLAN id');
    const pcp = checkInt(header.vlan.pcp ?? 0, 0, 7, 'VLAN priority');
    dv.setUint16(offset, ETHERTYPE_VLAN);
    dv.setUint16(offset + 2, (pcp << 13) | (header.vlan.dei ? 0x1000 : 0) | vid);
    offset += VLAN_TAG_LENGTH;
  }
  dv.setUint16(offset, checkInt(header.ethertype, 0, 0xffff, 'EtherType'));
  frame.set(payload, headerLength);
  return frame;
}

export function decodeEthernet(frame: Uint8Array): EthernetFrame {
  need(frame, ETHERNET_HEADER_LENGTH, 'Ethernet header');
  const dv = view(frame);
  const dst = formatMac(frame, 0);
  const src = formatMac(frame, 6);
  let ethertype = dv.getUint16(12);
  if (ethertype !== ETHERTYPE_VLAN) return { dst, src, ethertype, payload: frame.subarray(ETHERNET_HEADER_LENGTH) };
  need(frame, ETHERNET_HEADER_LENGTH + VLAN_TAG_LENGTH, '802.1Q-tagged Ethernet header');
  const tci = dv.getUint16(14);
  ethertype = dv.getUint16(16);
  const vlan: VlanTag = { vid: tci & 0x0fff, pcp: tci >>> 13, dei: (tci & 0x1000) !== 0 };
  return { dst, src, ethertype, vlan, payload: frame.subarray(ETHERNET_HEADER_LENGTH + VLAN_TAG_LENGTH) };
}
