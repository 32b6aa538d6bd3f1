/**
 * The codecs against real kernel traffic: test/fixtures/vxlan-ping*.pcap were captured by
 * test/fixtures/make-capture.sh (two namespaces, kernel VXLAN devices with VNI 4242 on port 4789,
 * 172.31.0.1 pinging 172.31.0.2 three times). No root needed here: the captures are read from disk.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  ARP_REPLY,
  ARP_REQUEST,
  BROADCAST_MAC,
  decapsulate,
  decapsulateIpv4,
  type DecapsulatedIpv4,
  decodeArp,
  decodeEthernet,
  decodeIcmpEcho,
  decodeIpv4,
  decodeLinuxSll,
  decodeLinuxSll2,
  decodeUdp,
  encapsulate,
  encodeArp,
  encodeEthernet,
  encodeIcmpEcho,
  encodeIpv4,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  formatMac,
  ICMP_ECHO_REPLY,
  ICMP_ECHO_REQUEST,
  IPPROTO_ICMP,
  IPPROTO_UDP,
  linkPayload,
  LINKTYPE_ETHERNET,
  LINKTYPE_LINUX_SLL,
  LINKTYPE_LINUX_SLL2,
  PacketError,
  pcapRecords,
  readPcap,
  readPcapHeader,
  SLL_HOST,
  SLL_OUTGOING,
  udpChecksum,
  udpPseudoHeaderSum,
  verifyIpv4Checksum,
  verifyUdpChecksum,
  VXLAN_FLAG_I,
  VXLAN_PORT,
  writePcap,
} from '../../src/packet/index.ts';

const fixture = (name: string) => new Uint8Array(readFileSync(new URL(`../fixtures/${name}`, import.meta.url)));
const ethernetCapture = readPcap(fixture('vxlan-ping.pcap'));
const cookedCapture = readPcap(fixture('vxlan-ping-any.pcap'));

const UNDERLAY = { a: '10.77.0.1', b: '10.77.0.2' };
const OVERLAY = { a: '172.31.0.1', b: '172.31.0.2' };

/** Checks one decapsulated record from either capture; returns what the inner frame was. */
function checkInner(result: DecapsulatedIpv4): 'arp-request' | 'arp-reply' | 'echo-request' | 'echo-reply' {
  assert.equal(result.vni, 4242);
  assert.equal(result.flags, VXLAN_FLAG_I);
  assert.equal(result.outerUdp.dstPort, VXLAN_PORT);
  assert.equal(result.outerIp.protocol, IPPROTO_UDP);
  assert.equal(result.outerIp.checksumValid, true);
  const outward = result.outerIp.src === UNDERLAY.a;
  assert.deepEqual([result.outerIp.src, result.outerIp.dst], outward ? [UNDERLAY.a, UNDERLAY.b] : [UNDERLAY.b, UNDERLAY.a]);

  const inner = decodeEthernet(result.inner);
  if (inner.ethertype === ETHERTYPE_ARP) {
    const arp = decodeArp(inner.payload);
    if (arp.op === ARP_REQUEST) {
      assert.equal(inner.dst, BROADCAST_MAC);
      assert.deepEqual([arp.senderIp, arp.targetIp, arp.senderMac], [OVERLAY.a, OVERLAY.b, inner.src]);
      return 'arp-request';
    }
    assert.equal(arp.op, ARP_REPLY);
    assert.deepEqual([arp.senderIp, arp.targetIp, arp.senderMac, arp.targetMac], [OVERLAY.b, OVERLAY.a, inner.src, inner.dst]);
    return 'arp-reply';
  }
  assert.equal(inner.ethertype, ETHERTYPE_IPV4);
  const ip = decodeIpv4(inner.payload);
  assert.equal(ip.checksumValid, true);
  assert.equal(verifyIpv4Checksum(inner.payload), true);
  assert.equal(ip.protocol, IPPROTO_ICMP);
  const icmp = decodeIcmpEcho(ip.payload);
  assert.equal(icmp.checksumValid, true);
  if (icmp.type === ICMP_ECHO_REQUEST) {
    assert.deepEqual([ip.src, ip.dst], [OVERLAY.a, OVERLAY.b]);
    return 'echo-request';
  }
  assert.equal(icmp.type, ICMP_ECHO_REPLY);
  assert.deepEqual([ip.src, ip.dst], [OVERLAY.b, OVERLAY.a]);
  return 'echo-reply';
}

