/**
 * ICMPv6 (RFC 4443) echo, and the Neighbor Discovery messages (RFC 4861) that an IPv6 network sends where an
 * IPv4 one sends ARP: neighbour solicitation and advertisement with their link-layer address options, and
 * router solicitation and advertisement, recognised by type. Unlike ICMP for IPv4, the checksum covers the
 * IPv6 pseudo-header, so encoding and verifying need the enclosing packet's addresses.
 *
 * Decoders throw PacketError on truncated or malformed input (see bytes.ts).
 */
import { checkInt, internetChecksum, need, PacketError, readIPv6, view, writeIPv6 } from './bytes.ts';
import { formatMac, parseMac } from './ethernet.ts';
import { IPPROTO_ICMPV6, ipv6PseudoHeaderSum } from './ipv6.ts';

/** ICMPv6 types, RFC 4443 section 2.1 and RFC 4861 section 4. */
export const ICMPV6_ECHO_REQUEST = 128;
export const ICMPV6_ECHO_REPLY = 129;
export const ICMPV6_ROUTER_SOLICITATION = 133;
export const ICMPV6_ROUTER_ADVERTISEMENT = 134;
export const ICMPV6_NEIGHBOR_SOLICITATION = 135;
export const ICMPV6_NEIGHBOR_ADVERTISEMENT = 136;

/** Neighbor Discovery option types, RFC 4861 section 4.6. */
export const ND_OPTION_SOURCE_LINK_LAYER = 1;
export const ND_OPTION_TARGET_LINK_LAYER = 2;

/** The addresses of the enclosing IPv6 header, for the pseudo-header. */
export interface Icmpv6PseudoHeader {
  src: string;
  dst: string;
}

export type Icmpv6Message =
  | { type: typeof ICMPV6_ECHO_REQUEST | typeof ICMPV6_ECHO_REPLY; id: number; seq: number; data?: Uint8Array }
  | {
      type: typeof ICMPV6_NEIGHBOR_SOLICITATION;
      target: string;
      /** the sender's MAC (Source Link-Layer Address option); absent in duplicate address detection */
      sourceMac?: string;
    }
  | {
      type: typeof ICMPV6_NEIGHBOR_ADVERTISEMENT;
      target: string;
      router?: boolean;
      solicited?: boolean;
      override?: boolean;
      /** the target's MAC (Target Link-Layer Address option) */
      targetMac?: string;
    };

/** What decodeIcmpv6 read, told apart by `kind` (a bare `type: number` for the rest would blur the union). */
export type DecodedIcmpv6 =
  | ({ kind: 'echo'; data: Uint8Array } & Extract<Icmpv6Message, { type: typeof ICMPV6_ECHO_REQUEST | typeof ICMPV6_ECHO_REPLY }>)
  | ({ kind: 'neighbor-solicitation' } & Extract<Icmpv6Message, { type: typeof ICMPV6_NEIGHBOR_SOLICITATION }>)
  | ({ kind: 'neighbor-advertisement' } & Extract<Icmpv6Message, { type: typeof ICMPV6_NEIGHBOR_ADVERTISEMENT }>)
  /** any other type (router solicitation and advertisement among them): type and code only */
  | { kind: 'other'; type: number; code: number };

/** type, code, checksum: the header every ICMPv6 message starts with */
const HEADER_LENGTH = 4;
/** header + identifier 2 + sequence 2 */
const ECHO_LENGTH = 8;
/** header + flags/reserved 4 + target 16 */
const ND_LENGTH = 24;
/** a link-layer address option for Ethernet: type 1 + length 1 (in units of 8 bytes) + MAC 6 */
const LINK_LAYER_OPTION_LENGTH = 8;

function linkLayerOption(type: number, mac: string): Uint8Array {
  const option = new Uint8Array(LINK_LAYER_OPTION_LENGTH);
  option[0] = type;
  option[1] = 1;
  option.set(parseMac(mac), 2);
  return option;
}

