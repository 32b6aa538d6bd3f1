/**
 * The `vxnet` IPAM driver: Docker's address requests answered from vxnet's cluster-wide IPAM, so that a
 * container started on any host gets an address no other host hands out.
 *
 * Pools are stateless: the PoolID is `vxnet:<subnet>`, and a subnet names one vxnet network cluster-wide
 * (catalogue.ts). RequestPool only checks the subnet (an existing network's, or a free one for a network
 * about to be created) and hands the network's gateway back in `Data`, so libnetwork asks for no gateway
 * address of its own. RequestAddress for a container becomes a *reservation* in the manager, owned by this
 * node: libnetwork allocates before it creates the endpoint (CreateEndpoint then adopts the reservation) and
 * releases after deleting it (ReleaseAddress deletes the reservation, and an endpoint still on it). Release
 * succeeds when there is nothing to release, as Docker retries and cleans up after crashes.
 *
 * IPv6 (`docker network create --ipv6 --subnet fd00:1::/64`): libnetwork asks for one more pool with `V6`
 * set, then for one address per pool, so a dual-stack container holds two reservations, one per family,
 * which its endpoint adopts together. An IPv6 pool needs its subnet (vxnet has no default IPv6 pool) and
 * takes what `vxnet network create` takes (/48 to /126, no overlap). Docker 20.10 always asks for an IPv4
 * pool too, so a Docker network is IPv4-only or dual-stack, never IPv6-only.
 */
import { VxnetError, messageOf } from '../core/errors.ts';
import { broadcastOf, contains, formatCidr, formatIPv4, parseIPv4, requireCidr } from '../core/ipv4.ts';
import { contains6, formatCidr6, formatIPv6, parseCidr6, parseIPv6, requireCidr6 } from '../core/ipv6.ts';
import type { CreateReservationRequest, Network, Reservation } from '../core/model.ts';
import { SUBNET6_PREFIX_MAX, SUBNET6_PREFIX_MIN, SUBNET_PREFIX_MAX, SUBNET_PREFIX_MIN } from '../manager/validation.ts';
import {
  ADDRESS_SPACE,
  DATA_GATEWAY,
  GATEWAY_ADDRESS_TYPE,
  REQUEST_ADDRESS_TYPE,
  type PoolIdRequest,
  type ReleaseAddressRequest,
  type RequestAddressRequest,
  type RequestPoolRequest,
  type RequestPoolResponse,
} from './api.ts';
import { type NetworkCatalogue, canonical } from './catalogue.ts';

/** The manager calls the IPAM driver makes (ManagerClient implements them). */
export interface IpamManagerApi {
  createReservation(req: CreateReservationRequest, signal?: AbortSignal): Promise<Reservation>;
  listReservations(filter: { network?: string; node?: string }, signal?: AbortSignal): Promise<Reservation[]>;
  deleteReservation(network: string, ip: string, options: { node: string }, signal?: AbortSignal): Promise<void>;
}

export interface IpamDriverOptions {
  api: IpamManagerApi;
  catalogue: NetworkCatalogue;
  /** this node: reservations are made and released in its name */
  node: string;
  log?: (line: string) => void;
  /** how long an address request waits for its network to appear (a creation in progress; the watch) */
  networkWaitMs?: number;
  /** how long an IPv4 reservation on a dual-stack network waits for its IPv6 partner (default 10 s) */
  partnerMs?: number;
}

const POOL_PREFIX = 'vxnet:';
/** libnetwork asks for an endpoint's IPv6 address right after its IPv4 one: an IPv4 request older than this has no partner coming */
const PARTNER_MS = 10_000;

export class IpamDriver {
  readonly #api: IpamManagerApi;
  readonly #catalogue: NetworkCatalogue;
  readonly #node: string;
  readonly #log: (line: string) => void;
  readonly #waitMs: number;
  /** network → IPv4 reservations of dual-stack endpoints whose IPv6 request has not come yet (#claimPartner) */
  readonly #awaitingV6 = new Map<string, { ip: string; at: number }[]>();
  readonly #partnerMs: number;

  constructor(options: IpamDriverOptions) {
    this.#api = options.api;
    this.#catalogue = options.catalogue;
    this.#node = options.node;
    this.#log = options.log ?? (() => {});
    this.#waitMs = options.networkWaitMs ?? 5_000;
    this.#partnerMs = options.partnerMs ?? PARTNER_MS;
  }

  getCapabilities(): { RequiresMACAddress: boolean; RequiresRequestReplay: boolean } {
    return { RequiresMACAddress: false, RequiresRequestReplay: false };
  }

  getDefaultAddressSpaces(): { LocalDefaultAddressSpace: string; GlobalDefaultAddressSpace: string } {
    return { LocalDefaultAddressSpace: ADDRESS_SPACE, GlobalDefaultAddressSpace: ADDRESS_SPACE };
  }

