/**
 * Pure packet codecs: Ethernet, ARP, IPv4, ICMP echo, IPv6, ICMPv6 (echo, neighbour discovery), UDP, VXLAN
 * and pcap files, on Uint8Array (a Buffer is one). No I/O. Decoders throw PacketError on truncated or
 * malformed input; decapsulate() returns undefined for frames that are not VXLAN.
 */
export * from './bytes.ts';
export * from './ethernet.ts';
export * from './arp.ts';
export * from './ipv4.ts';
export * from './icmp.ts';
export * from './ipv6.ts';
export * from './icmpv6.ts';
export * from './udp.ts';
export * from './vxlan.ts';
export * from './pcap.ts';
