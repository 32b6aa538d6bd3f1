/**
 * Endpoints: an interface of a container or namespace on one node, with an address from its network.
 * Creating one claims the address (or adopts the node's Docker reservation of it) and the interface slot in
 * one transaction; with a wait, the answer comes once the node's agent reports it attached, and a failed or
 * abandoned attach deletes it again so that no address is left behind.
 */
import { randomBytes } from 'node:crypto';
import { VxnetError, quote } from '../../core/errors.ts';
import { macForIPv4, parseIPv4 } from '../../core/ipv4.ts';
import { formatIPv6, isIPv6, macForIPv6, parseIPv6 } from '../../core/ipv6.ts';
import type { CreateEndpointRequest, Endpoint, EndpointStatusRequest } from '../../core/model.ts';
import {
  MAX_ENDPOINT_ALIASES,
  normaliseNetns,
  requireContainerRef,
  requireDockerEndpointId,
  requireEndpointName,
  requireIfname,
  requireName,
} from '../../core/names.ts';
import type { Allocation, NetworkAllocator } from '../ipam.ts';
import type { NetworkEntry } from '../state.ts';
import { attachmentTarget, keys } from '../keys.ts';
import { isEndpointId, requireEndpointStatus } from '../validation.ts';
import { casRetry } from './cas.ts';
import { withinQuota } from './quota.ts';
import { adoptable, requireAddress } from './reservations.ts';
import { type ServiceContext, isoNow } from './context.ts';
import { requireTunnelFor } from './tunnels.ts';
import {
  endpointDeleteOps,
  endpointNotFound,
  listPlaced,
  openTarget,
  reservationsAdoptedBy,
  seconds,
} from './shared.ts';

export interface WaitOptions {
  /** how long to wait for the node; 0 answers at once */
  waitMs?: number;
  signal?: AbortSignal;
  /** asked with the node's own certificate: within its quota (quota.ts) */
  limited?: boolean;
}

/** The CNI spec's container id: letters, digits, "_", "." and "-" (bounded here as a store key part is). */
const CNI_CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/**
 * A MAC given for an endpoint: unicast (the group bit of the first byte clear), not all zeros, and outside
 * vxnet's own 02:78 prefix, which derived endpoint and gateway MACs use (core/ipv4.ts macForIPv4), so that a
 * chosen MAC can only collide with another chosen one (checked in the network at creation).
 */
function requireEndpointMac(value: string): string {
  const mac = typeof value === 'string' ? value.toLowerCase() : '';
  if (!MAC.test(mac)) throw new VxnetError('invalid_address', `MAC ${quote(String(value))} is invalid: use six hex bytes separated by ":".`);
  if ((parseInt(mac.slice(0, 2), 16) & 1) === 1) throw new VxnetError('invalid_address', `MAC ${mac} is a multicast address: an interface needs a unicast one.`);
  if (mac === '00:00:00:00:00:00') throw new VxnetError('invalid_address', 'MAC 00:00:00:00:00:00 is not an interface address.');
  if (mac.startsWith('02:78:')) throw new VxnetError('invalid_address', `MAC ${mac} is in vxnet's own range 02:78:..., kept for MACs derived from addresses.`);
  return mac;
}

/** Interface name given to Docker endpoints: the prefix Docker numbers inside the container. */
export const DOCKER_IFNAME_PREFIX = 'eth';
/** Agents' error messages are stored; keep them to a sane size. */
const MAX_STATUS_MESSAGE = 2000;

export function listEndpoints(ctx: ServiceContext, filter: { network?: string; node?: string } = {}): Endpoint[] {
  return listPlaced(ctx, filter, {
    ofNetwork: (name) => ctx.state.endpointsOf(name),
    all: () => [...ctx.state.endpoints.values()].map((e) => e.endpoint),
    nodeMustExist: true,
  });
}

export function getEndpoint(ctx: ServiceContext, id: string): Endpoint {
  const entry = isEndpointId(id) ? ctx.state.endpoints.get(id) : undefined;
  if (!entry) throw endpointNotFound(id);
  return entry.endpoint;
}