/** The whole message, checksum included, for an IPv6 packet from `ip.src` to `ip.dst`. */
export function encodeIcmpv6(message: Icmpv6Message, ip: Icmpv6PseudoHeader): Uint8Array {
  let bytes: Uint8Array;
  if (message.type === ICMPV6_ECHO_REQUEST || message.type === ICMPV6_ECHO_REPLY) {
    const data = message.data ?? new Uint8Array(0);
    bytes = new Uint8Array(ECHO_LENGTH + data.length);
    view(bytes).setUint16(4, checkInt(message.id, 0, 0xffff, 'ICMPv6 echo identifier'));
    view(bytes).setUint16(6, checkInt(message.seq, 0, 0xffff, 'ICMPv6 echo sequence'));
    bytes.set(data, ECHO_LENGTH);
  } else if (message.type === ICMPV6_NEIGHBOR_SOLICITATION || message.type === ICMPV6_NEIGHBOR_ADVERTISEMENT) {
    const solicitation = message.type === ICMPV6_NEIGHBOR_SOLICITATION;
    const mac = solicitation ? message.sourceMac : message.targetMac;
    bytes = new Uint8Array(ND_LENGTH + (mac === undefined ? 0 : LINK_LAYER_OPTION_LENGTH));
    if (!solicitation) bytes[4] = (message.router ? 0x80 : 0) | (message.solicited ? 0x40 : 0) | (message.override ? 0x20 : 0);
    writeIPv6(bytes, 8, message.target, 'ND target');
    if (mac !== undefined) bytes.set(linkLayerOption(solicitation ? ND_OPTION_SOURCE_LINK_LAYER : ND_OPTION_TARGET_LINK_LAYER, mac), ND_LENGTH);
  } else {
    throw new PacketError(`ICMPv6 type ${(message as { type: number }).type} cannot be encoded here.`);
  }
  bytes[0] = message.type;
  view(bytes).setUint16(2, icmpv6Checksum(bytes, ip));
  return bytes;
}

/** The checksum field's value for `bytes` (whose own checksum field is taken as zero). */
export function icmpv6Checksum(bytes: Uint8Array, ip: Icmpv6PseudoHeader): number {
  need(bytes, HEADER_LENGTH, 'ICMPv6 header');
  // a copy, not bytes.slice(): on a Buffer that is a view, and zeroing its checksum would change the caller's bytes
  const copy = new Uint8Array(bytes);
  copy[2] = 0;
  copy[3] = 0;
  return internetChecksum(copy, ipv6PseudoHeaderSum(ip.src, ip.dst, bytes.length, IPPROTO_ICMPV6));
}

export function verifyIcmpv6Checksum(bytes: Uint8Array, ip: Icmpv6PseudoHeader): boolean {
  need(bytes, HEADER_LENGTH, 'ICMPv6 header');
  return internetChecksum(bytes, ipv6PseudoHeaderSum(ip.src, ip.dst, bytes.length, IPPROTO_ICMPV6)) === 0;
}

/** The MAC of the first link-layer address option of `wanted` type among the ND options in `options`. */
function findLinkLayerAddress(options: Uint8Array, wanted: number): string | undefined {
  for (let offset = 0; offset < options.length; ) {
    need(options, 2, 'ND option', offset);
    const length = options[offset + 1]! * 8;
    // a zero length would loop forever: RFC 4861 section 4.6 says to discard such a packet
    if (length === 0) throw new PacketError('ND option has length 0.');
    need(options, length, 'ND option', offset);
    if (options[offset] === wanted && length >= LINK_LAYER_OPTION_LENGTH) return formatMac(options, offset + 2);
    offset += length;
  }
  return undefined;
}

/** `bytes` is the whole ICMPv6 message (the IPv6 payload). The checksum is not checked: verifyIcmpv6Checksum. */
export function decodeIcmpv6(bytes: Uint8Array): DecodedIcmpv6 {
  need(bytes, HEADER_LENGTH, 'ICMPv6 header');
  const type = bytes[0]!;
  if (type === ICMPV6_ECHO_REQUEST || type === ICMPV6_ECHO_REPLY) {
    need(bytes, ECHO_LENGTH, 'ICMPv6 echo');
    const dv = view(bytes);
    return { kind: 'echo', type, id: dv.getUint16(4), seq: dv.getUint16(6), data: bytes.subarray(ECHO_LENGTH) };
  }
  if (type === ICMPV6_NEIGHBOR_SOLICITATION) {
    need(bytes, ND_LENGTH, 'neighbour solicitation');
    const sourceMac = findLinkLayerAddress(bytes.subarray(ND_LENGTH), ND_OPTION_SOURCE_LINK_LAYER);
    return { kind: 'neighbor-solicitation', type, target: readIPv6(bytes, 8), ...(sourceMac === undefined ? {} : { sourceMac }) };
  }
  if (type === ICMPV6_NEIGHBOR_ADVERTISEMENT) {
    need(bytes, ND_LENGTH, 'neighbour advertisement');
    const flags = bytes[4]!;
    const targetMac = findLinkLayerAddress(bytes.subarray(ND_LENGTH), ND_OPTION_TARGET_LINK_LAYER);
    return {
      kind: 'neighbor-advertisement',
      type,
      target: readIPv6(bytes, 8),
      router: (flags & 0x80) !== 0,
      solicited: (flags & 0x40) !== 0,
      override: (flags & 0x20) !== 0,
      ...(targetMac === undefined ? {} : { targetMac }),
    };
  }
  return { kind: 'other', type, code: bytes[1]! };
}
