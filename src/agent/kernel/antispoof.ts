/**
 * Anti-spoofing per bridge port: a container may send only with its own endpoint's MAC and IPv4 and IPv6
 * addresses.
 *
 * Why: a container holds its network namespace and sends whatever frames it likes. Without a check on the
 * port, it can claim another endpoint's address or MAC inside its network (and poison ARP caches), and,
 * worse, claim a member node's underlay address towards a VTEP (docs/security.md, vxnet issue 9). As
 * Calico and OVN do, the host checks every frame where it enters the bridge, keyed by the host veth.
 *
 * How: table `bridge vxnet` (family bridge sees bridged frames and frames to the gateway alike), one chain
 * on the prerouting hook, two sets keyed by the port: `endpoint_macs` (port . MAC) and `endpoint_ips`
 * (port . IPv4). A frame from a host veth (`vxnh*`) must carry its endpoint's MAC as Ethernet source; IPv4
 * its address as source; ARP its MAC and address as sender (or 0.0.0.0, an RFC 5227 probe); anything else
 * but IPv6 (VLAN tags, other ethertypes) is dropped. No DHCP or other unspecified IPv4 source is needed:
 * addresses are assigned by the manager. IPv6 (issue 15: vxnet grants IPv6 addresses now) must come from
 * one of the endpoint's IPv6 addresses (set `endpoint_ips6`, port . address); a neighbour advertisement must
 * name one of them as its target (or a link-local one), as an ARP reply must its sender, so that no
 * container can claim another's address to its neighbours; router advertisements and redirects are
 * dropped outright (no container is a router); from link-local or unspecified sources only ICMPv6 passes
 * (neighbour discovery and MLD need it, and vxnet grants no link-local address to take over). The set is
 * keyed by raw header bits (`@nh,64,128`, the source; `@th,64,128`, the target) because nft 1.0.6 has no
 * neighbour discovery target field, so its elements are 128-bit numbers.
 *
 * Neighbour discovery stays on the host (chain `ndp_out`, hook postrouting): router and neighbour
 * advertisements, router solicitations, redirects and MLD are not sent out of a VXLAN port at all.
 * Neighbour solicitations are let through to the VXLAN device, whose `proxy` answers them from the
 * permanent neighbour entries of the remote endpoints and never encapsulates them (the kernel's
 * neigh_reduce), just as it answers ARP: no NDP crosses the underlay.
 * Frames from other ports (the VXLAN device, foreign links) are not looked at here: remote containers are
 * checked by their own hosts. Each packet costs at most three set lookups, whatever the number of endpoints.
 *
 * Programming: the chain never changes (its rules carry a hash like table ip vxnet's, for upgrades), so a
 * pass changes only set elements, with `add element` / `delete element` lines for what differs: the cost
 * grows with what changed, not with the number of endpoints. Those lines go into the same `nft -f -`
 * transaction as table ip vxnet (linux-dataplane.ts), before any veth is attached: a new port is never
 * unchecked, and a port not (yet) in the sets passes nothing. A missing or outdated table is created whole.
 */
import { createHash } from 'node:crypto';
import { formatIPv6, parseIPv6 } from '../../core/ipv6.ts';
import { allAddresses, deviceNames, OWNED_NFT_TABLE, type DesiredEndpoint } from '../dataplane.ts';
import type { Runner } from './exec.ts';
import { listOwnedTable } from './nftables.ts';

export const ANTISPOOF_CHAIN = 'antispoof';
export const ENDPOINT_MACS_SET = 'endpoint_macs';
export const ENDPOINT_IPS_SET = 'endpoint_ips';
export const ENDPOINT_IPS6_SET = 'endpoint_ips6';
export const NDP_CHAIN = 'ndp_out';
/** every VXLAN device: the ports neighbour discovery is kept from */
const VXLAN_PORTS = `${deviceNames.vxlan(0).slice(0, -1)}*`;
/** every host veth: the ports whose frames are checked */
const HOST_PORTS = `${deviceNames.hostVeth('')}*`;
const MARKER = /^vxnet antispoof sha256:([0-9a-f]{16})$/;

