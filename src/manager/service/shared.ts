/**
 * What more than one resource module needs: the not-found errors (worded once), the operations that
 * delete an endpoint or a reservation, the checks that a network and node can still take an address, the
 * listing of endpoints and reservations, and the marker-guarded bulk delete that removing a network and
 * removing a node both are.
 */
import { VxnetError, quote } from '../../core/errors.ts';
import { parseIPv4 } from '../../core/ipv4.ts';
import { parseIPv6 } from '../../core/ipv6.ts';
import { isName } from '../../core/names.ts';
import { endpointAddresses, type Endpoint, type Reservation } from '../../core/model.ts';
import { attachmentTarget, keys } from '../keys.ts';
import type { NetworkEntry } from '../state.ts';
import type { Compare, Op } from '../store/store.ts';
import { casRetry, commit } from './cas.ts';
import { type ServiceContext, isoNow } from './context.ts';

/**
 * Endpoints deleted per transaction by a forced network delete (etcd's default limit is 128 operations): a
 * dual-stack endpoint with a name is five deletes (itself, two addresses, its interface slot, its name).
 */
const DELETE_BATCH = 25;

/**
 * An endpoint that adopted a reservation leaves its address reserved: the reservation's release frees it.
 * `adopted` tells which other addresses it adopted too (a dual-stack Docker endpoint holds a reservation per
 * family: reservationsAdoptedBy); without it only the first, as every reserved endpoint has.
 */
export function endpointDeleteOps(endpoint: Endpoint, adopted: (ip: string) => boolean = () => false): Op[] {
  return [
    { type: 'delete', key: keys.endpoint(endpoint.id) },
    // the reserved addresses stay with their reservations; every other address is freed
    ...endpointAddresses(endpoint)
      .filter((a, i) => !(endpoint.reserved && (i === 0 || adopted(a.ip))))
      .map((a) => ({ type: 'delete', key: keys.ipam(endpoint.network, a.ip) }) as const),
    { type: 'delete', key: keys.attachment(endpoint.node, attachmentTarget(endpoint), endpoint.ifname) },
    ...(endpoint.name !== undefined ? [{ type: 'delete', key: keys.endpointName(endpoint.network, endpoint.name) } as const] : []),
  ];
}

/** Whether the reservation of `ip` on the endpoint's network was adopted by this endpoint. */
export function reservationsAdoptedBy(ctx: ServiceContext, endpoint: Endpoint): (ip: string) => boolean {
  return (ip) => ctx.state.reservations.get(keys.reservation(endpoint.network, ip))?.reservation.endpoint === endpoint.id;
}

export function reservationDeleteOps(reservation: Reservation): Op[] {
  return [
    { type: 'delete', key: keys.reservation(reservation.network, reservation.ip) },
    { type: 'delete', key: keys.ipam(reservation.network, reservation.ip) },
  ];
}

/**
 * The network and node a new address is being taken for, checked to exist and not to be going away, and
 * the compares that keep them so until the transaction commits (a removal starts with its marker).
 */
export function openTarget(ctx: ServiceContext, networkName: string, nodeName: string): { network: NetworkEntry; compares: Compare[] } {
  const network = ctx.state.networks.get(networkName);
  if (!network) throw networkNotFound(networkName);
  if (ctx.state.deleting.has(networkName)) throw new VxnetError('network_not_found', `network ${networkName} is being deleted.`);
  const node = ctx.state.nodes.get(nodeName);
  if (!node) throw nodeNotFound(nodeName);
  if (ctx.state.removingNodes.has(nodeName)) throw new VxnetError('node_not_found', `node ${nodeName} is being removed.`);
  const compares = [
    { key: keys.network(networkName), modRevision: network.modRevision },
    { key: keys.deleting(networkName), modRevision: 0 },
    { key: keys.node(nodeName), modRevision: node.modRevision },
    { key: keys.removingNode(nodeName), modRevision: 0 },
  ];
  return { network, compares };
}

/** How a network or node removal marks what it is removing. */
export interface Marker {
  /** the marker's key in the store */
  key: string;
  /** the modRevision of the marker the index holds, if any */
  held(): number | undefined;
}

/**
 * Runs `work` behind a marker that stops anything new from being added to what is being removed, so the
 * index shows everything `work` will ever have to remove. `decide` checks the removal may start and
 * returns the compare that pins the record being removed. The marker goes afterwards unless `work`
 * removed it together with the record.
 */
