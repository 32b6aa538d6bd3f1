/**
 * What the Docker drivers of one node know about vxnet networks, and how a Docker network maps to one.
 *
 * The mapping is by subnet. libnetwork never tells a remote driver the network's name (CreateNetwork gets
 * an id, options and the pools), but it does give every call the pool (IPAM) or the address (CreateEndpoint),
 * and vxnet subnets are unique cluster-wide: a subnet names exactly one vxnet network, on every host, with
 * no state to keep. Docker network ids (which differ per host) are mapped too, for the one call that has
 * nothing else (DeleteNetwork); those bindings are rebuilt from the engine's network list after a restart.
 *
 * The networks come from the agent's view, which watches every network (`networks=all`). Besides it, the
 * catalogue holds what only this node knows yet: networks this plugin is creating (the name of a Docker
 * network is known only once Docker has stored it, see network-driver.ts), networks it created that the
 * watch has not delivered yet, and names it deleted (so the sync does not restore them meanwhile).
 */
import { pause } from '../core/backoff.ts';
import { type Cidr, contains, formatCidr, overlaps, parseCidr, parseIPv4 } from '../core/ipv4.ts';
import { type Cidr6, contains6, formatCidr6, overlaps6, parseCidr6, parseIPv6 } from '../core/ipv6.ts';
import { VxnetError } from '../core/errors.ts';
import { DEFAULT_SUBNET_POOL, type Network, type Node, type Subnet } from '../core/model.ts';

/** The agent's view, as far as networks go. */
export interface NetworkSource {
  readonly networks: ReadonlyMap<string, Network>;
  /** registered nodes (their underlay MTU bounds a new network's MTU) */
  readonly nodes?: ReadonlyMap<string, Node>;
  /** false until the first snapshot (absent: always synced) */
  readonly synced?: boolean;
}

interface Pending {
  cidrs: string[];
  done: Promise<Network | undefined>;
  abort: AbortController;
}

export interface Binding {
  name: string;
  cidrs: string[];
}

/** How long a just-created network may take to show up in the view before the catalogue stops vouching. */
const RECENT_MS = 10_000;

export class NetworkCatalogue {
  readonly #source: NetworkSource;
  readonly #pollMs: number;
  readonly #pending = new Map<string, Pending>();
  /** new subnets between RequestPool and CreateNetwork (libnetwork is creating a network with them) */
  readonly #opening = new Map<string, number>();
  readonly #bindings = new Map<string, Binding>();
  /** name → subnets and when this plugin created it */
  readonly #recent = new Map<string, { cidrs: string[]; at: number }>();
  readonly #tombstones = new Set<string>();
  /** name → why a `docker network rm` left the vxnet network in place (said when the sync restores it) */
  readonly #refusedRemovals = new Map<string, string>();

  constructor(source: NetworkSource, options: { pollMs?: number } = {}) {
    this.#source = source;
    this.#pollMs = options.pollMs ?? 20;
  }

