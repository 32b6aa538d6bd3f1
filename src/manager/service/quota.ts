/**
 * What a node certificate may hold (docs/security.md, hole 4): at most `maxAddressesPerNode` addresses on
 * one network, counting its reservations (Docker's IPAM) and its endpoints that did not adopt one (an
 * endpoint on a reservation holds that one address). Without a limit, one node's certificate reserved a
 * whole subnet in a fraction of a second. Administrators are not limited: they are trusted with everything.
 *
 * The count is decided against the index like everything else, so two requests of one node deciding at
 * once would both see room for one more. Each limited create therefore rewrites `/usage/<network>/<node>`
 * and compares it: of two such creates one commits, the other is decided again and counted afresh.
 */
import { VxnetError } from '../../core/errors.ts';
import { PREFIX, keys } from '../keys.ts';
import type { Compare, Op } from '../store/store.ts';
import type { ServiceContext } from './context.ts';

/**
 * Addresses a node may hold on one network when it asks with its own certificate. Kubernetes runs at most
 * 110 pods per node by default; 128 leaves room for that and stays below the 253 addresses of a /24, so a
 * node alone cannot fill a default-sized subnet. `--max-endpoints-per-node` changes it.
 */
export const DEFAULT_MAX_ENDPOINTS_PER_NODE = 128;

/** How many addresses of `network` node `node` holds. */
export function addressesHeld(ctx: ServiceContext, node: string, network: string): number {
  let held = 0;
  for (const id of ctx.state.endpointsByNode.get(node) ?? []) {
    const endpoint = ctx.state.endpoints.get(id)?.endpoint;
    if (endpoint && endpoint.network === network && !endpoint.reserved) held++;
  }
  for (const reservation of ctx.state.reservationsOf(network)) if (reservation.node === node) held++;
  return held;
}

/** Refuses one more address for `node` on `network` over the limit; else the compare and put that serialise its creates. */
export function withinQuota(ctx: ServiceContext, node: string, network: string): { compares: Compare[]; ops: Op[] } {
  const limit = ctx.maxAddressesPerNode;
  if (addressesHeld(ctx, node, network) >= limit) {
    throw new VxnetError(
      'quota_exceeded',
      `node ${node} already holds ${limit} addresses on network ${network}, the most a node may hold on one network (vxnet manager --max-endpoints-per-node); release some first.`,
    );
  }
  const key = keys.usage(network, node);
  return {
    compares: [{ key, modRevision: ctx.state.usage.get(key) ?? 0 }],
    ops: [{ type: 'put', key, value: '{}' }],
  };
}

/** The `/usage/` keys of a network, or of a node, to delete with it. */
export function usageKeys(ctx: ServiceContext, of: { network: string } | { node: string }): Op[] {
  const ops: Op[] = [];
  for (const key of ctx.state.usage.keys()) {
    const [network, node] = key.slice(PREFIX.usage.length).split('/');
    if ('network' in of ? network === of.network : node === of.node) ops.push({ type: 'delete', key });
  }
  return ops;
}