/**
 * Creates an endpoint and allocates its address. With `waitMs` > 0, answers once the node's agent reports
 * it ready; an agent error or a timeout deletes it again (releasing the address) and fails.
 */
export async function createEndpoint(ctx: ServiceContext, req: CreateEndpointRequest, options: WaitOptions = {}): Promise<Endpoint> {
  const networkName = requireName(req.network, 'network');
  const nodeName = requireName(req.node, 'node');
  const target = endpointTarget(req);
  if (target.docker !== undefined && req.ifname !== undefined) {
    throw new VxnetError('bad_request', 'a Docker endpoint takes no ifname: Docker names the interface (eth0, eth1, ...).');
  }
  if (target.host && req.ifname !== undefined) throw new VxnetError('bad_request', 'a host endpoint takes no ifname: its interface is named after the network\'s VNI (vxhVNI).');
  // a host endpoint's interface is the node's own, named after the network: one per network and node
  const hostIfname = () => `vxh${ctx.state.networks.get(networkName)?.network.vni ?? 0}`;
  const ifname = requireIfname(req.ifname ?? (target.docker !== undefined ? DOCKER_IFNAME_PREFIX : target.host ? hostIfname() : 'eth0'));
  if (req.ip !== undefined && parseIPv4(req.ip) === undefined && !isIPv6(req.ip)) {
    throw new VxnetError('invalid_address', `ip ${quote(String(req.ip))} is not a valid IPv4 or IPv6 address.`);
  }
  if (req.reserved !== undefined && typeof req.reserved !== 'boolean') throw new VxnetError('bad_request', 'field "reserved" must be true or false.');
  const reserved = req.reserved === true;
  if (req.cni !== undefined && target.netns === undefined) throw new VxnetError('bad_request', 'an endpoint of a CNI container ("cni") needs the container\'s "netns".');
  if (req.cni !== undefined && !CNI_CONTAINER_ID.test(req.cni)) {
    throw new VxnetError('bad_request', `CNI container id ${quote(req.cni)} is invalid: use 1-128 letters, digits, "_", "." or "-".`);
  }
  const cni = req.cni;
  const mac = req.mac === undefined ? undefined : requireEndpointMac(req.mac);
  if (reserved && req.ip === undefined) throw new VxnetError('bad_request', 'an endpoint that adopts a reservation needs the reserved "ip".');
  const ip6 = requireIp6(req);
  const names = endpointNames(req);

  const endpoint = await casRetry(ctx, `create an endpoint on network ${networkName}`, () => {
    const { network, compares } = openTarget(ctx, networkName, nodeName);
    requireTunnelFor(ctx, networkName, nodeName);
    // the host's own interface and a CNI result are set up and described with one IPv4 address (issue 15)
    if (network.cidrs.length === 0 && (target.host || cni !== undefined)) {
      throw new VxnetError(
        'bad_request',
        `network ${networkName} has IPv6 subnets only, and a ${target.host ? 'host' : 'CNI'} endpoint needs an IPv4 address: give the network an IPv4 subnet too.`,
      );
    }
    // an endpoint on its own reservation takes no new address
    const quota = options.limited && !reserved ? withinQuota(ctx, nodeName, networkName) : { compares: [], ops: [] };
    const attachmentKey = keys.attachment(nodeName, attachmentTarget(target), ifname);
    const holder = ctx.state.attachments.get(attachmentKey);
    if (holder !== undefined) {
      throw new VxnetError('endpoint_exists', `node ${nodeName} already has endpoint ${holder} on interface ${ifname} in ${describeTarget(target)}.`);
    }
    // A second interface of one namespace on the same network gets a second default route through the same
    // gateway, and replies leave by whichever the kernel picks. Docker endpoints are exempt: Docker itself
    // connects a container to a network once.
    if (target.docker === undefined) {
      const twin = endpointOfTarget(ctx, networkName, nodeName, target);
      if (twin !== undefined) {
        throw new VxnetError(
          'endpoint_exists',
          `${describeTarget(target)} on node ${nodeName} is already attached to network ${networkName} (endpoint ${twin.id}, interface ${twin.ifname}); a second interface on the same network would take its default route, so detach it first.`,
        );
      }
    }
    if (names.name !== undefined) requireNameFree(ctx, networkName, names.name);
    if (ip6 !== undefined && network.cidrs6.length === 0) {
      throw new VxnetError('address_outside_subnet', `address ${ip6} is not in any IPv6 subnet of network ${networkName}: it has none.`);
    }
    // Docker's IPAM allocated the addresses before the endpoint existed: adopt those reservations (one per family).
    const held = reserved ? adoptable(ctx, networkName, nodeName, requireAddress(req.ip!)) : undefined;
    const held6 = reserved && ip6 !== undefined ? adoptable(ctx, networkName, nodeName, ip6) : undefined;
    const first: Allocation = held
      ? allocationOf(held.reservation)
      : req.ip !== undefined
        ? allocatorFor(network, req.ip).reserve(req.ip)
        : network.cidrs.length > 0
          ? network.allocator.reserveNext()
          : network.allocator6.reserveNext();
    // one address per family of the network's subnets: the other family's comes from its own allocator
    const allocations: Allocation[] = [first];
    const second6 = held6 ? allocationOf(held6.reservation) : undefined;
    const firstIsV6 = first.ip.includes(':');
    try {
      if (!firstIsV6 && network.cidrs6.length > 0) {
        allocations.push(second6 ?? (ip6 !== undefined ? network.allocator6.reserve(ip6) : network.allocator6.reserveNext()));
      }
      if (firstIsV6 && network.cidrs.length > 0) allocations.unshift(network.allocator.reserveNext());
    } catch (err) {
      if (!held) allocatorFor(network, first.ip).unreserve(first.ip);
      throw err;
    }
    const adopted = [held, held6].filter((h) => h !== undefined);
    const fresh = allocations.filter((a) => !(held && a === first) && a !== second6);
    const releaseAll = () => {
      for (const a of fresh) allocatorFor(network, a.ip).unreserve(a.ip);
    };
    const allocation = allocations[0]!;
    if (mac !== undefined) {
      const holder = ctx.state.endpointsOf(networkName).find((e) => e.mac === mac);
      if (holder) throw new VxnetError('address_in_use', `MAC ${mac} is in use by endpoint ${holder.id} on network ${networkName}.`);
    }
    const candidate: Endpoint = {
      id: randomBytes(6).toString('hex'),
      network: networkName,
      node: nodeName,
      ...target,
      ...(cni !== undefined ? { cni } : {}),
      ...names,
      ifname,
      ip: allocation.ip,
      prefix: allocation.prefix,
      gateway: allocation.gateway,
      ...(allocations.length > 1 ? { addresses: allocations.map((a) => ({ ip: a.ip, prefix: a.prefix, gateway: a.gateway })) } : {}),
      mac: mac ?? derivedMac(allocation.ip),
      status: 'pending',
      ...(held ? { reserved: true } : {}),
      createdAt: isoNow(ctx),
    };
    const reservationKey = (h: (typeof adopted)[number]) => keys.reservation(networkName, h.reservation.ip);
    return {
      compares: [
        ...compares,
        ...adopted.map((h) => ({ key: reservationKey(h), modRevision: h.modRevision })),
        ...fresh.map((a) => ({ key: keys.ipam(networkName, a.ip), modRevision: 0 })),
        { key: attachmentKey, modRevision: 0 },
        { key: keys.endpoint(candidate.id), modRevision: 0 },
        ...(names.name !== undefined ? [{ key: keys.endpointName(networkName, names.name), modRevision: 0 }] : []),
        ...quota.compares,
      ],
      ops: [
        { type: 'put', key: keys.endpoint(candidate.id), value: JSON.stringify(candidate) },
        ...adopted.map((h) => ({ type: 'put', key: reservationKey(h), value: JSON.stringify({ ...h.reservation, endpoint: candidate.id }) }) as const),
        ...fresh.map((a) => ({ type: 'put', key: keys.ipam(networkName, a.ip), value: candidate.id }) as const),
        { type: 'put', key: attachmentKey, value: candidate.id },
        ...(names.name !== undefined ? [{ type: 'put', key: keys.endpointName(networkName, names.name), value: candidate.id } as const] : []),
        ...quota.ops,
      ],
      then: () => candidate,
      release: fresh.length > 0 ? releaseAll : undefined,
    };
  });
  const waitMs = options.waitMs ?? 0;
  if (waitMs <= 0) return ctx.state.endpoints.get(endpoint.id)?.endpoint ?? endpoint;
  return awaitReady(ctx, endpoint, waitMs, options.signal);
}

