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
 * Rules:
 * - postrouting (nat, srcnat): traffic from a non-internal network's subnets leaving through any interface
 *   other than its bridge is masqueraded (outbound internet access for containers).
 * - forward: networks never reach each other (from one vxnet bridge to another: drop); an internal
 *   network's bridge neither sends anywhere else nor receives from anywhere else.
 * - input: a container cannot reach the host through another network's gateway address.
 */
import { createHash } from 'node:crypto';
import type { DesiredNetwork } from '../dataplane.ts';
import { OWNED_NFT_TABLE, OWNED_PREFIX } from '../dataplane.ts';

const BRIDGES = `${OWNED_PREFIX}b*`;

export interface RenderedFirewall {
  /** the complete `table ip vxnet { ... }` block */
  table: string;
  /** first 16 hex characters of the SHA-256 of the rules (without the marker comments) */
  hash: string;
}

const quote = (value: string): string => `"${value}"`;
const gatewayIp = (cidr: string): string => cidr.split('/')[0]!;

/** Pure: the rules for the given (validated) networks, in a stable order. */
export function renderFirewall(networks: readonly DesiredNetwork[]): RenderedFirewall {
  const nets = [...networks].sort((a, b) => a.vni - b.vni);
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
  const body = (marker: string | undefined) => [
    ...chain('postrouting', 'type nat hook postrouting priority srcnat; policy accept;', postrouting),
    // A cheap early exit for traffic that touches no vxnet bridge; it also carries the hash marker.
    ...chain(
      'forward',
      'type filter hook forward priority filter - 10; policy accept;',
      forward,
      `iifname != ${quote(BRIDGES)} oifname != ${quote(BRIDGES)} accept${marker ? ` comment ${quote(marker)}` : ''}`,
    ),
    ...chain('input', 'type filter hook input priority filter - 10; policy accept;', input),
  ];
  const hash = createHash('sha256').update(body(undefined).join('\n')).digest('hex').slice(0, 16);
  const marker = `vxnet rules sha256:${hash}`;
  const table = [`table ip ${OWNED_NFT_TABLE} {`, `\tcomment ${quote(marker)}`, ...body(marker), '}'].join('\n');
  return { table, hash };
}

/** The `nft -f -` script that atomically replaces (or creates) the table. */
export function replaceScript(rendered: RenderedFirewall): string {
  return `table ip ${OWNED_NFT_TABLE}\ndelete table ip ${OWNED_NFT_TABLE}\n${rendered.table}\n`;
}

/** The `nft -f -` script that deletes the table (harmless if it is already gone). */
export function deleteScript(): string {
  return `table ip ${OWNED_NFT_TABLE}\ndelete table ip ${OWNED_NFT_TABLE}\n`;
}

/** What to do with the firewall, given the desired networks and what is installed. */
export function planFirewall(
  networks: readonly DesiredNetwork[],
  installed: { present: boolean; hash?: string },
): { action: 'none' } | { action: 'replace'; script: string; hash: string } | { action: 'delete'; script: string } {
  if (networks.length === 0) return installed.present ? { action: 'delete', script: deleteScript() } : { action: 'none' };
  const rendered = renderFirewall(networks);
  if (installed.present && installed.hash === rendered.hash) return { action: 'none' };
  return { action: 'replace', script: replaceScript(rendered), hash: rendered.hash };
}
