/**
 * The manager's in-memory index of the store: every node, network and endpoint, plus the lookups the
 * service needs to decide quickly (VNIs in use, addresses per network, interfaces per node, which nodes
 * have endpoints on which network).
 *
 * It is filled from `store.list()` at start and then kept current *only* from the store's watch, never by
 * the code that wrote: with several managers on one etcd, changes made by the others arrive the same way,
 * so every manager converges on the same view. After its own write, the service waits until the index has
 * caught up to that revision (`waitFor`) before answering, which gives read-your-writes.
 *
 * Every applied change is announced to listeners (the watch hub, endpoint waiters) synchronously and in
 * revision order, with the previous value and after the lookups were updated.
 */
import type { Endpoint, Network, Node, Reservation } from '../core/model.ts';
import { type Cidr, parseCidr, parseIPv4 } from '../core/ipv4.ts';
import { type Cidr6, parseCidr6, parseIPv6 } from '../core/ipv6.ts';
import { NetworkAllocator, NetworkAllocator6 } from './ipam.ts';
import type { NodeIdentity } from './service/identities.ts';
import { META_CLUSTER, META_NETWORKS, PREFIX, parseIpamKey, parseReservationKey } from './keys.ts';
import type { KeyValue, ListResult, WatchEvent } from './store/store.ts';

export interface NetworkEntry {
  network: Network;
  modRevision: number;
  cidrs: Cidr[];
  allocator: NetworkAllocator;
  /** the network's IPv6 subnets and their allocator (empty when it has none) */
  cidrs6: Cidr6[];
  allocator6: NetworkAllocator6;
}

export type StateChange =
  | { kind: 'node'; revision: number; node: Node; prev?: Node }
  | { kind: 'node-deleted'; revision: number; node: Node }
  | { kind: 'network'; revision: number; network: Network; prev?: Network }
  | { kind: 'network-deleted'; revision: number; network: Network }
  | { kind: 'endpoint'; revision: number; endpoint: Endpoint; prev?: Endpoint }
  | { kind: 'endpoint-deleted'; revision: number; endpoint: Endpoint };

export type StateListener = (change: StateChange) => void;

export class ClusterState {
  /** the store revision everything here reflects */
  revision = 0;
  clusterId: string | undefined;
  readonly nodes = new Map<string, { node: Node; modRevision: number }>();
  readonly networks = new Map<string, NetworkEntry>();
  /**
   * `json` is the stored value as it is: the watch hub sends it verbatim instead of serialising the endpoint
   * again for every snapshot and change line (it is exactly what JSON.stringify of `endpoint` gives).
   */
  readonly endpoints = new Map<string, { endpoint: Endpoint; modRevision: number; json: string }>();
  /** network → endpoint ids */
  readonly endpointsByNetwork = new Map<string, Set<string>>();
  /** node → endpoint ids */
  readonly endpointsByNode = new Map<string, Set<string>>();
  /** network → node → number of that node's endpoints on the network (the watch hub's interest sets) */
  readonly nodeCounts = new Map<string, Map<string, number>>();
  /** vni → network name, from `/vnis/` keys */
  readonly vnis = new Map<number, string>();
  /** attachment key → endpoint id, from `/attachments/` keys */
  readonly attachments = new Map<string, string>();
  /** network → modRevision of its `/deleting/` marker */
  readonly deleting = new Map<string, number>();
  /** node → modRevision of its `/removing-nodes/` marker */
  readonly removingNodes = new Map<string, number>();
  /** `/reservations/` key → the reservation (Docker IPAM addresses); not announced to listeners */
  readonly reservations = new Map<string, { reservation: Reservation; modRevision: number }>();
  /** underlay address → the node that claimed it, from `/node-addresses/` keys */
  readonly nodeAddresses = new Map<string, string>();
  /** node → its identity record: the certificates the manager honours for it (service/identities.ts) */
  readonly identities = new Map<string, { identity: NodeIdentity; modRevision: number }>();
  /** `/usage/` key → its modRevision (service/quota.ts) */
  readonly usage = new Map<string, number>();
  /** network → its `/reservations/` keys */
  readonly reservationsByNetwork = new Map<string, Set<string>>();
  metaNetworksRevision = 0;

