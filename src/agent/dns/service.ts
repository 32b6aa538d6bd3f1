/**
 * The agent's DNS, as the reconcile loop drives it after every pass: the responder on the gateways of the
 * networks with an endpoint here, and (linked to a Docker engine) the steering of Docker's forwarded
 * queries to those gateways (redirect.ts).
 */
import { deviceNames } from '../dataplane.ts';
import { dnsZones, localEndpoints, type Self } from '../desired.ts';
import type { ClusterView } from '../view.ts';
import type { RedirectRule } from './redirect.ts';
import { DnsRedirect } from './redirect.ts';
import type { DnsResponder } from './responder.ts';

/** What the agent calls (agent-options.ts). */
export interface DnsService {
  sync(view: ClusterView, self: Self): void;
  close(): Promise<void>;
}

export class AgentDns implements DnsService {
  readonly #responder: DnsResponder;
  readonly #redirect: DnsRedirect | undefined;
  /** one nft transaction at a time; the last wanted rules win */
  #pending: RedirectRule[] | undefined;
  #applying: Promise<void> | undefined;

  constructor(responder: DnsResponder, redirect?: DnsRedirect) {
    this.#responder = responder;
    this.#redirect = redirect;
  }

  sync(view: ClusterView, self: Self): void {
    this.#responder.sync(dnsZones(view, self));
    if (this.#redirect) this.#steer(dockerRedirects(view, self));
  }

  async close(): Promise<void> {
    await this.#responder.close();
    await this.#applying;
    await this.#redirect?.remove();
  }

  #steer(rules: RedirectRule[]): void {
    this.#pending = rules;
    this.#applying ??= (async () => {
      while (this.#pending) {
        const next = this.#pending;
        this.#pending = undefined;
        await this.#redirect!.apply(next);
      }
    })().finally(() => (this.#applying = undefined));
  }
}

/** Per network with a Docker endpoint here: its bridge, and per gateway the addresses of those endpoints. */
export function dockerRedirects(view: ClusterView, self: Self): RedirectRule[] {
  const rules: RedirectRule[] = [];
  for (const [name, locals] of localEndpoints(view, self)) {
    const network = view.networks.get(name);
    if (!network) continue;
    const byGateway = new Map<string, string[]>();
    for (const endpoint of locals) {
      if (endpoint.docker === undefined) continue;
      const sources = byGateway.get(endpoint.gateway) ?? [];
      sources.push(endpoint.ip);
      byGateway.set(endpoint.gateway, sources);
    }
    for (const [gateway, sources] of byGateway) rules.push({ bridge: deviceNames.bridge(network.vni), gateway, sources });
  }
  return rules;
}