/** One bridge port and what may be sent from it. */
export interface PortBinding {
  /** host veth */
  port: string;
  /** lower case */
  mac: string;
  /** IPv4 address without prefix (absent on an IPv6-only network) */
  ip?: string;
  /** IPv6 addresses without prefix (RFC 5952 form) */
  ips6?: readonly string[];
}

export interface AntispoofState {
  present: boolean;
  /** the rules hash found in the installed table */
  hash?: string;
  /** installed elements as "port mac" */
  macs: string[];
  /** installed elements as "port ip" */
  ips: string[];
  /** installed IPv6 elements as "port ip6" (RFC 5952 form); absent: none */
  ips6?: string[];
  /** the table could not be read: it is created whole (linux-dataplane.ts fails closed if that fails) */
  unreadable?: string;
}

/** Pure: the bindings of (validated) local endpoints. */
export function portBindings(endpoints: readonly DesiredEndpoint[]): PortBinding[] {
  return endpoints.map((ep) => {
    const ips = allAddresses(ep).map((a) => a.address.split('/')[0]!);
    const v4 = ips.find((ip) => !ip.includes(':'));
    const v6 = ips.filter((ip) => ip.includes(':'));
    return { port: ep.hostVeth, mac: ep.mac.toLowerCase(), ...(v4 !== undefined ? { ip: v4 } : {}), ...(v6.length ? { ips6: v6 } : {}) };
  });
}

const quote = (value: string): string => `"${value}"`;

function rules(marker: string | undefined): string[] {
  const drop = (why: string) => `counter drop comment ${quote(why)}`;
  return [
    `iifname != ${quote(HOST_PORTS)} accept`,
    `iifname . ether saddr != @${ENDPOINT_MACS_SET} ${drop("source MAC is not the endpoint's")}`,
    `ether type ip iifname . ip saddr != @${ENDPOINT_IPS_SET} ${drop("IPv4 source is not the endpoint's")}`,
    `ether type ip accept comment ${quote(marker ?? 'IPv4 from its endpoint')}`,
    `ether type arp iifname . arp saddr ether != @${ENDPOINT_MACS_SET} ${drop("ARP sender MAC is not the endpoint's")}`,
    `ether type arp arp saddr ip 0.0.0.0 accept comment ${quote('ARP probe (RFC 5227)')}`,
    `ether type arp iifname . arp saddr ip != @${ENDPOINT_IPS_SET} ${drop("ARP sender address is not the endpoint's")}`,
    'ether type arp accept',
    `icmpv6 type { nd-router-advert, nd-redirect } ${drop('a container sends no router advertisement or redirect')}`,
    `icmpv6 type nd-neighbor-advert @th,64,16 & 0xffc0 != 0xfe80 iifname . @th,64,128 != @${ENDPOINT_IPS6_SET} ${drop("NDP target is not the endpoint's")}`,
    `ether type ip6 iifname . @nh,64,128 @${ENDPOINT_IPS6_SET} accept comment ${quote('IPv6 from its endpoint')}`,
    `ether type ip6 ip6 saddr { ::, fe80::/10 } meta l4proto ipv6-icmp accept comment ${quote('neighbour discovery and MLD')}`,
    `ether type ip6 ${drop("IPv6 source is not the endpoint's")}`,
    drop('neither IPv4, ARP nor IPv6'),
  ];
}

/** Neighbour discovery other than solicitations (which the VXLAN device's proxy answers) never leaves by a VXLAN port. */
function ndpRules(): string[] {
  const types = 'nd-router-solicit, nd-router-advert, nd-neighbor-advert, nd-redirect, mld-listener-query, mld-listener-report, mld-listener-done, mld2-listener-report';
  return [`oifname ${quote(VXLAN_PORTS)} icmpv6 type { ${types} } counter drop comment ${quote('neighbour discovery stays on this host')}`];
}

/** An IPv6 address as the 128-bit number the set holds ("0x" and 32 hex digits). */
const hex6 = (ip: string): string => `0x${(parseIPv6(ip) ?? 0n).toString(16).padStart(32, '0')}`;

