/**
 * vxnet's firewall: one nftables table, `ip vxnet`, that vxnet owns outright.
 *
 * Why this way:
 * - One table of our own means we never edit anybody else's rules (Docker's, firewalld's, the admin's),
 *   and pruning is "delete our table".
 * - The table is replaced atomically: `table ip vxnet` + `delete table ip vxnet` + the full table, in one
 *   `nft -f -` transaction. The first line makes the delete valid when the table does not exist yet; the
 *   kernel commits all three or none, so there is no moment without isolation rules and no window where
 *   half the rules are new.
 * - Re-applying identical rules would still be a kernel transaction (and reset counters), so the table
 *   carries a hash of its rendered rules and is only replaced when the hash differs. nft 1.0.6 does not
 *   print table comments in JSON, so the hash is also the comment of the first forward rule, which JSON does
 *   show (the table comment is for people reading `nft list`).
 * - Chains hook at `filter - 10` so that our drops come before the filter rules of other tables at the
 *   default priority (Docker's DOCKER-USER/FORWARD accepts would otherwise be evaluated first).
 *
 * The VXLAN peer allow-list (chain `vxlan_input`, sets `vxlan_ports` and `vxlan_peers`; docs/security.md):
 * - UDP to a VXLAN port is accepted only from the underlay address of a member node and dropped (counted)
 *   from anybody else: VXLAN has no authentication, so an open port lets anyone who can reach it inject
 *   Ethernet frames into a network (GHSA-vwm3-crmr-xfxw).
 * - Hook `input`, not `prerouting`: the encapsulated datagram is delivered locally to the VXLAN device's
 *   UDP socket, so input sees exactly that traffic and nothing routed through the host (a container's own
 *   UDP 4789 to elsewhere is untouched, with no need for the optional `fib` module), and ip_local_deliver
 *   has reassembled fragments before the input hook, so a fragmented datagram cannot slip past the port
 *   match. Priority `raw - 10` (-310) puts it before every standard chain on that hook (iptables mangle
 *   -150, filter 0, firewalld, ...). In nftables a drop in any base chain is final whatever other tables
 *   accept, so an admin's accept can never re-open the port (the CVE-2023-28840 class).
 * - Sources and ports are sets: one lookup per packet whatever the cluster size.
 * - Datagrams are accepted only when they arrive on the underlay interface (the one holding the advertise
 *   address), even with a member's source address: a container on a vxnet network or on any other bridge
 *   of the host (docker0) could otherwise claim a member's address towards its host's VTEP and inject
 *   frames into another network. Without a known underlay interface: from any interface but vxnet's own.
 * - Chain `vxlan_forward` (hook forward, same priority): UDP to a member's VXLAN port that the host would
 *   route in from any interface but the underlay (a container's traffic) is dropped. Otherwise a container
 *   could reach another node's VTEP through its host, either claiming a third member's address or simply
 *   masqueraded to its own host's (member) address, and inject frames there. The host's own VXLAN traffic
 *   is output, not forward, and a node routing the underlay for others receives it on the underlay.
 * - It is part of the same table and the same atomic replacement: a change of members or ports is one
 *   transaction, there is no moment without the filter. Replacing the table resets the drop counter.
 * - It is rendered whenever the agent has a view of the cluster, also without networks (then alone: no
 *   NAT chain, so a host without networks does not get connection tracking from vxnet).
 *
 * Rules:
 * - postrouting (nat, srcnat): traffic from a non-internal network's subnets leaving through any interface
 *   other than its bridge is masqueraded (outbound internet access for containers).
 * - forward: networks never reach each other (from one vxnet bridge to another: drop); an internal
 *   network's bridge neither sends anywhere else nor receives from anywhere else.
 * - input: a container cannot reach the host through another network's gateway address.
 *
 * The forwarding path of a network's own traffic (vxnet issue 19; docs/architecture.md, "Forwarding path"):
 * - The host's br_netfilter (on wherever Docker runs with iptables, and a sysctl per namespace that the
 *   bridge's own `nf_call_iptables 0` cannot turn off: the kernel ORs the two) hands every bridged IPv4
 *   frame to the IP hooks: connection tracking, Docker's chains, ours. Chain `untracked` (hook prerouting,
 *   priority raw, before conntrack at -200) exempts from connection tracking what arrives on a vxnet bridge
 *   for an address of that bridge's own subnets other than a gateway: container to container, bridged or
 *   routed between the network's subnets. Set `bridged` holds `bridge . first-last` ranges, the subnets
 *   with the gateway addresses cut out, so that it costs one lookup.
 *   None of it is ever NATed (masquerade leaves the bridge's own traffic alone) and no rule of vxnet or of
 *   its DOCKER-USER rules looks at its state; traffic to the host or out of the network stays tracked, so
 *   egress NAT and replies work as before. Untracked, the frame skips the conntrack lookup, the TCP window
 *   tracking and the NAT hooks, twice per host.
 * - In chain forward, a frame that stays on its bridge (set `same_bridge`, `bridge . bridge`) is accepted
 *   by one lookup, before the per-network rules: none of those drops a bridge's own traffic, and a bridged
 *   frame otherwise walks all of them.
 */