test('the tcpdump capture on the veth is classic pcap, link type Ethernet, microsecond timestamps', () => {
  assert.deepEqual(ethernetCapture.header, {
    littleEndian: true,
    nanosecond: false,
    versionMajor: 2,
    versionMinor: 4,
    snapLength: 262144,
    linkType: LINKTYPE_ETHERNET,
  });
  assert.equal(ethernetCapture.records.length, 8);
  let previous = 0;
  for (const record of ethernetCapture.records) {
    assert.equal(record.capturedLength, record.data.length);
    assert.equal(record.originalLength, record.capturedLength);
    assert.equal(record.timestampMicros, record.seconds * 1e6 + record.fraction);
    assert.ok(record.fraction < 1e6 && record.timestampMicros >= previous);
    previous = record.timestampMicros;
  }
});

test('every captured frame decapsulates to VNI 4242 on port 4789 with an ARP or ICMP echo inner frame', () => {
  const kinds = ethernetCapture.records.map((record) => {
    const result = decapsulate(record.data);
    assert.ok(result, 'a VXLAN frame');
    assert.equal(result.outerEthernet.ethertype, ETHERTYPE_IPV4);
    return checkInner(result);
  });
  assert.deepEqual(kinds, ['arp-request', 'arp-reply', ...Array(3).fill(['echo-request', 'echo-reply']).flat()]);
  // Any other port finds nothing.
  assert.ok(ethernetCapture.records.every((record) => decapsulate(record.data, 8472) === undefined));
});

test('the echoes carry one identifier, sequence numbers 1..3, and replies echo the request data', () => {
  const echoes = ethernetCapture.records.slice(2).map((record) => {
    const ip = decodeIpv4(decodeEthernet(decapsulate(record.data)!.inner).payload);
    return decodeIcmpEcho(ip.payload);
  });
  assert.deepEqual(echoes.map((e) => e.seq), [1, 1, 2, 2, 3, 3]);
  assert.equal(new Set(echoes.map((e) => e.id)).size, 1);
  for (let i = 0; i < echoes.length; i += 2) assert.deepEqual(echoes[i + 1]!.data, echoes[i]!.data);
});

test('re-encoding the kernel\'s inner frames reproduces them byte for byte (checksums agree with Linux)', () => {
  for (const record of ethernetCapture.records) {
    const inner = decapsulate(record.data)!.inner;
    const ethernet = decodeEthernet(inner);
    let payload: Uint8Array;
    if (ethernet.ethertype === ETHERTYPE_ARP) {
      payload = encodeArp(decodeArp(ethernet.payload));
    } else {
      const ip = decodeIpv4(ethernet.payload);
      payload = encodeIpv4(ip, encodeIcmpEcho(decodeIcmpEcho(ip.payload)));
    }
    assert.deepEqual(encodeEthernet(ethernet, payload), inner);
  }
});

test('encapsulate reproduces the frames B sent (zero UDP checksum) byte for byte', () => {
  const fromB = ethernetCapture.records.map((r) => r.data).filter((data) => decapsulate(data)!.outerIp.src === UNDERLAY.b);
  assert.equal(fromB.length, 4);
  for (const data of fromB) {
    const { outerEthernet, outerIp, outerUdp, vni, inner } = decapsulate(data)!;
    const rebuilt = encapsulate({
      outer: {
        srcMac: outerEthernet.src,
        dstMac: outerEthernet.dst,
        srcIp: outerIp.src,
        dstIp: outerIp.dst,
        srcPort: outerUdp.srcPort,
        dstPort: outerUdp.dstPort,
        ttl: outerIp.ttl,
        id: outerIp.id,
        dontFragment: outerIp.dontFragment,
      },
      vni,
      inner,
    });
    assert.deepEqual(rebuilt, data);
  }
});

