/**
 * Nodes: registration (stored), heartbeats (memory only, see ../liveness.ts) and removal, which withdraws
 * the node's endpoints behind a `/removing-nodes/` marker so that no new one can appear meanwhile.
 */
import { VxnetError } from '../../core/errors.ts';
import type { Endpoint, HeartbeatRequest, Node, NodeStatus, RegisterNodeRequest, UpdateNodeRequest } from '../../core/model.ts';
import { mixedFamilyMessage, underlayFamily } from '../../core/underlay.ts';
import { keys } from '../keys.ts';
import { LIVENESS_PREFIX } from '../shared-liveness.ts';
import { validateNodeRequest } from '../validation.ts';
import type { Compare, Op } from '../store/store.ts';
import { casRetry, commit } from './cas.ts';
import { honoured } from './identities.ts';
import { usageKeys } from './quota.ts';
import { recordTunnels, releaseTunnelAddress, tunnelsOf, withTunnelAddress } from './tunnels.ts';
import { type ServiceContext, isoNow } from './context.ts';
import { behindMarker, compareText, deleteInBatches, endpointDeleteOps, nodeNotFound, reservationDeleteOps } from './shared.ts';

export function listNodes(ctx: ServiceContext): NodeStatus[] {
  return [...ctx.state.nodes.values()]
    .map((e) => nodeStatus(ctx, e.node))
    .sort((a, b) => compareText(a.name, b.name));
}

export function getNode(ctx: ServiceContext, name: string): NodeStatus {
  const entry = ctx.state.nodes.get(name);
  if (!entry) throw nodeNotFound(name);
  return nodeStatus(ctx, entry.node);
}

export interface RegisterOptions {
  /** the node certificate the request came with: it must still be honoured when the registration commits */
  certificate?: { serial: string; notBefore: Date };
}

/** Creates or updates a node; an unchanged re-registration writes nothing. */
export async function registerNode(ctx: ServiceContext, req: RegisterNodeRequest, options: RegisterOptions = {}): Promise<Node> {
  const wanted = validateNodeRequest(req);
  return casRetry<Node>(ctx, `register node ${wanted.name}`, () => {
    // a `node rm` after the request was authenticated revokes the certificate: the node must not come back
    const guard = options.certificate ? [honoured(ctx, wanted.name, options.certificate)] : [];
    const existing = ctx.state.nodes.get(wanted.name);
    if (existing && existing.node.address === wanted.address && existing.node.mtu === wanted.mtu && sameWireguard(existing.node, wanted)) {
      ctx.liveness.seen(wanted.name);
      return { done: existing.node };
    }
    refuseMixedFamily(ctx, wanted);
    const holder = ctx.state.nodeAddresses.get(wanted.address);
    if (holder !== undefined && holder !== wanted.name) {
      throw new VxnetError(
        'address_in_use',
        `underlay address ${wanted.address} is already registered by node ${holder}: every node needs an address of its own.`,
      );
    }
    const { wireguard: _previous, ...kept } = existing?.node ?? {};
    const tunnel = withTunnelAddress(ctx, { ...kept, ...wanted, registeredAt: existing?.node.registeredAt ?? isoNow(ctx) }, existing?.node);
    const node = tunnel.node;
    const compares: Compare[] = [...guard, { key: keys.node(node.name), modRevision: existing?.modRevision ?? 0 }, ...tunnel.compares];
    const ops: Op[] = [{ type: 'put', key: keys.node(node.name), value: JSON.stringify(node) }, ...tunnel.ops];
    // the address is claimed "only if absent", so two nodes registering it at once cannot both win
    if (holder === undefined) {
      compares.push({ key: keys.nodeAddress(node.address), modRevision: 0 });
      ops.push({ type: 'put', key: keys.nodeAddress(node.address), value: node.name });
      const old = existing?.node.address;
      if (old !== undefined && ctx.state.nodeAddresses.get(old) === node.name) ops.push({ type: 'delete', key: keys.nodeAddress(old) });
    }
    return {
      compares,
      ops,
      then: () => {
        ctx.liveness.seen(node.name);
        return ctx.state.nodes.get(node.name)?.node ?? node;
      },
    };
  });
}

