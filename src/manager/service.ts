/**
 * The manager's business logic: networks, nodes, endpoints and their addresses, over a Store.
 *
 * Decisions are taken against the in-memory index (ClusterState) and then committed with a
 * compare-and-swap transaction that re-checks, in the store, every fact the decision relied on (see
 * keys.ts). If the index was stale (another request or another manager got there first), the transaction
 * fails, the index catches up from the watch, and the request is decided again, possibly now with a
 * proper error such as address_in_use. Requests in flight at the same time (the SQLite store commits them
 * in groups, one fsync for many) are decided against the same index, so they can conflict and retry here as
 * they would against a remote store; correctness never depends on how often that happens.
 *
 * Liveness (heartbeats) is tracked in memory, never in the store: see liveness.ts.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { VxnetError, quote } from '../core/errors.ts';
import { macForIPv4, parseIPv4, requireIPv4 } from '../core/ipv4.ts';
import type {
  CreateEndpointRequest,
  CreateNetworkRequest,
  CreateReservationRequest,
  Endpoint,
  EndpointStatusRequest,
  HeartbeatRequest,
  Network,
  NetworkDetail,
  Node,
  NodeStatus,
  RegisterNodeRequest,
  Reservation,
} from '../core/model.ts';
import { normaliseNetns, requireContainerRef, requireDockerEndpointId, requireIfname, requireName } from '../core/names.ts';
import type { Allocation } from './ipam.ts';
import { META_CLUSTER, META_NETWORKS, attachmentTarget, keys } from './keys.ts';
import { LivenessTracker } from './liveness.ts';
import { ClusterState, type StateChange } from './state.ts';
import type { Compare, Op, Store } from './store/store.ts';
import { isEndpointId, requireEndpointStatus, resolveNetwork, validateNodeRequest } from './validation.ts';

export interface ManagerServiceOptions {
  /** milliseconds since the epoch; injectable for tests */
  now?: () => number;
  /** a node without a heartbeat for this long is `down` (default 15 000) */
  nodeDownAfterMs?: number;
  log?: (line: string) => void;
}

export interface WaitOptions {
  /** how long to wait for the node; 0 answers at once */
  waitMs?: number;
  signal?: AbortSignal;
}

/** Attempts at a compare-and-swap before giving up; each failure means another writer made progress. */
const MAX_ATTEMPTS = 200;
/** Endpoints deleted per transaction by a forced network delete (etcd's default limit is 128 operations). */
const DELETE_BATCH = 40;
/** Agents' error messages are stored; keep them to a sane size. */
const MAX_STATUS_MESSAGE = 2000;
export const DEFAULT_NODE_DOWN_AFTER_MS = 15_000;

export class ManagerService {
  readonly state: ClusterState;
  readonly liveness: LivenessTracker;
  #store: Store;
  #now: () => number;
  #log: (line: string) => void;
  #unwatch: (() => void) | undefined;
  /** endpoint id → callbacks interested in its changes (create-with-wait) */
  #endpointWatchers = new Map<string, Set<(change: StateChange) => void>>();
  #closing = new AbortController();

