/**
 * Classic libpcap capture files (the format `tcpdump -w` writes; pcapng is not handled), described in
 * draft-ietf-opsawg-pcap. A 24-byte global header, then records of a 16-byte header and the captured
 * bytes. The magic number tells the byte order of every header field and the timestamp resolution:
 * 0xa1b2c3d4 for microseconds, 0xa1b23c4d for nanoseconds, either of them byte-swapped.
 *
 * Link types (https://www.tcpdump.org/linktypes.html): 1 is Ethernet; 113 (LINUX_SLL) and 276
 * (LINUX_SLL2) are the "cooked" headers of captures made on the Linux "any" device, which replace the
 * link-layer header with a fixed one holding the packet direction and the EtherType. linkPayload() finds
 * the network-layer packet and its EtherType for all three.
 *
 * Readers throw PacketError on truncated or unknown input (see bytes.ts); the writer makes files the
 * reader, tcpdump and Wireshark read.
 */
import { checkInt, need, PacketError, view } from './bytes.ts';
import { decodeEthernet } from './ethernet.ts';

export const PCAP_MAGIC_MICROS = 0xa1b2c3d4;
export const PCAP_MAGIC_NANOS = 0xa1b23c4d;
const PCAPNG_MAGIC = 0x0a0d0d0a;
export const PCAP_GLOBAL_HEADER_LENGTH = 24;
export const PCAP_RECORD_HEADER_LENGTH = 16;

export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_LINUX_SLL = 113;
export const LINKTYPE_LINUX_SLL2 = 276;

/** sll_pkttype values (linux/if_packet.h): the direction of a cooked packet. */
export const SLL_HOST = 0;
export const SLL_BROADCAST = 1;
export const SLL_MULTICAST = 2;
export const SLL_OTHERHOST = 3;
export const SLL_OUTGOING = 4;

export const SLL_HEADER_LENGTH = 16;
export const SLL2_HEADER_LENGTH = 20;

export interface PcapHeader {
  littleEndian: boolean;
  /** Record timestamps carry nanoseconds instead of microseconds. */
  nanosecond: boolean;
  versionMajor: number;
  versionMinor: number;
  snapLength: number;
  /** LINKTYPE_* value (the low 26 bits of the field, as libpcap reads it; the rest carries FCS hints). */
  linkType: number;
}

export interface PcapRecord {
  seconds: number;
  /** Microseconds, or nanoseconds when the header says `nanosecond`. */
  fraction: number;
  /** seconds * 1e6 + microseconds (nanoseconds are truncated). */
  timestampMicros: number;
  capturedLength: number;
  /** Length on the wire; more than capturedLength when the snap length cut the packet. */
  originalLength: number;
  /** The captured bytes (a view into the file). */
  data: Uint8Array;
}

export interface PcapFile {
  header: PcapHeader;
  records: PcapRecord[];
}

export function readPcapHeader(bytes: Uint8Array): PcapHeader {
  need(bytes, PCAP_GLOBAL_HEADER_LENGTH, 'pcap global header');
  const dv = view(bytes);
  const magics: [number, boolean, boolean][] = [
    [PCAP_MAGIC_MICROS, true, false],
    [PCAP_MAGIC_NANOS, true, true],
    [PCAP_MAGIC_MICROS, false, false],
    [PCAP_MAGIC_NANOS, false, true],
  ];
  const match = magics.find(([magic, littleEndian]) => dv.getUint32(0, littleEndian) === magic);
  if (!match) {
    const magic = dv.getUint32(0);
    if (magic === PCAPNG_MAGIC) throw new PacketError('the file is pcapng; only classic pcap is supported (tcpdump -w writes it).');
    throw new PacketError(`the file is not a pcap capture (magic 0x${magic.toString(16).padStart(8, '0')}).`);
  }
  const [, littleEndian, nanosecond] = match;
  return {
    littleEndian,
    nanosecond,
    versionMajor: dv.getUint16(4, littleEndian),
    versionMinor: dv.getUint16(6, littleEndian),
    snapLength: dv.getUint32(16, littleEndian),
    linkType: dv.getUint32(20, littleEndian) & 0x03ffffff,
  };
}

/** Yields the records of a whole pcap file in order. */
export function* pcapRecords(bytes: Uint8Array): Generator<PcapRecord> {
  const header = readPcapHeader(bytes);
  const dv = view(bytes);
  const le = header.littleEndian;
  let offset = PCAP_GLOBAL_HEADER_LENGTH;
  for (let index = 0; offset < bytes.length; index++) {
    need(bytes, PCAP_RECORD_HEADER_LENGTH, `pcap record ${index} header`, offset);
    const seconds = dv.getUint32(offset, le);
    const fraction = dv.getUint32(offset + 4, le);
    const capturedLength = dv.getUint32(offset + 8, le);
    const originalLength = dv.getUint32(offset + 12, le);
    offset += PCAP_RECORD_HEADER_LENGTH;
    need(bytes, capturedLength, `pcap record ${index} data`, offset);
    const micros = header.nanosecond ? Math.floor(fraction / 1000) : fraction;
    yield {
      seconds,
      fraction,
      timestampMicros: seconds * 1_000_000 + micros,
      capturedLength,
      originalLength,
      data: bytes.subarray(offset, offset + capturedLength),
    };
    offset += capturedLength;
  }
}

export function readPcap(bytes: Uint8Array): PcapFile {
  return { header: readPcapHeader(bytes), records: [...pcapRecords(bytes)] };
}

