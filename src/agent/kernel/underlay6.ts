/**
 * The VXLAN peer allow-list over an IPv6 underlay (docs/security.md, docs/architecture.md "IPv6 underlay"):
 * table `ip6 vxnet_underlay`, the IPv6 counterpart of the chains `vxlan_input` and `vxlan_forward` of table
 * ip vxnet (nftables.ts, whose module comment gives the reasons for hook, priority and interface checks).
 *
 * Why a table of its own: a table of family `ip` never sees an IPv6 packet, so the IPv4 table cannot guard a
 * VXLAN socket bound to an IPv6 address. It is a separate table, not an `ip6 vxnet`, so that it never
 * competes with other IPv6 rules vxnet may keep: it holds the underlay filter and nothing else, and is
 * replaced in the same `nft -f` transaction as table ip vxnet, whose rules hash it carries (covering both).
 * On an IPv6 node table ip vxnet keeps its own filter with no member in it: VXLAN over IPv4 is dropped from
 * everyone.
 *
 * Fragments: the IPv6 input hook runs before extension headers are processed, so a non-first fragment shows
 * no UDP header; the first one does (RFC 8200 requires the whole header chain in it, and Linux drops a first
 * fragment without it), and a non-member's first fragment is dropped here, so its datagram is never
 * reassembled. With connection tracking loaded, nf_defrag_ipv6 reassembles before this hook anyway.
 */
import type { VxlanFilter } from '../dataplane.ts';

/** The table's name (family ip6); its chains and sets are named as in table ip vxnet. */
export const UNDERLAY6_TABLE = 'vxnet_underlay';

const quote = (value: string): string => `"${value}"`;

/**
 * Whether a filter needs the IPv6 table: this node's underlay is IPv6 (then every member's is, the manager
 * keeps one family per cluster; an IPv4 node neither opens an IPv6 VXLAN socket nor keeps the table).
 */
export const wantsUnderlay6 = (filter: VxlanFilter | undefined): boolean => filter !== undefined && filter.ports.length > 0 && filter.ipv6Underlay === true;

/**
 * Pure: the rule lines of table ip6 vxnet_underlay for an (effective, validated) filter, without the
 * table line; `marker` is the comment of the accept rule (the rules hash, see nftables.ts).
 */
export function underlay6Body(filter: VxlanFilter, ownedInterfaces: string, marker: string | undefined): string[] {
  const sources = filter.allowedSources.filter((s) => s.includes(':'));
  const underlay = filter.underlayDevice;
  const fromUnderlay = underlay !== undefined ? `iifname ${quote(underlay)}` : `iifname != ${quote(ownedInterfaces)}`;
  const notFromUnderlay = underlay !== undefined ? `iifname != ${quote(underlay)}` : `iifname ${quote(ownedInterfaces)}`;
  const set = (name: string, type: string, elements: readonly (string | number)[]) => [
    `\tset ${name} {`,
    `\t\ttype ${type}`,
    ...(elements.length ? [`\t\telements = { ${elements.join(', ')} }`] : []),
    '\t}',
  ];
  const vnis = filter.encryptedVnis ?? [];
  return [
    ...set('vxlan_ports', 'inet_service', filter.ports),
    ...set('vxlan_peers', 'ipv6_addr', sources),
    '\tchain vxlan_input {',
    '\t\ttype filter hook input priority raw - 10; policy accept;',
    // an encrypted network's VXLAN travels inside WireGuard between IPv4 tunnel addresses, never over IPv6
    ...(vnis.length > 0 ? [`\t\tudp dport @vxlan_ports @th,96,24 { ${vnis.join(', ')} } counter drop comment ${quote('an encrypted network\'s VXLAN outside its tunnel')}`] : []),
    `\t\tudp dport @vxlan_ports ${fromUnderlay} ip6 saddr @vxlan_peers accept comment ${quote(marker ?? 'VXLAN from a member node')}`,
    `\t\tudp dport @vxlan_ports counter drop comment ${quote('VXLAN from a non-member')}`,
    '\t}',
    '\tchain vxlan_forward {',
    '\t\ttype filter hook forward priority raw - 10; policy accept;',
    `\t\tudp dport @vxlan_ports ip6 daddr @vxlan_peers ${notFromUnderlay} counter drop comment ${quote('VXLAN routed from a non-underlay interface')}`,
    '\t}',
  ];
}

/** The `nft -f` lines that replace (or create) the table with `body`. */
export const replaceUnderlay6 = (body: readonly string[]): string =>
  `table ip6 ${UNDERLAY6_TABLE}\ndelete table ip6 ${UNDERLAY6_TABLE}\ntable ip6 ${UNDERLAY6_TABLE} {\n${body.join('\n')}\n}\n`;

/** The `nft -f` lines that delete the table (harmless when it is gone). */
export const deleteUnderlay6 = (): string => `table ip6 ${UNDERLAY6_TABLE}\ndelete table ip6 ${UNDERLAY6_TABLE}\n`;