  #listeners = new Set<StateListener>();
  #waiters: { revision: number; resolve: () => void; reject: (err: Error) => void }[] = [];
  #closed = false;
  #onError: (err: unknown) => void;

  constructor(onError: (err: unknown) => void = (err) => console.error('vxnet manager:', err)) {
    this.#onError = onError;
  }

  /** Fills the index from a full listing (done once, before the watch starts at list.revision + 1). */
  load(list: ListResult): void {
    // Networks must exist before the addresses allocated in them are counted.
    const order = [META_CLUSTER, PREFIX.nodes, PREFIX.networks, PREFIX.endpoints];
    const sorted = [...list.kvs].sort((a, b) => rank(a.key, order) - rank(b.key, order));
    for (const kv of sorted) this.#put(kv, false);
    this.revision = list.revision;
  }

  /** Applies one revision's events from the store watch. */
  apply(events: WatchEvent[]): void {
    for (const event of events) {
      try {
        if (event.type === 'put') this.#put(event.kv, true);
        else this.#delete(event.key, event.prevValue, event.revision);
      } catch (err) {
        this.#onError(err);
      }
    }
    const revision = events[events.length - 1]?.revision;
    if (revision !== undefined && revision > this.revision) this.revision = revision;
    if (this.#waiters.length > 0) {
      const ready = this.#waiters.filter((w) => w.revision <= this.revision);
      this.#waiters = this.#waiters.filter((w) => w.revision > this.revision);
      for (const w of ready) w.resolve();
    }
  }

