/**
 * DNS messages (RFC 1035 §4): header, questions and resource records, with A (RFC 1035), AAAA (RFC 3596)
 * and PTR/CNAME/NS data decoded; other record types keep their data as bytes, so a message can be read,
 * inspected and written again. Names are read with compression (RFC 1035 §4.1.4: a pointer may only point
 * backwards, which also bounds the walk) and written without it: vxnet's answers are small.
 *
 * Over TCP (RFC 1035 §4.2.2, RFC 7766) each message is preceded by its length as two bytes; frameTcp and
 * TcpMessageReader do that part.
 *
 * Names are given and returned without the trailing dot ("web.blue"); the root is "". Decoders throw
 * PacketError on truncated or malformed input (see bytes.ts).
 */
import { formatIPv4, parseIPv4 } from '../core/ipv4.ts';
import { checkInt, need, PacketError, readIPv6, view, writeIPv6 } from './bytes.ts';

export const DNS_PORT = 53;
const HEADER_LENGTH = 12;
/** RFC 1035 §2.3.4 */
const MAX_LABEL = 63;
const MAX_NAME = 255;

export const DnsType = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, OPT: 41, ANY: 255 } as const;
export const DNS_CLASS_IN = 1;
export const DnsRcode = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

export interface DnsQuestion {
  name: string;
  type: number;
  class: number;
}

export interface DnsRecord {
  name: string;
  type: number;
  class: number;
  ttl: number;
  /** A and AAAA: the address ("192.0.2.1", "2001:db8::1") */
  address?: string;
  /** PTR, CNAME, NS: the name pointed to */
  target?: string;
  /** any other type: the record data as it was read (written as is) */
  data?: Uint8Array;
}

export interface DnsMessage {
  id: number;
  /** true in an answer */
  response: boolean;
  opcode: number;
  authoritative: boolean;
  truncated: boolean;
  recursionDesired: boolean;
  recursionAvailable: boolean;
  rcode: number;
  questions: DnsQuestion[];
  answers: DnsRecord[];
  authorities: DnsRecord[];
  additionals: DnsRecord[];
}

const NAME_TARGET_TYPES: ReadonlySet<number> = new Set([DnsType.PTR, DnsType.CNAME, DnsType.NS]);

// ---- decoding ----

export function decodeDns(bytes: Uint8Array): DnsMessage {
  need(bytes, HEADER_LENGTH, 'DNS header');
  const dv = view(bytes);
  const flags = dv.getUint16(2);
  const counts = [dv.getUint16(4), dv.getUint16(6), dv.getUint16(8), dv.getUint16(10)] as const;
  let offset = HEADER_LENGTH;
  const questions: DnsQuestion[] = [];
  for (let i = 0; i < counts[0]; i++) {
    const name = readName(bytes, offset);
    offset = name.next;
    need(bytes, 4, 'DNS question', offset);
    questions.push({ name: name.name, type: dv.getUint16(offset), class: dv.getUint16(offset + 2) });
    offset += 4;
  }
  const sections: DnsRecord[][] = [[], [], []];
  for (let s = 0; s < 3; s++) {
    for (let i = 0; i < counts[s + 1]!; i++) {
      const record = readRecord(bytes, offset);
      sections[s]!.push(record.record);
      offset = record.next;
    }
  }
  return {
    id: dv.getUint16(0),
    response: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0xf,
    authoritative: (flags & 0x0400) !== 0,
    truncated: (flags & 0x0200) !== 0,
    recursionDesired: (flags & 0x0100) !== 0,
    recursionAvailable: (flags & 0x0080) !== 0,
    rcode: flags & 0xf,
    questions,
    answers: sections[0]!,
    authorities: sections[1]!,
    additionals: sections[2]!,
  };
}

/** The id of a message, or undefined when it is too short to have one (to answer FORMERR with it). */
export function dnsId(bytes: Uint8Array): number | undefined {
  return bytes.length >= 2 ? view(bytes).getUint16(0) : undefined;
}

