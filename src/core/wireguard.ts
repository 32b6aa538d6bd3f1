/**
 * Encrypted networks (vxnet issue 10): the constants and pure checks the manager and the agent share.
 *
 * An encrypted network's VXLAN device sends from the node's tunnel address to the peers' tunnel addresses,
 * so every frame of it leaves the host inside WireGuard; plain networks keep the underlay path. The tunnel
 * addresses come out of one cluster range that the manager hands out, one per node.
 */

/** The cluster's tunnel range: one address per node that has WireGuard, handed out by the manager. */
export const TUNNEL_POOL = '10.201.0.0/16';
/** The UDP port a node's WireGuard listens on (WireGuard's customary port). */
export const WIREGUARD_PORT = 51820;
/**
 * WireGuard's overhead on an IPv4 underlay: outer IPv4 20 + UDP 8 + message header 16 (type, receiver
 * index, counter) + Poly1305 tag 16 = 60; on IPv6, 80 (the outer header is 40).
 */
export const WIREGUARD_OVERHEAD_IPV4 = 60;
export const WIREGUARD_OVERHEAD_IPV6 = 80;

export const WIREGUARD_IMPLEMENTATIONS = ['kernel', 'wireguard-go'] as const;
export type WireguardImplementation = (typeof WIREGUARD_IMPLEMENTATIONS)[number];

/** A Curve25519 key as `wg` writes it: 32 bytes in standard base64 (44 characters, one `=`). */
export function isWireguardKey(value: unknown): value is string {
  return typeof value === 'string' && /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/.test(value);
}

/** The MTU of the WireGuard interface on an underlay of `underlayMtu`. */
export function tunnelMtu(underlayMtu: number, ipv6Underlay = false): number {
  return underlayMtu - (ipv6Underlay ? WIREGUARD_OVERHEAD_IPV6 : WIREGUARD_OVERHEAD_IPV4);
}
