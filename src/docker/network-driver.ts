/**
 * The `vxnet` network driver: Docker networks and endpoints backed by vxnet networks and endpoints.
 *
 * Networks. A Docker network with the subnets of an existing vxnet network is *bound* to it (the sync does
 * this on every host, and so does a user's `docker network create --subnet` on a host that has no Docker
 * network for it yet; a second one on the same engine is refused); its `-o` options must then agree with
 * the network. Other subnets make a new vxnet network, which needs the admin
 * token, or the node's certificate once an administrator granted the node that right (`vxnet node update
 * NODE --allow-network-create`; the node may then also delete the unused networks it created). Its name is
 * the Docker network's, and libnetwork never passes that to a driver: so CreateNetwork checks everything it
 * can against the agent's view (the manager's own rules, run in a dry run) and answers, and the network is
 * created right after, once the engine can tell its name (`GET /networks/ID`). Until then the catalogue
 * marks the subnets as pending, and an address request for them waits. Should the creation still fail
 * (the name is taken by another vxnet network), the Docker network is removed again and the reason logged.
 *
 * Endpoints. libnetwork has already allocated the address (a reservation, see ipam-driver.ts) when it calls
 * CreateEndpoint: the vxnet endpoint is created on this node at that address, adopting the reservation, as
 * kind `docker`: the agent makes the veth pair, enslaves the host end and leaves the container end (with
 * the endpoint's MAC and MTU) in the host namespace. Join waits, bounded, until this node's agent reports
 * the pair ready, and names that end (`SrcName`) for libnetwork to move into the container, with the
 * gateway (so Docker adds no docker_gwbridge) and routes to the network's other subnets. The MAC is vxnet's,
 * derived from the address, so that every host's FDB and neighbour entries for it agree.
 */
import { VxnetError, messageOf } from '../core/errors.ts';
import { warnLine } from '../core/log.ts';
import { isEndpointName, MAX_ENDPOINT_ALIASES } from '../core/names.ts';
import { contains, macForIPv4, parseCidr, parseIPv4, requireCidr } from '../core/ipv4.ts';
import { contains6, formatIPv6, macForIPv6, parseCidr6, parseIPv6, requireCidr6 } from '../core/ipv6.ts';
import { endpointAddresses, type CreateEndpointRequest as VxnetEndpointRequest, type CreateNetworkRequest as VxnetNetworkRequest, type Endpoint, type Network } from '../core/model.ts';
import { deviceNames } from '../agent/dataplane.ts';
import { resolveNetwork } from '../manager/validation.ts';
import { DRIVER_NAME, type CreateEndpointRequest, type CreateNetworkRequest, type EndpointRequest, type JoinRequest, type JoinResponse, type NetworkIdRequest } from './api.ts';
import { type NetworkCatalogue, canonical } from './catalogue.ts';
import { checkBinding, parseNetworkSpec, requestOf, sameSubnets } from './network-spec.ts';

/** Calls a node may make for its own Docker endpoints. */
export interface EndpointApi {
  createEndpoint(req: VxnetEndpointRequest, options: { waitSeconds: number }, signal?: AbortSignal): Promise<Endpoint>;
  deleteEndpoint(id: string, options: { waitSeconds: number }, signal?: AbortSignal): Promise<void>;
  /** `aliases`: the container's `--network-alias`es on the network (DNS names); absent: unchanged */
  setDockerContainer(id: string, name: string, signal?: AbortSignal, aliases?: string[]): Promise<void>;
}

/** Calls that need the admin token (creating and deleting networks). */
export interface NetworkAdminApi {
  createNetwork(req: VxnetNetworkRequest, signal?: AbortSignal): Promise<Network>;
  removeNetwork(name: string, options?: { force?: boolean }, signal?: AbortSignal): Promise<void>;
}

/** The local agent. */
export interface LocalAgent {
  /** this node's endpoints (and others), from the agent's view */
  readonly endpoints: ReadonlyMap<string, Endpoint>;
  waitForEndpoint(id: string, timeoutMs: number, signal?: AbortSignal): Promise<void>;
}

/**
 * The engine: the names of new networks (and to remove one whose vxnet network could not be made), and its
 * vxnet networks (one per vxnet network: a second is refused).
 */
