import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ARP_REPLY,
  ARP_REQUEST,
  BROADCAST_MAC,
  decapsulate,
  decodeArp,
  decodeEthernet,
  decodeIcmpEcho,
  decodeIpv4,
  decodeUdp,
  decodeVxlan,
  encapsulate,
  encodeArp,
  encodeEthernet,
  encodeIcmpEcho,
  encodeIpv4,
  encodeUdp,
  encodeVxlan,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  ETHERTYPE_VLAN,
  formatMac,
  ICMP_ECHO_REPLY,
  ICMP_ECHO_REQUEST,
  internetChecksum,
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  onesComplementSum,
  PacketError,
  parseMac,
  udpChecksum,
  verifyIcmpChecksum,
  verifyIpv4Checksum,
  verifyUdpChecksum,
  VNI_MAX,
  VXLAN_FLAG_I,
  VXLAN_OVERHEAD,
  VXLAN_PORT,
} from '../../src/packet/index.ts';

const hex = (text: string) => Uint8Array.from(text.replace(/\s+/g, '').match(/../g) ?? [], (b) => parseInt(b, 16));
const ascii = (text: string) => new TextEncoder().encode(text);

/** Every proper prefix of `bytes` must be rejected with a PacketError. */
function assertRejectsEveryPrefix(bytes: Uint8Array, decode: (b: Uint8Array) => unknown, upTo = bytes.length): void {
  for (let length = 0; length < upTo; length++) {
    assert.throws(() => decode(bytes.subarray(0, length)), PacketError, `prefix of ${length} bytes`);
  }
}

const MAC_A = '02:78:ac:1f:00:01';
const MAC_B = '02:78:ac:1f:00:02';

function pingFrame(seq: number): Uint8Array {
  const icmp = encodeIcmpEcho({ type: ICMP_ECHO_REQUEST, id: 0x1234, seq, data: ascii('vxnet ping payload') });
  const ip = encodeIpv4({ src: '172.31.0.1', dst: '172.31.0.2', protocol: IPPROTO_ICMP, id: seq, dontFragment: true }, icmp);
  return encodeEthernet({ dst: MAC_B, src: MAC_A, ethertype: ETHERTYPE_IPV4 }, ip);
}

const OUTER = { srcMac: '02:00:0a:4d:00:01', dstMac: '02:00:0a:4d:00:02', srcIp: '10.77.0.1', dstIp: '10.77.0.2', srcPort: 49436 };

// --- Internet checksum ---------------------------------------------------------------------------------

test('one\'s complement sum matches the RFC 1071 numerical example and pads odd lengths', () => {
  // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
  assert.equal(onesComplementSum(hex('0001 f203 f4f5 f6f7')), 0xddf2);
  assert.equal(internetChecksum(hex('0001 f203 f4f5 f6f7')), 0x220d);
  assert.equal(onesComplementSum(hex('01')), 0x0100);
  assert.equal(onesComplementSum(hex('ffff ffff')), 0xffff);
});

// --- Ethernet --------------------------------------------------------------------------------------------

test('MAC strings convert to bytes and back, and malformed ones are rejected', () => {
  assert.deepEqual([...parseMac('AA:bb:0c:dd:ee:0F')], [0xaa, 0xbb, 0x0c, 0xdd, 0xee, 0x0f]);
  assert.equal(formatMac(parseMac('AA:bb:0c:dd:ee:0F')), 'aa:bb:0c:dd:ee:0f');
  assert.equal(formatMac(hex('00 112233445566'), 1), '11:22:33:44:55:66');
  for (const bad of ['', 'aa:bb:cc:dd:ee', 'aa:bb:cc:dd:ee:ff:00', 'aa-bb-cc-dd-ee-ff', 'g0:bb:cc:dd:ee:ff', 'a:bb:cc:dd:ee:ff']) {
    assert.throws(() => parseMac(bad), PacketError, bad);
  }
  assert.throws(() => formatMac(hex('0011223344')), PacketError);
});