test('outer UDP checksums: zero from B is accepted, A\'s offloaded partial sum is the pseudo-header sum', () => {
  // Known-good checksums as tcpdump -vv computed them for A's datagrams ("bad udp cksum 0x14e8 -> 0x7c1f"):
  // 0x7c1f for the ARP request, 0xa6ac for each echo request. Regenerating the capture changes them.
  const expected = [0x7c1f, undefined, 0xa6ac, undefined, 0xa6ac, undefined, 0xa6ac, undefined];
  ethernetCapture.records.forEach((record, index) => {
    const { outerIp, outerUdp } = decapsulate(record.data)!;
    const datagram = outerIp.payload;
    if (outerIp.src === UNDERLAY.b) {
      // vx0 in B has noudpcsum: 0 means "no checksum" (RFC 768) and must verify.
      assert.equal(outerUdp.checksum, 0);
      assert.equal(verifyUdpChecksum(datagram, outerIp), true);
    } else {
      // Captured before the veth's checksum offload finished it: the field holds the folded
      // pseudo-header sum (CHECKSUM_PARTIAL), so it does not verify, but the full checksum we
      // compute equals tcpdump's.
      assert.equal(outerUdp.checksum, udpPseudoHeaderSum(outerIp.src, outerIp.dst, outerUdp.length));
      assert.equal(verifyUdpChecksum(datagram, outerIp), false);
      assert.equal(udpChecksum(datagram, outerIp), expected[index]);
      const finished = datagram.slice();
      new DataView(finished.buffer).setUint16(6, udpChecksum(datagram, outerIp));
      assert.equal(verifyUdpChecksum(finished, outerIp), true);
    }
  });
});

test('the "any" capture is Linux cooked (SLL, 113) with nanosecond timestamps and decodes to the same traffic', () => {
  assert.equal(cookedCapture.header.linkType, LINKTYPE_LINUX_SLL);
  assert.equal(cookedCapture.header.nanosecond, true);
  assert.equal(cookedCapture.records.length, ethernetCapture.records.length);
  cookedCapture.records.forEach((record, index) => {
    const cooked = decodeLinuxSll(record.data);
    assert.equal(cooked.arphrdType, 1); // ARPHRD_ETHER
    assert.equal(cooked.protocol, ETHERTYPE_IPV4);
    const { ethertype, payload } = linkPayload(LINKTYPE_LINUX_SLL, record.data);
    assert.equal(ethertype, ETHERTYPE_IPV4);
    const result = decapsulateIpv4(payload);
    assert.ok(result);
    checkInner(result);
    // Direction and link-layer source address come from the cooked header.
    const same = decapsulate(ethernetCapture.records[index]!.data)!;
    assert.equal(cooked.packetType, result.outerIp.src === UNDERLAY.a ? SLL_OUTGOING : SLL_HOST);
    assert.equal(formatMac(cooked.address), same.outerEthernet.src);
    // The same packet as in the veth capture, with the same timestamp at nanosecond resolution.
    assert.deepEqual(payload, same.outerEthernet.payload);
    assert.ok(record.fraction < 1e9);
    assert.equal(record.timestampMicros, ethernetCapture.records[index]!.timestampMicros);
  });
});

// --- reader and writer on synthetic files ----------------------------------------------------------------

const frames = ethernetCapture.records.map((record) => record.data);

test('writePcap output reads back, for microsecond and nanosecond files', () => {
  const micro = writePcap(frames.map((data, i) => ({ data, timestampMicros: 1_700_000_000_000_000 + i })));
  const back = readPcap(micro);
  assert.equal(back.header.linkType, LINKTYPE_ETHERNET);
  assert.deepEqual(back.records.map((r) => r.data), frames);
  assert.deepEqual(back.records.map((r) => r.timestampMicros), frames.map((_, i) => 1_700_000_000_000_000 + i));

  const nano = writePcap([{ data: frames[0]!, seconds: 5, fraction: 123_456_789 }], { nanosecond: true, linkType: 113 });
  const [record] = readPcap(nano).records;
  assert.deepEqual(readPcapHeader(nano).nanosecond, true);
  assert.deepEqual([record?.seconds, record?.fraction, record?.timestampMicros], [5, 123_456_789, 5_123_456]);
  assert.throws(() => writePcap([{ data: frames[0]!, seconds: 1, fraction: 1_000_000 }]), PacketError);
});