  /** Resolves once the index reflects at least `revision`; rejects once the index is closed. */
  waitFor(revision: number): Promise<void> {
    if (revision <= this.revision) return Promise.resolve();
    if (this.#closed) return Promise.reject(new Error('the cluster index is closed'));
    return new Promise((resolve, reject) => this.#waiters.push({ revision, resolve, reject }));
  }

  /** No more updates will come (the watch stopped): fail whoever still waits for one. */
  close(): void {
    this.#closed = true;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w.reject(new Error('the cluster index is closed'));
  }

  subscribe(listener: StateListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  endpointsOf(network: string): Endpoint[] {
    const ids = this.endpointsByNetwork.get(network);
    if (!ids) return [];
    const out: Endpoint[] = [];
    for (const id of ids) {
      const entry = this.endpoints.get(id);
      if (entry) out.push(entry.endpoint);
    }
    return out;
  }

  reservationsOf(network: string): Reservation[] {
    const out: Reservation[] = [];
    for (const key of this.reservationsByNetwork.get(network) ?? []) {
      const entry = this.reservations.get(key);
      if (entry) out.push(entry.reservation);
    }
    return out;
  }

  /** Nodes with at least one endpoint on `network`. */
  nodesOf(network: string): Iterable<string> {
    return this.nodeCounts.get(network)?.keys() ?? [];
  }

  /** Networks on which `node` has at least one endpoint. */
  networksOfNode(node: string): Set<string> {
    const out = new Set<string>();
    for (const id of this.endpointsByNode.get(node) ?? []) {
      const entry = this.endpoints.get(id);
      if (entry) out.add(entry.endpoint.network);
    }
    return out;
  }

  #put(kv: KeyValue, notify: boolean): void {
    const { key } = kv;
    const revision = kv.modRevision;
    if (key === META_CLUSTER) {
      this.clusterId = (JSON.parse(kv.value) as { clusterId: string }).clusterId;
    } else if (key === META_NETWORKS) {
      this.metaNetworksRevision = revision;
    } else if (key.startsWith(PREFIX.nodes)) {
      const node = JSON.parse(kv.value) as Node;
      const prev = this.nodes.get(node.name)?.node;
      this.nodes.set(node.name, { node, modRevision: revision });
      if (notify) this.#emit(prev ? { kind: 'node', revision, node, prev } : { kind: 'node', revision, node });
    } else if (key.startsWith(PREFIX.networks)) {
      const network = JSON.parse(kv.value) as Network;
      const existing = this.networks.get(network.name);
      if (existing) {
        existing.network = network;
        existing.modRevision = revision;
      } else {
        const v4 = network.subnets.filter((s) => !s.cidr.includes(':'));
        const subnets = v4.map((s) => ({ cidr: parseCidr(s.cidr)!, gateway: parseIPv4(s.gateway)! }));
        const subnets6 = network.subnets.filter((s) => s.cidr.includes(':')).map((s) => ({ cidr: parseCidr6(s.cidr)!, gateway: parseIPv6(s.gateway)! }));
        this.networks.set(network.name, {
          network,
          modRevision: revision,
          cidrs: subnets.map((s) => s.cidr),
          allocator: new NetworkAllocator(network.name, subnets),
          cidrs6: subnets6.map((s) => s.cidr),
          allocator6: new NetworkAllocator6(network.name, subnets6),
        });
      }
      if (notify) this.#emit(existing ? { kind: 'network', revision, network, prev: existing.network } : { kind: 'network', revision, network });
    } else if (key.startsWith(PREFIX.endpoints)) {
      const endpoint = JSON.parse(kv.value) as Endpoint;
      const prev = this.endpoints.get(endpoint.id)?.endpoint;
      this.endpoints.set(endpoint.id, { endpoint, modRevision: revision, json: kv.value });
      if (!prev) {
        addTo(this.endpointsByNetwork, endpoint.network, endpoint.id);
        addTo(this.endpointsByNode, endpoint.node, endpoint.id);
        let counts = this.nodeCounts.get(endpoint.network);
        if (!counts) this.nodeCounts.set(endpoint.network, (counts = new Map()));
        counts.set(endpoint.node, (counts.get(endpoint.node) ?? 0) + 1);
      }
      if (notify) this.#emit(prev ? { kind: 'endpoint', revision, endpoint, prev } : { kind: 'endpoint', revision, endpoint });
    } else if (key.startsWith(PREFIX.ipam)) {
      const parsed = parseIpamKey(key);
      const entry = parsed && this.networks.get(parsed.network);
      if (entry) (parsed.ip.includes(':') ? entry.allocator6 : entry.allocator).markUsed(parsed.ip);
    } else if (key.startsWith(PREFIX.identities)) {
      const identity = JSON.parse(kv.value) as NodeIdentity;
      this.identities.set(identity.name, { identity, modRevision: revision });
    } else if (key.startsWith(PREFIX.reservations)) {
      const reservation = JSON.parse(kv.value) as Reservation;
      this.reservations.set(key, { reservation, modRevision: revision });
      addTo(this.reservationsByNetwork, reservation.network, key);
    } else {
      this.#plainIndexOf(key)?.put(key, kv.value, revision);
    }
  }

  #delete(key: string, prevValue: string, revision: number): void {
    if (key.startsWith(PREFIX.nodes)) {
      const name = key.slice(PREFIX.nodes.length);
      const prev = this.nodes.get(name);
      this.nodes.delete(name);
      const node = prev?.node ?? (prevValue === '' ? undefined : (JSON.parse(prevValue) as Node));
      if (node) this.#emit({ kind: 'node-deleted', revision, node });
    } else if (key.startsWith(PREFIX.networks)) {
      const name = key.slice(PREFIX.networks.length);
      const prev = this.networks.get(name);
      this.networks.delete(name);
      const network = prev?.network ?? (prevValue === '' ? undefined : (JSON.parse(prevValue) as Network));
      if (network) this.#emit({ kind: 'network-deleted', revision, network });
    } else if (key.startsWith(PREFIX.endpoints)) {
      const id = key.slice(PREFIX.endpoints.length);
      const prev = this.endpoints.get(id);
      if (!prev) return;
      const endpoint = prev.endpoint;
      this.endpoints.delete(id);
      removeFrom(this.endpointsByNetwork, endpoint.network, id);
      removeFrom(this.endpointsByNode, endpoint.node, id);
      const counts = this.nodeCounts.get(endpoint.network);
      if (counts) {
        const n = (counts.get(endpoint.node) ?? 1) - 1;
        if (n > 0) counts.set(endpoint.node, n);
        else counts.delete(endpoint.node);
        if (counts.size === 0) this.nodeCounts.delete(endpoint.network);
      }
      this.#emit({ kind: 'endpoint-deleted', revision, endpoint });
    } else if (key.startsWith(PREFIX.ipam)) {
      const parsed = parseIpamKey(key);
      const entry = parsed && this.networks.get(parsed.network);
      if (entry) (parsed.ip.includes(':') ? entry.allocator6 : entry.allocator).markFree(parsed.ip);
    } else if (key.startsWith(PREFIX.identities)) {
      this.identities.delete(key.slice(PREFIX.identities.length));
    } else if (key.startsWith(PREFIX.reservations)) {
      this.reservations.delete(key);
      const parsed = parseReservationKey(key);
      if (parsed) removeFrom(this.reservationsByNetwork, parsed.network, key);
    } else if (key === META_NETWORKS) {
      this.metaNetworksRevision = 0;
    } else {
      this.#plainIndexOf(key)?.delete(key);
    }
  }

  /**
   * The indexes that hold a key's value or revision as it is, under the key or the part after the prefix:
   * one declaration each serves both a put and a delete. (The prefixes are distinct folders, so the order
   * does not matter.)
   */
  readonly #plainIndexes: readonly PlainIndex[] = [
    plainIndex(PREFIX.vnis, this.vnis, (key) => Number(key.slice(PREFIX.vnis.length)), (value) => value),
    plainIndex(PREFIX.attachments, this.attachments, (key) => key, (value) => value),
    plainIndex(PREFIX.deleting, this.deleting, (key) => key.slice(PREFIX.deleting.length), (_, revision) => revision),
    plainIndex(PREFIX.removingNodes, this.removingNodes, (key) => key.slice(PREFIX.removingNodes.length), (_, revision) => revision),
    plainIndex(PREFIX.usage, this.usage, (key) => key, (_, revision) => revision),
    plainIndex(PREFIX.nodeAddresses, this.nodeAddresses, (key) => key.slice(PREFIX.nodeAddresses.length), (value) => value),
  ];