test('Ethernet II header round-trips and has the expected wire layout', () => {
  const payload = ascii('hello');
  const frame = encodeEthernet({ dst: BROADCAST_MAC, src: MAC_A, ethertype: ETHERTYPE_ARP }, payload);
  assert.deepEqual(frame, hex('ffffffffffff 0278ac1f0001 0806 68656c6c6f'));
  assert.deepEqual(decodeEthernet(frame), { dst: BROADCAST_MAC, src: MAC_A, ethertype: ETHERTYPE_ARP, payload });
});

test('an 802.1Q tag is encoded before the EtherType and decoded back', () => {
  const vlan = { vid: 100, pcp: 5, dei: true };
  const frame = encodeEthernet({ dst: MAC_B, src: MAC_A, ethertype: ETHERTYPE_IPV4, vlan }, hex('4500'));
  assert.deepEqual(frame.subarray(12), hex('8100 b064 0800 4500'));
  const decoded = decodeEthernet(frame);
  assert.equal(decoded.ethertype, ETHERTYPE_IPV4);
  assert.deepEqual(decoded.vlan, vlan);
  assert.deepEqual(decoded.payload, hex('4500'));
  assert.throws(() => encodeEthernet({ dst: MAC_B, src: MAC_A, ethertype: 0x0800, vlan: { vid: 4096 } }, hex('')), PacketError);
  assert.throws(() => encodeEthernet({ dst: MAC_B, src: MAC_A, ethertype: 0x10000 }, hex('')), PacketError);
});

test('truncated Ethernet headers (plain and tagged) are rejected', () => {
  assertRejectsEveryPrefix(encodeEthernet({ dst: MAC_B, src: MAC_A, ethertype: ETHERTYPE_IPV4 }, hex('')), decodeEthernet);
  const tagged = encodeEthernet({ dst: MAC_B, src: MAC_A, ethertype: ETHERTYPE_IPV4, vlan: { vid: 1 } }, hex(''));
  assertRejectsEveryPrefix(tagged, decodeEthernet);
  assert.equal(decodeEthernet(tagged).vlan?.vid, 1);
  assert.equal(ETHERTYPE_VLAN, 0x8100);
});

// --- ARP -------------------------------------------------------------------------------------------------

test('ARP request and reply round-trip with the RFC 826 layout', () => {
  const request = { op: ARP_REQUEST, senderMac: MAC_A, senderIp: '172.31.0.1', targetMac: '00:00:00:00:00:00', targetIp: '172.31.0.2' };
  const bytes = encodeArp(request);
  assert.deepEqual(bytes, hex('0001 0800 06 04 0001 0278ac1f0001 ac1f0001 000000000000 ac1f0002'));
  assert.deepEqual(decodeArp(bytes), request);
  const reply = { op: ARP_REPLY, senderMac: MAC_B, senderIp: '172.31.0.2', targetMac: MAC_A, targetIp: '172.31.0.1' };
  // Ethernet padding after the 28 bytes is ignored.
  const padded = new Uint8Array(46);
  padded.set(encodeArp(reply));
  assert.deepEqual(decodeArp(padded), reply);
});

test('ARP decoding rejects truncated input and non-Ethernet/IPv4 ARP', () => {
  const bytes = encodeArp({ op: ARP_REQUEST, senderMac: MAC_A, senderIp: '1.2.3.4', targetMac: MAC_B, targetIp: '5.6.7.8' });
  assertRejectsEveryPrefix(bytes, decodeArp);
  const ipv6 = bytes.slice();
  ipv6[2] = 0x86;
  ipv6[3] = 0xdd;
  assert.throws(() => decodeArp(ipv6), /not Ethernet\/IPv4/);
  const hlen = bytes.slice();
  hlen[4] = 8;
  assert.throws(() => decodeArp(hlen), PacketError);
  assert.throws(() => encodeArp({ op: 1, senderMac: MAC_A, senderIp: '1.2.3', targetMac: MAC_B, targetIp: '5.6.7.8' }), PacketError);
});

// --- IPv4 ------------------------------------------------------------------------------------------------

test('IPv4 header checksum matches a well-known header (192.168.0.1 -> 192.168.0.199, checksum b861)', () => {
  const packet = encodeIpv4(
    { src: '192.168.0.1', dst: '192.168.0.199', protocol: IPPROTO_UDP, ttl: 64, id: 0, dontFragment: true },
    new Uint8Array(0x73 - 20),
  );
  assert.deepEqual(packet.subarray(0, 20), hex('4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7'));
  assert.equal(verifyIpv4Checksum(packet), true);
});