export interface EngineNetworks {
  inspectNetwork(id: string, signal?: AbortSignal): Promise<{ Name: string; Containers?: Record<string, { Name?: string; EndpointID?: string }> | null } | undefined>;
  removeNetwork(id: string, signal?: AbortSignal): Promise<void>;
  listNetworks(filter: { driver?: string }, signal?: AbortSignal): Promise<{ Id: string; Name: string; IPAM?: { Config?: { Subnet?: string }[] | null } }[]>;
  /** a container's networks with its aliases there (DNS names); absent: aliases are not looked up */
  inspectContainer?(id: string, signal?: AbortSignal): Promise<{ NetworkSettings?: { Networks?: Record<string, { EndpointID?: string; Aliases?: string[] | null }> | null } } | undefined>;
}

export interface NetworkDriverOptions {
  node: string;
  catalogue: NetworkCatalogue;
  endpoints: EndpointApi;
  /** undefined, or calls that will be refused: Docker then binds to existing networks only */
  admin?: NetworkAdminApi;
  /** whether `admin` holds the admin token (asked once, lazily; see integration.ts) */
  canAdminister?: () => Promise<boolean>;
  /** the node's own client, for networks, and whether the node holds the right to create them (its record in the view) */
  nodeNetworks?: { api: NetworkAdminApi; allowed: () => boolean };
  agent: LocalAgent;
  engine: EngineNetworks;
  log?: (line: string) => void;
  /** how long Join waits for the agent to set the veth pair up (default 20 s, below Docker's 30 s) */
  joinTimeoutMs?: number;
  /** how long the name of a new Docker network, or of a joined container, is looked for (default 30 s) */
  nameTimeoutMs?: number;
}

export class NetworkDriver {
  readonly #o: NetworkDriverOptions;
  readonly #log: (line: string) => void;
  /** libnetwork endpoint id → the vxnet endpoint made for it (the view has them too, a moment later) */
  readonly #endpoints = new Map<string, Endpoint>();

  constructor(options: NetworkDriverOptions) {
    this.#o = options;
    this.#log = options.log ?? (() => {});
  }

  getCapabilities(): { Scope: string; ConnectivityScope: string } {
    // "local": each engine keeps its own record of the network (the agents keep one on every host);
    // "global" data scope would need a cluster store in libnetwork. Connectivity spans hosts.
    return { Scope: 'local', ConnectivityScope: 'global' };
  }

