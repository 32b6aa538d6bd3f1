/**
 * The agent's Docker integration, wired: the plugin (network and IPAM driver) on its unix socket, the
 * network sync, both fed by the agent's view. Started by runAgent when `--docker-socket` is given.
 */
import { VxnetError, messageOf } from '../core/errors.ts';
import type { CreateNetworkRequest, Endpoint, Network, Node } from '../core/model.ts';
import { OWNED_PREFIX } from '../agent/dataplane.ts';
import { createRunner, type Runner } from '../agent/kernel/exec.ts';
import { findUnderlay } from '../agent/kernel/host.ts';
import { isIfname } from '../agent/kernel/validate.ts';
import { NetworkCatalogue } from './catalogue.ts';
import type { DockerEngineClient } from './engine-client.ts';
import { IpamDriver, type IpamManagerApi } from './ipam-driver.ts';
import { type EndpointApi, type NetworkAdminApi, NetworkDriver } from './network-driver.ts';
import { createPluginHandler, pluginRoutes, servePlugin } from './plugin-server.ts';
import { leaveStandIn } from './stand-in.ts';
import { DockerNetworkSync, ensureForwardAccept } from './sync.ts';

/** Where Docker looks for plugin sockets (moby pkg/plugins/discovery_unix.go). */
export const DEFAULT_PLUGIN_SOCKET = '/run/docker/plugins/vxnet.sock';

/** What the integration needs of the agent (Agent implements it). */
export interface DockerAgent {
  readonly view: {
    readonly networks: ReadonlyMap<string, Network>;
    readonly nodes: ReadonlyMap<string, Node>;
    readonly endpoints: ReadonlyMap<string, Endpoint>;
    readonly synced: boolean;
  };
  waitForEndpoint(id: string, timeoutMs: number, signal?: AbortSignal): Promise<void>;
  onViewChange(listener: () => void): () => void;
}

export interface DockerIntegrationOptions {
  node: string;
  agent: DockerAgent;
  engine: DockerEngineClient;
  /** the agent's own client: reservations and Docker endpoints of this node */
  nodeApi: IpamManagerApi & EndpointApi;
  /** a client with the token the agent was given: creates and deletes networks if that is the admin token */
  adminApi?: NetworkAdminApi;
  /** the agent's own client, which creates networks once an admin granted this node the right (`vxnet node update`) */
  nodeNetworkApi?: NetworkAdminApi;
  pluginSocket?: string;
  log?: (line: string) => void;
  run?: Runner;
}

export interface DockerIntegration {
  readonly catalogue: NetworkCatalogue;
  readonly sync: DockerNetworkSync;
  readonly pluginSocket: string;
  close(): Promise<void>;
}