test('IPv4 header checksum matches a header the Linux kernel sent (outer header from the VXLAN capture)', () => {
  // 10.77.0.1 -> 10.77.0.2, id 0xd8a3, UDP, total length 78, as tcpdump showed it: checksum 8d5f.
  const packet = encodeIpv4({ src: '10.77.0.1', dst: '10.77.0.2', protocol: IPPROTO_UDP, id: 0xd8a3 }, new Uint8Array(58));
  assert.deepEqual(packet.subarray(0, 20), hex('4500 004e d8a3 0000 4011 8d5f 0a4d 0001 0a4d 0002'));
});

test('IPv4 round-trips flags, fragment offset, TOS, TTL and options', () => {
  const header = {
    src: '10.1.2.3',
    dst: '10.200.0.255',
    protocol: IPPROTO_TCP,
    ttl: 7,
    tos: 0xb8,
    id: 0xbeef,
    dontFragment: false,
    moreFragments: true,
    fragmentOffset: 0x1abc,
    options: hex('94040000'), // Router Alert (RFC 2113)
  };
  const payload = ascii('fragment');
  const packet = encodeIpv4(header, payload);
  assert.equal(packet[0], 0x46); // IHL 6
  const decoded = decodeIpv4(packet);
  assert.deepEqual(decoded, {
    ...header,
    headerLength: 24,
    totalLength: 24 + payload.length,
    checksum: decoded.checksum,
    checksumValid: true,
    payload,
  });
  assert.equal(decodeIpv4(encodeIpv4({ src: '1.1.1.1', dst: '2.2.2.2', protocol: 1, dontFragment: true }, payload)).dontFragment, true);
});

test('IPv4 decoding cuts the payload at Total Length (Ethernet padding) and reports a bad checksum', () => {
  const packet = encodeIpv4({ src: '10.0.0.1', dst: '10.0.0.2', protocol: IPPROTO_ICMP }, hex('0102'));
  const padded = new Uint8Array(46);
  padded.set(packet);
  assert.deepEqual(decodeIpv4(padded).payload, hex('0102'));
  const corrupt = packet.slice();
  corrupt[8] = 1; // TTL changed without fixing the checksum
  assert.equal(decodeIpv4(corrupt).checksumValid, false);
  assert.equal(verifyIpv4Checksum(corrupt), false);
  // The payload is not covered by the header checksum.
  const payloadChanged = packet.slice();
  payloadChanged[21] = 0xff;
  assert.equal(verifyIpv4Checksum(payloadChanged), true);
});

test('IPv4 decoding rejects truncation, a wrong version, a short IHL and an impossible Total Length', () => {
  const packet = encodeIpv4({ src: '10.0.0.1', dst: '10.0.0.2', protocol: IPPROTO_UDP, options: hex('01010101') }, ascii('abcd'));
  assertRejectsEveryPrefix(packet, decodeIpv4);
  assertRejectsEveryPrefix(packet, verifyIpv4Checksum);
  const v6 = packet.slice();
  v6[0] = 0x66;
  assert.throws(() => decodeIpv4(v6), /version 6/);
  const ihl = packet.slice();
  ihl[0] = 0x44;
  assert.throws(() => decodeIpv4(ihl), /below 20/);
  const total = packet.slice();
  total[2] = 0;
  total[3] = 20; // shorter than the 24-byte header
  assert.throws(() => decodeIpv4(total), /shorter than its header/);
});

test('IPv4 encoding validates its fields', () => {
  const base = { src: '10.0.0.1', dst: '10.0.0.2', protocol: IPPROTO_UDP };
  assert.throws(() => encodeIpv4({ ...base, src: '10.0.0.256' }, hex('')), /not a valid IPv4 address/);
  assert.throws(() => encodeIpv4({ ...base, ttl: 256 }, hex('')), PacketError);
  assert.throws(() => encodeIpv4({ ...base, fragmentOffset: 0x2000 }, hex('')), PacketError);
  assert.throws(() => encodeIpv4({ ...base, options: hex('010101') }, hex('')), /multiple of 4/);
  assert.throws(() => encodeIpv4(base, new Uint8Array(65516)), /65535/);
});