import { createHash } from 'node:crypto';
import { broadcastOf, formatIPv4, parseCidr, parseIPv4 } from '../../core/ipv4.ts';
import type { DesiredNetwork, VxlanFilter } from '../dataplane.ts';
import { isCanonicalIPv6, isIfname } from './validate.ts';
import type { Runner } from './exec.ts';
import type { FirewallState } from './read.ts';
import { firewall6MarkerRule, ipv4Part, renderFirewall6, replaceScript6 } from './ipv6-firewall.ts';
import { deleteUnderlay6, replaceUnderlay6, underlay6Body, wantsUnderlay6 } from './underlay6.ts';
import { parseIPv6 } from '../../core/ipv6.ts';
import { OWNED_NFT_TABLE, OWNED_PREFIX } from '../dataplane.ts';

const BRIDGES = `${OWNED_PREFIX}b*`;
/** every interface vxnet creates (bridges, VXLAN devices, veths) */
const OWNED_INTERFACES = `${OWNED_PREFIX}*`;
/** The allow-list's chain and sets in table ip vxnet. */
export const VXLAN_FILTER_CHAIN = 'vxlan_input';
export const VXLAN_PORTS_SET = 'vxlan_ports';
export const VXLAN_PEERS_SET = 'vxlan_peers';
export const VXLAN_FORWARD_CHAIN = 'vxlan_forward';
/** The untracked path of a network's own traffic (see above). */
export const NOTRACK_CHAIN = 'untracked';
export const BRIDGED_SET = 'bridged';
export const SAME_BRIDGE_SET = 'same_bridge';
const NO_FILTER: VxlanFilter = { ports: [], allowedSources: [] };

const isPort = (value: unknown): value is number => typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 65535;

/**
 * Pure: the filter the data plane installs — the desired one, plus the port of every desired network and
 * of every VXLAN device still present (`devicePorts`), so that no VXLAN socket vxnet opens is ever
 * unguarded, even if the desired ports missed one or a device outlives its network for a moment.
 * Malformed values are left out (a bad element would fail the whole script) and named in `rejected`;
 * leaving out a source denies it, which is the safe side.
 */
export function effectiveVxlanFilter(
  filter: VxlanFilter | undefined,
  networks: readonly DesiredNetwork[],
  devicePorts: Iterable<number> = [],
): { filter: VxlanFilter; rejected: string[] } {
  const rejected: string[] = [];
  const ports = new Set<number>();
  for (const port of [...(filter?.ports ?? []), ...networks.map((n) => n.port), ...devicePorts]) {
    if (isPort(port)) ports.add(port);
    else rejected.push(`VXLAN filter port ${JSON.stringify(port)} is outside 1..65535`);
  }
  const sources = new Map<string, number>();
  // members with IPv6 underlay addresses go to table ip6 vxnet_underlay (underlay6.ts), in canonical text
  const sources6 = new Map<string, bigint>();
  for (const source of filter?.allowedSources ?? []) {
    const value = parseIPv4(source);
    if (value !== undefined) sources.set(source, value);
    else if (isCanonicalIPv6(source)) sources6.set(source, parseIPv6(source)!);
    else rejected.push(`VXLAN filter source ${JSON.stringify(source)} is not an IPv4 address${String(source).includes(':') ? ' nor an IPv6 address in RFC 5952 form' : ''}`);
  }
  const device = filter?.underlayDevice;
  if (device !== undefined && !isIfname(device)) rejected.push(`VXLAN filter underlay device ${JSON.stringify(device)} is not an interface name`);
  const tunnel = filter?.tunnelDevice;
  if (tunnel !== undefined && !isIfname(tunnel)) rejected.push(`VXLAN filter tunnel device ${JSON.stringify(tunnel)} is not an interface name`);
  const vnis = (filter?.encryptedVnis ?? []).filter((vni) => Number.isInteger(vni) && vni >= 1 && vni <= 0xffffff);
  return {
    filter: {
      ports: [...ports].sort((a, b) => a - b),
      allowedSources: [
        ...[...sources.entries()].sort((a, b) => a[1] - b[1]).map(([text]) => text),
        ...[...sources6.entries()].sort((a, b) => (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0)).map(([text]) => text),
      ],
      ...(device !== undefined && isIfname(device) ? { underlayDevice: device } : {}),
      ...(tunnel !== undefined && isIfname(tunnel) ? { tunnelDevice: tunnel } : {}),
      ...(vnis.length > 0 ? { encryptedVnis: [...new Set(vnis)].sort((a, b) => a - b) } : {}),
      ...(filter?.ipv6Underlay === true ? { ipv6Underlay: true } : {}),
    },
    rejected,
  };
}