  /**
   * Resolves once the view has had its first snapshot. Right after the agent starts, Docker may call
   * before that, and an empty view would make every subnet look new: such calls wait, at most `timeoutMs`.
   */
  async whenSynced(timeoutMs = 10_000, signal?: AbortSignal): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.#source.synced === false) {
      if (Date.now() >= deadline || signal?.aborted) {
        throw new VxnetError('unavailable', "the vxnet agent has not received the cluster's state from the manager yet: try again in a moment.");
      }
      await pause(this.#pollMs, signal);
    }
  }

  networks(): Network[] {
    return [...this.#source.networks.values()];
  }

  nodes(): Node[] {
    return [...(this.#source.nodes?.values() ?? [])];
  }

  byName(name: string): Network | undefined {
    return this.#source.networks.get(name);
  }

  /** The network one of whose subnets is exactly `cidr`. */
  bySubnet(cidr: string): Network | undefined {
    const text = canonical(cidr);
    if (text === undefined) return undefined;
    for (const network of this.#source.networks.values()) if (network.subnets.some((s) => s.cidr === text)) return network;
    return undefined;
  }

  /** The network and subnet an address (IPv4 or IPv6) lies in. */
  byAddress(ip: string): { network: Network; subnet: Subnet; prefix: number } | undefined {
    const address = parseIPv4(ip);
    const address6 = address === undefined ? parseIPv6(ip) : undefined;
    if (address === undefined && address6 === undefined) return undefined;
    for (const network of this.#source.networks.values()) {
      for (const subnet of network.subnets) {
        if (address !== undefined) {
          const cidr = parseCidr(subnet.cidr);
          if (cidr && contains(cidr, address)) return { network, subnet, prefix: cidr.prefix };
        } else {
          const cidr = parseCidr6(subnet.cidr);
          if (cidr && contains6(cidr, address6!)) return { network, subnet, prefix: cidr.prefix };
        }
      }
    }
    return undefined;
  }

  /** A known or pending subnet that overlaps `cidr` (the name is undefined for a pending one). */
  overlapping(cidr: Cidr): { cidr: string; name: string | undefined } | undefined {
    return this.#firstOverlapping((text) => {
      const other = parseCidr(text);
      return other !== undefined && overlaps(other, cidr);
    });
  }

  /** A known or pending IPv6 subnet that overlaps `cidr` (the name is undefined for a pending one). */
  overlapping6(cidr: Cidr6): { cidr: string; name: string | undefined } | undefined {
    return this.#firstOverlapping((text) => {
      const other = parseCidr6(text);
      return other !== undefined && overlaps6(other, cidr);
    });
  }

  /** The first known, then pending, subnet for which `overlapsIt` holds (each family parses only its own). */
  #firstOverlapping(overlapsIt: (cidr: string) => boolean): { cidr: string; name: string | undefined } | undefined {
    for (const network of this.#source.networks.values()) {
      for (const subnet of network.subnets) if (overlapsIt(subnet.cidr)) return { cidr: subnet.cidr, name: network.name };
    }
    for (const text of [...[...this.#pending.values()].flatMap((p) => p.cidrs), ...this.#opening.keys()]) {
      if (overlapsIt(text)) return { cidr: text, name: undefined };
    }
    return undefined;
  }

  // ---- new pools libnetwork holds while it creates a network ----------------------------------------

  /** RequestPool handed out a subnet that no network has yet. */
  opened(cidr: string): void {
    const text = canonical(cidr) ?? cidr;
    this.#opening.set(text, (this.#opening.get(text) ?? 0) + 1);
  }

  /** CreateNetwork took the pool over (or ReleasePool gave it back). */
  closed(cidr: string): void {
    const text = canonical(cidr) ?? cidr;
    const count = (this.#opening.get(text) ?? 0) - 1;
    if (count > 0) this.#opening.set(text, count);
    else this.#opening.delete(text);
  }

  /** Whether libnetwork is still setting up a network with this new subnet (before CreateNetwork). */
  isOpening(cidr: string): boolean {
    return this.#opening.has(canonical(cidr) ?? cidr);
  }

  /** The first /24 of vxnet's default pool that no known or pending subnet overlaps (`--subnet` omitted). */
  freeSubnet(): string | undefined {
    const pool = parseCidr(DEFAULT_SUBNET_POOL)!;
    for (let i = 0; i < 2 ** (24 - pool.prefix); i++) {
      const candidate: Cidr = { network: pool.network + i * 256, prefix: 24 };
      if (!this.overlapping(candidate)) return formatCidr(candidate);
    }
    return undefined;
  }

  // ---- networks being created by this plugin --------------------------------------------------------

  addPending(networkId: string, cidrs: string[], start: (signal: AbortSignal) => Promise<Network | undefined>): void {
    const abort = new AbortController();
    const done = start(abort.signal)
      .catch(() => undefined)
      .finally(() => {
        if (this.#pending.get(networkId)?.done === done) this.#pending.delete(networkId);
      });
    this.#pending.set(networkId, { cidrs: cidrs.map((c) => canonical(c) ?? c), done, abort });
  }

  isPending(networkId: string): boolean {
    return this.#pending.has(networkId);
  }

  /** Stops a creation in progress (Docker deleted the network first). */
  cancelPending(networkId: string): void {
    this.#pending.get(networkId)?.abort.abort();
    this.#pending.delete(networkId);
  }

  /**
   * The network of `cidr`, waiting for a creation of this plugin in progress, or for the watch to deliver a
   * network created elsewhere moments ago, at most `timeoutMs`.
   */
  async networkForSubnet(cidr: string, timeoutMs: number, signal?: AbortSignal): Promise<Network | undefined> {
    const text = canonical(cidr);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const known = this.bySubnet(cidr);
      if (known) return known;
      const pending = [...this.#pending.values()].find((p) => text !== undefined && p.cidrs.includes(text));
      if (pending) {
        const left = deadline - Date.now();
        if (left <= 0) return undefined;
        // the wait ends with whichever comes first; its timer must not outlive the race
        const stop = new AbortController();
        const waits = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
        const made = await Promise.race([pending.done, pause(left, waits).then(() => undefined)]).finally(() => stop.abort());
        // this node's creation failed (or the wait ran out): nothing more to wait for
        return made ?? this.bySubnet(cidr);
      }
      if (Date.now() >= deadline || signal?.aborted) return undefined;
      await pause(Math.min(this.#pollMs, deadline - Date.now()), signal);
    }
  }

  // ---- Docker network id → vxnet network ------------------------------------------------------------

  bind(networkId: string, binding: Binding): void {
    this.#bindings.set(networkId, { name: binding.name, cidrs: binding.cidrs.map((c) => canonical(c) ?? c) });
  }

  binding(networkId: string): Binding | undefined {
    return this.#bindings.get(networkId);
  }

  unbind(networkId: string): void {
    this.#bindings.delete(networkId);
  }

  /** Other Docker networks of this engine bound to the same vxnet network. */
  boundElsewhere(networkId: string, name: string): boolean {
    for (const [id, binding] of this.#bindings) if (id !== networkId && binding.name === name) return true;
    return false;
  }

  // ---- what the sync must not undo ------------------------------------------------------------------

  /** This plugin created network `name`; until the view has it, the sync keeps its Docker network. */
  created(name: string, cidrs: string[]): void {
    this.#recent.set(name, { cidrs: cidrs.map((c) => canonical(c) ?? c), at: Date.now() });
  }

  /** Subnets of networks created here moments ago that the view does not show yet. */
  recentSubnets(): Set<string> {
    const out = new Set<string>();
    for (const [name, entry] of this.#recent) {
      if (this.#source.networks.has(name) || Date.now() - entry.at > RECENT_MS) this.#recent.delete(name);
      else for (const cidr of entry.cidrs) out.add(cidr);
    }
    return out;
  }

  /** This plugin deleted network `name` (docker network rm): the sync must not restore it meanwhile. */
  deleted(name: string): void {
    this.#tombstones.add(name);
  }

  /** The deletion did not happen after all. */
  forgetDeleted(name: string): void {
    this.#tombstones.delete(name);
  }

  /** A `docker network rm` here left vxnet network `name` in place, for `reason` (one sentence). */
  removalRefused(name: string, reason: string): void {
    this.#refusedRemovals.set(name, reason);
  }

  /** Why the Docker network of `name` was removed in vain, once: the sync restoring it says so. */
  takeRefusedRemoval(name: string): string | undefined {
    const reason = this.#refusedRemovals.get(name);
    this.#refusedRemovals.delete(name);
    return reason;
  }

  /** Whether `name` was deleted here; forgets it once the view no longer has the network. */
  isDeleted(name: string): boolean {
    if (!this.#tombstones.has(name)) return false;
    if (this.#source.networks.has(name)) return true;
    this.#tombstones.delete(name);
    return false;
  }
}

/** "10.1.0.0/24" or "fd00:1::/64" (RFC 5952) for any spelling of it, undefined when it is no subnet. */
export function canonical(cidr: string): string | undefined {
  const parsed = parseCidr(cidr);
  if (parsed) return formatCidr(parsed);
  const parsed6 = parseCidr6(cidr);
  return parsed6 ? formatCidr6(parsed6) : undefined;
}
