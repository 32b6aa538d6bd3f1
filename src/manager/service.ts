/**
 * The manager's business logic: networks, nodes, endpoints and their addresses, over a Store. This file is
 * the facade the HTTP API, the Docker plugin and the tests call; the work is done per resource in
 * service/ (networks.ts, nodes.ts, endpoints.ts, reservations.ts), all sharing one compare-and-swap loop
 * (service/cas.ts).
 *
 * Decisions are taken against the in-memory index (ClusterState) and then committed with a
 * compare-and-swap transaction that re-checks, in the store, every fact the decision relied on (see
 * keys.ts). If the index was stale (another request or another manager got there first), the transaction
 * fails, the index catches up from the watch, and the request is decided again, possibly now with a
 * proper error such as address_in_use. Requests in flight at the same time (the SQLite store commits them
 * in groups, one fsync for many) are decided against the same index, so they can conflict and retry there as
 * they would against a remote store; correctness never depends on how often that happens.
 *
 * Liveness (heartbeats) is tracked in memory, never in the store: see liveness.ts.
 */
import { randomUUID } from 'node:crypto';
import type * as model from '../core/model.ts';
import { META_CLUSTER, keys } from './keys.ts';
import { LivenessTracker } from './liveness.ts';
import { commit } from './service/cas.ts';
import { type ServiceContext, isoNow } from './service/context.ts';
import * as endpoints from './service/endpoints.ts';
import * as networks from './service/networks.ts';
import * as nodes from './service/nodes.ts';
import { claimNodeAddresses } from './service/nodes.ts';
import * as identities from './service/identities.ts';
import * as reservations from './service/reservations.ts';
import { removeStaleMarkers } from './service/shared.ts';
import { DEFAULT_MAX_ENDPOINTS_PER_NODE } from './service/quota.ts';
import { Waiters } from './service/wait.ts';
import { ClusterState } from './state.ts';
import type { Store } from './store/store.ts';

export { DOCKER_IFNAME_PREFIX, type WaitOptions } from './service/endpoints.ts';

export interface ManagerServiceOptions {
  /** milliseconds since the epoch; injectable for tests */
  now?: () => number;
  /** a node without a heartbeat for this long is `down` (default 15 000) */
  nodeDownAfterMs?: number;
  /** addresses a node may hold on one network with its certificate (default DEFAULT_MAX_ENDPOINTS_PER_NODE) */
  maxEndpointsPerNode?: number;
  log?: (line: string) => void;
}

export const DEFAULT_NODE_DOWN_AFTER_MS = 15_000;

export class ManagerService {
  readonly state: ClusterState;
  readonly liveness: LivenessTracker;
  #ctx: ServiceContext;
  #unwatch: (() => void) | undefined;
  #closing = new AbortController();

