/**
 * `vxnet capture`'s reading of a frame seen on the underlay: pure decoding with vxnet's own codecs
 * (src/packet) of the outer IPv4 or IPv6/UDP/VXLAN headers and the inner frame, named after the cluster when the
 * caller knows the names (the network of a VNI, the endpoint of an inner address).
 */
import { decodeArp, ARP_REPLY, ARP_REQUEST } from '../packet/arp.ts';
import { PacketError } from '../packet/bytes.ts';
import { decodeEthernet, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from '../packet/ethernet.ts';
import { decodeIcmpEcho, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST } from '../packet/icmp.ts';
import { decodeIcmpv6, ICMPV6_ECHO_REQUEST, ICMPV6_ROUTER_ADVERTISEMENT, ICMPV6_ROUTER_SOLICITATION } from '../packet/icmpv6.ts';
import { decodeIpv4, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP } from '../packet/ipv4.ts';
import { decodeIpv6, IPPROTO_ICMPV6 } from '../packet/ipv6.ts';
import { linkPayload, type PcapRecord } from '../packet/pcap.ts';
import { decodeUdp } from '../packet/udp.ts';
import { decapsulateIpv4, decodeVxlan } from '../packet/vxlan.ts';

/** What the cluster calls things, when known: network by VNI, endpoint by "VNI ip". */
export interface CaptureNames {
  networks: ReadonlyMap<number, string>;
  endpoints: ReadonlyMap<string, string>;
}

export const NO_NAMES: CaptureNames = { networks: new Map(), endpoints: new Map() };

export const endpointKey = (vni: number, ip: string): string => `${vni} ${ip}`;

/** One VXLAN frame as `vxnet capture` prints it (also its --json line). */
export interface CapturedFrame {
  /** ISO 8601 with microseconds */
  time: string;
  outer: { src: string; dst: string; srcPort: number; dstPort: number };
  vni: number;
  network?: string;
  inner: {
    srcMac: string;
    dstMac: string;
    /** "arp", "icmp", "icmpv6", "tcp", "udp", "ipv4", "ipv6" or "ethertype 0x...." */
    protocol: string;
    src?: string;
    dst?: string;
    srcName?: string;
    dstName?: string;
    /** the rest, in words: "echo request id 5 seq 1", "who-has 192.168.1.3", "40000 → 80 [S]", "neighbour solicitation who-has fd00::3" */
    summary: string;
  };
}

function isoMicros(timestampMicros: number): string {
  const iso = new Date(Math.floor(timestampMicros / 1000)).toISOString();
  return `${iso.slice(0, 19)}.${String(timestampMicros % 1_000_000).padStart(6, '0')}Z`;
}

const TCP_FLAGS: [number, string][] = [[0x02, 'S'], [0x01, 'F'], [0x04, 'R'], [0x08, 'P'], [0x10, '.']];

type InnerWords = Pick<CapturedFrame['inner'], 'protocol' | 'src' | 'dst' | 'summary'>;

/** TCP and UDP read the same over either IP version; undefined for other protocols. */
function describeTransport(protocol: number, payload: Uint8Array): Pick<InnerWords, 'protocol' | 'summary'> | undefined {
  if (protocol === IPPROTO_TCP && payload.length >= 14) {
    const flags = TCP_FLAGS.filter(([bit]) => (payload[13]! & bit) !== 0).map(([, letter]) => letter).join('');
    return { protocol: 'tcp', summary: `${(payload[0]! << 8) | payload[1]!} → ${(payload[2]! << 8) | payload[3]!} [${flags}]` };
  }
  if (protocol === IPPROTO_UDP) {
    const udp = decodeUdp(payload);
    return { protocol: 'udp', summary: `${udp.srcPort} → ${udp.dstPort} length ${udp.payload.length}` };
  }
  return undefined;
}

/** Pure: the inner IPv4 packet's protocol and words. */
function describeIpv4(bytes: Uint8Array): InnerWords {
  const ip = decodeIpv4(bytes);
  const base = { src: ip.src, dst: ip.dst };
  if (ip.protocol === IPPROTO_ICMP) {
    const type = ip.payload[0];
    if (type === ICMP_ECHO_REQUEST || type === ICMP_ECHO_REPLY) {
      const echo = decodeIcmpEcho(ip.payload);
      return { ...base, protocol: 'icmp', summary: `echo ${type === ICMP_ECHO_REQUEST ? 'request' : 'reply'} id ${echo.id} seq ${echo.seq}` };
    }
    return { ...base, protocol: 'icmp', summary: `type ${type ?? '?'} code ${ip.payload[1] ?? '?'}` };
  }
  return { ...base, ...(describeTransport(ip.protocol, ip.payload) ?? { protocol: 'ipv4', summary: `protocol ${ip.protocol}` }) };
}

/** Pure: the words for an ICMPv6 message, neighbour discovery (IPv6's ARP) included. */
function describeIcmpv6(payload: Uint8Array): string {
  const message = decodeIcmpv6(payload);
  switch (message.kind) {
    case 'echo':
      return `echo ${message.type === ICMPV6_ECHO_REQUEST ? 'request' : 'reply'} id ${message.id} seq ${message.seq}`;
    case 'neighbor-solicitation':
      return `neighbour solicitation who-has ${message.target}`;
    case 'neighbor-advertisement':
      return `neighbour advertisement ${message.target} is-at ${message.targetMac ?? '?'}`;
    case 'other':
      if (message.type === ICMPV6_ROUTER_SOLICITATION) return 'router solicitation';
      if (message.type === ICMPV6_ROUTER_ADVERTISEMENT) return 'router advertisement';
      return `type ${message.type} code ${message.code}`;
  }
}

/** Pure: the inner IPv6 packet's protocol and words. */
function describeIpv6(bytes: Uint8Array): InnerWords {
  const ip = decodeIpv6(bytes);
  const base = { src: ip.src, dst: ip.dst };
  if (ip.nextHeader === IPPROTO_ICMPV6) return { ...base, protocol: 'icmpv6', summary: describeIcmpv6(ip.payload) };
  return { ...base, ...(describeTransport(ip.nextHeader, ip.payload) ?? { protocol: 'ipv6', summary: `next header ${ip.nextHeader}` }) };
}

/** The outer headers of a VXLAN datagram, over either IP version, and what it carries. */
interface OuterVxlan {
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  vni: number;
  inner: Uint8Array;
}

const outerOf = (d: ReturnType<typeof decapsulateIpv4>): OuterVxlan | undefined =>
  d && { src: d.outerIp.src, dst: d.outerIp.dst, srcPort: d.outerUdp.srcPort, dstPort: d.outerUdp.dstPort, vni: d.vni, inner: d.inner };

/**
 * Pure: VXLAN over an IPv6 underlay (docs/architecture.md, "IPv6 underlay"): UDP right after the fixed
 * header, to one of `ports`, with a valid VNI. A datagram behind extension headers (a fragment header among
 * them: only the first fragment would hold the VXLAN header) is not shown, as IPv4 fragments are not.
 */
export function decapsulateIpv6(packet: Uint8Array, ports: readonly number[]): OuterVxlan | undefined {
  const ip = decodeIpv6(packet);
  if (ip.nextHeader !== IPPROTO_UDP) return undefined;
  const udp = decodeUdp(ip.payload);
  if (!ports.includes(udp.dstPort)) return undefined;
  const vxlan = decodeVxlan(udp.payload);
  if (!vxlan.vniValid) return undefined;
  return { src: ip.src, dst: ip.dst, srcPort: udp.srcPort, dstPort: udp.dstPort, vni: vxlan.vni, inner: vxlan.payload };
}

/**
 * Pure: a captured record as a VXLAN frame, or undefined when it is not one (not IPv4 or IPv6 UDP to one of
 * `ports`, a fragment, a frame too short). Inner frames that cannot be decoded are still shown, as bytes.
 */
export function describeRecord(record: PcapRecord, linkType: number, ports: readonly number[], names: CaptureNames = NO_NAMES): CapturedFrame | undefined {
  let link;
  try {
    link = linkPayload(linkType, record.data);
  } catch (err) {
    if (err instanceof PacketError) return undefined;
    throw err;
  }
  let outer: OuterVxlan | undefined;
  try {
    outer =
      link.ethertype === ETHERTYPE_IPV4
        ? ports.map((port) => outerOf(decapsulateIpv4(link.payload, port))).find((d) => d !== undefined)
        : link.ethertype === ETHERTYPE_IPV6
          ? decapsulateIpv6(link.payload, ports)
          : undefined;
  } catch (err) {
    if (err instanceof PacketError) return undefined;
    throw err;
  }
  if (!outer) return undefined;
  const frame: CapturedFrame = {
    time: isoMicros(record.timestampMicros),
    outer: { src: outer.src, dst: outer.dst, srcPort: outer.srcPort, dstPort: outer.dstPort },
    vni: outer.vni,
    inner: { srcMac: '', dstMac: '', protocol: 'ethertype ?', summary: `${outer.inner.length} bytes` },
  };
  const network = names.networks.get(outer.vni);
  if (network !== undefined) frame.network = network;
  try {
    const eth = decodeEthernet(outer.inner);
    frame.inner = { srcMac: eth.src, dstMac: eth.dst, protocol: `ethertype 0x${eth.ethertype.toString(16).padStart(4, '0')}`, summary: `${eth.payload.length} bytes` };
    if (eth.ethertype === ETHERTYPE_ARP) {
      const arp = decodeArp(eth.payload);
      const summary =
        arp.op === ARP_REQUEST ? `who-has ${arp.targetIp} tell ${arp.senderIp}` : arp.op === ARP_REPLY ? `${arp.senderIp} is-at ${arp.senderMac}` : `op ${arp.op}`;
      Object.assign(frame.inner, { protocol: 'arp', src: arp.senderIp, dst: arp.targetIp, summary });
    } else if (eth.ethertype === ETHERTYPE_IPV4) {
      Object.assign(frame.inner, describeIpv4(eth.payload));
    } else if (eth.ethertype === ETHERTYPE_IPV6) {
      Object.assign(frame.inner, describeIpv6(eth.payload));
    }
  } catch (err) {
    if (!(err instanceof PacketError)) throw err;
    frame.inner.summary += ' (malformed)';
  }
  const name = (ip: string | undefined) => (ip === undefined ? undefined : names.endpoints.get(endpointKey(outer.vni, ip)));
  const srcName = name(frame.inner.src);
  const dstName = name(frame.inner.dst);
  if (srcName !== undefined) frame.inner.srcName = srcName;
  if (dstName !== undefined) frame.inner.dstName = dstName;
  return frame;
}

/** Pure: the one-line human form. */
export function formatFrame(frame: CapturedFrame): string {
  const { inner } = frame;
  const named = (ip: string | undefined, name: string | undefined) => (ip === undefined ? '' : name === undefined ? ip : `${ip} (${name})`);
  const addresses = inner.src === undefined ? `${inner.srcMac} → ${inner.dstMac}` : `${named(inner.src, inner.srcName)} → ${named(inner.dst, inner.dstName)}`;
  const vni = frame.network === undefined ? `VNI ${frame.vni}` : `VNI ${frame.vni} (${frame.network})`;
  return `${frame.time.slice(11, 26)} ${frame.outer.src} → ${frame.outer.dst} ${vni} ${inner.protocol.toUpperCase()} ${addresses} ${inner.summary}`;
}