/** first 16 hex characters of the SHA-256 of the rules: what an installed table is compared with */
export const ANTISPOOF_HASH = createHash('sha256').update([...rules(undefined), ...ndpRules()].join('\n')).digest('hex').slice(0, 16);

const macElement = (port: string, mac: string) => `${quote(port)} . ${mac}`;
const ipElement = (port: string, ip: string) => `${quote(port)} . ${ip}`;
const ip6Element = (port: string, ip: string) => `${quote(port)} . ${hex6(ip)}`;
const split = (key: string): [string, string] => {
  const space = key.indexOf(' ');
  return [key.slice(0, space), key.slice(space + 1)];
};

/** Pure: the whole `table bridge vxnet { ... }` with the given elements ("port mac" / "port ip"). */
export function renderAntispoofTable(macs: Iterable<string>, ips: Iterable<string>, ips6: Iterable<string> = []): string {
  const set = (name: string, type: string, elements: string[]) => [
    `\tset ${name} {`,
    `\t\t${type.startsWith('typeof ') ? type : `type ${type}`}`,
    ...(elements.length ? [`\t\telements = { ${elements.join(', ')} }`] : []),
    '\t}',
  ];
  return [
    `table bridge ${OWNED_NFT_TABLE} {`,
    ...set(ENDPOINT_MACS_SET, 'ifname . ether_addr', [...macs].sort().map((k) => macElement(...split(k)))),
    ...set(ENDPOINT_IPS_SET, 'ifname . ipv4_addr', [...ips].sort().map((k) => ipElement(...split(k)))),
    ...set(ENDPOINT_IPS6_SET, 'typeof iifname . @nh,64,128', [...ips6].sort().map((k) => ip6Element(...split(k)))),
    `\tchain ${ANTISPOOF_CHAIN} {`,
    '\t\ttype filter hook prerouting priority -300; policy accept;',
    ...rules(`vxnet antispoof sha256:${ANTISPOOF_HASH}`).map((rule) => `\t\t${rule}`),
    '\t}',
    `\tchain ${NDP_CHAIN} {`,
    '\t\ttype filter hook postrouting priority 0; policy accept;',
    ...ndpRules().map((rule) => `\t\t${rule}`),
    '\t}',
    '}',
  ].join('\n');
}

/**
 * Pure: the lines of an `nft -f -` script that bring the installed table to `wanted`; empty when nothing
 * differs. Elements of `keepPorts` (endpoints that failed validation this pass) are neither added nor
 * removed. `changes` counts the elements written (or 1 for a whole table); `after` is the table once the
 * script has been applied.
 */
export function planAntispoof(
  wanted: readonly PortBinding[],
  installed: AntispoofState,
  keepPorts: ReadonlySet<string> = new Set(),
): { lines: string[]; changes: number; after: AntispoofState } {
  const macs = new Set(wanted.map((b) => `${b.port} ${b.mac}`));
  const ips = new Set(wanted.filter((b) => b.ip !== undefined).map((b) => `${b.port} ${b.ip}`));
  const ips6 = new Set(wanted.flatMap((b) => (b.ips6 ?? []).map((ip) => `${b.port} ${ip}`)));
  const kept = (key: string) => keepPorts.has(split(key)[0]);
  if (!installed.present || installed.unreadable !== undefined || installed.hash !== ANTISPOOF_HASH) {
    for (const key of installed.macs) if (kept(key)) macs.add(key);
    for (const key of installed.ips) if (kept(key)) ips.add(key);
    for (const key of installed.ips6 ?? []) if (kept(key)) ips6.add(key);
    const table = renderAntispoofTable(macs, ips, ips6);
    return {
      lines: [`table bridge ${OWNED_NFT_TABLE}`, `delete table bridge ${OWNED_NFT_TABLE}`, table],
      changes: 1,
      after: { present: true, hash: ANTISPOOF_HASH, macs: [...macs], ips: [...ips], ...(ips6.size ? { ips6: [...ips6] } : {}) },
    };
  }
  const lines: string[] = [];
  let changes = 0;
  const diff = (name: string, want: Set<string>, have: readonly string[], element: (port: string, value: string) => string): string[] => {
    const present = new Set(have);
    const gone = new Set(have.filter((key) => !want.has(key) && !kept(key)));
    const added = [...want].filter((key) => !present.has(key) && !kept(key));
    if (gone.size) lines.push(`delete element bridge ${OWNED_NFT_TABLE} ${name} { ${[...gone].map((k) => element(...split(k))).join(', ')} }`);
    if (added.length) lines.push(`add element bridge ${OWNED_NFT_TABLE} ${name} { ${added.map((k) => element(...split(k))).join(', ')} }`);
    changes += gone.size + added.length;
    return [...have.filter((key) => !gone.has(key)), ...added];
  };
  const macsAfter = diff(ENDPOINT_MACS_SET, macs, installed.macs, macElement);
  const ipsAfter = diff(ENDPOINT_IPS_SET, ips, installed.ips, ipElement);
  const ips6After = diff(ENDPOINT_IPS6_SET, ips6, installed.ips6 ?? [], ip6Element);
  return { lines, changes, after: { present: true, hash: ANTISPOOF_HASH, macs: macsAfter, ips: ipsAfter, ...(ips6After.length ? { ips6: ips6After } : {}) } };
}