  async requestPool(req: RequestPoolRequest, signal?: AbortSignal): Promise<RequestPoolResponse> {
    await this.#catalogue.whenSynced(undefined, signal);
    if (req.SubPool !== '') {
      throw refuse(`vxnet does not support --ip-range (${req.SubPool}): containers get addresses from the whole subnet, unique across the cluster.`);
    }
    const unknown = Object.keys(req.Options).filter((key) => !key.startsWith('com.docker.'));
    if (unknown.length > 0) throw refuse(`the vxnet IPAM driver takes no options (--ipam-opt ${unknown.join(', ')}).`);
    if (req.V6) return this.#requestPool6(req.Pool);

    let cidr: string;
    if (req.Pool !== '') {
      const parsed = requireCidr(req.Pool);
      cidr = formatCidr(parsed);
      const network = this.#catalogue.bySubnet(cidr);
      if (network) return poolOf(cidr, gatewayOf(network, cidr));
      if (parsed.prefix < SUBNET_PREFIX_MIN || parsed.prefix > SUBNET_PREFIX_MAX) {
        throw new VxnetError('invalid_cidr', `subnet ${cidr} has prefix /${parsed.prefix}: use /${SUBNET_PREFIX_MIN} to /${SUBNET_PREFIX_MAX}.`);
      }
      const hit = this.#catalogue.overlapping(parsed);
      if (hit) {
        throw new VxnetError(
          'subnet_overlap',
          hit.name === undefined
            ? `subnet ${cidr} overlaps ${hit.cidr} of a network being created on this node.`
            : `subnet ${cidr} overlaps ${hit.cidr} of network ${hit.name}.`,
        );
      }
    } else {
      const free = this.#catalogue.freeSubnet();
      if (free === undefined) {
        throw new VxnetError('subnet_pool_exhausted', 'no free /24 is left in vxnet\'s default pool 10.200.0.0/16: give the network a --subnet.');
      }
      cidr = free;
    }
    const parsed = requireCidr(cidr);
    this.#catalogue.opened(cidr);
    // a new network: its first usable address, as `vxnet network create` would choose
    return poolOf(cidr, formatIPv4(parsed.network + 1));
  }