export interface RenderedFirewall {
  /** the complete `table ip vxnet { ... }` block */
  table: string;
  /** over an IPv6 underlay, the rules of table ip6 vxnet_underlay (underlay6.ts), carrying the same hash */
  underlay6?: string[];
  /** first 16 hex characters of the SHA-256 of the rules (without the marker comments) */
  hash: string;
  /** table ip6 vxnet (IPv6 inside networks, ipv6-firewall.ts), replaced with this one; absent: none wanted */
  table6?: string;
  /** its rules hash, named by a marker rule of table ip vxnet */
  hash6?: string;
}

const quote = (value: string): string => `"${value}"`;
const gatewayIp = (cidr: string): string => cidr.split('/')[0]!;

/** Pure: the addresses of `subnet` without `holes`, as `first-last` ranges (nft interval elements). */
export function rangesWithout(subnet: string, holes: readonly string[]): string[] {
  const cidr = parseCidr(subnet);
  if (!cidr) return [];
  const last = broadcastOf(cidr);
  const cut = holes.map((h) => parseIPv4(h)).filter((v): v is number => v !== undefined && v >= cidr.network && v <= last);
  const ranges: string[] = [];
  let from = cidr.network;
  for (const hole of [...new Set(cut)].sort((a, b) => a - b)) {
    if (hole > from) ranges.push(`${formatIPv4(from)}-${formatIPv4(hole - 1)}`);
    from = hole + 1;
  }
  if (from <= last) ranges.push(`${formatIPv4(from)}-${formatIPv4(last)}`);
  return ranges;
}

/**
 * Pure: the rules for the given (validated) networks and VXLAN filter (see effectiveVxlanFilter), in a
 * stable order. Without a filter (no ports) the table holds the network chains only.
 */
