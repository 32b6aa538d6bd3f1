/**
 * VXLAN frames injected from a namespace, for the security tests: an ICMP echo request wrapped in VXLAN
 * with vxnet's own codecs, sent as a plain UDP datagram (the sender's kernel adds the outer IPv4 or IPv6
 * and UDP headers), and the echo requests found among captured frames, by which a test tells whether its frame
 * arrived.
 */
import assert from 'node:assert/strict';
import { decodeEthernet, encodeEthernet, ETHERTYPE_IPV4 } from '../../../src/packet/ethernet.ts';
import { decodeIcmpEcho, encodeIcmpEcho, ICMP_ECHO_REQUEST } from '../../../src/packet/icmp.ts';
import { decodeIpv4, encodeIpv4, IPPROTO_ICMP } from '../../../src/packet/ipv4.ts';
import { decapsulate, encapsulate, VXLAN_PORT } from '../../../src/packet/vxlan.ts';
import type { Cluster } from '../../../src/testkit/cluster.ts';

/** Sends one UDP payload `count` times from `source` to `destination`:PORT, 20 ms apart, over IPv4 or IPv6. */
const SENDER = `
const dgram = require('node:dgram');
const [source, destination, port, hex, count] = process.argv.slice(1);
const socket = dgram.createSocket(destination.includes(':') ? 'udp6' : 'udp4');
const payload = Buffer.from(hex, 'hex');
socket.on('error', (err) => { console.error(err.message); process.exit(1); });
socket.bind({ address: source, port: 0 }, async () => {
  for (let i = 0; i < Number(count); i++) {
    await new Promise((resolve, reject) => socket.send(payload, Number(port), destination, (err) => (err ? reject(err) : resolve())));
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  socket.close();
});
`;

/** The inner frame: an ICMP echo request from one container's MAC and IP to another's. */
export interface InnerEcho {
  vni: number;
  srcMac: string;
  dstMac: string;
  srcIp: string;
  dstIp: string;
  /** ICMP echo identifier: how a capture recognises the test's frames */
  id: number;
}

/**
 * The UDP payload of a VXLAN datagram carrying `inner`: built as a whole outer frame with `encapsulate`,
 * checked by decoding it back, and cut down to what a UDP socket sends (VXLAN header + inner frame).
 */
export function vxlanEcho(inner: InnerEcho): Buffer {
  const icmp = encodeIcmpEcho({ type: ICMP_ECHO_REQUEST, id: inner.id, seq: 1, data: new TextEncoder().encode('vxnet injection test') });
  const ip = encodeIpv4({ src: inner.srcIp, dst: inner.dstIp, protocol: IPPROTO_ICMP, ttl: 64 }, icmp);
  const frame = encodeEthernet({ dst: inner.dstMac, src: inner.srcMac, ethertype: ETHERTYPE_IPV4 }, ip);
  // the outer addresses do not reach the payload: the sending socket's kernel writes its own
  const wire = encapsulate({
    outer: { srcMac: '02:00:00:00:00:01', dstMac: '02:00:00:00:00:02', srcIp: '10.99.0.1', dstIp: '10.99.0.2', srcPort: 40000 },
    vni: inner.vni,
    inner: frame,
  });
  const decoded = decapsulate(wire)!;
  assert.equal(decoded.vni, inner.vni);
  assert.deepEqual(decoded.inner, frame);
  return Buffer.from(decoded.outerUdp.payload);
}

/** Sends `payload` to `destination`:4789 (IPv4 or IPv6) `count` times from namespace `from`, bound to `source`. */
export async function sendVxlan(cluster: Cluster, from: string, source: string, destination: string, payload: Buffer, count = 5): Promise<void> {
  const sent = await cluster.exec(from, [process.execPath, '-e', SENDER, source, destination, String(VXLAN_PORT), payload.toString('hex'), String(count)]);
  assert.equal(sent.code, 0, sent.stderr);
}

/** The ICMP echo requests among captured Ethernet frames: source address and identifier. */
export function echoRequests(frames: Uint8Array[]): { src: string; id: number }[] {
  const found: { src: string; id: number }[] = [];
  for (const frame of frames) {
    try {
      const eth = decodeEthernet(frame);
      if (eth.ethertype !== ETHERTYPE_IPV4) continue;
      const ip = decodeIpv4(eth.payload);
      if (ip.protocol !== IPPROTO_ICMP) continue;
      const echo = decodeIcmpEcho(ip.payload);
      if (echo.type === ICMP_ECHO_REQUEST) found.push({ src: ip.src, id: echo.id });
    } catch {
      // not an echo request
    }
  }
  return found;
}