/**
 * Deletes an endpoint and releases its address. With `waitMs` > 0, answers once the endpoint's node has
 * reported (by heartbeat) that it reconciled a revision at or past the deletion.
 */
export async function deleteEndpoint(ctx: ServiceContext, id: string, options: WaitOptions = {}): Promise<void> {
  const { revision, endpoint } = await casRetry(ctx, `delete endpoint ${id}`, () => {
    const entry = isEndpointId(id) ? ctx.state.endpoints.get(id) : undefined;
    if (!entry) throw endpointNotFound(id);
    return {
      compares: [{ key: keys.endpoint(id), modRevision: entry.modRevision }],
      ops: endpointDeleteOps(entry.endpoint, reservationsAdoptedBy(ctx, entry.endpoint)),
      then: (revision) => ({ revision, endpoint: entry.endpoint }),
    };
  });
  const waitMs = options.waitMs ?? 0;
  if (waitMs <= 0) return;
  const signal = anySignal(ctx.closing, options.signal);
  const confirmed = await ctx.liveness.waitReconciled(endpoint.node, revision, waitMs, signal);
  if (!confirmed) {
    throw new VxnetError(
      'timeout',
      `endpoint ${id} was deleted from the cluster (revision ${revision}), but node ${endpoint.node} did not confirm removing it within ${seconds(waitMs)}.`,
    );
  }
}

