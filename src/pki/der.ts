/**
 * A small DER (ITU-T X.690 Distinguished Encoding Rules) writer and reader: exactly what building and
 * inspecting X.509 certificates needs, nothing more.
 *
 * DER is TLV: one identifier octet (class, constructed bit, tag number < 31 here), the length (short form
 * below 128, else 0x80|n followed by n big-endian octets), then the content. "Distinguished" means there is
 * exactly one encoding per value: minimal lengths, minimal INTEGERs, BOOLEAN TRUE as 0xff, and BIT STRINGs of
 * named bits without trailing zero bits. The writers below produce only that form; the reader is strict
 * about lengths but is meant for our own output and for certificates Node has already parsed.
 */

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** One encoded element (identifier, length and content). */
export type Der = Uint8Array;

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let size = 0;
  for (const part of parts) size += part.length;
  const out = new Uint8Array(size);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function encodeLength(length: number): Uint8Array {
  if (length < 0x80) return Uint8Array.of(length);
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n % 256);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

/** An element with the given identifier octet around `content`. */
export function tlv(tag: number, content: Uint8Array): Der {
  return concat([Uint8Array.of(tag), encodeLength(content.length), content]);
}

export function sequence(...items: readonly Der[]): Der {
  return tlv(TAG.SEQUENCE, concat(items));
}

/** A SET OF: DER sorts the encoded elements (X.690 11.6). */
export function set(...items: readonly Der[]): Der {
  const sorted = [...items].sort(compareBytes);
  return tlv(TAG.SET, concat(sorted));
}

export function boolean(value: boolean): Der {
  return tlv(TAG.BOOLEAN, Uint8Array.of(value ? 0xff : 0x00));
}

/**
 * An INTEGER from a non-negative number, bigint, or big-endian unsigned magnitude (e.g. a random serial).
 * Leading zero octets are dropped and one is added when the top bit is set, so the value stays positive.
 */
export function integer(value: number | bigint | Uint8Array): Der {
  let bytes: number[];
  if (value instanceof Uint8Array) {
    bytes = [...value];
  } else {
    let n = BigInt(value);
    if (n < 0n) throw new RangeError('der.integer: negative values are not supported.');
    bytes = [];
    do {
      bytes.unshift(Number(n & 0xffn));
      n >>= 8n;
    } while (n > 0n);
  }
  while (bytes.length > 1 && bytes[0] === 0 && (bytes[1]! & 0x80) === 0) bytes.shift();
  if (bytes.length === 0) bytes = [0];
  if ((bytes[0]! & 0x80) !== 0) bytes.unshift(0);
  return tlv(TAG.INTEGER, Uint8Array.from(bytes));
}

/** An OBJECT IDENTIFIER from dotted text, e.g. "2.5.4.3". */
export function oid(dotted: string): Der {
  const arcs = dotted.split('.').map((part) => {
    if (!/^(0|[1-9][0-9]*)$/.test(part)) throw new RangeError(`der.oid: "${dotted}" is not a dotted object identifier.`);
    return BigInt(part);
  });
  if (arcs.length < 2 || arcs[0]! > 2n || (arcs[0]! < 2n && arcs[1]! > 39n)) {
    throw new RangeError(`der.oid: "${dotted}" is not a valid object identifier.`);
  }
  const bytes: number[] = [];
  const push = (arc: bigint): void => {
    const groups: number[] = [Number(arc & 0x7fn)];
    for (let n = arc >> 7n; n > 0n; n >>= 7n) groups.unshift(Number(n & 0x7fn) | 0x80);
    bytes.push(...groups);
  };
  push(arcs[0]! * 40n + arcs[1]!);
  for (const arc of arcs.slice(2)) push(arc);
  return tlv(TAG.OID, Uint8Array.from(bytes));
}

export function utf8String(text: string): Der {
  return tlv(TAG.UTF8_STRING, new TextEncoder().encode(text));
}

export function octetString(bytes: Uint8Array): Der {
  return tlv(TAG.OCTET_STRING, bytes);
}

/** A BIT STRING holding whole octets (a signature, a public key). */
export function bitString(bytes: Uint8Array): Der {
  return tlv(TAG.BIT_STRING, concat([Uint8Array.of(0), bytes]));
}

/**
 * A BIT STRING of named bits (KeyUsage): bit 0 is the most significant bit of the first octet, and DER
 * drops trailing zero bits (X.690 11.2.2), so the number of unused bits in the last octet varies.
 */