test('the writer cuts records to the snap length and keeps the original length', () => {
  const file = readPcap(writePcap([{ data: frames[2]! }], { snapLength: 64 }));
  assert.equal(file.header.snapLength, 64);
  const [record] = file.records;
  assert.deepEqual([record?.capturedLength, record?.originalLength], [64, frames[2]!.length]);
  // A cut VXLAN frame is reported as truncated, never misread.
  assert.throws(() => decapsulate(record!.data), PacketError);
});

test('big-endian pcap files (swapped magic) are read too', () => {
  const little = writePcap([{ data: frames[0]!, seconds: 0x01020304, fraction: 0x0a0b0c }], { nanosecond: true });
  const big = little.slice();
  const swap = (offset: number, size: number) => big.subarray(offset, offset + size).reverse();
  [[0, 4], [4, 2], [6, 2], [8, 4], [12, 4], [16, 4], [20, 4], [24, 4], [28, 4], [32, 4], [36, 4]].forEach(([o, s]) => swap(o!, s!));
  assert.deepEqual([...big.subarray(0, 4)], [0xa1, 0xb2, 0x3c, 0x4d]);
  const file = readPcap(big);
  assert.equal(file.header.littleEndian, false);
  assert.equal(file.header.nanosecond, true);
  assert.equal(file.header.versionMajor, 2);
  assert.deepEqual([file.records[0]?.seconds, file.records[0]?.fraction], [0x01020304, 0x0a0b0c]);
  assert.deepEqual(file.records[0]?.data, frames[0]);
});

test('truncated pcap files, pcapng and unknown magics are rejected with a clear error', () => {
  const bytes = writePcap(frames.slice(0, 2).map((data) => ({ data })));
  for (let length = 0; length < 24; length++) assert.throws(() => readPcapHeader(bytes.subarray(0, length)), /global header is truncated/);
  assert.throws(() => readPcap(bytes.subarray(0, 24 + 10)), /record 0 header is truncated/);
  assert.throws(() => readPcap(bytes.subarray(0, bytes.length - 1)), /record 1 data is truncated/);
  // The generator yields the complete records before it meets the broken one.
  const iterator = pcapRecords(bytes.subarray(0, bytes.length - 1));
  assert.deepEqual(iterator.next().value?.data, frames[0]);
  assert.throws(() => iterator.next(), PacketError);
  assert.deepEqual(readPcap(bytes.subarray(0, 24)).records, []);
  const pcapng = Uint8Array.from([0x0a, 0x0d, 0x0d, 0x0a, ...new Uint8Array(20)]);
  assert.throws(() => readPcapHeader(pcapng), /pcapng/);
  assert.throws(() => readPcapHeader(new Uint8Array(24)), /not a pcap capture \(magic 0x00000000\)/);
});

test('Linux cooked headers: SLL2 decodes, short headers are rejected, other link types are refused', () => {
  const ip = linkPayload(LINKTYPE_ETHERNET, frames[2]!).payload;
  const sll2 = new Uint8Array(20 + ip.length);
  const dv = new DataView(sll2.buffer);
  dv.setUint16(0, ETHERTYPE_IPV4);
  dv.setUint32(4, 7); // ifindex
  dv.setUint16(8, 1); // ARPHRD_ETHER
  sll2[10] = SLL_OUTGOING;
  sll2[11] = 6;
  sll2.set([2, 0, 0, 0, 0, 1], 12);
  sll2.set(ip, 20);
  const cooked = decodeLinuxSll2(sll2);
  assert.deepEqual(
    [cooked.protocol, cooked.ifindex, cooked.arphrdType, cooked.packetType, formatMac(cooked.address)],
    [ETHERTYPE_IPV4, 7, 1, SLL_OUTGOING, '02:00:00:00:00:01'],
  );
  assert.equal(decapsulateIpv4(linkPayload(LINKTYPE_LINUX_SLL2, sll2).payload)?.vni, 4242);
  for (let length = 0; length < 20; length++) assert.throws(() => decodeLinuxSll2(sll2.subarray(0, length)), PacketError);
  for (let length = 0; length < 16; length++) assert.throws(() => decodeLinuxSll(sll2.subarray(0, length)), PacketError);
  assert.throws(() => linkPayload(101, ip), /link type 101 is not supported/);
  // linkPayload on Ethernet sees through the header to the outer IPv4 packet.
  assert.equal(decodeUdp(decodeIpv4(ip).payload).dstPort, VXLAN_PORT);
});