/** An agent reports how attaching an endpoint went. Repeating the current status writes nothing. */
export async function setEndpointStatus(ctx: ServiceContext, id: string, req: EndpointStatusRequest): Promise<void> {
  const status = requireEndpointStatus(req.status);
  if (req.message !== undefined && typeof req.message !== 'string') {
    throw new VxnetError('bad_request', 'field "message" must be a string.');
  }
  const message = req.message === undefined || req.message === '' ? undefined : req.message.slice(0, MAX_STATUS_MESSAGE);
  await casRetry(ctx, `update endpoint ${id}`, () => {
    const entry = isEndpointId(id) ? ctx.state.endpoints.get(id) : undefined;
    if (!entry) throw endpointNotFound(id);
    if (entry.endpoint.status === status && entry.endpoint.message === message) return { done: undefined };
    const { message: _old, ...rest } = entry.endpoint;
    const updated: Endpoint = message === undefined ? { ...rest, status } : { ...rest, status, message };
    return {
      compares: [{ key: keys.endpoint(id), modRevision: entry.modRevision }],
      ops: [{ type: 'put', key: keys.endpoint(id), value: JSON.stringify(updated) }],
      then: () => undefined,
    };
  });
}

/**
 * The Docker plugin names the container of a Docker endpoint (for `endpoint ls`, and its DNS name) and its
 * `--network-alias`es there. The same again writes nothing.
 */
