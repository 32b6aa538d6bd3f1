/** `vxnet capture`'s decoding: frames crafted with vxnet's codecs, read back from pcap whole and in pieces. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeRecord, endpointKey, formatFrame, type CaptureNames } from '../../src/capture/describe.ts';
import { PcapStream } from '../../src/capture/stream.ts';
import { ARP_REQUEST, encodeArp } from '../../src/packet/arp.ts';
import { encodeEthernet, ETHERTYPE_ARP, ETHERTYPE_IPV4 } from '../../src/packet/ethernet.ts';
import { encodeIcmpEcho, ICMP_ECHO_REQUEST } from '../../src/packet/icmp.ts';
import { encodeIpv4, IPPROTO_ICMP, IPPROTO_TCP } from '../../src/packet/ipv4.ts';
import { LINKTYPE_ETHERNET, pcapRecords, writePcap } from '../../src/packet/pcap.ts';
import { encapsulate } from '../../src/packet/vxlan.ts';

const C1 = { mac: '02:00:c0:a8:01:02', ip: '192.168.1.2' };
const C3 = { mac: '02:00:c0:a8:01:03', ip: '192.168.1.3' };
const outer = { srcMac: '02:00:00:00:00:11', dstMac: '02:00:00:00:00:12', srcIp: '10.99.0.11', dstIp: '10.99.0.12', srcPort: 40000 };
const names: CaptureNames = { networks: new Map([[1000, 'blue']]), endpoints: new Map([[endpointKey(1000, C1.ip), 'c1'], [endpointKey(1000, C3.ip), 'c3']]) };

function vxlan(vni: number, ethertype: number, payload: Uint8Array, dstPort?: number): Uint8Array {
  const inner = encodeEthernet({ src: C1.mac, dst: C3.mac, ethertype }, payload);
  return encapsulate({ outer: { ...outer, ...(dstPort ? { dstPort } : {}) }, vni, inner });
}
const ping = (vni: number) => vxlan(vni, ETHERTYPE_IPV4, encodeIpv4({ src: C1.ip, dst: C3.ip, protocol: IPPROTO_ICMP }, encodeIcmpEcho({ type: ICMP_ECHO_REQUEST, id: 7, seq: 3 })));
const arp = vxlan(1000, ETHERTYPE_ARP, encodeArp({ op: ARP_REQUEST, senderMac: C1.mac, senderIp: C1.ip, targetMac: '00:00:00:00:00:00', targetIp: C3.ip }));
const tcpSyn = (() => {
  const tcp = new Uint8Array(20);
  tcp.set([0x9c, 0x40, 0x00, 0x50], 0); // 40000 → 80
  tcp[12] = 0x50;
  tcp[13] = 0x02; // SYN
  return vxlan(1000, ETHERTYPE_IPV4, encodeIpv4({ src: C1.ip, dst: C3.ip, protocol: IPPROTO_TCP }, tcp));
})();

const file = writePcap([ping(1000), arp, tcpSyn, ping(2000), ping(1000).subarray(0, 30), vxlan(1000, ETHERTYPE_ARP, new Uint8Array(28), 8472)].map((data, i) => ({ data, timestampMicros: 1_764_910_800_000_000 + i * 1500 })));
const records = [...pcapRecords(file)];

describe('vxnet capture decoding', () => {
  it('names the network and the endpoints of a VXLAN frame and says what is inside', () => {
    const lines = records.map((r) => describeRecord(r, LINKTYPE_ETHERNET, [4789], names));
    assert.equal(formatFrame(lines[0]!), `05:00:00.000000 10.99.0.11 → 10.99.0.12 VNI 1000 (blue) ICMP 192.168.1.2 (c1) → 192.168.1.3 (c3) echo request id 7 seq 3`);
    assert.equal(formatFrame(lines[1]!), `05:00:00.001500 10.99.0.11 → 10.99.0.12 VNI 1000 (blue) ARP 192.168.1.2 (c1) → 192.168.1.3 (c3) who-has 192.168.1.3 tell 192.168.1.2`);
    assert.match(formatFrame(lines[2]!), / TCP 192\.168\.1\.2 \(c1\) → 192\.168\.1\.3 \(c3\) 40000 → 80 \[S\]$/);
    assert.match(formatFrame(lines[3]!), / VNI 2000 ICMP 192\.168\.1\.2 → 192\.168\.1\.3 /, 'unknown VNI: no names');
    assert.equal(lines[4], undefined, 'a truncated frame is not VXLAN');
    assert.equal(lines[5], undefined, 'another port is not looked at');
    assert.equal(describeRecord(records[5]!, LINKTYPE_ETHERNET, [4789, 8472])?.vni, 1000, 'unless it is one of the ports');
    assert.deepEqual(lines[0]!.outer, { src: '10.99.0.11', dst: '10.99.0.12', srcPort: 40000, dstPort: 4789 });
    assert.equal(lines[0]!.inner.srcMac, C1.mac);
  });

  it('reads a pcap stream handed over in arbitrary pieces, the same records as the whole file', () => {
    for (const size of [1, 7, 24, 100, file.length]) {
      const stream = new PcapStream();
      const got = [];
      for (let at = 0; at < file.length; at += size) got.push(...stream.push(file.subarray(at, at + size)));
      assert.equal(got.length, records.length, `pieces of ${size}`);
      assert.deepEqual(got.map((r) => Buffer.from(r.data).toString('hex')), records.map((r) => Buffer.from(r.data).toString('hex')));
      assert.equal(stream.leftover, 0);
    }
    assert.throws(() => new PcapStream().push(Buffer.alloc(24, 0x41)), /pcap/i);
  });
});