/** An administrator's change to a node (`vxnet node update`); an unchanged one writes nothing. */
export async function updateNode(ctx: ServiceContext, name: string, req: UpdateNodeRequest): Promise<Node> {
  return casRetry<Node>(ctx, `update node ${name}`, () => {
    const entry = ctx.state.nodes.get(name);
    if (!entry) throw nodeNotFound(name);
    const { allowNetworkCreate: _old, ...rest } = entry.node;
    const allow = req.allowNetworkCreate ?? entry.node.allowNetworkCreate === true;
    const rotate = req.rotateKey === true;
    if (rotate && entry.node.wireguard === undefined) {
      throw new VxnetError('bad_request', `node ${name} has no WireGuard key to rotate: its agent found no WireGuard.`);
    }
    // stored only when granted, so a node without the right looks as it always did
    const granted: Node = allow ? { ...rest, allowNetworkCreate: true } : rest;
    const node: Node = rotate ? { ...granted, keyRotation: (entry.node.keyRotation ?? 0) + 1 } : granted;
    if ((entry.node.allowNetworkCreate === true) === allow && !rotate) return { done: entry.node };
    return {
      compares: [{ key: keys.node(name), modRevision: entry.modRevision }],
      ops: [{ type: 'put', key: keys.node(name), value: JSON.stringify(node) }],
      then: () => {
        if (rotate) ctx.log(`node ${name} is asked for a new WireGuard key (rotation ${node.keyRotation})`);
        else ctx.log(`node ${name} ${allow ? 'may now create networks' : 'may no longer create networks'}`);
        return ctx.state.nodes.get(name)?.node ?? node;
      },
    };
  });
}

/** Records liveness in memory; never touches the store. */
export function heartbeat(ctx: ServiceContext, name: string, req: HeartbeatRequest): void {
  if (!ctx.state.nodes.has(name)) throw nodeNotFound(name);
  if (!Number.isSafeInteger(req.reconciledRevision) || req.reconciledRevision < 0) {
    throw new VxnetError('bad_request', 'field "reconciledRevision" must be a non-negative integer.');
  }
  ctx.liveness.heartbeat(name, req.reconciledRevision);
  recordTunnels(ctx, name, req.tunnels);
}

/**
 * Removes a node from the cluster. A `/removing-nodes/` marker is committed first: from then on no
 * endpoint can be added to the node, so the endpoints the index shows are all there will ever be. Without
 * `drain` any endpoint refuses the removal; with it they are deleted in batches first (releasing their
 * addresses), which every peer sees on its watch and withdraws the FDB and neighbour entries for. Then
 * the node record goes, and with it the node's own watch stream.
 *
 * This is the only way a node's entries leave its peers: a node that merely stops heartbeating is shown
 * as down and keeps everything (docs/security.md, "Fail-static").
 */
export async function deleteNode(ctx: ServiceContext, name: string, options: { drain?: boolean } = {}): Promise<{ endpoints: number }> {
  // joined but never registered: only its certificate to revoke
  if (!ctx.state.nodes.has(name) && ctx.state.identities.has(name)) return revokeOnly(ctx, name);
  const marker = { key: keys.removingNode(name), held: () => ctx.state.removingNodes.get(name) };
  const mayStart = () => {
    const entry = ctx.state.nodes.get(name);
    if (!entry) throw nodeNotFound(name);
    if (ctx.state.removingNodes.has(name)) throw new VxnetError('node_in_use', `node ${name} is already being removed.`);
    if (!options.drain) refuseIfInUse(name, ctx.state.endpointsByNode.get(name)?.size ?? 0);
    return { key: keys.node(name), modRevision: entry.modRevision };
  };
  return behindMarker(ctx, marker, `remove node ${name}`, mayStart, async (markerRevision) => {
    const guard = { key: marker.key, modRevision: markerRevision };
    const endpoints = [...(ctx.state.endpointsByNode.get(name) ?? [])]
      .map((id) => ctx.state.endpoints.get(id)?.endpoint)
      .filter((e): e is Endpoint => e !== undefined);
    if (!options.drain) refuseIfInUse(name, endpoints.length);
    await deleteInBatches(ctx, guard, endpoints, endpointDeleteOps);
    // Addresses its Docker engine reserved but no endpoint holds any more go with the node too.
    const reservations = [...ctx.state.reservations.values()].map((r) => r.reservation).filter((r) => r.node === name);
    await deleteInBatches(ctx, guard, reservations, reservationDeleteOps);
    const removed = { endpoints: endpoints.length };
    return casRetry<{ endpoints: number }>(ctx, `remove node ${name}`, () => {
      const entry = ctx.state.nodes.get(name);
      if (!entry) return { done: removed };
      return {
        compares: [guard, { key: keys.node(name), modRevision: entry.modRevision }],
        ops: [
          { type: 'delete', key: keys.node(name) },
          { type: 'delete', key: marker.key },
          // its certificates are refused from this revision on, by every manager of the store
          { type: 'delete', key: keys.identity(name) },
          // what managers on etcd told each other of its liveness (absent on SQLite)
          { type: 'delete', key: LIVENESS_PREFIX + name },
          ...usageKeys(ctx, { node: name }),
          ...releaseTunnelAddress(entry.node),
          ...(ctx.state.nodeAddresses.get(entry.node.address) === name ? [{ type: 'delete', key: keys.nodeAddress(entry.node.address) } as const] : []),
        ],
        then: () => {
          recordTunnels(ctx, name, undefined, true);
          ctx.log(`removed node ${name}${endpoints.length > 0 ? ` and withdrew its ${endpoints.length} endpoint(s)` : ''}; its certificate is revoked`);
          return removed;
        },
      };
    });
  });
}