  /** An IPv6 pool: an existing network's subnet, or a new one that `vxnet network create` would take. */
  #requestPool6(pool: string): RequestPoolResponse {
    if (pool === '') {
      throw refuse('vxnet has no default IPv6 pool: with --ipv6 give the network an IPv6 subnet too, such as --subnet fd00:1::/64.');
    }
    if (parseCidr6(pool) === undefined && parseIPv4(pool.split('/')[0] ?? '') !== undefined) {
      throw new VxnetError('invalid_cidr', `subnet ${pool} is an IPv4 subnet where Docker asked for an IPv6 one.`);
    }
    const parsed = requireCidr6(pool);
    const cidr = formatCidr6(parsed);
    const network = this.#catalogue.bySubnet(cidr);
    if (network) return poolOf(cidr, gatewayOf(network, cidr));
    if (parsed.prefix < SUBNET6_PREFIX_MIN || parsed.prefix > SUBNET6_PREFIX_MAX) {
      throw new VxnetError('invalid_cidr', `subnet ${cidr} has prefix /${parsed.prefix}: use /${SUBNET6_PREFIX_MIN} to /${SUBNET6_PREFIX_MAX} for IPv6.`);
    }
    const hit = this.#catalogue.overlapping6(parsed);
    if (hit) {
      throw new VxnetError(
        'subnet_overlap',
        hit.name === undefined ? `subnet ${cidr} overlaps ${hit.cidr} of a network being created on this node.` : `subnet ${cidr} overlaps ${hit.cidr} of network ${hit.name}.`,
      );
    }
    this.#catalogue.opened(cidr);
    // a new network: its first address after the Subnet-Router anycast one, as `vxnet network create` would choose
    return poolOf(cidr, formatIPv6(parsed.network + 1n));
  }

  releasePool(req: PoolIdRequest): Record<string, never> {
    // libnetwork gives a pool back when the network goes, or when creating it failed
    const cidr = req.PoolID.startsWith(POOL_PREFIX) ? canonical(req.PoolID.slice(POOL_PREFIX.length)) : undefined;
    if (cidr !== undefined && this.#catalogue.isOpening(cidr)) this.#catalogue.closed(cidr);
    return {};
  }

  async requestAddress(req: RequestAddressRequest, signal?: AbortSignal): Promise<{ Address: string; Data: Record<string, string> }> {
    await this.#catalogue.whenSynced(undefined, signal);
    const cidr = cidrOfPool(req.PoolID);
    if (cidr.includes(':')) return this.#requestAddress6(cidr, req, signal);
    const subnet = requireCidr(cidr);
    if (req.Address !== '' && parseIPv4(req.Address) === undefined) {
      throw new VxnetError('invalid_address', `address "${req.Address}" is not a valid IPv4 address.`);
    }
    if (req.Options[REQUEST_ADDRESS_TYPE] === GATEWAY_ADDRESS_TYPE) {
      // libnetwork asks only when the user gave --gateway: it must be the vxnet network's
      const network = this.#catalogue.bySubnet(cidr);
      if (network) {
        const gateway = gatewayOf(network, cidr);
        if (req.Address !== '' && req.Address !== gateway) {
          throw new VxnetError('address_reserved', `the gateway of ${cidr} on network ${network.name} is ${gateway}; --gateway cannot change it.`);
        }
        return { Address: `${gateway}/${subnet.prefix}`, Data: {} };
      }
      const wanted = req.Address === '' ? subnet.network + 1 : parseIPv4(req.Address)!;
      if (!contains(subnet, wanted) || wanted === subnet.network || wanted === broadcastOf(subnet)) {
        throw new VxnetError('gateway_outside_subnet', `gateway ${formatIPv4(wanted)} is not a usable address of subnet ${cidr}.`);
      }
      return { Address: `${formatIPv4(wanted)}/${subnet.prefix}`, Data: {} };
    }
    return this.#reserve(cidr, req.Address, 4, signal);
  }

  /** RequestAddress from an IPv6 pool: the gateway (only for --gateway), or a reservation of family 6. */
  async #requestAddress6(cidr: string, req: RequestAddressRequest, signal?: AbortSignal): Promise<{ Address: string; Data: Record<string, string> }> {
    const subnet = requireCidr6(cidr);
    const wanted = req.Address === '' ? undefined : parseIPv6(req.Address);
    if (req.Address !== '' && wanted === undefined) {
      throw new VxnetError('invalid_address', `address "${req.Address}" is not a valid IPv6 address.`);
    }
    if (req.Options[REQUEST_ADDRESS_TYPE] === GATEWAY_ADDRESS_TYPE) {
      const network = this.#catalogue.bySubnet(cidr);
      if (network) {
        const gateway = gatewayOf(network, cidr);
        if (wanted !== undefined && formatIPv6(wanted) !== gateway) {
          throw new VxnetError('address_reserved', `the gateway of ${cidr} on network ${network.name} is ${gateway}; --gateway cannot change it.`);
        }
        return { Address: `${gateway}/${subnet.prefix}`, Data: {} };
      }
      const gateway = wanted ?? subnet.network + 1n;
      if (!contains6(subnet, gateway) || gateway === subnet.network) {
        throw new VxnetError('gateway_outside_subnet', `gateway ${formatIPv6(gateway)} is not a usable address of subnet ${cidr}.`);
      }
      return { Address: `${formatIPv6(gateway)}/${subnet.prefix}`, Data: {} };
    }
    return this.#reserve(cidr, wanted === undefined ? '' : formatIPv6(wanted), 6, signal);
  }

  /** A reservation for a container in the network of `cidr` (the address asked for, or any of that family). */
  async #reserve(cidr: string, address: string, family: 4 | 6, signal?: AbortSignal): Promise<{ Address: string; Data: Record<string, string> }> {
    if (this.#catalogue.isOpening(cidr)) {
      // between RequestPool and CreateNetwork libnetwork asks only for auxiliary addresses
      throw refuse(`vxnet does not support --aux-address (${address || 'any'}): every address of ${cidr} is for containers and the gateway.`);
    }
    const network = await this.#catalogue.networkForSubnet(cidr, this.#waitMs, signal);
    if (!network) {
      throw new VxnetError(
        'network_not_found',
        `subnet ${cidr} is not the subnet of any vxnet network: containers need a network made with "docker network create -d vxnet --ipam-driver vxnet" (or "vxnet network create").`,
      );
    }
    const request: CreateReservationRequest = { network: network.name, node: this.#node };
    if (address !== '') request.ip = address;
    // an IPv4 request stays as it always was; an IPv6 one says its family, as the network's first may be IPv4
    else if (family === 6) request.family = 6;
    const partner = family === 6 ? this.#claimPartner(network.name) : undefined;
    let reservation: Reservation;
    try {
      reservation = await this.#api.createReservation(request, signal);
    } catch (err) {
      if (partner !== undefined) await this.#releaseLeaked(network.name, partner);
      throw err;
    }
    if (family === 4 && network.subnets.some((s) => s.cidr.includes(':'))) {
      this.#awaitingV6.set(network.name, [...(this.#awaitingV6.get(network.name) ?? []), { ip: reservation.ip, at: Date.now() }]);
      setTimeout(() => void this.#sweep(network.name), this.#partnerMs + 1_000).unref();
    }
    return { Address: `${reservation.ip}/${reservation.prefix}`, Data: {} };
  }

  /**
   * IPv4 reservations whose IPv6 request never came: libnetwork gave up on the endpoint before asking us
   * (an `--ip6` outside every IPv6 subnet) and, as above, keeps the IPv4 address. Released once no endpoint
   * adopted them (the manager's record says so), which also spares one whose partner was mistaken.
   */
  async #sweep(network: string): Promise<void> {
    const now = Date.now();
    const waiting = this.#awaitingV6.get(network) ?? [];
    const expired = waiting.filter((w) => now - w.at >= this.#partnerMs);
    const kept = waiting.filter((w) => now - w.at < this.#partnerMs);
    if (kept.length > 0) this.#awaitingV6.set(network, kept);
    else this.#awaitingV6.delete(network);
    if (expired.length === 0) return;
    try {
      const held = await this.#api.listReservations({ network, node: this.#node });
      for (const { ip } of expired) {
        if (held.some((r) => r.ip === ip && r.endpoint === undefined)) await this.#releaseLeaked(network, ip);
      }
    } catch (err) {
      this.#log(`could not look for IPv4 reservations Docker left on network ${network}: ${messageOf(err)}`);
    }
  }

  /**
   * The IPv4 reservation of the endpoint whose IPv6 address is being asked for: libnetwork asks for an
   * endpoint's IPv4 address, then at once for its IPv6 one. Known only when exactly one IPv4 request of the
   * network awaits its IPv6 one (two containers starting at once could interleave); each IPv6 request takes
   * the oldest off the list either way.
   */
  #claimPartner(network: string): string | undefined {
    const waiting = (this.#awaitingV6.get(network) ?? []).filter((w) => Date.now() - w.at < this.#partnerMs);
    const partner = waiting.length === 1 ? waiting[0]!.ip : undefined;
    waiting.shift();
    if (waiting.length > 0) this.#awaitingV6.set(network, waiting);
    else this.#awaitingV6.delete(network);
    return partner;
  }

  /**
   * Docker 20.10 gives back an endpoint's addresses only once both are assigned (libnetwork's createEndpoint
   * defers its release after assignAddress), so a refused IPv6 address (a taken `--ip6`) would leave the
   * IPv4 reservation made for the same container held forever. It is released here instead.
   */
  async #releaseLeaked(network: string, ip: string): Promise<void> {
    try {
      await this.#api.deleteReservation(network, ip, { node: this.#node });
      this.#log(`released ${ip} on network ${network}: its container's IPv6 address was refused, and Docker does not give the IPv4 one back`);
    } catch (err) {
      this.#log(`could not release ${ip} on network ${network} after its IPv6 partner was refused: ${messageOf(err)}`);
    }
  }

  async releaseAddress(req: ReleaseAddressRequest, signal?: AbortSignal): Promise<Record<string, never>> {
    await this.#catalogue.whenSynced(undefined, signal);
    const cidr = cidrOfPool(req.PoolID);
    const network = this.#catalogue.bySubnet(cidr);
    // IPv6 in the text the manager keys it by (RFC 5952)
    const v6 = cidr.includes(':') ? parseIPv6(req.Address) : undefined;
    const address = v6 === undefined ? req.Address : formatIPv6(v6);
    // a network that is gone took its reservations along
    if (!network || address === gatewayOf(network, cidr)) return {};
    try {
      await this.#api.deleteReservation(network.name, address, { node: this.#node }, signal);
    } catch (err) {
      if (!(err instanceof VxnetError && (err.code === 'reservation_not_found' || err.code === 'network_not_found'))) throw err;
      this.#log(`release of ${address} on network ${network.name}: nothing to release (${err.message})`);
    }
    return {};
  }
}

function poolOf(cidr: string, gateway: string): RequestPoolResponse {
  const prefix = cidr.slice(cidr.indexOf('/') + 1);
  return { PoolID: `${POOL_PREFIX}${cidr}`, Pool: cidr, Data: { [DATA_GATEWAY]: `${gateway}/${prefix}` } };
}

function cidrOfPool(poolId: string): string {
  const cidr = poolId.startsWith(POOL_PREFIX) ? canonical(poolId.slice(POOL_PREFIX.length)) : undefined;
  if (cidr === undefined) throw new VxnetError('bad_request', `pool ${JSON.stringify(poolId)} is not a vxnet pool (vxnet:SUBNET).`);
  return cidr;
}

function gatewayOf(network: Network, cidr: string): string {
  return network.subnets.find((s) => s.cidr === cidr)?.gateway ?? '';
}

function refuse(message: string): VxnetError {
  return new VxnetError('bad_request', message);
}