/** The script lines that delete the table (harmless if it is already gone). */
export function deleteAntispoofLines(): string[] {
  return [`table bridge ${OWNED_NFT_TABLE}`, `delete table bridge ${OWNED_NFT_TABLE}`];
}

type Json = Record<string, unknown>;

/** Pure: `nft -j list table bridge vxnet` → what is installed. */
export function parseAntispoof(text: string): AntispoofState {
  const items = (JSON.parse(text) as { nftables?: unknown }).nftables;
  if (!Array.isArray(items)) throw new Error('nft -j list table: expected {"nftables": [...]}');
  const state: AntispoofState = { present: false, macs: [], ips: [] };
  for (const item of items as Json[]) {
    const table = item.table as Json | undefined;
    if (table && table.family === 'bridge' && table.name === OWNED_NFT_TABLE) state.present = true;
    const set = item.set as Json | undefined;
    if (set && set.family === 'bridge' && set.table === OWNED_NFT_TABLE && Array.isArray(set.elem)) {
      const v6 = set.name === ENDPOINT_IPS6_SET;
      const into = set.name === ENDPOINT_MACS_SET ? state.macs : set.name === ENDPOINT_IPS_SET ? state.ips : v6 ? (state.ips6 ??= []) : undefined;
      for (const elem of set.elem as Json[]) {
        const concat = (elem?.concat ?? (elem?.elem as Json | undefined)?.val) as unknown;
        if (into && Array.isArray(concat) && concat.length === 2 && concat.every((v) => typeof v === 'string')) {
          // the IPv6 set holds 128-bit numbers ("0xfd00..."): kept as the address they stand for
          const value = v6 ? fromHex6(String(concat[1])) : String(concat[1]).toLowerCase();
          if (value !== undefined) into.push(`${concat[0]} ${value}`);
        }
      }
    }
    const rule = item.rule as Json | undefined;
    if (rule && rule.family === 'bridge' && rule.table === OWNED_NFT_TABLE && typeof rule.comment === 'string') {
      const match = MARKER.exec(rule.comment);
      if (match) state.hash ??= match[1];
    }
  }
  return state;
}

function fromHex6(text: string): string | undefined {
  if (!/^0x[0-9a-fA-F]{1,32}$/.test(text)) return undefined;
  return formatIPv6(BigInt(text));
}

/** Reads the installed table; a failure comes back as `unreadable` (the table is then written whole). */
export async function readAntispoof(run: Runner, signal?: AbortSignal): Promise<AntispoofState> {
  const listed = await listOwnedTable(run, 'bridge', signal);
  if ('absent' in listed) return { present: false, macs: [], ips: [] };
  if ('unreadable' in listed) return { present: false, macs: [], ips: [], unreadable: listed.unreadable };
  try {
    return parseAntispoof(listed.json);
  } catch (err) {
    return { present: false, macs: [], ips: [], unreadable: err instanceof Error ? err.message : String(err) };
  }
}