export async function setDockerContainer(ctx: ServiceContext, id: string, name: string, aliasList?: string[]): Promise<void> {
  const container = requireContainerRef(name);
  const aliases = aliasList === undefined ? undefined : (endpointNames({ aliases: aliasList }).aliases ?? []);
  await casRetry(ctx, `update endpoint ${id}`, () => {
    const entry = isEndpointId(id) ? ctx.state.endpoints.get(id) : undefined;
    if (!entry) throw endpointNotFound(id);
    if (entry.endpoint.docker === undefined) throw new VxnetError('bad_request', `endpoint ${id} is not a Docker endpoint: only those take the name of their container.`);
    const sameAliases = aliases === undefined || aliases.join() === (entry.endpoint.aliases ?? []).join();
    if (entry.endpoint.dockerContainer === container && sameAliases) return { done: undefined };
    const { aliases: _old, ...rest } = entry.endpoint;
    const kept = aliases ?? entry.endpoint.aliases ?? [];
    const updated: Endpoint = { ...rest, dockerContainer: container, ...(kept.length > 0 ? { aliases: kept } : {}) };
    return {
      compares: [{ key: keys.endpoint(id), modRevision: entry.modRevision }],
      ops: [{ type: 'put', key: keys.endpoint(id), value: JSON.stringify(updated) }],
      then: () => undefined,
    };
  });
}

/**
 * `ip6`: the IPv6 address beside an IPv4 `ip` on a dual-stack network (Docker's `--ip6`, or its IPv6
 * reservation), in RFC 5952 text; undefined when not given.
 */
function requireIp6(req: CreateEndpointRequest): string | undefined {
  if (req.ip6 === undefined) return undefined;
  const address = parseIPv6(req.ip6);
  if (address === undefined) throw new VxnetError('invalid_address', `ip6 ${quote(String(req.ip6))} is not a valid IPv6 address.`);
  if (req.ip === undefined || parseIPv4(req.ip) === undefined) {
    throw new VxnetError('bad_request', 'field "ip6" goes with an IPv4 "ip" (a dual-stack endpoint); an IPv6 address alone is given as "ip".');
  }
  return formatIPv6(address);
}

function allocationOf(reservation: Allocation): Allocation {
  return { ip: reservation.ip, prefix: reservation.prefix, gateway: reservation.gateway };
}

/** The allocator of the family `ip` belongs to. */
function allocatorFor(network: NetworkEntry, ip: string): Pick<NetworkAllocator, 'reserve' | 'unreserve'> {
  return ip.includes(':') ? network.allocator6 : network.allocator;
}

/** The MAC derived from an endpoint's first address (IPv4 when it has one: the form every node already knows). */
function derivedMac(ip: string): string {
  const v4 = parseIPv4(ip);
  return v4 !== undefined ? macForIPv4(v4) : macForIPv6(parseIPv6(ip)!);
}

async function awaitReady(ctx: ServiceContext, created: Endpoint, waitMs: number, signal: AbortSignal | undefined): Promise<Endpoint> {
  const id = created.id;
  type Settled = { ready: Endpoint } | { failed: Endpoint } | 'gone';
  const settled = (): Settled | undefined => {
    const current = ctx.state.endpoints.get(id)?.endpoint;
    if (!current) return 'gone';
    if (current.status === 'ready') return { ready: current };
    if (current.status === 'error') return { failed: current };
    return undefined;
  };
  const outcome = await ctx.endpointWaiters.waitFor(id, settled, waitMs, anySignal(ctx.closing, signal));
  if (typeof outcome === 'object' && 'ready' in outcome) return outcome.ready;
  if (outcome === 'gone') {
    throw new VxnetError('endpoint_not_found', `endpoint ${id} was deleted before node ${created.node} reported it ready.`);
  }
  if (outcome === 'aborted' && ctx.closing.aborted) {
    throw new VxnetError('timeout', `the manager is shutting down; endpoint ${id} stays until it is deleted.`);
  }
  // Nobody will use the endpoint now (the agent failed, the wait ran out, or the client went away), so do
  // not leave it and its address behind.
  await deleteQuietly(ctx, id);
  if (outcome === 'timeout') {
    throw new VxnetError('timeout', `node ${created.node} did not report endpoint ${id} ready within ${seconds(waitMs)}; the endpoint was deleted.`);
  }
  if (outcome === 'aborted') {
    throw new VxnetError('timeout', `gave up waiting for node ${created.node} to attach endpoint ${id}; the endpoint was deleted.`);
  }
  throw new VxnetError('attach_failed', `attach failed on node ${created.node}: ${outcome.failed.message ?? 'no reason given'}`);
}

