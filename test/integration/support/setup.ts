/**
 * How the end-to-end tests put containers on networks: one namespace per container, attached either with
 * the API (waiting until its node reports the endpoint ready) or with the CLI, as an operator would. One
 * container at a time, so that addresses are handed out in the order the test lists them.
 */
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { ManagerClient } from '../../../src/client/client.ts';
import type { CreateNetworkRequest, Endpoint } from '../../../src/core/model.ts';
import { createCluster, type Cluster, type ClusterOptions, type SimHost, type StartAgentOptions } from '../../../src/testkit/cluster.ts';

/** [container label, node, network] */
export type Placement = readonly [label: string, node: string, network: string];

export interface Attached {
  netns: string;
  endpoint: Endpoint;
}

/** `vxnet ARGS` against the cluster, which must exit 0; its stdout. */
export async function cliOk(cluster: Cluster, args: readonly string[], options: { timeoutMs?: number } = {}): Promise<string> {
  const result = await cluster.cli(args, options);
  assert.equal(result.code, 0, `vxnet ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

/** A container per placement, attached with the API; each endpoint is ready when this returns. */
export async function attachWithApi(cluster: Cluster, client: ManagerClient, placements: readonly Placement[]): Promise<Record<string, Attached>> {
  const attached: Record<string, Attached> = {};
  for (const [label, node, network] of placements) {
    const netns = await cluster.addContainer(label);
    const endpoint = await client.createEndpoint({ network, node, netns }, { waitSeconds: 20 });
    assert.equal(endpoint.status, 'ready');
    attached[label] = { netns, endpoint };
  }
  return attached;
}

/** A container per placement, attached with `vxnet attach`; its address as the command printed it. */
export async function attachWithCli(cluster: Cluster, placements: readonly Placement[]): Promise<Record<string, { netns: string; ip: string }>> {
  const attached: Record<string, { netns: string; ip: string }> = {};
  for (const [label, node, network] of placements) {
    const netns = await cluster.addContainer(label);
    const printed = await cliOk(cluster, ['attach', network, '--node', node, '--netns', netns]);
    attached[label] = { netns, ip: printed.trim().split('/')[0]! };
  }
  return attached;
}

/** The networks most tests make: blue (VNI 1000, 192.168.1.0/24) and red (VNI 2000, 192.168.2.0/24). */
export const BLUE: CreateNetworkRequest = { name: 'blue', vni: 1000, subnets: [{ cidr: '192.168.1.0/24' }] };
export const RED: CreateNetworkRequest = { name: 'red', vni: 2000, subnets: [{ cidr: '192.168.2.0/24' }] };

/** An admin client over the manager's socket, with which `networks` are created, in order; closed if one fails. */
export async function adminWithNetworks(cluster: Cluster, networks: readonly CreateNetworkRequest[]): Promise<ManagerClient> {
  const admin = new ManagerClient({ url: cluster.manager.socketUrl, token: cluster.manager.adminToken });
  try {
    for (const network of networks) await admin.createNetwork(network);
  } catch (err) {
    admin.close();
    throw err;
  }
  return admin;
}

/** A suite's `after`: closes its admin client and destroys its cluster, whichever of them `before` made. */
export async function tearDown(cluster: Cluster | undefined, admin?: ManagerClient): Promise<void> {
  admin?.close();
  await cluster?.destroy();
}

/** What a suite's `before` made, read inside its tests; reading it before `before` ran is a mistake of the test. */
export function madeInBefore<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`the suite's ${what} is made in before(); it is read too early`);
  return value;
}

export interface ClusterSuiteOptions {
  cluster: ClusterOptions;
  /**
   * With `startDaemons: false`: the hosts whose agents start, by name (default every host); the others are
   * the test's (a stranger, an attacker).
   */
  agentsOn?: readonly string[];
  /** with `startDaemons: false`: how a host's agent starts (default: the worker token, no more arguments) */
  agent?: (host: SimHost, cluster: Cluster) => StartAgentOptions;
  /** created in this order by the admin client, once the daemons run */
  networks: readonly CreateNetworkRequest[];
  /** containers attached with the API, one at a time in this order, before the first test */
  attach?: readonly Placement[];
}

export interface ClusterSuite {
  readonly cluster: Cluster;
  /** a client over the manager's socket with the admin token */
  readonly admin: ManagerClient;
  /** the attached containers by label: those of `attach`, then those the tests add with `attach()` */
  readonly c: Record<string, Attached>;
  host(which: number | string): SimHost;
  /** one more container on `network` (default blue) of `node`, ready when this returns */
  attach(label: string, node: string, network?: string): Promise<Attached>;
}

/**
 * The set-up most end-to-end suites share, registered as the calling suite's `before` and `after`: the
 * cluster, its daemons, an admin client with `networks`, the `attach` containers; after the tests, the
 * admin client closed and the cluster destroyed (also when `before` failed half-way). Hooks run in the order
 * registered: a suite's own `before` registered after this call runs once this set-up is done, its own
 * `after` registered before this call runs while the cluster still stands.
 */
export function clusterSuite(options: ClusterSuiteOptions): ClusterSuite {
  if (options.cluster.startDaemons !== false && (options.agentsOn || options.agent)) {
    throw new Error('clusterSuite: agentsOn and agent choose which agents start and how, so they need startDaemons: false.');
  }
  let cluster: Cluster | undefined;
  let admin: ManagerClient | undefined;
  const c: Record<string, Attached> = {};
  const suite: ClusterSuite = {
    get cluster() {
      return madeInBefore(cluster, 'cluster');
    },
    get admin() {
      return madeInBefore(admin, 'admin client');
    },
    c,
    host: (which) => suite.cluster.host(which),
    async attach(label, node, network = 'blue') {
      Object.assign(c, await attachWithApi(suite.cluster, suite.admin, [[label, node, network]]));
      return c[label]!;
    },
  };
  before(async () => {
    cluster = await createCluster(options.cluster);
    if (options.cluster.startDaemons === false) {
      const made = cluster;
      const agentsOn = options.agentsOn ? options.agentsOn.map((name) => made.host(name)) : made.hosts;
      await cluster.startManager();
      await Promise.all(agentsOn.map((host) => made.startAgent(host, options.agent?.(host, made))));
    }
    admin = await adminWithNetworks(cluster, options.networks);
    Object.assign(c, await attachWithApi(cluster, admin, options.attach ?? []));
  });
  after(() => tearDown(cluster, admin));
  return suite;
}
