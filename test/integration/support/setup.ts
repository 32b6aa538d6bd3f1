/**
 * How the end-to-end tests put containers on networks: one namespace per container, attached either with
 * the API (waiting until its node reports the endpoint ready) or with the CLI, as an operator would. One
 * container at a time, so that addresses are handed out in the order the test lists them.
 */
import assert from 'node:assert/strict';
import { ManagerClient } from '../../../src/client/client.ts';
import type { CreateNetworkRequest, Endpoint } from '../../../src/core/model.ts';
import type { Cluster, SimHost } from '../../../src/testkit/cluster.ts';

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

/**
 * For a cluster made with `startDaemons: false`: starts the manager and the agents of `agentsOn` only (the
 * other hosts are the test's: a stranger, an attacker) and creates network blue. Returns an admin client
 * over the manager's socket.
 */
export async function startWithBlue(cluster: Cluster, agentsOn: readonly SimHost[]): Promise<ManagerClient> {
  await cluster.startManager();
  await Promise.all(agentsOn.map((host) => cluster.startAgent(host)));
  return adminWithNetworks(cluster, [BLUE]);
}

/** A suite's `after`: closes its admin client and destroys its cluster, whichever of them `before` made. */
export async function tearDown(cluster: Cluster | undefined, admin?: ManagerClient): Promise<void> {
  admin?.close();
  await cluster?.destroy();
}