export async function behindMarker<T>(
  ctx: ServiceContext,
  marker: Marker,
  what: string,
  decide: () => Compare,
  work: (markerRevision: number) => Promise<T>,
): Promise<T> {
  const markerRevision = await casRetry(ctx, what, () => ({
    compares: [decide(), { key: marker.key, modRevision: 0 }],
    // a session key: on etcd it goes with this manager's lease if the manager dies mid-removal
    ops: [{ type: 'put', key: marker.key, value: JSON.stringify({ since: isoNow(ctx) }), session: true }],
    then: (revision) => revision,
  }));
  try {
    return await work(markerRevision);
  } finally {
    if (marker.held() === markerRevision) {
      await commit(ctx, [{ key: marker.key, modRevision: markerRevision }], [{ type: 'delete', key: marker.key }]);
    }
  }
}

/** Commits the deletes of `items` a batch at a time, each batch only while `guard` (the marker) holds. */
export async function deleteInBatches<T>(ctx: ServiceContext, guard: Compare, items: T[], opsOf: (item: T) => Op[]): Promise<void> {
  for (let i = 0; i < items.length; i += DELETE_BATCH) {
    await commit(ctx, [guard], items.slice(i, i + DELETE_BATCH).flatMap(opsOf));
  }
}

/**
 * A manager that died mid-removal leaves its marker. A marker its store still shows as held by a session
 * (etcd: another manager's live lease) belongs to a removal running there and is left alone; etcd deletes it
 * if that manager dies. Any other marker is stale: on SQLite, with a single manager, no removal can be in
 * progress at start.
 */
export async function removeStaleMarkers(ctx: ServiceContext, markers: Map<string, number>, keyOf: (name: string) => string, describe: (name: string) => string): Promise<void> {
  for (const [name, modRevision] of [...markers]) {
    const kv = await ctx.store.get(keyOf(name));
    if (!kv || kv.session) continue;
    ctx.log(`removing the stale ${describe(name)}`);
    await commit(ctx, [{ key: keyOf(name), modRevision }], [{ type: 'delete', key: keyOf(name) }]);
  }
}

/**
 * Endpoints or reservations, of one network (which must exist) or all, of one node or all, sorted by
 * network then address. A node filter names a registered node only where `nodeMustExist`.
 */
export function listPlaced<T extends { network: string; node: string; ip: string }>(
  ctx: ServiceContext,
  filter: { network?: string; node?: string },
  source: { ofNetwork: (name: string) => T[]; all: () => T[]; nodeMustExist: boolean },
): T[] {
  let items: T[];
  if (filter.network !== undefined) {
    if (!ctx.state.networks.has(filter.network)) throw networkNotFound(filter.network);
    items = source.ofNetwork(filter.network);
  } else {
    items = source.all();
  }
  if (filter.node !== undefined) {
    if (source.nodeMustExist && !ctx.state.nodes.has(filter.node)) throw nodeNotFound(filter.node);
    items = items.filter((item) => item.node === filter.node);
  }
  return items.sort(byNetworkThenIp);
}

/** Endpoints and reservations are listed by network, then by address (IPv4 before IPv6). */
export function byNetworkThenIp(a: { network: string; ip: string }, b: { network: string; ip: string }): number {
  return compareText(a.network, b.network) || compareAddresses(a.ip, b.ip);
}

function compareAddresses(a: string, b: string): number {
  const a4 = parseIPv4(a);
  const b4 = parseIPv4(b);
  if (a4 !== undefined || b4 !== undefined) return a4 === undefined ? 1 : b4 === undefined ? -1 : a4 - b4;
  const a6 = parseIPv6(a) ?? 0n;
  const b6 = parseIPv6(b) ?? 0n;
  return a6 < b6 ? -1 : a6 > b6 ? 1 : 0;
}

export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function seconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
}

export function networkNotFound(name: string): VxnetError {
  return new VxnetError('network_not_found', `network ${shown(name)} does not exist.`);
}

export function nodeNotFound(name: string): VxnetError {
  return new VxnetError('node_not_found', `node ${shown(name)} is not registered.`);
}

export function endpointNotFound(id: string): VxnetError {
  return new VxnetError('endpoint_not_found', `endpoint ${shown(id)} does not exist.`);
}

/** A name looked up from a URL or a query is shown as it is when it could be a name, quoted (and cut) otherwise. */
function shown(name: string): string {
  return isName(name) ? name : quote(name);
}