export async function startDockerIntegration(options: DockerIntegrationOptions, signal: AbortSignal): Promise<DockerIntegration> {
  const log = options.log ?? (() => {});
  const run = options.run ?? createRunner();
  const catalogue = new NetworkCatalogue(options.agent.view);
  const sync = new DockerNetworkSync({
    engine: options.engine,
    catalogue,
    ready: () => options.agent.view.synced,
    log,
    afterPass: async (s) => {
      try {
        const self = options.agent.view.nodes.get(options.node)?.address;
        await ensureForwardAccept(run, log, await egressDevices(run, self, s), s);
      } catch (err) {
        log(`could not open Docker's DOCKER-USER chain to vxnet traffic: ${messageOf(err)}`);
      }
    },
  });
  const network = new NetworkDriver({
    node: options.node,
    catalogue,
    endpoints: options.nodeApi,
    ...(options.adminApi ? { admin: options.adminApi, canAdminister: adminProbe(options.adminApi, log) } : {}),
    ...(options.nodeNetworkApi
      ? { nodeNetworks: { api: options.nodeNetworkApi, allowed: () => options.agent.view.nodes.get(options.node)?.allowNetworkCreate === true } }
      : {}),
    agent: { endpoints: options.agent.view.endpoints, waitForEndpoint: (id, ms, s) => options.agent.waitForEndpoint(id, ms, s) },
    engine: options.engine,
    log,
  });
  const ipam = new IpamDriver({ api: options.nodeApi, catalogue, node: options.node, log });
  const socketPath = options.pluginSocket ?? DEFAULT_PLUGIN_SOCKET;
  const routes = pluginRoutes(network, ipam);
  // after `docker network rm`, once Docker has dropped it: a vxnet network that stayed gets it back
  const deleteRoute = routes.get('NetworkDriver.DeleteNetwork')!;
  routes.set('NetworkDriver.DeleteNetwork', {
    errorField: deleteRoute.errorField,
    run: async (body, s) => {
      try {
        return await deleteRoute.run(body, s);
      } finally {
        // Docker deletes the network after this answer, refused or not: a moment later the sync restores it if its vxnet network stayed
        sync.schedule(1_000);
      }
    },
  });
  const server = await servePlugin(socketPath, createPluginHandler(routes, log));
  log(`Docker plugin "vxnet" (network and IPAM driver) serving on ${socketPath}, engine ${options.engine.socketPath}`);
  // endpoints come and go far more often than networks: only a change of the networks calls for a pass
  let seen = '';
  const unsubscribe = options.agent.onViewChange(() => {
    const now = networksKey(options.agent.view);
    if (now === seen) return;
    seen = now;
    sync.schedule();
  });
  sync.start(signal);
  return {
    catalogue,
    sync,
    pluginSocket: socketPath,
    async close() {
      unsubscribe();
      await server.close();
      // Docker would otherwise wait 15 s per call for the agent and print a socket error (stand-in.ts)
      leaveStandIn(socketPath, options.node, log);
      await sync.idle();
    },
  };
}

/**
 * The interfaces vxnet containers reach the outside world through: the one holding this node's underlay
 * address and those of the default routes (never a vxnet device). Docker's bridges are none of them.
 */
export async function egressDevices(run: Runner, address: string | undefined, signal?: AbortSignal): Promise<string[]> {
  const [addrs, routes] = await Promise.all([
    run.run(['ip', '-j', 'addr', 'show'], { signal }),
    run.run(['ip', '-j', 'route', 'show', 'default'], { signal, allowFailure: true }),
  ]);
  const devices = new Set<string>();
  const underlay = address === undefined ? undefined : findUnderlay(addrs.stdout, address);
  if (underlay) devices.add(underlay.device);
  if (routes.code === 0 && routes.stdout.trim() !== '') {
    for (const route of JSON.parse(routes.stdout) as { dev?: unknown }[]) {
      if (isIfname(route.dev) && !route.dev.startsWith(OWNED_PREFIX)) devices.add(route.dev);
    }
  }
  return [...devices].sort();
}

/** What the sync depends on: which networks exist, with which subnets and flags; and whether the view is synced. */
function networksKey(view: DockerAgent['view']): string {
  const parts = [...view.networks.values()].map((n) => `${n.name}=${n.vni}/${n.subnets.map((s) => `${s.cidr}@${s.gateway}`).join(',')}/${n.internal}`);
  return `${view.synced}|${parts.sort().join(' ')}`;
}

/**
 * Whether the admin client holds the admin token, asked once: the manager answers a create without a name
 * with 400 to an admin and 403 to anyone else, and changes nothing either way.
 */
function adminProbe(api: NetworkAdminApi, log: (line: string) => void): () => Promise<boolean> {
  let known: boolean | undefined;
  return async () => {
    if (known !== undefined) return known;
    try {
      await api.createNetwork({} as CreateNetworkRequest);
      known = true; // cannot happen: the request has no name
    } catch (err) {
      if (!(err instanceof VxnetError)) throw err;
      if (err.code === 'bad_request' || err.code === 'invalid_name') known = true;
      else if (err.code === 'forbidden' || err.code === 'unauthorized') known = false;
      else throw err;
      if (!known) log('this agent has no admin token (--admin-token-file): docker network create binds to existing vxnet networks unless the node may create networks (vxnet node update NAME --allow-network-create)');
    }
    return known;
  };
}
