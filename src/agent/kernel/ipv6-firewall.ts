/**
 * IPv6 inside networks (issue 15): table `ip6 vxnet`, the IPv6 counterpart of table ip vxnet's network
 * rules (nftables.ts), kept in the same `nft -f -` transaction.
 *
 * - postrouting (nat, srcnat): IPv6 from a non-internal network's subnets leaving through any interface
 *   other than its bridge is masqueraded to the host's own IPv6 address (NAT66, as for IPv4: the subnets are
 *   private ULAs such as fd00::/8 and nothing outside routes them back to a host; routed egress, which would
 *   need every network's prefix announced to the outside, is not done).
 * - forward: networks never reach each other over IPv6 either (from one vxnet bridge to another: drop); an
 *   internal network's bridge neither sends anywhere else nor receives from anywhere else. Rendered for
 *   every network once one of them has an IPv6 subnet, so that an IPv4-only network is shut off too.
 * - input: a container cannot reach the host through another network's IPv6 gateway address.
 *
 * The table exists only while a network with an IPv6 subnet is wanted; without one nothing IPv6 is
 * rendered and table ip vxnet is exactly what it was before IPv6. With one, table ip vxnet carries a marker
 * rule naming the IPv6 table's rules hash (so its own hash covers it, and the two are replaced together in
 * one transaction); the IPv6 table carries the same hash as the comment of its first forward rule (nft
 * 1.0.6 shows rule comments in JSON). A host reads table ip6 vxnet only when table ip vxnet says it has one.
 */
import { createHash } from 'node:crypto';
import type { DesiredNetwork } from '../dataplane.ts';
import { OWNED_NFT_TABLE, OWNED_PREFIX } from '../dataplane.ts';
import type { Runner } from './exec.ts';
import { messageOf } from '../../core/errors.ts';
import type { LinkStep } from './plan.ts';

const BRIDGES = `${OWNED_PREFIX}b*`;
export const FIREWALL6_MARKER = /^vxnet rules6 sha256:([0-9a-f]{16})$/;
/** The comment of table ip vxnet's marker rule for its IPv6 table (a counter without a verdict: it decides nothing). */
export const firewall6MarkerRule = (hash: string): string => `counter comment "vxnet rules6 sha256:${hash}"`;
export const IP6_FORWARD = '/proc/sys/net/ipv6/conf/all/forwarding';

const quote = (value: string): string => `"${value}"`;
const isV6 = (cidr: string): boolean => cidr.includes(':');

/** A network as table ip vxnet sees it: its IPv4 subnets and gateways only. */
export function ipv4Part(net: DesiredNetwork): DesiredNetwork {
  if (!net.subnets.some(isV6) && !net.gatewayAddresses.some(isV6)) return net;
  return { ...net, subnets: net.subnets.filter((s) => !isV6(s)), gatewayAddresses: net.gatewayAddresses.filter((g) => !isV6(g)) };
}

export const hasIPv6 = (networks: readonly DesiredNetwork[]): boolean => networks.some((n) => n.subnets.some(isV6));

/** Pure: the whole `table ip6 vxnet { ... }` for the given (validated) networks; undefined when none has an IPv6 subnet. */
export function renderFirewall6(networks: readonly DesiredNetwork[]): { table: string; hash: string } | undefined {
  if (!hasIPv6(networks)) return undefined;
  const nets = [...networks].sort((a, b) => a.vni - b.vni);
  const postrouting: string[] = [];
  const forward: string[] = [];
  const input: string[] = [];
  const gateways6 = (net: DesiredNetwork) => net.gatewayAddresses.filter(isV6).map((g) => g.split('/')[0]!);
  for (const net of nets) {
    const br = quote(net.bridge);
    const tag = `comment ${quote(`network ${net.name}`)}`;
    if (!net.internal) {
      for (const subnet of net.subnets.filter(isV6)) postrouting.push(`ip6 saddr ${subnet} oifname != ${br} masquerade ${tag}`);
      forward.push(`iifname ${br} oifname ${quote(BRIDGES)} oifname != ${br} drop ${tag}`);
    } else {
      forward.push(`iifname ${br} oifname != ${br} drop ${tag}`);
      forward.push(`oifname ${br} iifname != ${br} drop ${tag}`);
    }
    const own = new Set(gateways6(net));
    const others = [...new Set(nets.filter((n) => n !== net).flatMap(gateways6))].filter((ip) => !own.has(ip)).sort();
    if (others.length) input.push(`iifname ${br} ip6 daddr { ${others.join(', ')} } drop ${tag}`);
  }
  const chain = (name: string, hook: string, rules: string[]) => [`\tchain ${name} {`, `\t\t${hook}`, ...rules.map((r) => `\t\t${r}`), '\t}'];
  const body = (marker: string | undefined) => [
    ...chain('postrouting', 'type nat hook postrouting priority srcnat; policy accept;', postrouting),
    ...chain('forward', 'type filter hook forward priority filter - 10; policy accept;', [
      `iifname != ${quote(BRIDGES)} oifname != ${quote(BRIDGES)} accept${marker ? ` comment ${quote(marker)}` : ''}`,
      ...forward,
    ]),
    ...chain('input', 'type filter hook input priority filter - 10; policy accept;', input),
  ];
  const hash = createHash('sha256').update(body(undefined).join('\n')).digest('hex').slice(0, 16);
  const table = [`table ip6 ${OWNED_NFT_TABLE} {`, ...body(`vxnet rules6 sha256:${hash}`), '}'].join('\n');
  return { table, hash };
}