// --- ICMP ------------------------------------------------------------------------------------------------

test('ICMP echo round-trips and its checksum matches a hand-computed value', () => {
  // 0800 + 0001 + 0001 = 0802, complemented: f7fd.
  assert.deepEqual(encodeIcmpEcho({ type: ICMP_ECHO_REQUEST, id: 1, seq: 1 }), hex('0800 f7fd 0001 0001'));
  const message = { type: ICMP_ECHO_REPLY, code: 0, id: 0xabcd, seq: 65535, data: ascii('odd') };
  const bytes = encodeIcmpEcho(message);
  const decoded = decodeIcmpEcho(bytes);
  assert.deepEqual(decoded, { ...message, checksum: decoded.checksum, checksumValid: true });
  assert.equal(verifyIcmpChecksum(bytes), true);
  const corrupt = bytes.slice();
  corrupt[9] = 0;
  assert.equal(decodeIcmpEcho(corrupt).checksumValid, false);
});

test('ICMP echo decoding rejects truncated input and other ICMP types', () => {
  assertRejectsEveryPrefix(encodeIcmpEcho({ type: ICMP_ECHO_REQUEST, id: 1, seq: 2, data: ascii('x') }), decodeIcmpEcho, 8);
  assert.throws(() => decodeIcmpEcho(hex('0303 0000 0000 0000')), /not an echo/);
  assert.throws(() => encodeIcmpEcho({ type: 3, id: 1, seq: 1 }), /not an echo/);
});

// --- UDP -------------------------------------------------------------------------------------------------

const PSEUDO = { src: '10.0.0.1', dst: '10.0.0.2' };

test('UDP checksum covers the pseudo-header and matches a hand-computed value', () => {
  // pseudo 0a00+0001+0a00+0002+0011+000a, header 04d2+12b5+000a, data 6869: sum 9418, checksum 6be7.
  const bytes = encodeUdp({ srcPort: 1234, dstPort: 4789 }, ascii('hi'), PSEUDO);
  assert.deepEqual(bytes, hex('04d2 12b5 000a 6be7 6869'));
  assert.equal(verifyUdpChecksum(bytes, PSEUDO), true);
  assert.equal(udpChecksum(bytes, PSEUDO), 0x6be7);
  // The pseudo-header matters: the same datagram between other addresses does not verify.
  assert.equal(verifyUdpChecksum(bytes, { src: '10.0.0.1', dst: '10.0.0.3' }), false);
  const corrupt = bytes.slice();
  corrupt[9] = 0x68;
  assert.equal(verifyUdpChecksum(corrupt, PSEUDO), false);
});

test('UDP round-trips, and a zero checksum means "none" and is accepted (RFC 768)', () => {
  const payload = ascii('payload');
  const none = encodeUdp({ srcPort: 53, dstPort: 4789 }, payload);
  assert.deepEqual(decodeUdp(none), { srcPort: 53, dstPort: 4789, length: 15, checksum: 0, payload });
  assert.equal(verifyUdpChecksum(none, PSEUDO), true);
  const withSum = decodeUdp(encodeUdp({ srcPort: 53, dstPort: 4789 }, payload, PSEUDO));
  assert.notEqual(withSum.checksum, 0);
  assert.deepEqual(withSum.payload, payload);
});

test('a computed UDP checksum of zero is sent as 0xffff and verifies', () => {
  // With a 2-byte payload equal to the checksum of the same datagram with payload 0000, the sum of
  // everything is ffff, so the computed checksum is 0.
  const probe = encodeUdp({ srcPort: 1, dstPort: 2 }, hex('0000'), PSEUDO);
  const word = udpChecksum(probe, PSEUDO);
  const bytes = encodeUdp({ srcPort: 1, dstPort: 2 }, Uint8Array.of(word >>> 8, word & 0xff), PSEUDO);
  assert.equal(decodeUdp(bytes).checksum, 0xffff);
  assert.equal(verifyUdpChecksum(bytes, PSEUDO), true);
});