export function renderFirewall(networks: readonly DesiredNetwork[], filter: VxlanFilter = NO_FILTER): RenderedFirewall {
  // IPv6 subnets and gateways have their own table (ipv6-firewall.ts)
  const inner6 = renderFirewall6(networks);
  const nets = [...networks].sort((a, b) => a.vni - b.vni).map(ipv4Part);
  const guard = filter.ports.length > 0 ? effectiveVxlanFilter(filter, []).filter : undefined;
  const postrouting: string[] = [];
  const forward: string[] = [];
  const input: string[] = [];
  for (const net of nets) {
    const br = quote(net.bridge);
    const tag = `comment ${quote(`network ${net.name}`)}`;
    if (!net.internal) {
      for (const subnet of net.subnets) postrouting.push(`ip saddr ${subnet} oifname != ${br} masquerade ${tag}`);
      forward.push(`iifname ${br} oifname ${quote(BRIDGES)} oifname != ${br} drop ${tag}`);
    } else {
      forward.push(`iifname ${br} oifname != ${br} drop ${tag}`);
      forward.push(`oifname ${br} iifname != ${br} drop ${tag}`);
    }
    const own = new Set(net.gatewayAddresses.map(gatewayIp));
    const others = [...new Set(nets.filter((n) => n !== net).flatMap((n) => n.gatewayAddresses.map(gatewayIp)))]
      .filter((ip) => !own.has(ip))
      .sort();
    if (others.length) input.push(`iifname ${br} ip daddr { ${others.join(', ')} } drop ${tag}`);
  }
  const chain = (name: string, hook: string, rules: string[], first?: string) => [
    `\tchain ${name} {`,
    `\t\t${hook}`,
    ...(first ? [`\t\t${first}`] : []),
    ...rules.map((rule) => `\t\t${rule}`),
    '\t}',
  ];
  const set = (name: string, type: string, elements: readonly (string | number)[], flags?: string) => [
    `\tset ${name} {`,
    `\t\ttype ${type}`,
    ...(flags ? [`\t\tflags ${flags}`] : []),
    ...(elements.length ? [`\t\telements = { ${elements.join(', ')} }`] : []),
    '\t}',
  ];
  const underlay = guard?.underlayDevice;
  const fromUnderlay = underlay !== undefined ? `iifname ${quote(underlay)}` : `iifname != ${quote(OWNED_INTERFACES)}`;
  const notFromUnderlay = underlay !== undefined ? `iifname != ${quote(underlay)}` : `iifname ${quote(OWNED_INTERFACES)}`;
  // Encrypted networks (src/agent/wireguard/): their VXLAN is taken only from the tunnel, whose keys
  // authenticate the sender; their VNIs arriving any other way (in clear, from anyone) are dropped; and no
  // one's traffic is routed into the tunnel, where it would reach the peers as this host's own.
  const tunnel = guard?.tunnelDevice;
  const vnis = guard?.encryptedVnis ?? [];
  const tunnelInput = [
    ...(vnis.length > 0
      ? [`udp dport @${VXLAN_PORTS_SET} ${tunnel !== undefined ? `iifname != ${quote(tunnel)} ` : ''}@th,96,24 { ${vnis.join(', ')} } counter drop comment ${quote('an encrypted network\'s VXLAN outside its tunnel')}`]
      : []),
    ...(tunnel !== undefined ? [`udp dport @${VXLAN_PORTS_SET} iifname ${quote(tunnel)} accept comment ${quote('VXLAN through the WireGuard tunnel')}`] : []),
  ];
  const tunnelForward = tunnel !== undefined ? [`oifname ${quote(tunnel)} counter drop comment ${quote('nothing is routed into the WireGuard tunnel')}`] : [];
  // With a filter, its accept rule carries the hash marker (nft 1.0.6 shows rule comments in JSON, see above).
  const filterRules = (marker: string | undefined) => [
    ...set(VXLAN_PORTS_SET, 'inet_service', guard!.ports),
    ...set(VXLAN_PEERS_SET, 'ipv4_addr', guard!.allowedSources.filter((source) => !source.includes(':'))),
    ...chain(VXLAN_FILTER_CHAIN, 'type filter hook input priority raw - 10; policy accept;', [
      ...tunnelInput,
      `udp dport @${VXLAN_PORTS_SET} ${fromUnderlay} ip saddr @${VXLAN_PEERS_SET} accept comment ${quote(marker ?? 'VXLAN from a member node')}`,
      `udp dport @${VXLAN_PORTS_SET} counter drop comment ${quote('VXLAN from a non-member')}`,
    ]),
    ...chain(VXLAN_FORWARD_CHAIN, 'type filter hook forward priority raw - 10; policy accept;', [
      ...tunnelForward,
      `udp dport @${VXLAN_PORTS_SET} ip daddr @${VXLAN_PEERS_SET} ${notFromUnderlay} counter drop comment ${quote('VXLAN routed from a non-underlay interface')}`,
    ]),
  ];
  const bridged = nets.flatMap((net) =>
    net.subnets.flatMap((subnet) => rangesWithout(subnet, net.gatewayAddresses.map(gatewayIp)).map((range) => `${quote(net.bridge)} . ${range}`)),
  );
  const networkRules = (marker: string | undefined) => [
    ...set(BRIDGED_SET, 'ifname . ipv4_addr', bridged, 'interval'),
    ...set(SAME_BRIDGE_SET, 'ifname . ifname', nets.map((net) => `${quote(net.bridge)} . ${quote(net.bridge)}`)),
    ...chain(NOTRACK_CHAIN, 'type filter hook prerouting priority raw; policy accept;', [
      `iifname . ip daddr @${BRIDGED_SET} notrack comment ${quote("a network's own traffic, never NATed")}`,
    ]),
    ...chain('postrouting', 'type nat hook postrouting priority srcnat; policy accept;', postrouting),
    // A cheap early exit for traffic that touches no vxnet bridge; without a VXLAN filter it carries the hash marker.
    ...chain(
      'forward',
      'type filter hook forward priority filter - 10; policy accept;',
      [`iifname . oifname @${SAME_BRIDGE_SET} accept comment ${quote('a bridge\'s own traffic')}`, ...forward],
      `iifname != ${quote(BRIDGES)} oifname != ${quote(BRIDGES)} accept${marker ? ` comment ${quote(marker)}` : ''}`,
    ),
    ...chain('input', 'type filter hook input priority filter - 10; policy accept;', inner6 ? [...input, firewall6MarkerRule(inner6.hash)] : input),
  ];
  const body = (marker: string | undefined) =>
    guard
      ? [...filterRules(marker), ...(nets.length ? networkRules(undefined) : [])]
      : networkRules(marker);
  const under6 = guard && wantsUnderlay6(guard) ? guard : undefined;
  const hashed = [...body(undefined), ...(under6 ? underlay6Body(under6, OWNED_INTERFACES, undefined) : [])];
  const hash = createHash('sha256').update(hashed.join('\n')).digest('hex').slice(0, 16);
  const marker = `vxnet rules sha256:${hash}`;
  const table = [`table ip ${OWNED_NFT_TABLE} {`, `\tcomment ${quote(marker)}`, ...body(marker), '}'].join('\n');
  return {
    table,
    hash,
    ...(inner6 ? { table6: inner6.table, hash6: inner6.hash } : {}),
    ...(under6 ? { underlay6: underlay6Body(under6, OWNED_INTERFACES, marker) } : {}),
  };
}