function readRecord(bytes: Uint8Array, offset: number): { record: DnsRecord; next: number } {
  const name = readName(bytes, offset);
  let at = name.next;
  need(bytes, 10, 'DNS record', at);
  const dv = view(bytes);
  const type = dv.getUint16(at);
  const klass = dv.getUint16(at + 2);
  const ttl = dv.getUint32(at + 4);
  const length = dv.getUint16(at + 8);
  at += 10;
  need(bytes, length, 'DNS record data', at);
  const data = bytes.subarray(at, at + length);
  const record: DnsRecord = { name: name.name, type, class: klass, ttl };
  if (type === DnsType.A && klass === DNS_CLASS_IN) {
    if (length !== 4) throw new PacketError(`DNS A record data is ${length} bytes, not 4.`);
    record.address = formatIPv4(view(data).getUint32(0));
  } else if (type === DnsType.AAAA && klass === DNS_CLASS_IN) {
    if (length !== 16) throw new PacketError(`DNS AAAA record data is ${length} bytes, not 16.`);
    record.address = readIPv6(data, 0);
  } else if (NAME_TARGET_TYPES.has(type)) {
    const target = readName(bytes, at);
    if (target.next > at + length) throw new PacketError('DNS record name data runs past its length.');
    record.target = target.name;
  } else {
    record.data = data;
  }
  return { record, next: at + length };
}

/** Reads a possibly compressed name at `offset`; `next` is the offset after it where it started. */
export function readName(bytes: Uint8Array, offset: number): { name: string; next: number } {
  const labels: string[] = [];
  let length = 0;
  let at = offset;
  let next: number | undefined;
  // every pointer must go strictly backwards, so the walk ends
  let limit = offset;
  for (;;) {
    need(bytes, 1, 'DNS name', at);
    const len = bytes[at]!;
    if ((len & 0xc0) === 0xc0) {
      need(bytes, 2, 'DNS name pointer', at);
      const target = view(bytes).getUint16(at) & 0x3fff;
      if (target >= limit) throw new PacketError(`DNS name pointer to ${target} does not point backwards.`);
      next ??= at + 2;
      limit = target;
      at = target;
      continue;
    }
    if ((len & 0xc0) !== 0) throw new PacketError(`DNS label type 0x${(len & 0xc0).toString(16)} is not supported.`);
    if (len === 0) {
      next ??= at + 1;
      break;
    }
    need(bytes, len, 'DNS label', at + 1);
    length += len + 1;
    if (length > MAX_NAME) throw new PacketError(`DNS name longer than ${MAX_NAME} bytes.`);
    labels.push(String.fromCharCode(...bytes.subarray(at + 1, at + 1 + len)));
    at += 1 + len;
  }
  return { name: labels.join('.'), next };
}

// ---- encoding ----

/** Encodes a message; names are written uncompressed. */
export function encodeDns(message: DnsMessage): Uint8Array {
  const parts: Uint8Array[] = [];
  const header = new Uint8Array(HEADER_LENGTH);
  const dv = view(header);
  dv.setUint16(0, checkInt(message.id, 0, 0xffff, 'DNS id'));
  dv.setUint16(
    2,
    (message.response ? 0x8000 : 0) |
      (checkInt(message.opcode, 0, 15, 'DNS opcode') << 11) |
      (message.authoritative ? 0x0400 : 0) |
      (message.truncated ? 0x0200 : 0) |
      (message.recursionDesired ? 0x0100 : 0) |
      (message.recursionAvailable ? 0x0080 : 0) |
      checkInt(message.rcode, 0, 15, 'DNS rcode'),
  );
  const sections = [message.questions, message.answers, message.authorities, message.additionals];
  sections.forEach((section, i) => dv.setUint16(4 + 2 * i, checkInt(section.length, 0, 0xffff, 'DNS section count')));
  parts.push(header);
  for (const q of message.questions) {
    parts.push(encodeName(q.name));
    const tail = new Uint8Array(4);
    view(tail).setUint16(0, checkInt(q.type, 0, 0xffff, 'DNS type'));
    view(tail).setUint16(2, checkInt(q.class, 0, 0xffff, 'DNS class'));
    parts.push(tail);
  }
  for (const record of [...message.answers, ...message.authorities, ...message.additionals]) parts.push(...encodeRecord(record));
  return concat(parts);
}