  private constructor(store: Store, options: ManagerServiceOptions) {
    const now = options.now ?? Date.now;
    const log = options.log ?? (() => {});
    this.state = new ClusterState((err) => log(`index update failed: ${String(err)}`));
    this.liveness = new LivenessTracker({ now, downAfterMs: options.nodeDownAfterMs ?? DEFAULT_NODE_DOWN_AFTER_MS });
    this.#ctx = {
      store,
      state: this.state,
      liveness: this.liveness,
      closing: this.#closing.signal,
      endpointWaiters: new Waiters(),
      maxAddressesPerNode: options.maxEndpointsPerNode ?? DEFAULT_MAX_ENDPOINTS_PER_NODE,
      now,
      log,
    };
  }

  /** Loads the index from the store, follows its watch, and makes sure the cluster has an id. */
  static async open(store: Store, options: ManagerServiceOptions = {}): Promise<ManagerService> {
    const service = new ManagerService(store, options);
    await service.#start();
    return service;
  }

  async #start(): Promise<void> {
    const ctx = this.#ctx;
    const list = await ctx.store.list('');
    this.state.load(list);
    // the index holds every value it was given: a delete finds the old one there (state.ts)
    this.#unwatch = await ctx.store.watch('', list.revision + 1, (events) => this.state.apply(events), { previousValues: false });
    this.state.subscribe((change) => {
      if (change.kind === 'endpoint' || change.kind === 'endpoint-deleted') ctx.endpointWaiters.notify(change.endpoint.id);
    });
    if (this.state.clusterId === undefined) {
      const value = JSON.stringify({ clusterId: randomUUID(), createdAt: isoNow(ctx) });
      await commit(ctx, [{ key: META_CLUSTER, modRevision: 0 }], [{ type: 'put', key: META_CLUSTER, value }]);
    }
    await claimNodeAddresses(ctx);
    await identities.recordLegacyIdentities(ctx);
    // A delete marker left by a manager that died mid-delete would block the network forever. With a single
    // manager none can be in progress now; on etcd the markers of other managers' live leases stay.
    await removeStaleMarkers(ctx, this.state.deleting, keys.deleting, (name) => `delete marker of network ${name}`);
    // Likewise for a node removal cut short: the node stays with whatever endpoints were not yet withdrawn,
    // and `vxnet node rm` can simply be run again.
    await removeStaleMarkers(ctx, this.state.removingNodes, keys.removingNode, (name) => `removal marker of node ${name}`);
  }

  /** Stops following the store; waits in progress end with an error and leave their endpoint alone. */
  async close(): Promise<void> {
    this.#closing.abort();
    this.#unwatch?.();
    this.#unwatch = undefined;
    this.state.close();
  }

  info(): { clusterId: string; revision: number } {
    return { clusterId: this.state.clusterId ?? '', revision: this.state.revision };
  }

  // Node identities (which node certificates are honoured): service/identities.ts

  nodeIdentity(name: string): identities.NodeIdentity | undefined {
    return this.state.identities.get(name)?.identity;
  }

  /** A join: `serial` is now the only certificate honoured for `name`; without `replace` the node must not exist. */
  recordJoin(name: string, serial: string, options: { replace: boolean; taken: () => Error }): Promise<void> {
    return identities.recordJoin(this.#ctx, name, serial, options);
  }

  /** How long a renewed certificate of `name` may live: never past `maxAgeMs` after its join. */
  renewalLifetime(name: string, lifetimeMs: number, maxAgeMs: number): number {
    return identities.renewalLifetime(this.#ctx, name, lifetimeMs, maxAgeMs);
  }

  /** A renewal: `serial` and the certificate it was renewed from are honoured. */
  recordRenewal(name: string, from: { serial: string; notBefore: Date }, serial: string): Promise<void> {
    return identities.recordRenewal(this.#ctx, name, from, serial);
  }

  // Networks: service/networks.ts

  listNetworks(): model.Network[] {
    return networks.listNetworks(this.#ctx);
  }

  getNetwork(name: string): model.NetworkDetail {
    return networks.getNetwork(this.#ctx, name);
  }

  /** `by`: a node asking with its certificate (it needs the right to create networks). */
  createNetwork(req: model.CreateNetworkRequest, options: { by?: string } = {}): Promise<model.Network> {
    return networks.createNetwork(this.#ctx, req, options);
  }

  /** Deletes a network, refusing while it has endpoints or Docker reservations unless `force`. */
  deleteNetwork(name: string, options: { force?: boolean; by?: string } = {}): Promise<void> {
    return networks.deleteNetwork(this.#ctx, name, options);
  }

  // Nodes: service/nodes.ts

  listNodes(): model.NodeStatus[] {
    return nodes.listNodes(this.#ctx);
  }

  getNode(name: string): model.NodeStatus {
    return nodes.getNode(this.#ctx, name);
  }

  /** Creates or updates a node; an unchanged re-registration writes nothing. */
  registerNode(req: model.RegisterNodeRequest, options: nodes.RegisterOptions = {}): Promise<model.Node> {
    return nodes.registerNode(this.#ctx, req, options);
  }

  /** An administrator's change to a node: whether it may create networks. */
  updateNode(name: string, req: model.UpdateNodeRequest): Promise<model.Node> {
    return nodes.updateNode(this.#ctx, name, req);
  }

  /** Records liveness in memory; never touches the store. */
  heartbeat(name: string, req: model.HeartbeatRequest): void {
    nodes.heartbeat(this.#ctx, name, req);
  }

  /** Removes a node, refusing while it has endpoints unless `drain` (which withdraws them first). */
  deleteNode(name: string, options: { drain?: boolean } = {}): Promise<{ endpoints: number }> {
    return nodes.deleteNode(this.#ctx, name, options);
  }

  // Endpoints: service/endpoints.ts

  listEndpoints(filter: { network?: string; node?: string } = {}): model.Endpoint[] {
    return endpoints.listEndpoints(this.#ctx, filter);
  }

  getEndpoint(id: string): model.Endpoint {
    return endpoints.getEndpoint(this.#ctx, id);
  }

  /** Creates an endpoint; with `waitMs` > 0, answers once its node reports it ready (or deletes it again). */
  createEndpoint(req: model.CreateEndpointRequest, options: endpoints.WaitOptions = {}): Promise<model.Endpoint> {
    return endpoints.createEndpoint(this.#ctx, req, options);
  }

  /** Deletes an endpoint; with `waitMs` > 0, answers once its node confirms having removed it. */
  deleteEndpoint(id: string, options: endpoints.WaitOptions = {}): Promise<void> {
    return endpoints.deleteEndpoint(this.#ctx, id, options);
  }

  /** An agent reports how attaching an endpoint went. Repeating the current status writes nothing. */
  setDockerContainer(id: string, name: string, aliases?: string[]): Promise<void> {
    return endpoints.setDockerContainer(this.#ctx, id, name, aliases);
  }

  setEndpointStatus(id: string, req: model.EndpointStatusRequest): Promise<void> {
    return endpoints.setEndpointStatus(this.#ctx, id, req);
  }

  // Reservations (Docker IPAM): service/reservations.ts

  listReservations(filter: { network?: string; node?: string } = {}): model.Reservation[] {
    return reservations.listReservations(this.#ctx, filter);
  }

  /** Takes an address (the requested one, or the lowest free) for `node` without creating an endpoint. */
  createReservation(req: model.CreateReservationRequest, options: { limited?: boolean } = {}): Promise<model.Reservation> {
    return reservations.createReservation(this.#ctx, req, options);
  }

  /** Releases a reservation and deletes the endpoint that adopted it, if any. */
  deleteReservation(network: string, ip: string, options: { node?: string } = {}): Promise<void> {
    return reservations.deleteReservation(this.#ctx, network, ip, options);
  }
}
