/**
 * `vxnet capture`'s reading of a frame seen on the underlay: pure decoding with vxnet's own codecs
 * (src/packet) of the outer IPv4/UDP/VXLAN headers and the inner frame, named after the cluster when the
 * caller knows the names (the network of a VNI, the endpoint of an inner address).
 */
import { decodeArp, ARP_REPLY, ARP_REQUEST } from '../packet/arp.ts';
import { PacketError } from '../packet/bytes.ts';
import { decodeEthernet, ETHERTYPE_ARP, ETHERTYPE_IPV4 } from '../packet/ethernet.ts';
import { decodeIcmpEcho, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST } from '../packet/icmp.ts';
import { decodeIpv4, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP } from '../packet/ipv4.ts';
import { linkPayload, type PcapRecord } from '../packet/pcap.ts';
import { decodeUdp } from '../packet/udp.ts';
import { decapsulateIpv4 } from '../packet/vxlan.ts';

const ETHERTYPE_IPV6 = 0x86dd;

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
    /** "arp", "icmp", "tcp", "udp", "ipv4", "ipv6" or "ethertype 0x...." */
    protocol: string;
    src?: string;
    dst?: string;
    srcName?: string;
    dstName?: string;
    /** the rest, in words: "echo request id 5 seq 1", "who-has 192.168.1.3", "40000 → 80 [S]" */
    summary: string;
  };
}

function isoMicros(timestampMicros: number): string {
  const iso = new Date(Math.floor(timestampMicros / 1000)).toISOString();
  return `${iso.slice(0, 19)}.${String(timestampMicros % 1_000_000).padStart(6, '0')}Z`;
}

const TCP_FLAGS: [number, string][] = [[0x02, 'S'], [0x01, 'F'], [0x04, 'R'], [0x08, 'P'], [0x10, '.']];

/** Pure: the inner IPv4 packet's protocol and words. */
function describeIpv4(bytes: Uint8Array): Pick<CapturedFrame['inner'], 'protocol' | 'src' | 'dst' | 'summary'> {
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
  if (ip.protocol === IPPROTO_TCP && ip.payload.length >= 14) {
    const p = ip.payload;
    const flags = TCP_FLAGS.filter(([bit]) => (p[13]! & bit) !== 0).map(([, letter]) => letter).join('');
    return { ...base, protocol: 'tcp', summary: `${(p[0]! << 8) | p[1]!} → ${(p[2]! << 8) | p[3]!} [${flags}]` };
  }
  if (ip.protocol === IPPROTO_UDP) {
    const udp = decodeUdp(ip.payload);
    return { ...base, protocol: 'udp', summary: `${udp.srcPort} → ${udp.dstPort} length ${udp.payload.length}` };
  }
  return { ...base, protocol: 'ipv4', summary: `protocol ${ip.protocol}` };
}

/**
 * Pure: a captured record as a VXLAN frame, or undefined when it is not one (not IPv4 UDP to one of
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
  if (link.ethertype !== ETHERTYPE_IPV4) return undefined;
  let outer;
  try {
    outer = ports.map((port) => decapsulateIpv4(link.payload, port)).find((d) => d !== undefined);
  } catch (err) {
    if (err instanceof PacketError) return undefined;
    throw err;
  }
  if (!outer) return undefined;
  const frame: CapturedFrame = {
    time: isoMicros(record.timestampMicros),
    outer: { src: outer.outerIp.src, dst: outer.outerIp.dst, srcPort: outer.outerUdp.srcPort, dstPort: outer.outerUdp.dstPort },
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
      Object.assign(frame.inner, { protocol: 'ipv6', summary: `next header ${eth.payload[6] ?? '?'}` });
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