  async createNetwork(req: CreateNetworkRequest): Promise<Record<string, never>> {
    const { catalogue } = this.#o;
    await catalogue.whenSynced();
    // the pools are this network's now (pending, or refused and released by libnetwork)
    for (const data of [...req.IPv4Data, ...req.IPv6Data]) if (catalogue.isOpening(data.Pool)) catalogue.closed(data.Pool);
    const spec = parseNetworkSpec(req);
    const cidrs = spec.subnets.map((s) => s.cidr);
    const matches = new Set(cidrs.map((c) => catalogue.bySubnet(c)).filter((n): n is Network => n !== undefined));
    if (matches.size > 0) {
      const network = [...matches][0]!;
      checkBinding(network, spec, matches.size);
      await this.#refuseAlias(req.NetworkID, network, cidrs);
      catalogue.bind(req.NetworkID, { name: network.name, cidrs });
      this.#log(`docker network ${short(req.NetworkID)} bound to vxnet network ${network.name} (${cidrs.join(', ')})`);
      return {};
    }
    const api = await this.#networkApi();
    if (!api) {
      const example = spec.subnets.map((s) => `--subnet ${s.cidr}`).join(' ');
      throw new VxnetError(
        'forbidden',
        `no vxnet network has subnet ${cidrs.join(', ')}, and this node may not create one: ` +
          `create it with "vxnet network create NAME ${example}" (it then shows up in docker network ls on every host), ` +
          `grant node ${this.#o.node} the right with "vxnet node update ${this.#o.node} --allow-network-create", or give the agent the admin token with --admin-token-file FILE.`,
      );
    }
    const request = requestOf(spec);
    // the manager's own rules, against what this node knows, so that a refusal reaches `docker network create`
    resolveNetwork(
      { ...request, name: 'pending' },
      {
        networks: catalogue.networks().map((n) => ({
          name: n.name,
          cidrs: n.subnets.filter((s) => !s.cidr.includes(':')).map((s) => requireCidr(s.cidr)),
          cidrs6: n.subnets.filter((s) => s.cidr.includes(':')).map((s) => requireCidr6(s.cidr)),
        })),
        vnis: new Map(catalogue.networks().map((n) => [n.vni, n.name])),
        nodes: catalogue.nodes(),
        now: new Date(),
      },
    );
    // not tied to this request: Docker stores the network after we answer, and only then has it a name
    catalogue.addPending(req.NetworkID, cidrs, (abort) => this.#createNamed(api, req.NetworkID, request, cidrs, abort));
    return {};
  }

  /**
   * One Docker network per vxnet network on an engine: a second one with the same subnets would be another
   * name for the same network (vxnet issue 17), so it is refused, naming the one to use. The sync never
   * makes a second one (it creates only where no Docker network has the subnets). Should the engine not
   * answer, the binding goes ahead: this check is for the user's sake, nothing depends on it.
   */
  async #refuseAlias(networkId: string, network: Network, cidrs: readonly string[]): Promise<void> {
    let present;
    try {
      present = await this.#o.engine.listNetworks({ driver: DRIVER_NAME });
    } catch (err) {
      this.#log(`could not list the engine's networks to look for another one of vxnet network ${network.name}: ${messageOf(err)}`);
      return;
    }
    const mine = new Set(cidrs.map((c) => canonical(c) ?? c));
    const other = present.find(
      (d) => d.Id !== networkId && (d.IPAM?.Config ?? []).some((c) => c.Subnet !== undefined && mine.has(canonical(c.Subnet) ?? c.Subnet)),
    );
    if (other) {
      throw new VxnetError(
        'network_exists',
        `subnet ${cidrs.join(', ')} is vxnet network ${network.name}'s, which Docker network ${other.Name} on this host already stands for: use --network ${other.Name} instead of a second Docker network for it.`,
      );
    }
  }

