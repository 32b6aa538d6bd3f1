/**
 * How the Docker tests build their world: a cluster whose hosts (or the first few) run a Docker engine each
 * (src/testkit/docker.ts), the manager, an agent per host linked to its engine, and the networks every
 * engine must list before the first test. A step that fails tears down what the earlier ones made; after
 * the tests, `destroyDockerCluster(engines, cluster, client)` does. `dockerSuite` registers both as the
 * calling suite's `before` and `after`.
 */
import { after, before } from 'node:test';
import type { ManagerClient } from '../../../src/client/client.ts';
import type { CreateNetworkRequest } from '../../../src/core/model.ts';
import { createCluster, type Cluster, type ClusterOptions, type StartAgentOptions } from '../../../src/testkit/cluster.ts';
import { destroyDockerCluster, dockerAgentArgs, startDockerEngines, type DockerEngine, type StartEnginesOptions } from '../../../src/testkit/docker.ts';
import { until } from './probes.ts';
import { adminWithNetworks, madeInBefore } from './setup.ts';

export interface DockerClusterOptions {
  cluster: Omit<ClusterOptions, 'startDaemons'>;
  /** how many hosts, from the first, run an engine (default all); the others run a plain agent */
  engineHosts?: number;
  engines?: StartEnginesOptions;
  /** the agent of an engine's host; default: linked to the engine, with the worker token */
  agent?: (engine: DockerEngine) => StartAgentOptions;
  networks: readonly CreateNetworkRequest[];
}

export interface DockerCluster {
  cluster: Cluster;
  client: ManagerClient;
  engines: DockerEngine[];
}

export async function startDockerCluster(options: DockerClusterOptions): Promise<DockerCluster> {
  const cluster = await createCluster({ ...options.cluster, startDaemons: false });
  let engines: DockerEngine[] = [];
  try {
    await cluster.startManager();
    engines = await startDockerEngines(cluster, cluster.hosts.slice(0, options.engineHosts), options.engines);
    const agentOf = options.agent ?? ((engine: DockerEngine) => ({ args: dockerAgentArgs(engine) }));
    await Promise.all(cluster.hosts.map((host, i) => cluster.startAgent(host, engines[i] ? agentOf(engines[i]) : {})));
    const client = await adminWithNetworks(cluster, options.networks);
    // the agents' plugins make each vxnet network a Docker network of every engine, a moment after it exists
    await Promise.all(
      engines.map(async (engine) => {
        for (const { name } of options.networks) {
          await until(`${name} on ${engine.host.name}`, async () => (await engine.docker(['network', 'inspect', name])).code === 0, 15_000);
        }
      }),
    );
    return { cluster, client, engines };
  } catch (err) {
    await destroyDockerCluster(engines, cluster);
    throw err;
  }
}

export interface DockerSuite {
  readonly cluster: Cluster;
  /** a client over the manager's socket with the admin token */
  readonly admin: ManagerClient;
  readonly engines: readonly DockerEngine[];
  /** the engine of the `n`-th host, from 1 */
  engine(n: number): DockerEngine;
}

/**
 * `startDockerCluster(options)` as the calling suite's `before`, and its teardown as its `after`. Call it in
 * the `describe` before the suite's own hooks that need the engines: hooks run in the order registered.
 */
export function dockerSuite(options: DockerClusterOptions): DockerSuite {
  let made: DockerCluster | undefined;
  const world = () => madeInBefore(made, 'Docker cluster');
  before(async () => {
    made = await startDockerCluster(options);
  });
  after(() => (made ? destroyDockerCluster(made.engines, made.cluster, made.client) : undefined));
  return {
    get cluster() {
      return world().cluster;
    },
    get admin() {
      return world().client;
    },
    get engines() {
      return world().engines;
    },
    engine: (n) => madeInBefore(world().engines[n - 1], `engine of host ${n}`),
  };
}