test('UDP decoding rejects truncation and a Length field shorter than the header; drops trailing bytes', () => {
  const bytes = encodeUdp({ srcPort: 1, dstPort: 2 }, ascii('abc'));
  assertRejectsEveryPrefix(bytes, decodeUdp);
  const short = bytes.slice();
  short[5] = 7;
  assert.throws(() => decodeUdp(short), /shorter than its 8-byte header/);
  const trailing = new Uint8Array(bytes.length + 5);
  trailing.set(bytes);
  assert.deepEqual(decodeUdp(trailing).payload, ascii('abc'));
  assert.throws(() => encodeUdp({ srcPort: 65536, dstPort: 2 }, hex('')), PacketError);
});

// --- VXLAN -----------------------------------------------------------------------------------------------

test('VXLAN header layout (RFC 7348 section 5) for VNIs 1, 4096 and 16777215', () => {
  assert.deepEqual(encodeVxlan(1), hex('08000000 00000100'));
  assert.deepEqual(encodeVxlan(4096), hex('08000000 00100000'));
  assert.deepEqual(encodeVxlan(16777215), hex('08000000 ffffff00'));
  assert.deepEqual(encodeVxlan(0), hex('08000000 00000000'));
  for (const vni of [0, 1, 4096, 4242, 0x800000, VNI_MAX]) {
    const decoded = decodeVxlan(encodeVxlan(vni));
    assert.deepEqual(decoded, { flags: VXLAN_FLAG_I, vniValid: true, vni, payload: hex('') });
  }
});

test('VXLAN encoding rejects VNIs outside 0..16777215 with a clear error', () => {
  for (const vni of [-1, 16777216, 1.5, Number.NaN]) {
    assert.throws(() => encodeVxlan(vni), /VNI must be an integer in 0\.\.16777215/, String(vni));
  }
  assert.throws(() => encapsulate({ outer: OUTER, vni: 1 << 24, inner: pingFrame(1) }), /VNI/);
});

test('VXLAN reserved bits are ignored on receipt', () => {
  const header = hex('ff ffffff 001092 ff');
  assert.deepEqual(decodeVxlan(header), { flags: 0xff, vniValid: true, vni: 4242, payload: hex('') });
  const frame = encapsulate({ outer: OUTER, vni: 4242, inner: pingFrame(1) });
  const vxlanAt = 14 + 20 + 8;
  frame.set(hex('ff ffffff'), vxlanAt);
  frame[vxlanAt + 7] = 0xff;
  const result = decapsulate(frame);
  assert.ok(result);
  assert.equal(result.vni, 4242);
  assert.equal(result.flags, 0xff);
  assert.deepEqual(result.inner, pingFrame(1));
});

test('a VXLAN header without the I flag has no valid VNI and is not decapsulated', () => {
  assert.equal(decodeVxlan(hex('00 000000 000001 00')).vniValid, false);
  assert.equal(decodeVxlan(hex('f7 000000 000001 00')).vniValid, false);
  const frame = encapsulate({ outer: OUTER, vni: 7, inner: pingFrame(1) });
  frame[14 + 20 + 8] = 0x00;
  assert.equal(decapsulate(frame), undefined);
  assertRejectsEveryPrefix(encodeVxlan(7), decodeVxlan);
});

test('encapsulate builds the whole outer frame and decapsulate returns the inner frame unchanged', () => {
  const inner = pingFrame(3);
  const frame = encapsulate({ outer: { ...OUTER, ttl: 9, id: 77, dontFragment: true }, vni: 4096, inner });
  assert.equal(frame.length, VXLAN_OVERHEAD + inner.length);
  assert.equal(VXLAN_OVERHEAD, 50);
  const result = decapsulate(frame);
  assert.ok(result);
  assert.equal(result.vni, 4096);
  assert.equal(result.flags, VXLAN_FLAG_I);
  assert.deepEqual(result.inner, inner);
  assert.deepEqual(
    { dst: result.outerEthernet.dst, src: result.outerEthernet.src, ethertype: result.outerEthernet.ethertype },
    { dst: OUTER.dstMac, src: OUTER.srcMac, ethertype: ETHERTYPE_IPV4 },
  );
  const ip = result.outerIp;
  assert.deepEqual(
    [ip.src, ip.dst, ip.protocol, ip.ttl, ip.id, ip.dontFragment, ip.checksumValid, ip.totalLength],
    [OUTER.srcIp, OUTER.dstIp, IPPROTO_UDP, 9, 77, true, true, 20 + 8 + 8 + inner.length],
  );
  assert.deepEqual(
    [result.outerUdp.srcPort, result.outerUdp.dstPort, result.outerUdp.checksum, result.outerUdp.length],
    [OUTER.srcPort, VXLAN_PORT, 0, 8 + 8 + inner.length],
  );
  // Defaults: TTL 64, DF clear.
  const plain = decapsulate(encapsulate({ outer: OUTER, vni: 1, inner }));
  assert.deepEqual([plain?.outerIp.ttl, plain?.outerIp.dontFragment], [64, false]);
});

