/**
 * Networks: listing, creating (name, VNI and subnets claimed in one transaction) and deleting (behind a
 * `/deleting/` marker, so no endpoint can be added while the delete runs).
 */
import { VxnetError } from '../../core/errors.ts';
import type { CreateNetworkRequest, Network, NetworkDetail } from '../../core/model.ts';
import { requireName } from '../../core/names.ts';
import { META_NETWORKS, keys } from '../keys.ts';
import type { Compare } from '../store/store.ts';
import { resolveNetwork } from '../validation.ts';
import { casRetry } from './cas.ts';
import { usageKeys } from './quota.ts';
import type { ServiceContext } from './context.ts';
import {
  behindMarker,
  byNetworkThenIp,
  compareText,
  deleteInBatches,
  endpointDeleteOps,
  networkNotFound,
  reservationDeleteOps,
} from './shared.ts';
import { networkEncryption } from './tunnels.ts';

export function listNetworks(ctx: ServiceContext): Network[] {
  return [...ctx.state.networks.values()].map((e) => e.network).sort((a, b) => compareText(a.name, b.name));
}

export function getNetwork(ctx: ServiceContext, name: string): NetworkDetail {
  const entry = ctx.state.networks.get(name);
  if (!entry) throw networkNotFound(name);
  const detail: NetworkDetail = { ...entry.network, endpoints: ctx.state.endpointsOf(name).sort(byNetworkThenIp) };
  if (entry.network.encrypted === true) Object.assign(detail, networkEncryption(ctx, name));
  return detail;
}

/**
 * Creates a network. `by`: a node asking with its own certificate, which needs the right an administrator
 * grants (`vxnet node update NODE --allow-network-create`), re-checked in the store; the network records it.
 */
export async function createNetwork(ctx: ServiceContext, req: CreateNetworkRequest, options: { by?: string } = {}): Promise<Network> {
  const name = requireName(req.name, 'network');
  return casRetry(ctx, `create network ${name}`, () => {
    const grant = options.by === undefined ? [] : [mayManageNetworks(ctx, options.by, 'create')];
    if (ctx.state.networks.has(name)) throw new VxnetError('network_exists', `network ${name} already exists.`);
    const resolved = resolveNetwork(req, {
      networks: [...ctx.state.networks.values()].map((e) => ({ name: e.network.name, cidrs: e.cidrs, cidrs6: e.cidrs6 })),
      vnis: ctx.state.vnis,
      nodes: [...ctx.state.nodes.values()].map((e) => e.node),
      now: new Date(ctx.now()),
    });
    const network: Network = options.by === undefined ? resolved : { ...resolved, createdBy: options.by };
    return {
      compares: [
        ...grant,
        { key: keys.network(name), modRevision: 0 },
        { key: keys.vni(network.vni), modRevision: 0 },
        { key: META_NETWORKS, modRevision: ctx.state.metaNetworksRevision },
      ],
      ops: [
        { type: 'put', key: keys.network(name), value: JSON.stringify(network) },
        { type: 'put', key: keys.vni(network.vni), value: name },
        { type: 'put', key: META_NETWORKS, value: '{}' },
      ],
      then: () => ctx.state.networks.get(name)?.network ?? network,
    };
  });
}

/**
 * Deletes a network. First a `/deleting/` marker is committed: from then on no endpoint can be added, so
 * the endpoints the index shows are all there will ever be. Without `force` any endpoint refuses the
 * delete; with it they are removed in batches first.
 */
export async function deleteNetwork(ctx: ServiceContext, name: string, options: { force?: boolean; by?: string } = {}): Promise<void> {
  const marker = { key: keys.deleting(name), held: () => ctx.state.deleting.get(name) };
  const mayStart = () => {
    const entry = ctx.state.networks.get(name);
    if (!entry) throw networkNotFound(name);
    if (options.by !== undefined) mayDeleteAsNode(ctx, options.by, entry.network, options.force === true);
    if (ctx.state.deleting.has(name)) throw new VxnetError('network_in_use', `network ${name} is already being deleted.`);
    if (!options.force) refuseIfInUse(ctx, name, ctx.state.endpointsByNetwork.get(name)?.size ?? 0);
    return { key: keys.network(name), modRevision: entry.modRevision };
  };
  return behindMarker(ctx, marker, `delete network ${name}`, mayStart, async (markerRevision) => {
    const guard = { key: marker.key, modRevision: markerRevision };
    const endpoints = ctx.state.endpointsOf(name);
    if (!options.force) refuseIfInUse(ctx, name, endpoints.length);
    await deleteInBatches(ctx, guard, endpoints, endpointDeleteOps);
    // addresses Docker engines still hold go with the network (their later release finds nothing)
    await deleteInBatches(ctx, guard, ctx.state.reservationsOf(name), reservationDeleteOps);
    await casRetry(ctx, `delete network ${name}`, () => {
      const entry = ctx.state.networks.get(name);
      if (!entry) return { done: undefined };
      return {
        compares: [guard, { key: keys.network(name), modRevision: entry.modRevision }, { key: META_NETWORKS, modRevision: ctx.state.metaNetworksRevision }],
        ops: [
          { type: 'delete', key: keys.network(name) },
          { type: 'delete', key: keys.vni(entry.network.vni) },
          { type: 'delete', key: marker.key },
          { type: 'put', key: META_NETWORKS, value: '{}' },
          ...usageKeys(ctx, { network: name }),
        ],
        then: () => undefined,
      };
    });
  });
}

/** The compare that holds a node's right to create networks, or the refusal naming the command that grants it. */
function mayManageNetworks(ctx: ServiceContext, node: string, verb: 'create' | 'delete'): Compare {
  const entry = ctx.state.nodes.get(node);
  if (!entry?.node.allowNetworkCreate) {
    throw new VxnetError('forbidden', `node ${node} may not ${verb} networks: an administrator grants that with "vxnet node update ${node} --allow-network-create".`);
  }
  return { key: keys.node(node), modRevision: entry.modRevision };
}

/** A node deletes only unused networks it created itself, while it holds the right. */
function mayDeleteAsNode(ctx: ServiceContext, node: string, network: Network, force: boolean): void {
  mayManageNetworks(ctx, node, 'delete');
  if (network.createdBy !== node) {
    const creator = network.createdBy === undefined ? 'an administrator' : `node ${network.createdBy}`;
    throw new VxnetError('forbidden', `node ${node} may only delete the networks it created, and network ${network.name} was created by ${creator}.`);
  }
  if (force) throw new VxnetError('forbidden', `node ${node} may only delete unused networks: force needs the admin token.`);
}

/**
 * Refuses to delete a network that still has endpoints, or addresses reserved without an endpoint: those
 * are containers Docker is setting up (or tearing down) right now.
 */
function refuseIfInUse(ctx: ServiceContext, name: string, endpoints: number): void {
  if (endpoints > 0) {
    throw new VxnetError('network_in_use', `network ${name} still has ${endpoints} endpoint${endpoints === 1 ? '' : 's'}: delete them first or use force.`);
  }
  const held = ctx.state.reservationsOf(name).filter((r) => r.endpoint === undefined || !ctx.state.endpoints.has(r.endpoint));
  if (held.length === 0) return;
  const nodes = [...new Set(held.map((r) => r.node))].sort().join(', ');
  throw new VxnetError(
    'network_in_use',
    `network ${name} still has ${held.length} address${held.length === 1 ? '' : 'es'} reserved by the Docker engine of node ${nodes}: remove those containers first or use force.`,
  );
}