function encodeRecord(record: DnsRecord): Uint8Array[] {
  let data: Uint8Array;
  if (record.address !== undefined && record.type === DnsType.A) {
    const value = parseIPv4(record.address);
    if (value === undefined) throw new PacketError(`DNS A record address "${record.address}" is not an IPv4 address.`);
    data = new Uint8Array(4);
    view(data).setUint32(0, value);
  } else if (record.address !== undefined && record.type === DnsType.AAAA) {
    data = new Uint8Array(16);
    writeIPv6(data, 0, record.address, 'DNS AAAA record address');
  } else if (record.target !== undefined && NAME_TARGET_TYPES.has(record.type)) {
    data = encodeName(record.target);
  } else {
    data = record.data ?? new Uint8Array(0);
  }
  const fixed = new Uint8Array(10);
  const dv = view(fixed);
  dv.setUint16(0, checkInt(record.type, 0, 0xffff, 'DNS type'));
  dv.setUint16(2, checkInt(record.class, 0, 0xffff, 'DNS class'));
  dv.setUint32(4, checkInt(record.ttl, 0, 0xffffffff, 'DNS TTL'));
  dv.setUint16(8, checkInt(data.length, 0, 0xffff, 'DNS record data length'));
  return [encodeName(record.name), fixed, data];
}

/** A name as labels, each at most 63 bytes, the whole at most 255 (RFC 1035 §2.3.4). */
export function encodeName(name: string): Uint8Array {
  const trimmed = name.endsWith('.') ? name.slice(0, -1) : name;
  const labels = trimmed === '' ? [] : trimmed.split('.');
  const out: number[] = [];
  for (const label of labels) {
    if (label.length === 0 || label.length > MAX_LABEL) throw new PacketError(`DNS label "${label}" must be 1-${MAX_LABEL} bytes.`);
    out.push(label.length);
    for (let i = 0; i < label.length; i++) {
      const code = label.charCodeAt(i);
      if (code > 0x7f) throw new PacketError(`DNS label "${label}" is not ASCII.`);
      out.push(code);
    }
  }
  out.push(0);
  if (out.length > MAX_NAME) throw new PacketError(`DNS name "${name}" is longer than ${MAX_NAME} bytes.`);
  return Uint8Array.from(out);
}

/** A question for `name` of `type` with recursion desired: what a stub resolver sends. */
export function dnsQuery(id: number, name: string, type: number): DnsMessage {
  return {
    id,
    response: false,
    opcode: 0,
    authoritative: false,
    truncated: false,
    recursionDesired: true,
    recursionAvailable: false,
    rcode: 0,
    questions: [{ name, type, class: DNS_CLASS_IN }],
    answers: [],
    authorities: [],
    additionals: [],
  };
}

// ---- TCP framing (RFC 1035 §4.2.2) ----

export function frameTcp(message: Uint8Array): Uint8Array {
  if (message.length > 0xffff) throw new PacketError(`DNS message of ${message.length} bytes is too long for TCP.`);
  const out = new Uint8Array(2 + message.length);
  view(out).setUint16(0, message.length);
  out.set(message, 2);
  return out;
}

/** Splits a TCP stream into messages as their bytes arrive. */
export class TcpMessageReader {
  #buffer: Uint8Array = new Uint8Array(0);

  /** The whole messages `chunk` completes. */
  push(chunk: Uint8Array): Uint8Array[] {
    this.#buffer = this.#buffer.length === 0 ? chunk : concat([this.#buffer, chunk]);
    const out: Uint8Array[] = [];
    for (;;) {
      if (this.#buffer.length < 2) break;
      const length = view(this.#buffer).getUint16(0);
      if (this.#buffer.length < 2 + length) break;
      out.push(this.#buffer.slice(2, 2 + length));
      this.#buffer = this.#buffer.subarray(2 + length);
    }
    return out;
  }

  /** bytes held that do not make a whole message yet */
  get pending(): number {
    return this.#buffer.length;
  }
}

// ---- addresses in names and records ----

/** "192.168.1.7" → "7.1.168.192.in-addr.arpa" (RFC 1035 §3.5) */
export function reverseName(ipv4: string): string {
  return `${ipv4.split('.').reverse().join('.')}.in-addr.arpa`;
}

/** "7.1.168.192.in-addr.arpa" (any case) → "192.168.1.7"; undefined for anything else. */
export function addressOfReverseName(name: string): string | undefined {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.in-addr\.arpa\.?$/i.exec(name);
  if (!match) return undefined;
  const address = [match[4], match[3], match[2], match[1]].join('.');
  return parseIPv4(address) === undefined ? undefined : formatIPv4(parseIPv4(address)!);
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
