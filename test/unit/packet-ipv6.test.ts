/**
 * The IPv6 and ICMPv6 codecs against frames the kernel sent: `ping -6 -c1 fd00:1::3` between two namespaces
 * joined by a veth pair (MACs 02:79:00:00:00:02 and ...:03, DAD off on the global addresses), captured with
 * tcpdump on the receiving side. tcpdump read them as: a DAD neighbour solicitation for the link-local address,
 * two router solicitations, then "who has fd00:1::3", "tgt is fd00:1::3", echo request and reply id 17090 seq 1.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeRecord, formatFrame } from '../../src/capture/describe.ts';
import { decodeEthernet, encodeEthernet, ETHERTYPE_IPV6 } from '../../src/packet/ethernet.ts';
import {
  decodeIcmpv6,
  encodeIcmpv6,
  ICMPV6_ECHO_REQUEST,
  ICMPV6_NEIGHBOR_ADVERTISEMENT,
  ICMPV6_NEIGHBOR_SOLICITATION,
  verifyIcmpv6Checksum,
} from '../../src/packet/icmpv6.ts';
import { decodeIpv6, encodeIpv6, IPPROTO_ICMPV6 } from '../../src/packet/ipv6.ts';
import { PacketError } from '../../src/packet/bytes.ts';
import { LINKTYPE_ETHERNET, pcapRecords, writePcap } from '../../src/packet/pcap.ts';
import { encapsulate } from '../../src/packet/vxlan.ts';

const KERNEL_PCAP = Buffer.from(
  '1MOyoQIABAAAAAAAAAAAAAAABAABAAAAFbkTazxgDABWAAAAVgAAADMz/wAAAgJ5AAAAAobdYAAAAAAgOv8AAAAAAAAAAAAAAAAA' +
    'AAAA/wIAAAAAAAAAAAAB/wAAAocABQsAAAAA/oAAAAAAAAAAeQD//gAAAg4BXCavIV5OFrkTa2HeBABGAAAARgAAADMzAAAAAgJ5' +
    'AAAAA4bdYAAAAAAQOv/+gAAAAAAAAAB5AP/+AAAD/wIAAAAAAAAAAAAAAAAAAoUAejYAAAAAAQECeQAAAAMWuRNrD74MAEYAAABG' +
    'AAAAMzMAAAACAnkAAAACht1gAAAAABA6//6AAAAAAAAAAHkA//4AAAL/AgAAAAAAAAAAAAAAAAAChQB6OAAAAAABAQJ5AAAAAhe5' +
    'E2ukIwIAVgAAAFYAAAAzM/8AAAMCeQAAAAKG3WAAAAAAIDr//QAAAQAAAAAAAAAAAAAAAv8CAAAAAAAAAAAAAf8AAAOHAH0YAAAA' +
    'AP0AAAEAAAAAAAAAAAAAAAMBAQJ5AAAAAhe5E2vIIwIAVgAAAFYAAAACeQAAAAICeQAAAAOG3WAAAAAAIDr//QAAAQAAAAAAAAAA' +
    'AAAAA/0AAAEAAAAAAAAAAAAAAAKIABwaYAAAAP0AAAEAAAAAAAAAAAAAAAMCAQJ5AAAAAxe5E2vOIwIAdgAAAHYAAAACeQAAAAMC' +
    'eQAAAAKG3WAM+8kAQDpA/QAAAQAAAAAAAAAAAAAAAv0AAAEAAAAAAAAAAAAAAAOAAPyeQsIAARe5E2sAAAAAWiMCAAAAAAAQERIT' +
    'FBUWFxgZGhscHR4fICEiIyQlJicoKSorLC0uLzAxMjM0NTY3F7kTa9UjAgB2AAAAdgAAAAJ5AAAAAgJ5AAAAA4bdYAr9ygBAOkD9' +
    'AAABAAAAAAAAAAAAAAAD/QAAAQAAAAAAAAAAAAAAAoEA+55CwgABF7kTawAAAABaIwIAAAAAABAREhMUFRYXGBkaGxwdHh8gISIj' +
    'JCUmJygpKissLS4vMDEyMzQ1Njc=',
  'base64',
);
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const frames = [...pcapRecords(KERNEL_PCAP)].map((record) => decodeEthernet(record.data));
const packets = frames.map((frame) => decodeIpv6(frame.payload));
const A = { mac: '02:79:00:00:00:02', ip: 'fd00:1::2' };
const B = { mac: '02:79:00:00:00:03', ip: 'fd00:1::3' };

describe('IPv6 and ICMPv6 codecs, on frames the kernel sent', () => {
  it('reads the IPv6 headers and verifies every ICMPv6 checksum over the pseudo-header', () => {
    assert.equal(frames.length, 7);
    assert.ok(frames.every((f) => f.ethertype === ETHERTYPE_IPV6));
    assert.deepEqual(packets.map((p) => `${p.src} > ${p.dst}`), [
      ':: > ff02::1:ff00:2',
      'fe80::79:ff:fe00:3 > ff02::2',
      'fe80::79:ff:fe00:2 > ff02::2',
      'fd00:1::2 > ff02::1:ff00:3',
      'fd00:1::3 > fd00:1::2',
      'fd00:1::2 > fd00:1::3',
      'fd00:1::3 > fd00:1::2',
    ]);
    assert.ok(packets.every((p) => p.nextHeader === IPPROTO_ICMPV6 && verifyIcmpv6Checksum(p.payload, p)));
    assert.deepEqual(packets.map((p) => p.hopLimit), [255, 255, 255, 255, 255, 64, 64]);
    const corrupted = new Uint8Array(packets[5]!.payload);
    corrupted[10]! ^= 1;
    assert.equal(verifyIcmpv6Checksum(corrupted, packets[5]!), false);
  });

  it('decodes neighbour discovery and echo as tcpdump did', () => {
    assert.deepEqual(decodeIcmpv6(packets[0]!.payload), { kind: 'neighbor-solicitation', type: ICMPV6_NEIGHBOR_SOLICITATION, target: 'fe80::79:ff:fe00:2' });
    assert.deepEqual(decodeIcmpv6(packets[1]!.payload), { kind: 'other', type: 133, code: 0 });
    assert.deepEqual(decodeIcmpv6(packets[3]!.payload), { kind: 'neighbor-solicitation', type: ICMPV6_NEIGHBOR_SOLICITATION, target: B.ip, sourceMac: A.mac });
    assert.deepEqual(decodeIcmpv6(packets[4]!.payload), {
      kind: 'neighbor-advertisement',
      type: ICMPV6_NEIGHBOR_ADVERTISEMENT,
      target: B.ip,
      router: false,
      solicited: true,
      override: true,
      targetMac: B.mac,
    });
    const echo = decodeIcmpv6(packets[5]!.payload);
    assert.equal(echo.kind, 'echo');
    assert.deepEqual(echo.kind === 'echo' ? [echo.id, echo.seq, echo.data.length] : [], [17090, 1, 56]);
  });

  it('encodes byte for byte what the kernel sent', () => {
    const solicitation = encodeIcmpv6({ type: ICMPV6_NEIGHBOR_SOLICITATION, target: B.ip, sourceMac: A.mac }, packets[3]!);
    assert.equal(hex(solicitation), hex(packets[3]!.payload));
    const advertisement = encodeIcmpv6({ type: ICMPV6_NEIGHBOR_ADVERTISEMENT, target: B.ip, solicited: true, override: true, targetMac: B.mac }, packets[4]!);
    assert.equal(hex(advertisement), hex(packets[4]!.payload));
    const request = decodeIcmpv6(packets[5]!.payload);
    assert.ok(request.kind === 'echo');
    const echo = encodeIcmpv6({ type: ICMPV6_ECHO_REQUEST, id: request.id, seq: request.seq, data: request.data }, packets[5]!);
    const p = packets[5]!;
    const whole = encodeIpv6({ src: p.src, dst: p.dst, nextHeader: IPPROTO_ICMPV6, hopLimit: p.hopLimit, flowLabel: p.flowLabel, trafficClass: p.trafficClass }, echo);
    assert.equal(hex(encodeEthernet({ src: A.mac, dst: B.mac, ethertype: ETHERTYPE_IPV6 }, whole)), hex([...pcapRecords(KERNEL_PCAP)][5]!.data));
  });

  it('refuses truncated headers and an ND option of length 0', () => {
    assert.throws(() => decodeIpv6(frames[5]!.payload.subarray(0, 39)), PacketError);
    assert.throws(() => decodeIpv6(frames[5]!.payload.subarray(0, 60)), /IPv6 packet is truncated/);
    const zeroLength = new Uint8Array(packets[3]!.payload);
    zeroLength[25] = 0;
    assert.throws(() => decodeIcmpv6(zeroLength), /ND option has length 0/);
    assert.throws(() => encodeIpv6({ src: 'fd00::1', dst: 'nope', nextHeader: 58 }, new Uint8Array(0)), /IPv6 destination "nope" is not a valid IPv6 address/);
  });

  it('vxnet capture says what an IPv6 frame inside VXLAN is', () => {
    const outer = { srcMac: '02:00:00:00:00:11', dstMac: '02:00:00:00:00:12', srcIp: '10.99.0.11', dstIp: '10.99.0.12', srcPort: 40000 };
    const wrapped = [3, 4, 5].map((i) => encapsulate({ outer, vni: 1000, inner: [...pcapRecords(KERNEL_PCAP)][i]!.data }));
    const file = writePcap(wrapped.map((data, i) => ({ data, timestampMicros: 1_764_910_800_000_000 + i })));
    const lines = [...pcapRecords(file)].map((r) => formatFrame(describeRecord(r, LINKTYPE_ETHERNET, [4789])!));
    assert.match(lines[0]!, / VNI 1000 ICMPV6 fd00:1::2 → ff02::1:ff00:3 neighbour solicitation who-has fd00:1::3$/);
    assert.match(lines[1]!, / ICMPV6 fd00:1::3 → fd00:1::2 neighbour advertisement fd00:1::3 is-at 02:79:00:00:00:03$/);
    assert.match(lines[2]!, / ICMPV6 fd00:1::2 → fd00:1::3 echo request id 17090 seq 1$/);
  });
});