async function revokeOnly(ctx: ServiceContext, name: string): Promise<{ endpoints: number }> {
  return casRetry<{ endpoints: number }>(ctx, `revoke the certificate of node ${name}`, () => {
    const identity = ctx.state.identities.get(name);
    if (ctx.state.nodes.has(name)) throw new VxnetError('node_in_use', `node ${name} registered meanwhile: run the removal again.`);
    if (!identity) return { done: { endpoints: 0 } };
    return {
      compares: [
        { key: keys.node(name), modRevision: 0 },
        { key: keys.identity(name), modRevision: identity.modRevision },
      ],
      ops: [{ type: 'delete', key: keys.identity(name) }],
      then: () => {
        ctx.log(`revoked the certificate of node ${name} (joined, never registered)`);
        return { endpoints: 0 };
      },
    };
  });
}

/** Whether a registration reports the WireGuard the node already has (none, or the same key, port and kind). */
function sameWireguard(node: Node, wanted: RegisterNodeRequest): boolean {
  const a = node.wireguard;
  const b = wanted.wireguard;
  if (a === undefined || b === undefined) return a === b;
  return a.publicKey === b.publicKey && a.port === b.port && a.implementation === b.implementation;
}

function nodeStatus(ctx: ServiceContext, node: Node): NodeStatus {
  const tunnels = tunnelsOf(ctx, node.name);
  return { ...node, ...ctx.liveness.get(node.name), ...(tunnels ? { tunnels: [...tunnels] } : {}) };
}

/**
 * A cluster's nodes all have IPv4 or all IPv6 underlay addresses (core/underlay.ts): a VXLAN device sends
 * from one `local` address only to destinations of its family, so a node of the other family could reach
 * no peer and no peer it. Checked against the nodes other than the one registering, so the first node (or
 * the only one, moving) sets the family.
 */
function refuseMixedFamily(ctx: ServiceContext, wanted: RegisterNodeRequest): void {
  const family = underlayFamily(wanted.address);
  for (const { node } of ctx.state.nodes.values()) {
    if (node.name !== wanted.name && underlayFamily(node.address) !== family) {
      throw new VxnetError('invalid_address', mixedFamilyMessage(wanted, node));
    }
  }
}

function refuseIfInUse(name: string, endpoints: number): void {
  if (endpoints === 0) return;
  throw new VxnetError('node_in_use', `node ${name} still has ${endpoints} endpoint${endpoints === 1 ? '' : 's'}: detach them first or drain the node.`);
}

/**
 * Nodes registered before underlay addresses were claimed get their claims at start; of two nodes that
 * already share an address the first keeps it, and the other must register another one (it is logged).
 */
export async function claimNodeAddresses(ctx: ServiceContext): Promise<void> {
  for (const { node } of [...ctx.state.nodes.values()]) {
    const holder = ctx.state.nodeAddresses.get(node.address);
    if (holder === node.name) continue;
    if (holder !== undefined) {
      ctx.log(`node ${node.name} shares underlay address ${node.address} with node ${holder}; it keeps working until it registers an address of its own`);
      continue;
    }
    await commit(ctx, [{ key: keys.nodeAddress(node.address), modRevision: 0 }], [{ type: 'put', key: keys.nodeAddress(node.address), value: node.name }]);
  }
}