/** The lines that replace table ip6 vxnet with `table`, or delete it (harmless when it is not there). */
export function replaceScript6(table: string | undefined): string {
  const drop = `table ip6 ${OWNED_NFT_TABLE}\ndelete table ip6 ${OWNED_NFT_TABLE}\n`;
  return table === undefined ? drop : `${drop}${table}\n`;
}

/** Pure: the rules hash table ip6 vxnet carries, from `nft -j list table ip6 vxnet`; undefined when it has none. */
export function parseFirewall6Hash(text: string): string | undefined {
  const items = (JSON.parse(text) as { nftables?: unknown }).nftables;
  if (!Array.isArray(items)) throw new Error('nft -j list table: expected {"nftables": [...]}');
  for (const item of items as Record<string, Record<string, unknown> | undefined>[]) {
    const comment = item.rule?.family === 'ip6' ? item.rule.comment : undefined;
    const match = typeof comment === 'string' ? FIREWALL6_MARKER.exec(comment) : null;
    if (match) return match[1];
  }
  return undefined;
}

/**
 * Whether table ip6 vxnet carries `hash` (what table ip vxnet says it should): when it does not (deleted
 * or changed by someone else), table ip vxnet is treated as outdated too and both are written again. Read
 * only on hosts whose table ip vxnet says there is an IPv6 table, so an IPv4-only host reads no more than
 * before.
 */
export async function firewall6Matches(run: Runner, hash: string, signal?: AbortSignal): Promise<boolean> {
  try {
    const result = await run.run(['nft', '-j', 'list', 'table', 'ip6', OWNED_NFT_TABLE], { signal, allowFailure: true });
    return result.code === 0 && parseFirewall6Hash(result.stdout) === hash;
  } catch (err) {
    if (signal?.aborted) throw err;
    return false;
  }
}

/**
 * IPv6 forwarding, wanted while a network with an IPv6 subnet is (its containers' traffic to their gateway
 * is routed out). Note that with forwarding on, Linux takes no router advertisements on the host's own
 * interfaces unless their accept_ra is 2: a host that gets its IPv6 address from RAs needs that set.
 */
export async function ensureIpv6Forwarding(
  run: Pick<Runner, 'readFile' | 'writeFile'>,
  networks: readonly DesiredNetwork[],
  log: (line: string) => void,
  errors: string[],
): Promise<number> {
  if (!hasIPv6(networks)) return 0;
  try {
    if ((await run.readFile(IP6_FORWARD))?.trim() === '1') return 0;
    await run.writeFile(IP6_FORWARD, '1\n');
    log('enabled IPv6 forwarding (net.ipv6.conf.all.forwarding=1)');
    return 1;
  } catch (err) {
    errors.push(`enabling IPv6 forwarding failed: ${messageOf(err)}`);
    return 0;
  }
}

/** An IPv6 address added to a device: written once IPv6 is on for that device (enableIpv6). */
export function isIpv6AddressStep(step: LinkStep): step is Extract<LinkStep, { op: 'addr-add' | 'addr-del' }> {
  return step.op === 'addr-add' && step.cidr.includes(':');
}

/**
 * Pure: the devices of IPv6 networks that `steps` create or give an IPv6 address: the bridge (it holds the
 * IPv6 gateway) and the VXLAN device (it holds the remote endpoints' IPv6 neighbour entries and answers
 * solicitations from them). Devices left untouched were seen to before.
 */
export function devicesNeedingIpv6(networks: readonly DesiredNetwork[], steps: readonly LinkStep[]): string[] {
  const touched = new Set(steps.flatMap((s) => (s.op === 'bridge-add' || s.op === 'vxlan-add' ? [s.name] : isIpv6AddressStep(s) ? [s.dev] : [])));
  return networks
    .filter((net) => net.gatewayAddresses.some((cidr) => cidr.includes(':')) && (touched.has(net.bridge) || touched.has(net.vxlan)))
    .flatMap((net) => [net.bridge, net.vxlan]);
}

/**
 * IPv6 on the devices of IPv6 networks (devicesNeedingIpv6): a host may have it off for new interfaces
 * (`net.ipv6.conf.default.disable_ipv6=1`); the gateway address would then be refused ("IPv6 is disabled on
 * this device") and the VXLAN device would keep no IPv6 neighbour entry, so no solicitation would be
 * answered. Only the devices given, and only where it is off; the rest of the host is left as it is.
 */
export async function enableIpv6(
  run: Pick<Runner, 'readFile' | 'writeFile'>,
  devices: readonly string[],
  log: (line: string) => void,
  errors: string[],
): Promise<number> {
  let changed = 0;
  for (const device of devices) {
    const file = `/proc/sys/net/ipv6/conf/${device}/disable_ipv6`;
    try {
      if ((await run.readFile(file))?.trim() !== '1') continue;
      await run.writeFile(file, '0\n');
      log(`enabled IPv6 on ${device} (net.ipv6.conf.${device}.disable_ipv6=0)`);
      changed++;
    } catch (err) {
      errors.push(`enabling IPv6 on ${device} failed: ${messageOf(err)}`);
    }
  }
  return changed;
}