  #plainIndexOf(key: string): PlainIndex | undefined {
    return this.#plainIndexes.find((index) => key.startsWith(index.prefix));
  }

  #emit(change: StateChange): void {
    for (const listener of this.#listeners) {
      try {
        listener(change);
      } catch (err) {
        this.#onError(err);
      }
    }
  }
}

interface PlainIndex {
  prefix: string;
  put(key: string, value: string, revision: number): void;
  delete(key: string): void;
}

function plainIndex<K, V>(prefix: string, map: Map<K, V>, keyOf: (key: string) => K, valueOf: (value: string, revision: number) => V): PlainIndex {
  return {
    prefix,
    put: (key, value, revision) => map.set(keyOf(key), valueOf(value, revision)),
    delete: (key) => map.delete(keyOf(key)),
  };
}

function rank(key: string, order: string[]): number {
  const i = order.findIndex((p) => key.startsWith(p));
  return i < 0 ? order.length : i;
}

function addTo(map: Map<string, Set<string>>, key: string, value: string): void {
  let set = map.get(key);
  if (!set) map.set(key, (set = new Set()));
  set.add(value);
}

function removeFrom(map: Map<string, Set<string>>, key: string, value: string): void {
  const set = map.get(key);
  if (!set) return;
  set.delete(value);
  if (set.size === 0) map.delete(key);
}
