/**
 * How Docker containers on a vxnet network reach vxnet's names (agents linked to a Docker engine only).
 *
 * A container on a user-defined Docker network asks Docker's embedded resolver (127.0.0.11), which answers
 * the containers of its own engine and forwards everything else, from inside the container's namespace, to
 * the upstream servers the engine took from its host's resolv.conf. libnetwork gives a network driver no
 * say in those servers (Join answers an interface, a gateway and routes; no DNS), the per-container
 * `--dns` flag is the user's to give, and the engine-wide `dns` setting would need an engine restart and
 * hold for every container of every network. So the agent steers the forwarded queries instead: DNS (UDP
 * and TCP port 53) that enters a vxnet bridge from one of this node's Docker endpoints, to any address but
 * the gateway, is sent to the network's gateway (DNAT). The gateway answers the cluster's names and forwards
 * the rest to the same host resolvers the engine would have used, so outside names resolve as before.
 *
 * Only Docker endpoints are steered, by their addresses: a namespace attached with `vxnet attach` keeps
 * whatever resolver its owner gave it. The table (`ip vxnet_dns`, apart from table ip vxnet, whose
 * transactions the table cache watches) is written whole when its rules change, and deleted when no Docker
 * endpoint is left or the agent stops: without a running agent nobody answers on the gateway, and the
 * containers' queries must go where the engine sends them.
 */
import type { Runner } from '../kernel/exec.ts';

export const DNS_REDIRECT_TABLE = 'vxnet_dns';

/** One network's bridge on this node, its gateway, and the addresses of this node's Docker endpoints on it. */
export interface RedirectRule {
  bridge: string;
  gateway: string;
  sources: readonly string[];
}

/** Pure: the nft script that makes the table hold exactly `rules` (none: no table). */
export function renderRedirect(rules: readonly RedirectRule[]): string {
  const lines = [`table ip ${DNS_REDIRECT_TABLE} {}`, `delete table ip ${DNS_REDIRECT_TABLE}`];
  const used = rules.filter((r) => r.sources.length > 0);
  if (used.length === 0) return `${lines.join('\n')}\n`;
  lines.push(`table ip ${DNS_REDIRECT_TABLE} {`, '\tchain prerouting {', '\t\ttype nat hook prerouting priority dstnat - 5; policy accept;');
  for (const rule of used) {
    const sources = [...rule.sources].sort().join(', ');
    lines.push(
      `\t\tiifname "${rule.bridge}" ip saddr { ${sources} } ip daddr != ${rule.gateway} meta l4proto { udp, tcp } th dport 53 dnat to ${rule.gateway} comment "Docker's forwarded DNS to the gateway"`,
    );
  }
  lines.push('\t}', '}');
  return `${lines.join('\n')}\n`;
}

export class DnsRedirect {
  readonly #run: Runner;
  readonly #log: (line: string) => void;
  /** the script last applied; undefined: not known (at start, or after a failure) */
  #applied: string | undefined;

  constructor(run: Runner, log: (line: string) => void = () => {}) {
    this.#run = run;
    this.#log = log;
  }

  async apply(rules: readonly RedirectRule[]): Promise<void> {
    const script = renderRedirect(rules);
    if (script === this.#applied) return;
    this.#applied = undefined;
    const result = await this.#run.run(['nft', '-f', '-'], { input: script, allowFailure: true });
    if (result.code !== 0) {
      this.#log(`warning: DNS: could not steer Docker's forwarded queries to the gateways: ${result.stderr.trim()}`);
      return;
    }
    this.#applied = script;
  }

  /** Deletes the table (the agent stops). */
  async remove(): Promise<void> {
    await this.apply([]);
  }
}