export function namedBits(bits: readonly number[]): Der {
  if (bits.length === 0) return tlv(TAG.BIT_STRING, Uint8Array.of(0));
  const highest = Math.max(...bits);
  const bytes = new Uint8Array(Math.floor(highest / 8) + 1);
  for (const bit of bits) {
    const index = Math.floor(bit / 8);
    bytes[index] = (bytes[index] ?? 0) | (0x80 >> (bit % 8));
  }
  const unused = 7 - (highest % 8);
  return tlv(TAG.BIT_STRING, concat([Uint8Array.of(unused), bytes]));
}

/**
 * A certificate time (RFC 5280 4.1.2.5): UTCTime (YYMMDDHHMMSSZ) for the years 1950-2049, GeneralizedTime
 * (YYYYMMDDHHMMSSZ) otherwise; always UTC, whole seconds.
 */
export function time(date: Date): Der {
  const year = date.getUTCFullYear();
  const two = (n: number) => String(n).padStart(2, '0');
  const rest = `${two(date.getUTCMonth() + 1)}${two(date.getUTCDate())}${two(date.getUTCHours())}${two(date.getUTCMinutes())}${two(date.getUTCSeconds())}Z`;
  if (year >= 1950 && year < 2050) return tlv(TAG.UTC_TIME, new TextEncoder().encode(`${two(year % 100)}${rest}`));
  if (year < 0 || year > 9999) throw new RangeError(`der.time: year ${year} cannot be encoded.`);
  return tlv(TAG.GENERALIZED_TIME, new TextEncoder().encode(`${String(year).padStart(4, '0')}${rest}`));
}

/** [n] EXPLICIT: a constructed context-specific element wrapping one whole element. */
export function explicit(tagNumber: number, inner: Der): Der {
  return tlv(0xa0 | tagNumber, inner);
}

/** [n] IMPLICIT for a primitive type (e.g. a GeneralName's dNSName or iPAddress): the content under a new tag. */
export function implicitPrimitive(tagNumber: number, content: Uint8Array): Der {
  return tlv(0x80 | tagNumber, content);
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

// -----------------------------------------------------------------------------------------------------
// Reading

export interface Element {
  /** identifier octet */
  tag: number;
  /** the whole element, identifier and length included */
  raw: Uint8Array;
  content: Uint8Array;
}

/** Reads the element at `offset`; throws on a truncated or non-minimal encoding. */
export function read(bytes: Uint8Array, offset = 0): Element {
  const fail = (why: string): never => {
    throw new RangeError(`DER: ${why} at offset ${offset}.`);
  };
  if (offset + 2 > bytes.length) fail('truncated element');
  const tag = bytes[offset]!;
  if ((tag & 0x1f) === 0x1f) fail('multi-octet tags are not supported');
  let length = bytes[offset + 1]!;
  let header = 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0 || count > 4) fail('unsupported length');
    if (offset + 2 + count > bytes.length) fail('truncated length');
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + bytes[offset + 2 + i]!;
    if (length < 0x80 || bytes[offset + 2] === 0) fail('non-minimal length');
    header += count;
  }
  const end = offset + header + length;
  if (end > bytes.length) fail('content runs past the end');
  return { tag, raw: bytes.subarray(offset, end), content: bytes.subarray(offset + header, end) };
}

/** The elements inside a constructed element (SEQUENCE, SET, [n] EXPLICIT). */
export function children(element: Element): Element[] {
  const out: Element[] = [];
  for (let offset = 0; offset < element.content.length; ) {
    const child = read(element.content, offset);
    out.push(child);
    offset += child.raw.length;
  }
  return out;
}

/** Dotted text of an OBJECT IDENTIFIER element. */
export function readOid(element: Element): string {
  if (element.tag !== TAG.OID) throw new RangeError('DER: not an OBJECT IDENTIFIER.');
  const arcs: bigint[] = [];
  let value = 0n;
  for (const byte of element.content) {
    value = (value << 7n) | BigInt(byte & 0x7f);
    if ((byte & 0x80) === 0) {
      arcs.push(value);
      value = 0n;
    }
  }
  const first = arcs.shift() ?? 0n;
  const head = first < 80n ? [first / 40n, first % 40n] : [2n, first - 80n];
  return [...head, ...arcs].join('.');
}
