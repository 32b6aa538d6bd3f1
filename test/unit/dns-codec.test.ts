import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PacketError } from '../../src/packet/bytes.ts';
import {
  addressOfReverseName,
  decodeDns,
  dnsQuery,
  DnsRcode,
  DnsType,
  DNS_CLASS_IN,
  encodeDns,
  frameTcp,
  readName,
  reverseName,
  TcpMessageReader,
  type DnsMessage,
} from '../../src/packet/dns.ts';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

test('a query as a stub resolver sends it round-trips, byte for byte', () => {
  const bytes = encodeDns(dnsQuery(0x1234, 'web.blue', DnsType.A));
  // id, flags RD, 1 question, then 3 "web" 4 "blue" 0, type A, class IN
  assert.deepEqual(bytes, hex('1234 0100 0001 0000 0000 0000 03776562 04626c7565 00 0001 0001'));
  const decoded = decodeDns(bytes);
  assert.equal(decoded.id, 0x1234);
  assert.equal(decoded.recursionDesired, true);
  assert.equal(decoded.response, false);
  assert.deepEqual(decoded.questions, [{ name: 'web.blue', type: DnsType.A, class: DNS_CLASS_IN }]);
});

test('answers with A, AAAA and PTR records round-trip', () => {
  const answer: DnsMessage = {
    ...dnsQuery(7, 'web', DnsType.A),
    response: true,
    authoritative: true,
    recursionAvailable: true,
    rcode: DnsRcode.NOERROR,
    answers: [
      { name: 'web', type: DnsType.A, class: DNS_CLASS_IN, ttl: 0, address: '192.168.1.2' },
      { name: 'web', type: DnsType.AAAA, class: DNS_CLASS_IN, ttl: 5, address: '2001:db8::1' },
      { name: '2.1.168.192.in-addr.arpa', type: DnsType.PTR, class: DNS_CLASS_IN, ttl: 0, target: 'web.blue' },
    ],
    additionals: [{ name: '', type: DnsType.OPT, class: 1232, ttl: 0, data: new Uint8Array() }],
  };
  const decoded = decodeDns(encodeDns(answer));
  assert.deepEqual({ ...decoded, additionals: [] }, { ...answer, additionals: [] });
  assert.equal(decoded.additionals[0]!.class, 1232);
  assert.equal(decoded.additionals[0]!.type, DnsType.OPT);
});

test('AAAA addresses are written and read in their short form', () => {
  for (const address of ['::', '::1', 'fe80::2:78ff:fe00:1', '2001:db8:0:1:0:0:0:1', '1:2:3:4:5:6:7:8']) {
    const bytes = encodeDns({ ...dnsQuery(1, 'x', DnsType.AAAA), answers: [{ name: 'x', type: DnsType.AAAA, class: DNS_CLASS_IN, ttl: 0, address }] });
    const read = decodeDns(bytes).answers[0]!.address!;
    assert.equal(read, address === '2001:db8:0:1:0:0:0:1' ? '2001:db8:0:1::1' : address);
  }
  assert.throws(() => encodeDns({ ...dnsQuery(1, 'x', DnsType.AAAA), answers: [{ name: 'x', type: DnsType.AAAA, class: 1, ttl: 0, address: '1::2::3' }] }), PacketError);
});

test('compressed names are followed on read, in questions and in record data', () => {
  // question "web.blue"; answer name = pointer to 12 (the question's name); PTR data = "www" + pointer to 16 ("blue")
  const bytes = hex(
    'abcd 8180 0001 0002 0000 0000' +
      '03776562 04626c7565 00 0001 0001' +
      'c00c 0001 0001 00000000 0004 c0a80102' +
      'c00c 000c 0001 0000003c 0006 03777777 c010',
  );
  const m = decodeDns(bytes);
  assert.equal(m.answers[0]!.name, 'web.blue');
  assert.equal(m.answers[0]!.address, '192.168.1.2');
  assert.equal(m.answers[1]!.target, 'www.blue');
  assert.equal(m.answers[1]!.ttl, 60);
});

test('a pointer loop, a forward pointer and truncation are refused, never followed', () => {
  // name at 12 is a pointer to itself
  assert.throws(() => decodeDns(hex('0001 0000 0001 0000 0000 0000 c00c 0001 0001')), /does not point backwards/);
  // pointer forward
  assert.throws(() => readName(hex('c002 00'), 0), /does not point backwards/);
  // two pointers chasing each other: 12 → 14 is forward, refused
  assert.throws(() => decodeDns(hex('0001 0000 0001 0000 0000 0000 c00e c00c 0001 0001')), PacketError);
  assert.throws(() => decodeDns(hex('0001 0000 0001')), /truncated/);
  assert.throws(() => decodeDns(hex('0001 0000 0001 0000 0000 0000 05616263')), /truncated/);
  // an A record with 3 bytes of data
  assert.throws(() => decodeDns(hex('0001 8000 0000 0001 0000 0000 00 0001 0001 00000000 0003 010203')), /not 4/);
});

test('names that cannot be written are refused', () => {
  assert.throws(() => encodeDns(dnsQuery(1, `${'a'.repeat(64)}.blue`, DnsType.A)), /1-63 bytes/);
  assert.throws(() => encodeDns(dnsQuery(1, 'a..b', DnsType.A)), /1-63 bytes/);
  assert.throws(() => encodeDns(dnsQuery(1, Array(130).fill('ab').join('.'), DnsType.A)), /longer than 255/);
  assert.deepEqual(decodeDns(encodeDns(dnsQuery(1, 'web.', DnsType.A))).questions[0]!.name, 'web');
});

test('reverse names of IPv4 addresses', () => {
  assert.equal(reverseName('192.168.1.7'), '7.1.168.192.in-addr.arpa');
  assert.equal(addressOfReverseName('7.1.168.192.IN-ADDR.ARPA'), '192.168.1.7');
  assert.equal(addressOfReverseName('7.1.168.192.in-addr.arpa.'), '192.168.1.7');
  assert.equal(addressOfReverseName('1.168.192.in-addr.arpa'), undefined);
  assert.equal(addressOfReverseName('7.1.168.300.in-addr.arpa'), undefined);
});

test('TCP framing: a length prefix, messages split and joined across chunks', () => {
  const a = encodeDns(dnsQuery(1, 'a', DnsType.A));
  const b = encodeDns(dnsQuery(2, 'bb', DnsType.A));
  const stream = new Uint8Array([...frameTcp(a), ...frameTcp(b)]);
  const reader = new TcpMessageReader();
  assert.deepEqual(reader.push(stream.subarray(0, 1)), []);
  assert.deepEqual(reader.push(stream.subarray(1, a.length + 3)), [a]);
  assert.equal(reader.pending, 1);
  assert.deepEqual(reader.push(stream.subarray(a.length + 3)), [b]);
  assert.equal(reader.pending, 0);
});
