/**
 * Tunnel addresses of encrypted networks (vxnet issue 10). A node whose agent reports WireGuard gets one
 * address out of TUNNEL_POOL, kept for as long as the node keeps WireGuard; its encrypted VXLAN devices send
 * from it and its peers send to it, through the tunnels. An address is claimed with a `/tunnel-addresses/`
 * key created "only if absent" in the node's registration, so two nodes registering at once can never get
 * the same one; the node's removal releases it.
 *
 * Public keys are public: they and the tunnel addresses travel with the node record. Who may handshake with
 * whom is each agent's own peer list, made only of the nodes that share an encrypted network with it.
 */
import { VxnetError } from '../../core/errors.ts';
import { formatIPv4, parseCidr, parseIPv4, usableRange } from '../../core/ipv4.ts';
import type { NetworkDetail, Node, TunnelStatus } from '../../core/model.ts';
import type { WireguardImplementation } from '../../core/wireguard.ts';
import { TUNNEL_POOL } from '../../core/wireguard.ts';
import { keys } from '../keys.ts';
import type { Compare, Op } from '../store/store.ts';
import type { ServiceContext } from './context.ts';

const POOL = parseCidr(TUNNEL_POOL)!;

/**
 * The registered node `wanted` with its tunnel address: the one it holds while it keeps WireGuard, or the
 * lowest free one; and the compares and ops that claim or release it in the registration's transaction.
 */
export function withTunnelAddress(ctx: ServiceContext, wanted: Node, existing: Node | undefined): { node: Node; compares: Compare[]; ops: Op[] } {
  const { tunnelAddress: _kept, ...rest } = wanted;
  const previous = existing?.tunnelAddress;
  if (wanted.wireguard === undefined) {
    // no WireGuard any more: the address goes back to the pool
    return { node: rest, compares: [], ops: previous !== undefined ? [{ type: 'delete', key: keys.tunnelAddress(previous) }] : [] };
  }
  if (previous !== undefined) return { node: { ...rest, tunnelAddress: previous }, compares: [], ops: [] };
  const address = freeTunnelAddress(ctx);
  return {
    node: { ...rest, tunnelAddress: address },
    compares: [{ key: keys.tunnelAddress(address), modRevision: 0 }],
    ops: [{ type: 'put', key: keys.tunnelAddress(address), value: wanted.name }],
  };
}

/** The ops that release a removed node's tunnel address. */
export function releaseTunnelAddress(node: Node): Op[] {
  return node.tunnelAddress !== undefined ? [{ type: 'delete', key: keys.tunnelAddress(node.tunnelAddress) }] : [];
}

/** The lowest address of the pool no node holds; a race with another registration is the claim's compare. */
function freeTunnelAddress(ctx: ServiceContext): string {
  const used = new Set<number>();
  for (const { node } of ctx.state.nodes.values()) {
    const value = node.tunnelAddress !== undefined ? parseIPv4(node.tunnelAddress) : undefined;
    if (value !== undefined) used.add(value);
  }
  const { first, last } = usableRange(POOL);
  for (let value = first; value <= last; value++) if (!used.has(value)) return formatIPv4(value);
  throw new VxnetError('subnet_pool_exhausted', `the tunnel range ${TUNNEL_POOL} has no free address left for another node.`);
}

/** An endpoint of an encrypted network needs a node that has a tunnel; one sentence says why not. */
export function requireTunnelFor(ctx: ServiceContext, networkName: string, nodeName: string): void {
  const network = ctx.state.networks.get(networkName)?.network;
  if (network?.encrypted !== true) return;
  const node = ctx.state.nodes.get(nodeName)?.node;
  if (node?.tunnelAddress !== undefined && node.wireguard !== undefined) return;
  throw new VxnetError(
    'bad_request',
    `node ${nodeName} cannot join encrypted network ${networkName}: its agent found no WireGuard (install wireguard-tools and wireguard-go, then restart the agent).`,
  );
}

/**
 * What each node's agent last reported about its tunnels, with its heartbeat: in memory only, like liveness
 * (a report every few seconds per node must never become store writes or watch traffic). Per service.
 */
const reports = new WeakMap<ServiceContext, Map<string, readonly TunnelStatus[]>>();

function reportsOf(ctx: ServiceContext): Map<string, readonly TunnelStatus[]> {
  let map = reports.get(ctx);
  if (!map) reports.set(ctx, (map = new Map()));
  return map;
}

/**
 * A heartbeat's tunnels: absent, nothing new (the last report stays); empty, the node has none any more;
 * `undefined` from a removal forgets the node.
 */
export function recordTunnels(ctx: ServiceContext, node: string, tunnels: readonly TunnelStatus[] | undefined, removed = false): void {
  if (removed || tunnels?.length === 0) reportsOf(ctx).delete(node);
  else if (tunnels !== undefined) reportsOf(ctx).set(node, tunnels);
}

export function tunnelsOf(ctx: ServiceContext, node: string): readonly TunnelStatus[] | undefined {
  return reports.get(ctx)?.get(node);
}

/**
 * An encrypted network's tunnels: from each member node (one with an endpoint there) to each other member,
 * as the first reported it; a member that reported nothing about a peer shows that tunnel as down.
 */
export function networkTunnels(ctx: ServiceContext, network: string): NonNullable<NetworkDetail['tunnels']> {
  const members = [...(ctx.state.nodeCounts.get(network)?.keys() ?? [])].sort();
  const out: NonNullable<NetworkDetail['tunnels']> = [];
  for (const from of members) {
    const reported = new Map((tunnelsOf(ctx, from) ?? []).map((t) => [t.node, t]));
    for (const to of members) {
      if (to === from) continue;
      const status = reported.get(to);
      out.push({ from, to, up: status?.up ?? false, latestHandshake: status?.latestHandshake ?? null });
    }
  }
  return out;
}

/**
 * What `vxnet network inspect` shows of an encrypted network: its tunnels, the implementation at each
 * member, and a sentence for each tunnel that is down, so that a missing path is read, not guessed.
 */
export function networkEncryption(ctx: ServiceContext, network: string): Pick<NetworkDetail, 'tunnels' | 'implementations' | 'warnings'> {
  const tunnels = networkTunnels(ctx, network);
  const implementations: Record<string, WireguardImplementation> = {};
  for (const member of [...(ctx.state.nodeCounts.get(network)?.keys() ?? [])].sort()) {
    const implementation = ctx.state.nodes.get(member)?.node.wireguard?.implementation;
    if (implementation !== undefined) implementations[member] = implementation;
  }
  const warnings = tunnels
    .filter((t) => !t.up)
    .map(
      (t) =>
        `the tunnel from ${t.from} to ${t.to} is down (${t.latestHandshake === null ? 'no handshake reported' : `last handshake ${t.latestHandshake}`}): ` +
        `this network's frames from ${t.from} to ${t.to} are dropped, never sent in clear.`,
    );
  return { tunnels, implementations, ...(warnings.length > 0 ? { warnings } : {}) };
}