async function deleteQuietly(ctx: ServiceContext, id: string): Promise<void> {
  try {
    await deleteEndpoint(ctx, id);
  } catch (err) {
    if (!(err instanceof VxnetError && err.code === 'endpoint_not_found')) throw err;
  }
}

/** The DNS name and aliases of a new endpoint, checked; aliases without repeats (in the order given). */
function endpointNames(req: Pick<CreateEndpointRequest, 'name' | 'aliases'>): { name?: string; aliases?: string[] } {
  const name = req.name === undefined ? undefined : requireEndpointName(req.name, 'name');
  if (req.aliases === undefined) return name === undefined ? {} : { name };
  if (req.aliases.length > MAX_ENDPOINT_ALIASES) {
    throw new VxnetError('bad_request', `an endpoint takes at most ${MAX_ENDPOINT_ALIASES} aliases, not ${req.aliases.length}.`);
  }
  const seen = new Set<string>(name === undefined ? [] : [name.toLowerCase()]);
  const aliases: string[] = [];
  for (const alias of req.aliases) {
    requireEndpointName(alias, 'alias');
    if (seen.has(alias.toLowerCase())) continue;
    seen.add(alias.toLowerCase());
    aliases.push(alias);
  }
  return { ...(name !== undefined ? { name } : {}), ...(aliases.length > 0 ? { aliases } : {}) };
}

/**
 * Refuses a name another endpoint of the network holds (DNS compares without case). The index decides; the
 * `/names/` key's compare makes the decision atomic, and a lost race is decided again here from the fresh
 * index. Walks the network's endpoints: a create with a name costs what its network holds, as the watch
 * line it causes does.
 */
function requireNameFree(ctx: ServiceContext, network: string, name: string): void {
  const wanted = name.toLowerCase();
  for (const other of ctx.state.endpointsOf(network)) {
    if (other.name?.toLowerCase() === wanted) {
      throw new VxnetError(
        'endpoint_exists',
        `name ${name} is already taken on network ${network} by endpoint ${other.id} on node ${other.node}; choose another with --name (aliases may be shared).`,
      );
    }
  }
}

/** Exactly one of netns, container, docker, host, validated (a namespace name becomes its path). */
function endpointTarget(req: CreateEndpointRequest): { netns?: string; container?: string; docker?: string; host?: true } {
  const given = [req.netns, req.container, req.docker, req.host].filter((v) => v !== undefined).length;
  if (given !== 1) {
    throw new VxnetError('bad_request', 'an endpoint needs exactly one target: "netns" (a namespace), "container" (a Docker container), "docker" (a Docker endpoint id) or "host" (the node itself).');
  }
  if (req.host === true) return { host: true };
  if (req.container !== undefined) return { container: requireContainerRef(req.container) };
  if (req.docker !== undefined) return { docker: requireDockerEndpointId(req.docker) };
  return { netns: normaliseNetns(req.netns) };
}

/** The endpoint `target` already has on `network` at `node`, if any (walks the smaller of the two indexes). */
function endpointOfTarget(ctx: ServiceContext, network: string, node: string, target: { netns?: string; container?: string; host?: true }): Endpoint | undefined {
  const ofNode = ctx.state.endpointsByNode.get(node);
  const ofNetwork = ctx.state.endpointsByNetwork.get(network);
  if (!ofNode || !ofNetwork) return undefined;
  for (const id of ofNode.size <= ofNetwork.size ? ofNode : ofNetwork) {
    const e = ctx.state.endpoints.get(id)?.endpoint;
    if (e && e.network === network && e.node === node && e.netns === target.netns && e.container === target.container && e.host === target.host) return e;
  }
  return undefined;
}

function describeTarget(target: { netns?: string; container?: string; docker?: string; host?: true }): string {
  if (target.host) return 'the host';
  if (target.container !== undefined) return `container ${target.container}`;
  if (target.docker !== undefined) return `Docker endpoint ${target.docker.slice(0, 12)}`;
  return target.netns ?? '';
}

function anySignal(a: AbortSignal, b: AbortSignal | undefined): AbortSignal {
  return b ? AbortSignal.any([a, b]) : a;
}