/** The `nft -f -` script that atomically replaces (or creates) the table. */
export function replaceScript(rendered: RenderedFirewall): string {
  const six = (rendered.table6 !== undefined ? replaceScript6(rendered.table6) : '') + (rendered.underlay6 ? replaceUnderlay6(rendered.underlay6) : '');
  return `table ip ${OWNED_NFT_TABLE}\ndelete table ip ${OWNED_NFT_TABLE}\n${rendered.table}\n${six}`;
}

/** The `nft -f -` script that deletes the table (harmless if it is already gone). */
export function deleteScript(): string {
  return `table ip ${OWNED_NFT_TABLE}\ndelete table ip ${OWNED_NFT_TABLE}\n`;
}

/**
 * What to do with the firewall, given the desired networks, the VXLAN filter and what is installed. The
 * table goes away only when neither networks nor a filter are wanted (the agent always wants the filter).
 * An unreadable table is rewritten: the replace script is correct whether or not it exists.
 */
export function planFirewall(
  networks: readonly DesiredNetwork[],
  installed: FirewallState,
  filter: VxlanFilter = NO_FILTER,
): { action: 'none' } | { action: 'replace'; script: string; hash: string; hash6?: string; underlay6?: true } | { action: 'delete'; script: string } {
  // table ip6 vxnet (IPv6 inside networks) goes with the replacement or deletion of table ip vxnet once unwanted
  const stale6 = installed.hash6 !== undefined ? replaceScript6(undefined) : '';
  // table ip6 vxnet_underlay goes with table ip vxnet (underlay6.ts); it is read only over an IPv6 underlay
  const staleUnder6 = installed.underlay6?.present === true;
  if (networks.length === 0 && filter.ports.length === 0) {
    return installed.present || installed.unreadable || staleUnder6
      ? { action: 'delete', script: deleteScript() + stale6 + (staleUnder6 ? deleteUnderlay6() : '') }
      : { action: 'none' };
  }
  const rendered = renderFirewall(networks, filter);
  const under = rendered.underlay6 !== undefined;
  const underInPlace = under ? installed.underlay6?.hash === rendered.hash : !staleUnder6;
  if (installed.present && installed.hash === rendered.hash && underInPlace) return { action: 'none' };
  const script = replaceScript(rendered) + (rendered.table6 === undefined ? stale6 : '') + (!under && staleUnder6 ? deleteUnderlay6() : '');
  return {
    action: 'replace',
    script,
    hash: rendered.hash,
    ...(rendered.hash6 !== undefined ? { hash6: rendered.hash6 } : {}),
    ...(under ? { underlay6: true as const } : {}),
  };
}

/**
 * `nft -j list table FAMILY vxnet`: its JSON, absent (no such table), or why it could not be read. A failure
 * to read one of our tables does not fail the pass (that would leave pending endpoints without a reason):
 * the caller reports the table as unreadable, and applying it writes it whole.
 */
export async function listOwnedTable(run: Runner, family: 'ip' | 'bridge', signal?: AbortSignal): Promise<{ json: string } | { absent: true } | { unreadable: string }> {
  let result;
  try {
    result = await run.run(['nft', '-j', 'list', 'table', family, OWNED_NFT_TABLE], { signal, allowFailure: true });
  } catch (err) {
    if (signal?.aborted) throw err;
    return { unreadable: err instanceof Error ? err.message : String(err) };
  }
  if (result.code === 0) return { json: result.stdout };
  if (/No such file or directory/.test(result.stderr)) return { absent: true };
  const detail = result.stderr.trim().split('\n').filter(Boolean).slice(0, 3).join(' / ') || 'no error output';
  return { unreadable: `nft -j list table ${family} ${OWNED_NFT_TABLE} failed (exit ${result.code}): ${detail}` };
}