export interface LinuxCooked {
  /** SLL_* direction. */
  packetType: number;
  /** ARPHRD_* type of the capturing device (1 = Ethernet). */
  arphrdType: number;
  /** Link-layer source address, addressLength bytes (at most 8 are kept). */
  address: Uint8Array;
  /** The EtherType of the payload for Ethernet-like devices. */
  protocol: number;
  /** Interface index; LINUX_SLL2 only. */
  ifindex?: number;
  payload: Uint8Array;
}

/** LINKTYPE_LINUX_SLL header: type, ARPHRD type, address length, 8 address bytes, protocol (big-endian). */
export function decodeLinuxSll(data: Uint8Array): LinuxCooked {
  need(data, SLL_HEADER_LENGTH, 'Linux cooked (SLL) header');
  const dv = view(data);
  const addressLength = Math.min(dv.getUint16(4), 8);
  return {
    packetType: dv.getUint16(0),
    arphrdType: dv.getUint16(2),
    address: data.subarray(6, 6 + addressLength),
    protocol: dv.getUint16(14),
    payload: data.subarray(SLL_HEADER_LENGTH),
  };
}

/** LINKTYPE_LINUX_SLL2 header: protocol, reserved, ifindex, ARPHRD type, type, address length, 8 address bytes. */
export function decodeLinuxSll2(data: Uint8Array): LinuxCooked {
  need(data, SLL2_HEADER_LENGTH, 'Linux cooked (SLL2) header');
  const dv = view(data);
  const addressLength = Math.min(data[11]!, 8);
  return {
    protocol: dv.getUint16(0),
    ifindex: dv.getUint32(4),
    arphrdType: dv.getUint16(8),
    packetType: data[10]!,
    address: data.subarray(12, 12 + addressLength),
    payload: data.subarray(SLL2_HEADER_LENGTH),
  };
}

/** The network-layer packet of a record and its EtherType, for Ethernet and Linux cooked link types. */
export function linkPayload(linkType: number, data: Uint8Array): { ethertype: number; payload: Uint8Array } {
  switch (linkType) {
    case LINKTYPE_ETHERNET: {
      const frame = decodeEthernet(data);
      return { ethertype: frame.ethertype, payload: frame.payload };
    }
    case LINKTYPE_LINUX_SLL:
    case LINKTYPE_LINUX_SLL2: {
      const cooked = linkType === LINKTYPE_LINUX_SLL ? decodeLinuxSll(data) : decodeLinuxSll2(data);
      return { ethertype: cooked.protocol, payload: cooked.payload };
    }
    default:
      throw new PacketError(`pcap link type ${linkType} is not supported (only 1 Ethernet, 113 and 276 Linux cooked).`);
  }
}

export interface PcapWriteRecord {
  data: Uint8Array;
  /** Either this, or seconds and fraction. Default 0. */
  timestampMicros?: number;
  seconds?: number;
  /** In the file's unit (microseconds, or nanoseconds with `nanosecond`). */
  fraction?: number;
  /** Default data.length. */
  originalLength?: number;
}

export interface PcapWriteOptions {
  /** Default LINKTYPE_ETHERNET. */
  linkType?: number;
  /** Default 262144, as tcpdump. Longer records are cut to it. */
  snapLength?: number;
  /** Nanosecond timestamps (magic 0xa1b23c4d). Default false. */
  nanosecond?: boolean;
}

/** Writes a little-endian pcap file, version 2.4. */
export function writePcap(records: Iterable<PcapWriteRecord>, options: PcapWriteOptions = {}): Uint8Array {
  const nanosecond = options.nanosecond ?? false;
  const snapLength = checkInt(options.snapLength ?? 262144, 1, 0x7fffffff, 'pcap snap length');
  const linkType = checkInt(options.linkType ?? LINKTYPE_ETHERNET, 0, 0x03ffffff, 'pcap link type');
  const list = [...records];
  const captured = list.map((record) => record.data.subarray(0, snapLength));
  const size = captured.reduce((sum, data) => sum + PCAP_RECORD_HEADER_LENGTH + data.length, PCAP_GLOBAL_HEADER_LENGTH);
  const bytes = new Uint8Array(size);
  const dv = view(bytes);
  dv.setUint32(0, nanosecond ? PCAP_MAGIC_NANOS : PCAP_MAGIC_MICROS, true);
  dv.setUint16(4, 2, true);
  dv.setUint16(6, 4, true);
  dv.setUint32(16, snapLength, true);
  dv.setUint32(20, linkType, true);
  let offset = PCAP_GLOBAL_HEADER_LENGTH;
  list.forEach((record, index) => {
    const data = captured[index]!;
    let seconds = record.seconds ?? 0;
    let fraction = record.fraction ?? 0;
    if (record.timestampMicros !== undefined) {
      const micros = checkInt(record.timestampMicros, 0, Number.MAX_SAFE_INTEGER, 'pcap timestamp');
      seconds = Math.floor(micros / 1_000_000);
      fraction = (micros % 1_000_000) * (nanosecond ? 1000 : 1);
    }
    const maxFraction = nanosecond ? 999_999_999 : 999_999;
    dv.setUint32(offset, checkInt(seconds, 0, 0xffffffff, 'pcap timestamp seconds'), true);
    dv.setUint32(offset + 4, checkInt(fraction, 0, maxFraction, 'pcap timestamp fraction'), true);
    dv.setUint32(offset + 8, data.length, true);
    const originalLength = record.originalLength ?? record.data.length;
    dv.setUint32(offset + 12, checkInt(originalLength, data.length, 0xffffffff, 'pcap original length'), true);
    bytes.set(data, offset + PCAP_RECORD_HEADER_LENGTH);
    offset += PCAP_RECORD_HEADER_LENGTH + data.length;
  });
  return bytes;
}
