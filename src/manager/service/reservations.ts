/**
 * Reservations (Docker IPAM): an address a node's Docker engine holds before, and independently of, the
 * endpoint that will use it. It stays taken until that node releases it; an endpoint may adopt it (see
 * endpoints.ts), and releasing it then deletes that endpoint too.
 *
 * IPv6 addresses are reserved the same way, from the network's IPv6 allocator (Docker asks once per pool:
 * a dual-stack container holds two reservations, and its endpoint adopts both). Their text is RFC 5952's,
 * so that the store key of an address is one whatever spelling Docker used.
 */
import { VxnetError, quote } from '../../core/errors.ts';
import { parseIPv4 } from '../../core/ipv4.ts';
import { formatIPv6, parseIPv6 } from '../../core/ipv6.ts';
import type { CreateReservationRequest, Reservation } from '../../core/model.ts';
import { requireName } from '../../core/names.ts';
import { keys } from '../keys.ts';
import type { Compare } from '../store/store.ts';
import { casRetry } from './cas.ts';
import { withinQuota } from './quota.ts';
import { type ServiceContext, isoNow } from './context.ts';
import { endpointDeleteOps, listPlaced, openTarget, reservationDeleteOps, reservationsAdoptedBy } from './shared.ts';

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
  const ip = req.ip === undefined ? undefined : requireAddress(req.ip);
  const family = req.family ?? (ip === undefined ? undefined : ip.includes(':') ? 6 : 4);
  if (ip !== undefined && family !== (ip.includes(':') ? 6 : 4)) {
    throw new VxnetError('bad_request', `ip ${ip} is not an IPv${family} address, as "family" ${family} asks.`);
  }
  return casRetry(ctx, `reserve an address on network ${networkName}`, () => {
    const { network, compares } = openTarget(ctx, networkName, nodeName);
    // without a family, the network's first one: IPv4 when it has IPv4 subnets
    const v6 = family === 6 || (family === undefined && network.cidrs.length === 0);
    if (v6 && network.cidrs6.length === 0) {
      throw new VxnetError('bad_request', `network ${networkName} has no IPv6 subnet to reserve an address in: give it one, or ask for an IPv4 address.`);
    }
    if (!v6 && network.cidrs.length === 0) {
      throw new VxnetError('bad_request', `network ${networkName} has IPv6 subnets only: ask for an IPv6 address ("family": 6).`);
    }
    const allocator = v6 ? network.allocator6 : network.allocator;
    const quota = options.limited ? withinQuota(ctx, nodeName, networkName) : { compares: [], ops: [] };
    const allocation = ip !== undefined ? allocator.reserve(ip) : allocator.reserveNext();
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
      release: () => allocator.unreserve(allocation.ip),
    };
  });
}

/**
 * Releases a reservation, and deletes the endpoint that adopted it if there still is one (Docker
 * releases an address only once it is done with it). With `node`, only that node's reservation.
 */
export async function deleteReservation(ctx: ServiceContext, network: string, given: string, options: { node?: string } = {}): Promise<void> {
  const ip = requireAddress(given);
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
      // its other reservation (a dual-stack endpoint's other family) stays, for its own release
      const adopted = reservationsAdoptedBy(ctx, user.endpoint);
      compares.push({ key: keys.endpoint(user.endpoint.id), modRevision: user.modRevision });
      ops.push(...endpointDeleteOps(user.endpoint, (other) => other !== ip && adopted(other)).filter((op) => op.key !== keys.ipam(network, ip)));
    }
    return { compares, ops, then: () => undefined };
  });
}

/** An IPv4 or IPv6 address as the store keys it (IPv6 in RFC 5952 text), or one sentence. */
export function requireAddress(text: string): string {
  if (parseIPv4(text) !== undefined) return text;
  const v6 = parseIPv6(text);
  if (v6 === undefined) throw new VxnetError('invalid_address', `ip ${quote(String(text))} is not a valid IPv4 or IPv6 address.`);
  return formatIPv6(v6);
}

/** The reservation `node` holds for `ip` on `network`, if no live endpoint has adopted it yet (an endpoint adopts it). */
export function adoptable(ctx: ServiceContext, network: string, node: string, ip: string): { reservation: Reservation; modRevision: number } {
  const entry = ctx.state.reservations.get(keys.reservation(network, ip));
  if (!entry || entry.reservation.node !== node) {
    throw new VxnetError('reservation_not_found', `address ${ip} on network ${network} is not reserved by node ${node}.`);
  }
  const user = entry.reservation.endpoint;
  if (user !== undefined && ctx.state.endpoints.has(user)) {
    throw new VxnetError('address_in_use', `address ${ip} on network ${network} is already used by endpoint ${user}.`);
  }
  return entry;
}
