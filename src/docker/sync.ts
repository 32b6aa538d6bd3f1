/**
 * Keeps a Docker network for every vxnet network on the engine this agent is linked to, so that
 * `docker run --network NAME` works on any host with no per-host step (what Swarm does for overlay
 * networks). Level-triggered like the agent's reconcile: each pass lists the engine's `vxnet` networks and
 * compares them with the view (which has every network: the agent watches with `networks=all`):
 *
 * - a vxnet network without a Docker network of the same subnets gets one, named like it, with vxnet as
 *   driver and IPAM driver (the engine then calls our plugin, which binds it: network-driver.ts);
 * - a Docker `vxnet` network whose subnets belong to no vxnet network any more is removed, its containers
 *   disconnected first (they lost their connectivity with the vxnet network already);
 * - networks the plugin is creating, has just created, or has just deleted (`docker network rm`) are left
 *   alone until the view has caught up (catalogue.ts).
 *
 * A Docker network is matched by its subnets, not its name: a user may bind a Docker network of another
 * name to a vxnet network (`docker network create -d vxnet --subnet ...`), and that counts. Passes run on
 * every view change, after the plugin deleted a network, and every `resyncMs`; a failing engine (restarting,
 * say) is retried with backoff.
 *
 * Next to the networks, each pass makes sure Docker's own packet filter lets vxnet's traffic through (see
 * ensureForwardAccept).
 */
import { messageOf } from '../core/errors.ts';
import { SerialPasses } from '../core/passes.ts';
import { warnLine } from '../core/log.ts';
import type { Network } from '../core/model.ts';
import { OWNED_PREFIX } from '../agent/dataplane.ts';
import type { Runner } from '../agent/kernel/exec.ts';
import { DRIVER_NAME } from './api.ts';
import { type NetworkCatalogue, canonical } from './catalogue.ts';
import { EngineError, type EngineNetwork, type NetworkCreateSpec } from './engine-client.ts';

export interface SyncEngine {
  listNetworks(filter: { driver?: string }, signal?: AbortSignal): Promise<EngineNetwork[]>;
  inspectNetwork(id: string, signal?: AbortSignal): Promise<EngineNetwork | undefined>;
  createNetwork(spec: NetworkCreateSpec, signal?: AbortSignal): Promise<{ Id: string }>;
  removeNetwork(id: string, signal?: AbortSignal): Promise<void>;
  disconnect(network: string, container: string, force: boolean, signal?: AbortSignal): Promise<void>;
}

export interface DockerNetworkSyncOptions {
  engine: SyncEngine;
  catalogue: NetworkCatalogue;
  /** false until the agent's view has its first snapshot: before that, "no network" means "not known yet" */
  ready: () => boolean;
  log?: (line: string) => void;
  /** default 30 s */
  resyncMs?: number;
  /** run at the end of each pass (ensureForwardAccept) */
  afterPass?: (signal: AbortSignal) => Promise<void>;
}

/** Label on the Docker networks the sync makes (informational: matching is by subnet). */
export const MANAGED_LABEL = 'io.vxnet.network';
/** Label on a Docker network restored after a `docker network rm` that could not remove its vxnet network: why. */
export const RESTORED_LABEL = 'io.vxnet.restored';

/** a failing engine (restarting, say) is asked again after 400 ms, 800 ms, ... up to 10 s */
const RETRY_MIN_MS = 400;
const RETRY_MAX_MS = 10_000;