  private constructor(store: Store, options: ManagerServiceOptions) {
    this.#store = store;
    this.#now = options.now ?? Date.now;
    this.#log = options.log ?? (() => {});
    this.state = new ClusterState((err) => this.#log(`index update failed: ${String(err)}`));
    this.liveness = new LivenessTracker({ now: this.#now, downAfterMs: options.nodeDownAfterMs ?? DEFAULT_NODE_DOWN_AFTER_MS });
  }

  /** Loads the index from the store, follows its watch, and makes sure the cluster has an id. */
  static async open(store: Store, options: ManagerServiceOptions = {}): Promise<ManagerService> {
    const service = new ManagerService(store, options);
    await service.#start();
    return service;
  }

  async #start(): Promise<void> {
    const list = await this.#store.list('');
    this.state.load(list);
    this.#unwatch = await this.#store.watch('', list.revision + 1, (events) => this.state.apply(events));
    this.state.subscribe((change) => {
      if (change.kind !== 'endpoint' && change.kind !== 'endpoint-deleted') return;
      const set = this.#endpointWatchers.get(change.endpoint.id);
      if (set) for (const fn of [...set]) fn(change);
    });
    if (this.state.clusterId === undefined) {
      const value = JSON.stringify({ clusterId: randomUUID(), createdAt: this.#isoNow() });
      await this.#commit([{ key: META_CLUSTER, modRevision: 0 }], [{ type: 'put', key: META_CLUSTER, value }]);
    }
    // A delete marker left by a manager that died mid-delete would block the network forever. With a single
    // manager none can be in progress now; a multi-manager store would tie markers to a lease instead.
    for (const [name, modRevision] of [...this.state.deleting]) {
      this.#log(`removing the stale delete marker of network ${name}`);
      await this.#commit([{ key: keys.deleting(name), modRevision }], [{ type: 'delete', key: keys.deleting(name) }]);
    }
    // Likewise for a node removal cut short: the node stays with whatever endpoints were not yet withdrawn,
    // and `vxnet node rm` can simply be run again.
    for (const [name, modRevision] of [...this.state.removingNodes]) {
      this.#log(`removing the stale removal marker of node ${name}`);
      await this.#commit([{ key: keys.removingNode(name), modRevision }], [{ type: 'delete', key: keys.removingNode(name) }]);
    }
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

  // -------------------------------------------------------------------------------------------------
  // Networks

  listNetworks(): Network[] {
    return [...this.state.networks.values()].map((e) => e.network).sort((a, b) => compareText(a.name, b.name));
  }

  getNetwork(name: string): NetworkDetail {
    const entry = this.state.networks.get(name);
    if (!entry) throw networkNotFound(name);
    return { ...entry.network, endpoints: sortEndpoints(this.state.endpointsOf(name)) };
  }

  async createNetwork(req: CreateNetworkRequest): Promise<Network> {
    const name = requireName(req.name, 'network');
    for (let attempt = 0; ; attempt++) {
      if (this.state.networks.has(name)) throw new VxnetError('network_exists', `network ${name} already exists.`);
      const network = resolveNetwork(req, {
        networks: [...this.state.networks.values()].map((e) => ({ name: e.network.name, cidrs: e.cidrs })),
        vnis: this.state.vnis,
        nodes: [...this.state.nodes.values()].map((e) => e.node),
        now: new Date(this.#now()),
      });
      const ok = await this.#commit(
        [
          { key: keys.network(name), modRevision: 0 },
          { key: keys.vni(network.vni), modRevision: 0 },
          { key: META_NETWORKS, modRevision: this.state.metaNetworksRevision },
        ],
        [
          { type: 'put', key: keys.network(name), value: JSON.stringify(network) },
          { type: 'put', key: keys.vni(network.vni), value: name },
          { type: 'put', key: META_NETWORKS, value: '{}' },
        ],
      );
      if (ok !== undefined) return this.state.networks.get(name)?.network ?? network;
      await this.#backoff(attempt, `create network ${name}`);
    }
  }

  /**
   * Deletes a network. First a `/deleting/` marker is committed: from then on no endpoint can be added, so
   * the endpoints the index shows are all there will ever be. Without `force` any endpoint refuses the
   * delete; with it they are removed in batches first.
   */
  async deleteNetwork(name: string, options: { force?: boolean } = {}): Promise<void> {
    let markerRevision: number | undefined;
    for (let attempt = 0; markerRevision === undefined; attempt++) {
      const entry = this.state.networks.get(name);
      if (!entry) throw networkNotFound(name);
      if (this.state.deleting.has(name)) throw new VxnetError('network_in_use', `network ${name} is already being deleted.`);
      if (!options.force) {
        const count = this.state.endpointsByNetwork.get(name)?.size ?? 0;
        if (count > 0) throw networkInUse(name, count);
        this.#refuseIfReserved(name);
      }
      markerRevision = await this.#commit(
        [
          { key: keys.network(name), modRevision: entry.modRevision },
          { key: keys.deleting(name), modRevision: 0 },
        ],
        [{ type: 'put', key: keys.deleting(name), value: JSON.stringify({ since: this.#isoNow() }) }],
      );
      if (markerRevision === undefined) await this.#backoff(attempt, `delete network ${name}`);
    }
    try {
      const endpoints = this.state.endpointsOf(name);
      if (endpoints.length > 0 && !options.force) throw networkInUse(name, endpoints.length);
      if (!options.force) this.#refuseIfReserved(name);
      for (let i = 0; i < endpoints.length; i += DELETE_BATCH) {
        const ops = endpoints.slice(i, i + DELETE_BATCH).flatMap((ep) => endpointDeleteOps(ep));
        await this.#commit([{ key: keys.deleting(name), modRevision: markerRevision }], ops);
      }
      // addresses Docker engines still hold go with the network (their later release finds nothing)
      const reservations = this.state.reservationsOf(name);
      for (let i = 0; i < reservations.length; i += DELETE_BATCH) {
        const ops = reservations.slice(i, i + DELETE_BATCH).flatMap((r) => reservationDeleteOps(r));
        await this.#commit([{ key: keys.deleting(name), modRevision: markerRevision }], ops);
      }
      for (let attempt = 0; ; attempt++) {
        const entry = this.state.networks.get(name);
        if (!entry) return;
        const ok = await this.#commit(
          [
            { key: keys.deleting(name), modRevision: markerRevision },
            { key: keys.network(name), modRevision: entry.modRevision },
            { key: META_NETWORKS, modRevision: this.state.metaNetworksRevision },
          ],
          [
            { type: 'delete', key: keys.network(name) },
            { type: 'delete', key: keys.vni(entry.network.vni) },
            { type: 'delete', key: keys.deleting(name) },
            { type: 'put', key: META_NETWORKS, value: '{}' },
          ],
        );
        if (ok !== undefined) return;
        await this.#backoff(attempt, `delete network ${name}`);
      }
    } finally {
      if (this.state.deleting.get(name) === markerRevision) {
        await this.#commit([{ key: keys.deleting(name), modRevision: markerRevision }], [{ type: 'delete', key: keys.deleting(name) }]);
      }
    }
  }

  /** A reservation without an endpoint is a container Docker is setting up (or tearing down) right now. */
  #refuseIfReserved(name: string): void {
    const held = this.state.reservationsOf(name).filter((r) => r.endpoint === undefined || !this.state.endpoints.has(r.endpoint));
    if (held.length === 0) return;
    const nodes = [...new Set(held.map((r) => r.node))].sort().join(', ');
    throw new VxnetError(
      'network_in_use',
      `network ${name} still has ${held.length} address${held.length === 1 ? '' : 'es'} reserved by the Docker engine of node ${nodes}: remove those containers first or use force.`,
    );
  }

  // -------------------------------------------------------------------------------------------------
  // Nodes

  listNodes(): NodeStatus[] {
    return [...this.state.nodes.values()]
      .map((e) => this.#nodeStatus(e.node))
      .sort((a, b) => compareText(a.name, b.name));
  }

  getNode(name: string): NodeStatus {
    const entry = this.state.nodes.get(name);
    if (!entry) throw nodeNotFound(name);
    return this.#nodeStatus(entry.node);
  }

  /** Creates or updates a node; an unchanged re-registration writes nothing. */
  async registerNode(req: RegisterNodeRequest): Promise<Node> {
    const wanted = validateNodeRequest(req);
    for (let attempt = 0; ; attempt++) {
      const existing = this.state.nodes.get(wanted.name);
      if (existing && existing.node.address === wanted.address && existing.node.mtu === wanted.mtu) {
        this.liveness.seen(wanted.name);
        return existing.node;
      }
      const node: Node = { ...wanted, registeredAt: existing?.node.registeredAt ?? this.#isoNow() };
      const ok = await this.#commit(
        [{ key: keys.node(node.name), modRevision: existing?.modRevision ?? 0 }],
        [{ type: 'put', key: keys.node(node.name), value: JSON.stringify(node) }],
      );
      if (ok !== undefined) {
        this.liveness.seen(node.name);
        return this.state.nodes.get(node.name)?.node ?? node;
      }
      await this.#backoff(attempt, `register node ${node.name}`);
    }
  }

  /** Records liveness in memory; never touches the store. */
  heartbeat(name: string, req: HeartbeatRequest): void {
    if (!this.state.nodes.has(name)) throw nodeNotFound(name);
    if (!Number.isSafeInteger(req.reconciledRevision) || req.reconciledRevision < 0) {
      throw new VxnetError('bad_request', 'field "reconciledRevision" must be a non-negative integer.');
    }
    this.liveness.heartbeat(name, req.reconciledRevision);
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
  async deleteNode(name: string, options: { drain?: boolean } = {}): Promise<{ endpoints: number }> {
    let markerRevision: number | undefined;
    for (let attempt = 0; markerRevision === undefined; attempt++) {
      const entry = this.state.nodes.get(name);
      if (!entry) throw nodeNotFound(name);
      if (this.state.removingNodes.has(name)) throw new VxnetError('node_in_use', `node ${name} is already being removed.`);
      if (!options.drain) {
        const count = this.state.endpointsByNode.get(name)?.size ?? 0;
        if (count > 0) throw nodeInUse(name, count);
      }
      markerRevision = await this.#commit(
        [
          { key: keys.node(name), modRevision: entry.modRevision },
          { key: keys.removingNode(name), modRevision: 0 },
        ],
        [{ type: 'put', key: keys.removingNode(name), value: JSON.stringify({ since: this.#isoNow() }) }],
      );
      if (markerRevision === undefined) await this.#backoff(attempt, `remove node ${name}`);
    }
    try {
      const endpoints = [...(this.state.endpointsByNode.get(name) ?? [])]
        .map((id) => this.state.endpoints.get(id)?.endpoint)
        .filter((e): e is Endpoint => e !== undefined);
      if (endpoints.length > 0 && !options.drain) throw nodeInUse(name, endpoints.length);
      for (let i = 0; i < endpoints.length; i += DELETE_BATCH) {
        const ops = endpoints.slice(i, i + DELETE_BATCH).flatMap((ep) => endpointDeleteOps(ep));
        await this.#commit([{ key: keys.removingNode(name), modRevision: markerRevision }], ops);
      }
      // Addresses its Docker engine reserved but no endpoint holds any more go with the node too.
      const reservations = [...this.state.reservations.values()]
        .map((r) => r.reservation)
        .filter((r) => r.node === name);
      for (let i = 0; i < reservations.length; i += DELETE_BATCH) {
        const ops = reservations.slice(i, i + DELETE_BATCH).flatMap((r) => reservationDeleteOps(r));
        await this.#commit([{ key: keys.removingNode(name), modRevision: markerRevision }], ops);
      }
      for (let attempt = 0; ; attempt++) {
        const entry = this.state.nodes.get(name);
        if (!entry) return { endpoints: endpoints.length };
        const ok = await this.#commit(
          [
            { key: keys.removingNode(name), modRevision: markerRevision },
            { key: keys.node(name), modRevision: entry.modRevision },
          ],
          [
            { type: 'delete', key: keys.node(name) },
            { type: 'delete', key: keys.removingNode(name) },
          ],
        );
        if (ok !== undefined) {
          this.#log(`removed node ${name}${endpoints.length > 0 ? ` and withdrew its ${endpoints.length} endpoint(s)` : ''}`);
          return { endpoints: endpoints.length };
        }
        await this.#backoff(attempt, `remove node ${name}`);
      }
    } finally {
      if (this.state.removingNodes.get(name) === markerRevision) {
        await this.#commit([{ key: keys.removingNode(name), modRevision: markerRevision }], [{ type: 'delete', key: keys.removingNode(name) }]);
      }
    }
  }

  // -------------------------------------------------------------------------------------------------
  // Endpoints

  listEndpoints(filter: { network?: string; node?: string } = {}): Endpoint[] {
    let endpoints: Endpoint[];
    if (filter.network !== undefined) {
      if (!this.state.networks.has(filter.network)) throw networkNotFound(filter.network);
      endpoints = this.state.endpointsOf(filter.network);
    } else {
      endpoints = [...this.state.endpoints.values()].map((e) => e.endpoint);
    }
    if (filter.node !== undefined) {
      if (!this.state.nodes.has(filter.node)) throw nodeNotFound(filter.node);
      endpoints = endpoints.filter((e) => e.node === filter.node);
    }
    return sortEndpoints(endpoints);
  }

  getEndpoint(id: string): Endpoint {
    const entry = isEndpointId(id) ? this.state.endpoints.get(id) : undefined;
    if (!entry) throw endpointNotFound(id);
    return entry.endpoint;
  }

  /**
   * Creates an endpoint and allocates its address. With `waitMs` > 0, answers once the node's agent reports
   * it ready; an agent error or a timeout deletes it again (releasing the address) and fails.
   */
  async createEndpoint(req: CreateEndpointRequest, options: WaitOptions = {}): Promise<Endpoint> {
    const networkName = requireName(req.network, 'network');
    const nodeName = requireName(req.node, 'node');
    const target = endpointTarget(req);
    if (target.docker !== undefined && req.ifname !== undefined) {
      throw new VxnetError('bad_request', 'a Docker endpoint takes no ifname: Docker names the interface (eth0, eth1, ...).');
    }
    const ifname = requireIfname(req.ifname ?? (target.docker !== undefined ? DOCKER_IFNAME_PREFIX : 'eth0'));
    if (req.ip !== undefined) requireIPv4(req.ip, 'ip');
    if (req.reserved !== undefined && typeof req.reserved !== 'boolean') throw new VxnetError('bad_request', 'field "reserved" must be true or false.');
    const reserved = req.reserved === true;
    if (reserved && req.ip === undefined) throw new VxnetError('bad_request', 'an endpoint that adopts a reservation needs the reserved "ip".');

    let endpoint: Endpoint | undefined;
    for (let attempt = 0; !endpoint; attempt++) {
      const network = this.state.networks.get(networkName);
      if (!network) throw networkNotFound(networkName);
      if (this.state.deleting.has(networkName)) {
        throw new VxnetError('network_not_found', `network ${networkName} is being deleted.`);
      }
      const node = this.state.nodes.get(nodeName);
      if (!node) throw nodeNotFound(nodeName);
      if (this.state.removingNodes.has(nodeName)) {
        throw new VxnetError('node_not_found', `node ${nodeName} is being removed.`);
      }
      const attachmentKey = keys.attachment(nodeName, attachmentTarget(target), ifname);
      const holder = this.state.attachments.get(attachmentKey);
      if (holder !== undefined) {
        throw new VxnetError(
          'endpoint_exists',
          `node ${nodeName} already has endpoint ${holder} on interface ${ifname} in ${describeTarget(target)}.`,
        );
      }
      // Docker's IPAM allocated the address before the endpoint existed: adopt that reservation.
      const held = reserved ? this.#adoptable(networkName, nodeName, req.ip!) : undefined;
      const allocation: Allocation = held
        ? { ip: held.reservation.ip, prefix: held.reservation.prefix, gateway: held.reservation.gateway }
        : req.ip !== undefined
          ? network.allocator.reserve(req.ip)
          : network.allocator.reserveNext();
      try {
        const candidate: Endpoint = {
          id: randomBytes(6).toString('hex'),
          network: networkName,
          node: nodeName,
          ...target,
          ifname,
          ip: allocation.ip,
          prefix: allocation.prefix,
          gateway: allocation.gateway,
          mac: macForIPv4(parseIPv4(allocation.ip)!),
          status: 'pending',
          ...(held ? { reserved: true } : {}),
          createdAt: this.#isoNow(),
        };
        const reservationKey = keys.reservation(networkName, allocation.ip);
        const ok = await this.#commit(
          [
            { key: keys.network(networkName), modRevision: network.modRevision },
            { key: keys.deleting(networkName), modRevision: 0 },
            { key: keys.node(nodeName), modRevision: node.modRevision },
            { key: keys.removingNode(nodeName), modRevision: 0 },
            held
              ? { key: reservationKey, modRevision: held.modRevision }
              : { key: keys.ipam(networkName, allocation.ip), modRevision: 0 },
            { key: attachmentKey, modRevision: 0 },
            { key: keys.endpoint(candidate.id), modRevision: 0 },
          ],
          [
            { type: 'put', key: keys.endpoint(candidate.id), value: JSON.stringify(candidate) },
            held
              ? { type: 'put', key: reservationKey, value: JSON.stringify({ ...held.reservation, endpoint: candidate.id }) }
              : { type: 'put', key: keys.ipam(networkName, allocation.ip), value: candidate.id },
            { type: 'put', key: attachmentKey, value: candidate.id },
          ],
        );
        if (ok !== undefined) endpoint = candidate;
      } finally {
        if (!held) network.allocator.unreserve(allocation.ip);
      }
      if (!endpoint) await this.#backoff(attempt, `create an endpoint on network ${networkName}`);
    }
    const waitMs = options.waitMs ?? 0;
    if (waitMs <= 0) return this.state.endpoints.get(endpoint.id)?.endpoint ?? endpoint;
    return this.#awaitReady(endpoint, waitMs, options.signal);
  }

  /** The reservation `node` holds for `ip` on `network`, if no live endpoint has adopted it yet. */
  #adoptable(network: string, node: string, ip: string): { reservation: Reservation; modRevision: number } {
    const entry = this.state.reservations.get(keys.reservation(network, ip));
    if (!entry || entry.reservation.node !== node) {
      throw new VxnetError('reservation_not_found', `address ${ip} on network ${network} is not reserved by node ${node}.`);
    }
    const user = entry.reservation.endpoint;
    if (user !== undefined && this.state.endpoints.has(user)) {
      throw new VxnetError('address_in_use', `address ${ip} on network ${network} is already used by endpoint ${user}.`);
    }
    return entry;
  }

  // -------------------------------------------------------------------------------------------------
  // Reservations (Docker IPAM): an address held without an endpoint, until its node releases it

  listReservations(filter: { network?: string; node?: string } = {}): Reservation[] {
    let reservations: Reservation[];
    if (filter.network !== undefined) {
      if (!this.state.networks.has(filter.network)) throw networkNotFound(filter.network);
      reservations = this.state.reservationsOf(filter.network);
    } else {
      reservations = [...this.state.reservations.values()].map((e) => e.reservation);
    }
    if (filter.node !== undefined) reservations = reservations.filter((r) => r.node === filter.node);
    return reservations.sort((a, b) => compareText(a.network, b.network) || (parseIPv4(a.ip) ?? 0) - (parseIPv4(b.ip) ?? 0));
  }

  /** Takes an address (the requested one, or the lowest free) for `node` without creating an endpoint. */
  async createReservation(req: CreateReservationRequest): Promise<Reservation> {
    const networkName = requireName(req.network, 'network');
    const nodeName = requireName(req.node, 'node');
    if (req.ip !== undefined) requireIPv4(req.ip, 'ip');
    for (let attempt = 0; ; attempt++) {
      const network = this.state.networks.get(networkName);
      if (!network) throw networkNotFound(networkName);
      if (this.state.deleting.has(networkName)) throw new VxnetError('network_not_found', `network ${networkName} is being deleted.`);
      const node = this.state.nodes.get(nodeName);
      if (!node) throw nodeNotFound(nodeName);
      if (this.state.removingNodes.has(nodeName)) throw new VxnetError('node_not_found', `node ${nodeName} is being removed.`);
      const allocation = req.ip !== undefined ? network.allocator.reserve(req.ip) : network.allocator.reserveNext();
      try {
        const reservation: Reservation = {
          network: networkName,
          ip: allocation.ip,
          prefix: allocation.prefix,
          gateway: allocation.gateway,
          node: nodeName,
          createdAt: this.#isoNow(),
        };
        const key = keys.reservation(networkName, allocation.ip);
        const ok = await this.#commit(
          [
            { key: keys.network(networkName), modRevision: network.modRevision },
            { key: keys.deleting(networkName), modRevision: 0 },
            { key: keys.node(nodeName), modRevision: node.modRevision },
            { key: keys.removingNode(nodeName), modRevision: 0 },
            { key: keys.ipam(networkName, allocation.ip), modRevision: 0 },
            { key, modRevision: 0 },
          ],
          [
            { type: 'put', key, value: JSON.stringify(reservation) },
            { type: 'put', key: keys.ipam(networkName, allocation.ip), value: `reservation:${nodeName}` },
          ],
        );
        if (ok !== undefined) return this.state.reservations.get(key)?.reservation ?? reservation;
      } finally {
        network.allocator.unreserve(allocation.ip);
      }
      await this.#backoff(attempt, `reserve an address on network ${networkName}`);
    }
  }

  /**
   * Releases a reservation, and deletes the endpoint that adopted it if there still is one (Docker
   * releases an address only once it is done with it). With `node`, only that node's reservation.
   */
  async deleteReservation(network: string, ip: string, options: { node?: string } = {}): Promise<void> {
    requireIPv4(ip, 'ip');
    for (let attempt = 0; ; attempt++) {
      const key = keys.reservation(network, ip);
      const entry = this.state.reservations.get(key);
      if (!entry || (options.node !== undefined && entry.reservation.node !== options.node)) {
        const by = options.node !== undefined ? ` by node ${options.node}` : '';
        throw new VxnetError('reservation_not_found', `address ${ip} on network ${network} is not reserved${by}.`);
      }
      const compares: Compare[] = [{ key, modRevision: entry.modRevision }];
      const ops = reservationDeleteOps(entry.reservation);
      const user = entry.reservation.endpoint === undefined ? undefined : this.state.endpoints.get(entry.reservation.endpoint);
      if (user) {
        compares.push({ key: keys.endpoint(user.endpoint.id), modRevision: user.modRevision });
        ops.push(...endpointDeleteOps(user.endpoint));
      }
      if ((await this.#commit(compares, ops)) !== undefined) return;
      await this.#backoff(attempt, `release address ${ip} on network ${network}`);
    }
  }

  /**
   * Deletes an endpoint and releases its address. With `waitMs` > 0, answers once the endpoint's node has
   * reported (by heartbeat) that it reconciled a revision at or past the deletion.
   */
  async deleteEndpoint(id: string, options: WaitOptions = {}): Promise<void> {
    let revision: number | undefined;
    let endpoint: Endpoint | undefined;
    for (let attempt = 0; revision === undefined; attempt++) {
      const entry = isEndpointId(id) ? this.state.endpoints.get(id) : undefined;
      if (!entry) throw endpointNotFound(id);
      endpoint = entry.endpoint;
      revision = await this.#commit([{ key: keys.endpoint(id), modRevision: entry.modRevision }], endpointDeleteOps(endpoint));
      if (revision === undefined) await this.#backoff(attempt, `delete endpoint ${id}`);
    }
    const waitMs = options.waitMs ?? 0;
    if (waitMs <= 0 || !endpoint) return;
    const signal = anySignal(this.#closing.signal, options.signal);
    const confirmed = await this.liveness.waitReconciled(endpoint.node, revision, waitMs, signal);
    if (!confirmed) {
      throw new VxnetError(
        'timeout',
        `endpoint ${id} was deleted from the cluster (revision ${revision}), but node ${endpoint.node} did not confirm removing it within ${seconds(waitMs)}.`,
      );
    }
  }

  /** An agent reports how attaching an endpoint went. Repeating the current status writes nothing. */
  async setEndpointStatus(id: string, req: EndpointStatusRequest): Promise<void> {
    const status = requireEndpointStatus(req.status);
    if (req.message !== undefined && typeof req.message !== 'string') {
      throw new VxnetError('bad_request', 'field "message" must be a string.');
    }
    const message = req.message === undefined || req.message === '' ? undefined : req.message.slice(0, MAX_STATUS_MESSAGE);
    for (let attempt = 0; ; attempt++) {
      const entry = isEndpointId(id) ? this.state.endpoints.get(id) : undefined;
      if (!entry) throw endpointNotFound(id);
      if (entry.endpoint.status === status && entry.endpoint.message === message) return;
      const { message: _old, ...rest } = entry.endpoint;
      const updated: Endpoint = message === undefined ? { ...rest, status } : { ...rest, status, message };
      const ok = await this.#commit(
        [{ key: keys.endpoint(id), modRevision: entry.modRevision }],
        [{ type: 'put', key: keys.endpoint(id), value: JSON.stringify(updated) }],
      );
      if (ok !== undefined) return;
      await this.#backoff(attempt, `update endpoint ${id}`);
    }
  }

  async #awaitReady(created: Endpoint, waitMs: number, signal: AbortSignal | undefined): Promise<Endpoint> {
    const id = created.id;
    type Outcome = { kind: 'ready'; endpoint: Endpoint } | { kind: 'error'; endpoint: Endpoint } | { kind: 'gone' } | { kind: 'timeout' } | { kind: 'aborted' };
    const classify = (): Outcome | undefined => {
      const current = this.state.endpoints.get(id)?.endpoint;
      if (!current) return { kind: 'gone' };
      if (current.status === 'ready') return { kind: 'ready', endpoint: current };
      if (current.status === 'error') return { kind: 'error', endpoint: current };
      return undefined;
    };
    const outcome =
      classify() ??
      (await new Promise<Outcome>((resolve) => {
        const combined = anySignal(this.#closing.signal, signal);
        let set = this.#endpointWatchers.get(id);
        if (!set) this.#endpointWatchers.set(id, (set = new Set()));
        const finish = (result: Outcome) => {
          clearTimeout(timer);
          combined?.removeEventListener('abort', onAbort);
          const current = this.#endpointWatchers.get(id);
          current?.delete(watcher);
          if (current?.size === 0) this.#endpointWatchers.delete(id);
          resolve(result);
        };
        const watcher = () => {
          const result = classify();
          if (result) finish(result);
        };
        const onAbort = () => finish({ kind: 'aborted' });
        const timer = setTimeout(() => finish({ kind: 'timeout' }), waitMs);
        combined?.addEventListener('abort', onAbort, { once: true });
        set.add(watcher);
      }));
    switch (outcome.kind) {
      case 'ready':
        return outcome.endpoint;
      case 'gone':
        throw new VxnetError('endpoint_not_found', `endpoint ${id} was deleted before node ${created.node} reported it ready.`);
      case 'error':
        await this.#deleteQuietly(id);
        throw new VxnetError('attach_failed', `attach failed on node ${created.node}: ${outcome.endpoint.message ?? 'no reason given'}`);
      case 'timeout':
        await this.#deleteQuietly(id);
        throw new VxnetError(
          'timeout',
          `node ${created.node} did not report endpoint ${id} ready within ${seconds(waitMs)}; the endpoint was deleted.`,
        );
      case 'aborted':
        if (this.#closing.signal.aborted) {
          throw new VxnetError('timeout', `the manager is shutting down; endpoint ${id} stays until it is deleted.`);
        }
        // The client went away: nobody will use the endpoint, so do not leave it (and its address) behind.
        await this.#deleteQuietly(id);
        throw new VxnetError('timeout', `gave up waiting for node ${created.node} to attach endpoint ${id}; the endpoint was deleted.`);
    }
  }

  async #deleteQuietly(id: string): Promise<void> {
    try {
      await this.deleteEndpoint(id);
    } catch (err) {
      if (!(err instanceof VxnetError && err.code === 'endpoint_not_found')) throw err;
    }
  }

  // -------------------------------------------------------------------------------------------------

  /** Runs a transaction and waits until the index reflects its outcome; the new revision, or undefined. */
  async #commit(compares: Compare[], ops: Op[]): Promise<number | undefined> {
    if (this.#closing.signal.aborted) throw new VxnetError('internal', 'the manager is shutting down.');
    const result = await this.#store.txn(compares, ops);
    await this.state.waitFor(result.revision);
    return result.succeeded ? result.revision : undefined;
  }

  async #backoff(attempt: number, what: string): Promise<void> {
    if (attempt + 1 >= MAX_ATTEMPTS) {
      throw new VxnetError('internal', `could not ${what}: the store kept changing underneath (${MAX_ATTEMPTS} attempts).`);
    }
    // The index is current again; only under heavy contention is a short random pause worth it.
    if (attempt >= 3) await new Promise((r) => setTimeout(r, Math.random() * Math.min(100, 2 ** attempt)));
  }

  #nodeStatus(node: Node): NodeStatus {
    return { ...node, ...this.liveness.get(node.name) };
  }

  #isoNow(): string {
    return new Date(this.#now()).toISOString();
  }
}

/** An endpoint that adopted a reservation leaves its address reserved: the reservation's release frees it. */
function endpointDeleteOps(endpoint: Endpoint): Op[] {
  return [
    { type: 'delete', key: keys.endpoint(endpoint.id) },
    ...(endpoint.reserved ? [] : [{ type: 'delete', key: keys.ipam(endpoint.network, endpoint.ip) } as const]),
    { type: 'delete', key: keys.attachment(endpoint.node, attachmentTarget(endpoint), endpoint.ifname) },
  ];
}

function reservationDeleteOps(reservation: Reservation): Op[] {
  return [
    { type: 'delete', key: keys.reservation(reservation.network, reservation.ip) },
    { type: 'delete', key: keys.ipam(reservation.network, reservation.ip) },
  ];
}

/** Interface name given to Docker endpoints: the prefix Docker numbers inside the container. */
export const DOCKER_IFNAME_PREFIX = 'eth';

/** Exactly one of netns, container, docker, validated (a namespace name becomes its path). */
function endpointTarget(req: CreateEndpointRequest): { netns?: string; container?: string; docker?: string } {
  const given = [req.netns, req.container, req.docker].filter((v) => v !== undefined).length;
  if (given !== 1) {
    throw new VxnetError('bad_request', 'an endpoint needs exactly one target: "netns" (a namespace), "container" (a Docker container) or "docker" (a Docker endpoint id).');
  }
  if (req.container !== undefined) return { container: requireContainerRef(req.container) };
  if (req.docker !== undefined) return { docker: requireDockerEndpointId(req.docker) };
  return { netns: normaliseNetns(req.netns) };
}

function describeTarget(target: { netns?: string; container?: string; docker?: string }): string {
  if (target.container !== undefined) return `container ${target.container}`;
  if (target.docker !== undefined) return `Docker endpoint ${target.docker.slice(0, 12)}`;
  return target.netns ?? '';
}

function sortEndpoints(endpoints: Endpoint[]): Endpoint[] {
  return endpoints.sort(
    (a, b) => compareText(a.network, b.network) || (parseIPv4(a.ip) ?? 0) - (parseIPv4(b.ip) ?? 0),
  );
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function seconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
}

function anySignal(a: AbortSignal, b: AbortSignal | undefined): AbortSignal {
  return b ? AbortSignal.any([a, b]) : a;
}

function networkNotFound(name: string): VxnetError {
  return new VxnetError('network_not_found', `network ${shown(name)} does not exist.`);
}

function nodeNotFound(name: string): VxnetError {
  return new VxnetError('node_not_found', `node ${shown(name)} is not registered.`);
}

function endpointNotFound(id: string): VxnetError {
  return new VxnetError('endpoint_not_found', `endpoint ${shown(id)} does not exist.`);
}

/** A name looked up from a URL or a query is shown as it is when it could be a name, quoted (and cut) otherwise. */
function shown(name: string): string {
  return /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(name) ? name : quote(name);
}

function nodeInUse(name: string, count: number): VxnetError {
  return new VxnetError(
    'node_in_use',
    `node ${name} still has ${count} endpoint${count === 1 ? '' : 's'}: detach them first or drain the node.`,
  );
}

function networkInUse(name: string, count: number): VxnetError {
  return new VxnetError(
    'network_in_use',
    `network ${name} still has ${count} endpoint${count === 1 ? '' : 's'}: delete them first or use force.`,
  );
}
