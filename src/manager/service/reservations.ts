/**
 * Reservations (Docker IPAM): an address a node's Docker engine holds before, and independently of, the
 * endpoint that will use it. It stays taken until that node releases it; an endpoint may adopt it (see
 * endpoints.ts), and releasing it then deletes that endpoint too.
 */
import { VxnetError } from '../../core/errors.ts';
import { requireIPv4 } from '../../core/ipv4.ts';
import type { CreateReservationRequest, Reservation } from '../../core/model.ts';
import { requireName } from '../../core/names.ts';
import { keys } from '../keys.ts';
import type { Compare } from '../store/store.ts';
import { casRetry } from './cas.ts';
import { withinQuota } from './quota.ts';
import { type ServiceContext, isoNow } from './context.ts';
import { endpointDeleteOps, listPlaced, openTarget, reservationDeleteOps } from './shared.ts';

export function listReservations(ctx: ServiceContext, filter: { network?: string; node?: string } = {}): Reservation[] {
  return listPlaced(ctx, filter, {
    ofNetwork: (name) => ctx.state.reservationsOf(name),
    all: () => [...ctx.state.reservations.values()].map((e) => e.reservation),
    nodeMustExist: false,
  });
}

/** Takes an address (the requested one, or the lowest free) for `node` without creating an endpoint. */
export async function createReservation(ctx: ServiceContext, req: CreateReservationRequest, options: { limited?: boolean } = {}): Promise<Reservation> {
  const networkName = requireName(req.network, 'network');
  const nodeName = requireName(req.node, 'node');
  if (req.ip !== undefined) requireIPv4(req.ip, 'ip');
  return casRetry(ctx, `reserve an address on network ${networkName}`, () => {
    const { network, compares } = openTarget(ctx, networkName, nodeName);
    const quota = options.limited ? withinQuota(ctx, nodeName, networkName) : { compares: [], ops: [] };
    const allocation = req.ip !== undefined ? network.allocator.reserve(req.ip) : network.allocator.reserveNext();
    const reservation: Reservation = {
      network: networkName,
      ip: allocation.ip,
      prefix: allocation.prefix,
      gateway: allocation.gateway,
      node: nodeName,
      createdAt: isoNow(ctx),
    };
    const key = keys.reservation(networkName, allocation.ip);
    return {
      compares: [
        ...compares,
        { key: keys.ipam(networkName, allocation.ip), modRevision: 0 },
        { key, modRevision: 0 },
        ...quota.compares,
      ],
      ops: [
        { type: 'put', key, value: JSON.stringify(reservation) },
        { type: 'put', key: keys.ipam(networkName, allocation.ip), value: `reservation:${nodeName}` },
        ...quota.ops,
      ],
      then: () => ctx.state.reservations.get(key)?.reservation ?? reservation,
      release: () => network.allocator.unreserve(allocation.ip),
    };
  });
}

/**
 * Releases a reservation, and deletes the endpoint that adopted it if there still is one (Docker
 * releases an address only once it is done with it). With `node`, only that node's reservation.
 */
export async function deleteReservation(ctx: ServiceContext, network: string, ip: string, options: { node?: string } = {}): Promise<void> {
  requireIPv4(ip, 'ip');
  await casRetry(ctx, `release address ${ip} on network ${network}`, () => {
    const key = keys.reservation(network, ip);
    const entry = ctx.state.reservations.get(key);
    if (!entry || (options.node !== undefined && entry.reservation.node !== options.node)) {
      const by = options.node !== undefined ? ` by node ${options.node}` : '';
      throw new VxnetError('reservation_not_found', `address ${ip} on network ${network} is not reserved${by}.`);
    }
    const compares: Compare[] = [{ key, modRevision: entry.modRevision }];
    const ops = reservationDeleteOps(entry.reservation);
    const user = entry.reservation.endpoint === undefined ? undefined : ctx.state.endpoints.get(entry.reservation.endpoint);
    if (user) {
      compares.push({ key: keys.endpoint(user.endpoint.id), modRevision: user.modRevision });
      ops.push(...endpointDeleteOps(user.endpoint));
    }
    return { compares, ops, then: () => undefined };
  });
}