  /** Creates the vxnet network once the engine can tell the Docker network's name (see the module comment). */
  async #createNamed(
    api: NetworkAdminApi,
    networkId: string,
    request: Omit<VxnetNetworkRequest, 'name'>,
    cidrs: string[],
    signal: AbortSignal,
  ): Promise<Network | undefined> {
    const { engine, catalogue } = this.#o;
    const deadline = Date.now() + (this.#o.nameTimeoutMs ?? 30_000);
    let name: string | undefined;
    while (name === undefined) {
      if (signal.aborted) return undefined;
      try {
        name = (await engine.inspectNetwork(networkId, signal))?.Name;
      } catch (err) {
        if (signal.aborted) return undefined;
        this.#log(`looking up docker network ${short(networkId)} failed: ${messageOf(err)}`);
      }
      if (name !== undefined) break;
      if (Date.now() > deadline) {
        this.#log(`docker network ${short(networkId)} never appeared in the engine; no vxnet network made for ${cidrs.join(', ')}`);
        return undefined;
      }
      await sleep(10);
    }
    try {
      const network = await api.createNetwork({ ...request, name });
      catalogue.created(network.name, cidrs);
      catalogue.bind(networkId, { name: network.name, cidrs });
      this.#log(`created vxnet network ${network.name} (VNI ${network.vni}, ${cidrs.join(', ')}) for docker network ${short(networkId)}`);
      return network;
    } catch (err) {
      const existing = catalogue.byName(name);
      if (err instanceof VxnetError && err.code === 'network_exists' && existing && sameSubnets(existing, cidrs)) {
        catalogue.bind(networkId, { name, cidrs });
        return existing;
      }
      this.#log(`docker network ${name}: could not create vxnet network ${name} (${messageOf(err)}); removing the Docker network again`);
      try {
        await engine.removeNetwork(networkId);
      } catch (removeErr) {
        this.#log(`removing docker network ${name} failed: ${messageOf(removeErr)}`);
      }
      return undefined;
    }
  }

  /**
   * `docker network rm` (or the sync, after the vxnet network went): the vxnet network goes too, when this
   * node's credentials allow it and nothing uses it. Otherwise the vxnet network stays, and so must its
   * Docker network on this host: the refusal is answered as `Err`, but libnetwork honours a driver's error
   * here only when it is its own ForbiddenError, which a remote plugin cannot send (moby
   * libnetwork/network.go, deleteNetwork): it logs the sentence ("driver error deleting network") and
   * deletes the network anyway, and `docker network rm` prints success. So the refusal is also remembered
   * in the catalogue: the sync restores the Docker network at once, with the reason in its label
   * `io.vxnet.restored` and a warning in the agent's log (sync.ts), never silently.
   */
  async deleteNetwork(req: NetworkIdRequest, signal?: AbortSignal): Promise<Record<string, never>> {
    const { catalogue } = this.#o;
    await catalogue.whenSynced(undefined, signal);
    catalogue.cancelPending(req.NetworkID);
    const binding = catalogue.binding(req.NetworkID);
    catalogue.unbind(req.NetworkID);
    if (!binding) return {};
    const network = catalogue.byName(binding.name);
    // gone already, or a different network by now that happens to have the name
    if (!network || !sameSubnets(network, binding.cidrs)) return {};
    if (catalogue.boundElsewhere(req.NetworkID, network.name)) return {};
    const api = await this.#networkApi(network);
    if (!api) {
      throw this.#refusedRemoval(
        network.name,
        `docker network rm cannot delete vxnet network ${network.name} from node ${this.#o.node} (that needs the admin token, or the right to create networks and to have created it), so its Docker network is restored: use "vxnet network rm ${network.name}" instead.`,
      );
    }
    try {
      catalogue.deleted(network.name);
      await api.removeNetwork(network.name, {}, signal);
      this.#log(`deleted vxnet network ${network.name} (docker network rm)`);
    } catch (err) {
      if (err instanceof VxnetError && err.code === 'network_not_found') return {};
      // it stays, so its Docker network comes back
      catalogue.forgetDeleted(network.name);
      throw this.#refusedRemoval(network.name, `vxnet network ${network.name} stays, so its Docker network is restored: ${messageOf(err).replace(/\.$/, '')}.`);
    }
    return {};
  }

  /** Remembers why a `docker network rm` did not remove the vxnet network, for the sync's restore; the error to answer. */
  #refusedRemoval(name: string, sentence: string): VxnetError {
    this.#o.catalogue.removalRefused(name, sentence);
    this.#log(warnLine(sentence));
    return new VxnetError('forbidden', sentence);
  }

  /**
   * Who creates (or, given `network`, deletes) vxnet networks for Docker: the admin client when it holds the
   * admin token, else the node's own client when the node holds the right (and created `network`).
   */
  async #networkApi(network?: Network): Promise<NetworkAdminApi | undefined> {
    if (this.#o.admin && (await (this.#o.canAdminister?.() ?? Promise.resolve(true)))) return this.#o.admin;
    const own = this.#o.nodeNetworks;
    if (!own?.allowed()) return undefined;
    if (network !== undefined && network.createdBy !== this.#o.node) return undefined;
    return own.api;
  }

  async createEndpoint(req: CreateEndpointRequest, signal?: AbortSignal): Promise<{ Interface?: { MacAddress: string } }> {
    await this.#o.catalogue.whenSynced(undefined, signal);
    const { Address, AddressIPv6, MacAddress } = req.Interface;
    if (Address === '' && AddressIPv6 === '') {
      throw new VxnetError('bad_request', 'the endpoint has no address: vxnet networks need the vxnet IPAM driver (--ipam-driver vxnet).');
    }
    const ip = Address === '' ? undefined : hostPart(Address);
    const address = ip === undefined ? undefined : parseIPv4(ip);
    if (ip !== undefined && address === undefined) throw new VxnetError('invalid_address', `endpoint address ${JSON.stringify(Address)} is not an IPv4 address.`);
    const address6 = AddressIPv6 === '' ? undefined : parseIPv6(hostPart(AddressIPv6));
    if (AddressIPv6 !== '' && address6 === undefined) {
      throw new VxnetError('invalid_address', `endpoint address ${JSON.stringify(AddressIPv6)} is not an IPv6 address.`);
    }
    const ip6 = address6 === undefined ? undefined : formatIPv6(address6);
    const found = this.#o.catalogue.byAddress((ip ?? ip6)!);
    if (!found) throw new VxnetError('network_not_found', `address ${ip ?? ip6} is in no vxnet network.`);
    if (ip !== undefined && ip6 !== undefined && this.#o.catalogue.byAddress(ip6)?.network.name !== found.network.name) {
      throw new VxnetError('network_not_found', `address ${ip6} is not in an IPv6 subnet of vxnet network ${found.network.name}, where ${ip} is.`);
    }
    // derived from the IPv4 address when there is one, as the manager derives it (an IPv6-only endpoint's from its IPv6 one)
    const mac = address !== undefined ? macForIPv4(address) : macForIPv6(address6!);
    if (MacAddress !== '' && MacAddress.toLowerCase() !== mac) {
      throw new VxnetError(
        'bad_request',
        `vxnet derives each endpoint's MAC address from its ${address !== undefined ? 'IPv4' : 'IPv6'} address (${ip ?? ip6} has ${mac}), so --mac-address ${MacAddress} cannot be used.`,
      );
    }
    const first = (ip ?? ip6)!;
    let endpoint: Endpoint;
    try {
      endpoint = await this.#o.endpoints.createEndpoint(
        { network: found.network.name, node: this.#o.node, docker: req.EndpointID, ip: first, ...(ip !== undefined && ip6 !== undefined ? { ip6 } : {}), reserved: true },
        { waitSeconds: 0 },
        signal,
      );
    } catch (err) {
      // Docker does not repeat a CreateEndpoint, but an answer lost on the way back would look like this
      const existing = this.#local(req.EndpointID);
      if (!(err instanceof VxnetError && err.code === 'endpoint_exists' && existing && existing.ip === first)) throw err;
      endpoint = existing;
    }
    this.#endpoints.set(req.EndpointID, endpoint);
    return MacAddress === '' ? { Interface: { MacAddress: mac } } : {};
  }

  async join(req: JoinRequest, signal?: AbortSignal): Promise<JoinResponse> {
    await this.#o.catalogue.whenSynced(undefined, signal);
    const endpoint = this.#local(req.EndpointID);
    if (!endpoint) throw new VxnetError('endpoint_not_found', `Docker endpoint ${short(req.EndpointID)} has no vxnet endpoint on node ${this.#o.node}.`);
    // libnetwork moves the interface as soon as Join answers: it must exist by then
    await this.#o.agent.waitForEndpoint(endpoint.id, this.#o.joinTimeoutMs ?? 20_000, signal);
    const network = this.#o.catalogue.byName(endpoint.network);
    const addresses = endpointAddresses(endpoint);
    const own4 = addresses.find((a) => !a.ip.includes(':'));
    const own6 = addresses.find((a) => a.ip.includes(':'));
    // the network's other subnets are reached through this endpoint's gateway of their family (RouteType 0: via NextHop)
    const routes = (network?.subnets ?? []).flatMap((s) => {
      if (s.cidr.includes(':')) {
        const cidr = parseCidr6(s.cidr);
        return cidr !== undefined && own6 !== undefined && !contains6(cidr, parseIPv6(own6.ip)!) ? [{ Destination: s.cidr, RouteType: 0, NextHop: own6.gateway }] : [];
      }
      const cidr = parseCidr(s.cidr);
      return cidr !== undefined && own4 !== undefined && !contains(cidr, parseIPv4(own4.ip)!) ? [{ Destination: s.cidr, RouteType: 0, NextHop: own4.gateway }] : [];
    });
    if (endpoint.dockerContainer === undefined) void this.#nameContainer(req, endpoint.id);
    return {
      InterfaceName: { SrcName: deviceNames.peerVeth(endpoint.id), DstPrefix: 'eth' },
      Gateway: own4?.gateway ?? '',
      ...(own6 !== undefined ? { GatewayIPv6: own6.gateway } : {}),
      StaticRoutes: routes,
      DisableGatewayService: false,
    };
  }

  /**
   * Tells the manager the name of the container behind a Docker endpoint, for `vxnet endpoint ls`.
   * libnetwork passes a driver no container (CreateEndpoint and Join carry ids and port options only), but
   * once CreateEndpoint is done its endpoint, named after the container, is in the engine's network
   * details. Asked after Join has answered, never holding Docker up; a failure costs only the name.
   */
  async #nameContainer(req: JoinRequest, endpointId: string): Promise<void> {
    const deadline = Date.now() + (this.#o.nameTimeoutMs ?? 30_000);
    let lastError: unknown;
    while (Date.now() <= deadline) {
      try {
        const detail = await this.#o.engine.inspectNetwork(req.NetworkID);
        const [containerId, container] = Object.entries(detail?.Containers ?? {}).find(([, c]) => c.EndpointID === req.EndpointID) ?? [];
        const name = container?.Name;
        const aliases = name !== undefined && name !== '' ? await this.#aliasesOf(containerId!, req.EndpointID, name) : 'not yet';
        if (aliases !== 'not yet') {
          await this.#o.endpoints.setDockerContainer(endpointId, name!, undefined, aliases);
          return;
        }
        lastError = undefined;
      } catch (err) {
        // the engine holds a starting container's inspect until the start is done, which can outlast one call's time limit
        lastError = err;
      }
      await sleep(100);
    }
    if (lastError !== undefined) this.#log(`could not name the container of endpoint ${endpointId}: ${messageOf(lastError)}`);
  }

  /**
   * The container's `--network-alias`es on this endpoint's network, for DNS; without the container's own name
   * and the short id Docker adds to every container, and only those that are DNS labels. 'not yet' while the
   * engine's view of the container does not show this endpoint: Docker's inspect reads a snapshot that is
   * written after Join, and reading it too early would record no alias at all.
   */
  async #aliasesOf(containerId: string, endpointId: string, name: string): Promise<string[] | undefined | 'not yet'> {
    if (this.#o.engine.inspectContainer === undefined) return undefined;
    const inspected = await this.#o.engine.inspectContainer(containerId);
    if (!inspected) return undefined;
    const network = Object.values(inspected.NetworkSettings?.Networks ?? {}).find((n) => n.EndpointID === endpointId);
    if (network === undefined) return 'not yet';
    return (network.Aliases ?? []).filter((a) => a !== name && !containerId.startsWith(a) && isEndpointName(a)).slice(0, MAX_ENDPOINT_ALIASES);
  }

  leave(_req: EndpointRequest): Record<string, never> {
    // libnetwork moves the interface back here itself; the pair goes with DeleteEndpoint
    return {};
  }

  async deleteEndpoint(req: EndpointRequest, signal?: AbortSignal): Promise<Record<string, never>> {
    await this.#o.catalogue.whenSynced(undefined, signal);
    const endpoint = this.#local(req.EndpointID);
    this.#endpoints.delete(req.EndpointID);
    if (!endpoint) return {};
    try {
      await this.#o.endpoints.deleteEndpoint(endpoint.id, { waitSeconds: 0 }, signal);
    } catch (err) {
      if (!(err instanceof VxnetError && err.code === 'endpoint_not_found')) throw err;
    }
    return {};
  }

  endpointOperInfo(_req: EndpointRequest): { Value: Record<string, unknown> } {
    return { Value: {} };
  }

  /** The vxnet endpoint of a libnetwork endpoint on this node: made by this process, or in the agent's view. */
  #local(dockerEndpointId: string): Endpoint | undefined {
    const known = this.#endpoints.get(dockerEndpointId);
    if (known) return known;
    for (const endpoint of this.#o.agent.endpoints.values()) {
      if (endpoint.docker === dockerEndpointId && endpoint.node === this.#o.node) return endpoint;
    }
    return undefined;
  }
}

/** "10.1.0.5" of "10.1.0.5/24" (libnetwork's CIDR form of an interface address). */
function hostPart(address: string): string {
  const slash = address.indexOf('/');
  return slash < 0 ? address : address.slice(0, slash);
}

function short(id: string): string {
  return id.slice(0, 12);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
