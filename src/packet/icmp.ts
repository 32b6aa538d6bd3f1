/**
 * ICMP echo request and reply (RFC 792), the messages ping sends. The checksum covers the whole ICMP
 * message (header and data), with no pseudo-header.
 *
 * Decoders throw PacketError on truncated input or on a type other than echo (see bytes.ts).
 */
import { checkInt, internetChecksum, need, PacketError, view } from './bytes.ts';

/** ICMP types, RFC 792. */
export const ICMP_ECHO_REPLY = 0;
export const ICMP_ECHO_REQUEST = 8;
/** type 1 + code 1 + checksum 2 + identifier 2 + sequence 2. */
export const ICMP_ECHO_HEADER_LENGTH = 8;

export interface IcmpEcho {
  /** ICMP_ECHO_REQUEST or ICMP_ECHO_REPLY. */
  type: number;
  /** Default 0. */
  code?: number;
  id: number;
  seq: number;
  /** Default empty. */
  data?: Uint8Array;
}

export interface IcmpEchoPacket extends Required<IcmpEcho> {
  checksum: number;
  checksumValid: boolean;
}

export function encodeIcmpEcho(message: IcmpEcho): Uint8Array {
  if (message.type !== ICMP_ECHO_REQUEST && message.type !== ICMP_ECHO_REPLY) {
    throw new PacketError(`ICMP type ${message.type} is not an echo request (8) or reply (0).`);
  }
  const data = message.data ?? new Uint8Array(0);
  const bytes = new Uint8Array(ICMP_ECHO_HEADER_LENGTH + data.length);
  const dv = view(bytes);
  bytes[0] = message.type;
  bytes[1] = checkInt(message.code ?? 0, 0, 0xff, 'ICMP code');
  dv.setUint16(4, checkInt(message.id, 0, 0xffff, 'ICMP echo identifier'));
  dv.setUint16(6, checkInt(message.seq, 0, 0xffff, 'ICMP echo sequence'));
  bytes.set(data, ICMP_ECHO_HEADER_LENGTH);
  dv.setUint16(2, internetChecksum(bytes));
  return bytes;
}

/** `bytes` is the whole ICMP message (the IPv4 payload): the data runs to its end. */
export function decodeIcmpEcho(bytes: Uint8Array): IcmpEchoPacket {
  need(bytes, ICMP_ECHO_HEADER_LENGTH, 'ICMP echo header');
  const type = bytes[0]!;
  if (type !== ICMP_ECHO_REQUEST && type !== ICMP_ECHO_REPLY) {
    throw new PacketError(`ICMP type ${type} is not an echo request (8) or reply (0).`);
  }
  const dv = view(bytes);
  return {
    type,
    code: bytes[1]!,
    checksum: dv.getUint16(2),
    checksumValid: internetChecksum(bytes) === 0,
    id: dv.getUint16(4),
    seq: dv.getUint16(6),
    data: bytes.subarray(ICMP_ECHO_HEADER_LENGTH),
  };
}

/** True when the checksum of the whole ICMP message verifies. */
export function verifyIcmpChecksum(bytes: Uint8Array): boolean {
  need(bytes, 4, 'ICMP header');
  return internetChecksum(bytes) === 0;
}