export class DockerNetworkSync {
  readonly #o: DockerNetworkSyncOptions;
  readonly #log: (line: string) => void;
  #signal: AbortSignal | undefined;
  readonly #passLoop = new SerialPasses(() => this.#tryPass(), {
    retry: { minMs: RETRY_MIN_MS, maxMs: RETRY_MAX_MS },
    active: () => this.#signal !== undefined && !this.#signal.aborted,
    unrefRetry: true,
  });
  /** names whose Docker network cannot be made (a non-vxnet network has the name): said once */
  readonly #conflicts = new Set<string>();
  /** IPv6-only networks, which no Docker network can stand for: said once */
  readonly #ipv6Only = new Set<string>();
  #passes = 0;

  constructor(options: DockerNetworkSyncOptions) {
    this.#o = options;
    this.#log = options.log ?? (() => {});
  }

  get passes(): number {
    return this.#passes;
  }

  start(signal: AbortSignal): void {
    this.#signal = signal;
    const interval = setInterval(() => this.schedule(), this.#o.resyncMs ?? 30_000);
    interval.unref();
    signal.addEventListener('abort', () => {
      clearInterval(interval);
      this.#passLoop.stop();
    });
    this.schedule();
  }

  /** Requests a pass (now, or after `delayMs`); passes never overlap. */
  schedule(delayMs = 0): void {
    if (delayMs > 0) {
      setTimeout(() => this.schedule(), delayMs).unref();
      return;
    }
    this.#passLoop.schedule();
  }

  /** Resolves once no pass is running or pending. */
  async idle(): Promise<void> {
    await this.#passLoop.idle();
  }

  async #tryPass(): Promise<void> {
    const signal = this.#signal!;
    try {
      await this.pass(signal);
      this.#passLoop.succeeded();
    } catch (err) {
      if (signal.aborted) return;
      const delay = this.#passLoop.failed();
      const failures = this.#passLoop.failures;
      if (failures === 1 || failures % 10 === 0) this.#log(`docker network sync failed: ${messageOf(err)}; retrying in ${delay} ms`);
    }
  }

  /** One comparison of the engine's vxnet networks with the view, and the changes it calls for. */
  async pass(signal: AbortSignal): Promise<void> {
    if (!this.#o.ready()) return;
    const { engine, catalogue } = this.#o;
    this.#passes++;
    const present = await engine.listNetworks({ driver: DRIVER_NAME }, signal);
    const wanted = catalogue.networks();
    const byKey = new Map<string, Network>(wanted.map((n) => [keyOf(n.subnets.map((s) => s.cidr)), n]));
    const have = new Set<string>();
    for (const docker of present) {
      const cidrs = subnetsOf(docker);
      const key = keyOf(cidrs);
      have.add(key);
      const network = byKey.get(key);
      if (network) catalogue.bind(docker.Id, { name: network.name, cidrs });
    }

    for (const network of wanted) {
      if (have.has(keyOf(network.subnets.map((s) => s.cidr))) || catalogue.isDeleted(network.name)) continue;
      if (!network.subnets.some((s) => !s.cidr.includes(':'))) {
        // Docker (20.10) gives every network an IPv4 pool, so no Docker network can have exactly these subnets
        if (!this.#ipv6Only.has(network.name)) this.#log(`no docker network for vxnet network ${network.name}: it has IPv6 subnets only, and every Docker network has an IPv4 subnet`);
        this.#ipv6Only.add(network.name);
        continue;
      }
      const refused = catalogue.takeRefusedRemoval(network.name);
      try {
        await engine.createNetwork(specOf(network, refused), signal);
        this.#conflicts.delete(network.name);
        if (refused) this.#log(warnLine(`restored docker network ${network.name} after a docker network rm on this host: ${refused}`));
        else this.#log(`created docker network ${network.name} for vxnet network ${network.name}`);
      } catch (err) {
        if (refused) catalogue.removalRefused(network.name, refused);
        if (!(err instanceof EngineError && err.status === 409)) throw err;
        // another network of that name (or one made meanwhile): the next pass sees which
        if (!this.#conflicts.has(network.name)) this.#log(`docker network ${network.name} not created: ${err.message}`);
        this.#conflicts.add(network.name);
      }
    }

    const recent = catalogue.recentSubnets();
    for (const docker of present) {
      const cidrs = subnetsOf(docker);
      if (byKey.has(keyOf(cidrs)) || catalogue.isPending(docker.Id) || cidrs.some((c) => recent.has(c))) continue;
      await this.#remove(docker, signal);
    }
    await this.#o.afterPass?.(signal);
  }

  async #remove(docker: EngineNetwork, signal: AbortSignal): Promise<void> {
    const { engine } = this.#o;
    const detail = await engine.inspectNetwork(docker.Id, signal);
    if (!detail) return;
    for (const container of Object.keys(detail.Containers ?? {})) {
      try {
        await engine.disconnect(docker.Id, container, true, signal);
      } catch (err) {
        if (!(err instanceof EngineError && err.status === 404)) throw err;
      }
    }
    await engine.removeNetwork(docker.Id, signal);
    const count = Object.keys(detail.Containers ?? {}).length;
    this.#log(`removed docker network ${docker.Name}: its vxnet network is gone${count ? ` (disconnected ${count} container${count === 1 ? '' : 's'})` : ''}`);
  }
}

/** The Docker network that stands for `network` on an engine; `restored`: why a `docker network rm` did not stick. */
export function specOf(network: Network, restored?: string): NetworkCreateSpec {
  return {
    Name: network.name,
    Driver: DRIVER_NAME,
    CheckDuplicate: true,
    Internal: network.internal,
    // a dual-stack network: libnetwork asks for IPv6 pools only with IPv6 on
    ...(network.subnets.some((s) => s.cidr.includes(':')) ? { EnableIPv6: true } : {}),
    IPAM: { Driver: DRIVER_NAME, Config: network.subnets.map((s) => ({ Subnet: s.cidr, Gateway: s.gateway })) },
    Options: { vni: String(network.vni) },
    Labels: { [MANAGED_LABEL]: network.name, ...(restored === undefined ? {} : { [RESTORED_LABEL]: restored }) },
  };
}

function subnetsOf(docker: EngineNetwork): string[] {
  return (docker.IPAM?.Config ?? []).map((c) => (c.Subnet === undefined ? undefined : canonical(c.Subnet))).filter((c): c is string => c !== undefined);
}

function keyOf(cidrs: readonly string[]): string {
  return cidrs.map((c) => canonical(c) ?? c).sort().join(',');
}

// -----------------------------------------------------------------------------------------------------

/**
 * Docker's packet filter versus vxnet's traffic. An engine with its iptables integration on (the default)
 * sets the FORWARD policy to DROP and accepts only its own bridges' traffic. The kernel applies that to
 * vxnet's too: bridged frames between a container and the VXLAN device pass the FORWARD hook as well
 * (br_netfilter, `bridge-nf-call-iptables`), and so does routed egress. vxnet's own nftables table cannot
 * overrule a drop in another table, so the agent does what Docker documents for this case: it accepts
 * vxnet's traffic in the DOCKER-USER chain, which Docker evaluates first and never flushes.
 *
 * Only what vxnet needs, so that Docker's own isolation still applies to everything else (vxnet issue 9:
 * `-i vxnb+ -j ACCEPT` let a vxnet container open connections into an `--internal` Docker network, since
 * the accept came before Docker's isolation chains). The rules, marked with the comment vxnet:
 * - from a vxnet bridge to a vxnet bridge: a network's own traffic (bridged, between its containers and
 *   its VXLAN device); routing between two vxnet networks is dropped by table ip vxnet before this chain;
 * - replies into a vxnet bridge (new connections from elsewhere into a vxnet network stay Docker's call);
 * - from a vxnet bridge out of each egress interface (the underlay's and the default routes'): the outside
 *   world, masqueraded by table ip vxnet. Docker's bridges are none of these, so a vxnet container reaches
 *   a Docker network only as Docker allows (published ports), like any other host.
 * Rules marked vxnet that are not wanted (an egress interface that went, the wide rule of older versions)
 * are deleted. Without the chain (`--iptables=false`, or no Docker) nothing is done.
 */
const COMMENT = ['-m', 'comment', '--comment', 'vxnet'];
const VXNET_BRIDGES = `${OWNED_PREFIX}b+`;

export function forwardAcceptRules(egress: readonly string[]): string[][] {
  return [
    ['-i', VXNET_BRIDGES, '-o', VXNET_BRIDGES, ...COMMENT, '-j', 'ACCEPT'],
    ['-o', VXNET_BRIDGES, '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', ...COMMENT, '-j', 'ACCEPT'],
    ...[...new Set(egress)].sort().map((device) => ['-i', VXNET_BRIDGES, '-o', device, ...COMMENT, '-j', 'ACCEPT']),
  ];
}

/** Pure: the rules marked vxnet in `iptables -S DOCKER-USER` output, as the argument lists that follow `-A DOCKER-USER`. */
export function markedRules(listing: string): string[][] {
  return listing
    .split('\n')
    .filter((line) => line.startsWith('-A DOCKER-USER ') && / --comment "?vxnet"? /.test(`${line} `))
    .map((line) => line.slice('-A DOCKER-USER '.length).trim().split(/\s+/).map((word) => word.replace(/^"(.*)"$/, '$1')));
}

/** Brings vxnet's rules in DOCKER-USER to forwardAcceptRules(egress); returns how many rules it added or deleted. */
export async function ensureForwardAccept(run: Runner, log: (line: string) => void, egress: readonly string[], signal?: AbortSignal): Promise<number> {
  const listed = await run.run(['iptables', '-w', '5', '-S', 'DOCKER-USER'], { allowFailure: true, signal });
  if (listed.code !== 0) return 0;
  const wanted = forwardAcceptRules(egress);
  const have = markedRules(listed.stdout);
  const key = (rule: readonly string[]) => rule.join(' ');
  const haveKeys = new Set(have.map(key));
  const wantedKeys = new Set(wanted.map(key));
  let added = 0;
  let deleted = 0;
  for (const rule of have) {
    if (wantedKeys.has(key(rule))) continue;
    await run.run(['iptables', '-w', '5', '-D', 'DOCKER-USER', ...rule], { signal });
    deleted++;
  }
  // inserted last to first, so the chain holds them in forwardAcceptRules' order: a network's own
  // (bridged) traffic is accepted by the first rule, before the conntrack match (vxnet issue 19)
  for (const rule of [...wanted].reverse()) {
    if (haveKeys.has(key(rule))) continue;
    await run.run(['iptables', '-w', '5', '-I', 'DOCKER-USER', '1', ...rule], { signal });
    added++;
  }
  if (added + deleted > 0) {
    log(`vxnet's rules in Docker's DOCKER-USER chain: ${added} added, ${deleted} deleted (egress through ${[...new Set(egress)].sort().join(', ') || 'no interface'})`);
  }
  return added + deleted;
}