test('encapsulate can compute the outer UDP checksum, which then verifies', () => {
  const frame = encapsulate({ outer: { ...OUTER, udpChecksum: true }, vni: 16777215, inner: pingFrame(2) });
  const result = decapsulate(frame);
  assert.ok(result);
  assert.notEqual(result.outerUdp.checksum, 0);
  assert.equal(verifyUdpChecksum(result.outerIp.payload, result.outerIp), true);
  assert.equal(result.vni, 16777215);
});

test('decapsulate honours the port parameter (Linux default 8472 vs IANA 4789)', () => {
  const frame = encapsulate({ outer: { ...OUTER, dstPort: 8472 }, vni: 5, inner: pingFrame(1) });
  assert.equal(decapsulate(frame), undefined);
  assert.equal(decapsulate(frame, 8472)?.vni, 5);
  assert.equal(decapsulate(encapsulate({ outer: OUTER, vni: 5, inner: pingFrame(1) }), 8472), undefined);
});

test('decapsulate returns undefined for frames that are not IPv4/UDP/VXLAN', () => {
  const arp = encodeEthernet(
    { dst: BROADCAST_MAC, src: MAC_A, ethertype: ETHERTYPE_ARP },
    encodeArp({ op: ARP_REQUEST, senderMac: MAC_A, senderIp: '10.77.0.1', targetMac: '00:00:00:00:00:00', targetIp: '10.77.0.2' }),
  );
  assert.equal(decapsulate(arp), undefined);
  assert.equal(decapsulate(pingFrame(1)), undefined); // IPv4 but ICMP
  // An IP fragment, even to port 4789, is not decapsulated (the VXLAN payload is incomplete).
  const whole = encapsulate({ outer: OUTER, vni: 5, inner: pingFrame(1) });
  const ip = decodeIpv4(whole.subarray(14));
  const fragment = encodeEthernet(
    { dst: OUTER.dstMac, src: OUTER.srcMac, ethertype: ETHERTYPE_IPV4 },
    encodeIpv4({ src: ip.src, dst: ip.dst, protocol: IPPROTO_UDP, moreFragments: true }, ip.payload.subarray(0, 24)),
  );
  assert.equal(decapsulate(fragment), undefined);
});

test('decapsulate rejects a VXLAN frame truncated at any layer', () => {
  const frame = encapsulate({ outer: OUTER, vni: 4242, inner: pingFrame(1) });
  // Any cut of the captured bytes is a PacketError (Ethernet, IPv4 header, IPv4 Total Length), never a wrong result.
  assertRejectsEveryPrefix(frame, decapsulate);
  // Consistent outer IPv4 lengths around a cut UDP datagram, then around a cut VXLAN header.
  const udp = decodeIpv4(frame.subarray(14)).payload;
  const rewrap = (udpBytes: Uint8Array) =>
    encodeEthernet(
      { dst: OUTER.dstMac, src: OUTER.srcMac, ethertype: ETHERTYPE_IPV4 },
      encodeIpv4({ src: OUTER.srcIp, dst: OUTER.dstIp, protocol: IPPROTO_UDP }, udpBytes),
    );
  assert.throws(() => decapsulate(rewrap(udp.subarray(0, 20))), /UDP datagram is truncated/);
  assert.throws(() => decapsulate(rewrap(encodeUdp({ srcPort: 1, dstPort: VXLAN_PORT }, hex('08000000')))), /VXLAN header is truncated/);
});
