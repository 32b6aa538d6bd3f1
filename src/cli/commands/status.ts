/**
 * `vxnet status`: the cluster at a glance, from the manager's point of view, with what looks wrong: nodes
 * that stopped sending heartbeats, endpoints their agent could not set up, and endpoints waiting on a node
 * that is down. Each node's confirmed revision is shown, not judged: an agent learns the revision from the
 * watch (a ping every 10 s when nothing concerns it) and reports it every 5 s, so being a few revisions
 * behind for up to 15 s is normal, and one look cannot tell how long a node has been behind.
 */
import type { Endpoint, Info, Network, NodeStatus } from '../../core/model.ts';
import { connection, has, type CommandModule, type Connection } from '../command.ts';
import { withClient } from '../context.ts';
import { formatJson, formatLastSeen, formatTable } from '../format.ts';

export interface StatusCommand {
  kind: 'status';
  connection: Connection;
  json: boolean;
}

export interface ClusterStatus {
  clusterId: string;
  revision: number;
  nodes: { total: number; up: number; down: number };
  networks: number;
  endpoints: { total: number; ready: number; pending: number; error: number };
  /** per node: state, endpoints on it, the revision it confirmed */
  perNode: { name: string; state: NodeStatus['state']; endpoints: number; reconciledRevision: number; lastSeen: string | null }[];
  /** one sentence each; empty when nothing looks wrong */
  problems: string[];
}

/** Pure: the status from the manager's four answers. */
export function clusterStatus(info: Info, nodes: readonly NodeStatus[], networks: readonly Network[], endpoints: readonly Endpoint[], now: Date): ClusterStatus {
  const problems: string[] = [];
  const perNodeCount = new Map<string, number>();
  for (const ep of endpoints) perNodeCount.set(ep.node, (perNodeCount.get(ep.node) ?? 0) + 1);
  const down = new Set(nodes.filter((n) => n.state === 'down').map((n) => n.name));
  for (const node of nodes) {
    if (node.state === 'down') {
      const seen = node.lastSeen === null ? 'it has never sent one' : `last seen ${formatLastSeen(node.lastSeen, now)}`;
      problems.push(`node ${node.name} is down (no heartbeat: ${seen}); its endpoints keep forwarding as programmed but get no updates.`);
    }
  }
  const counts = { total: endpoints.length, ready: 0, pending: 0, error: 0 };
  for (const ep of endpoints) {
    counts[ep.status]++;
    if (ep.status === 'error') problems.push(`endpoint ${ep.id} (${ep.network} on ${ep.node}) failed: ${ep.message ?? 'no reason given'}`);
    else if (ep.status === 'pending' && down.has(ep.node)) problems.push(`endpoint ${ep.id} (${ep.network} on ${ep.node}) waits for node ${ep.node}, which is down.`);
  }
  return {
    clusterId: info.clusterId,
    revision: info.revision,
    nodes: { total: nodes.length, up: nodes.length - down.size, down: down.size },
    networks: networks.length,
    endpoints: counts,
    perNode: nodes.map((n) => ({ name: n.name, state: n.state, endpoints: perNodeCount.get(n.name) ?? 0, reconciledRevision: n.reconciledRevision, lastSeen: n.lastSeen })),
    problems,
  };
}

/** Pure: the human form. */
export function formatStatus(status: ClusterStatus, now: Date): string {
  const { nodes, endpoints } = status;
  const lines = [
    `cluster   ${status.clusterId} at revision ${status.revision}`,
    `nodes     ${nodes.total} (${nodes.up} up, ${nodes.down} down)`,
    `networks  ${status.networks}`,
    `endpoints ${endpoints.total} (${endpoints.ready} ready, ${endpoints.pending} pending, ${endpoints.error} failed)`,
  ];
  if (status.perNode.length > 0) {
    const revision = (n: ClusterStatus['perNode'][number]) => (n.reconciledRevision < status.revision ? `${n.reconciledRevision} (${status.revision - n.reconciledRevision} behind)` : String(n.reconciledRevision));
    const rows = status.perNode.map((n) => [n.name, n.state, String(n.endpoints), revision(n), formatLastSeen(n.lastSeen, now)]);
    lines.push('', formatTable(['NODE', 'STATE', 'ENDPOINTS', 'APPLIED-REVISION', 'LAST-SEEN'], rows).trimEnd());
  }
  lines.push('', status.problems.length === 0 ? 'no problems found' : `problems (${status.problems.length}):`);
  for (const problem of status.problems) lines.push(`  ${problem}`);
  return `${lines.join('\n')}\n`;
}

export const status: CommandModule<StatusCommand> = {
  path: 'status',
  summary: 'the cluster at a glance: nodes, networks, endpoints, and what looks wrong',
  args: [],
  synopsis: '',
  flags: [],
  connection: true,
  json: true,
  build: (p) => ({ kind: 'status', connection: connection(p), json: has(p, 'json') }),
  async run(command, ctx) {
    const answer = await withClient(command.connection, async (client) => {
      const [info, nodes, networks, endpoints] = await Promise.all([
        client.info(ctx.signal),
        client.listNodes(ctx.signal),
        client.listNetworks(ctx.signal),
        client.listEndpoints(undefined, ctx.signal),
      ]);
      return clusterStatus(info, nodes, networks, endpoints, ctx.now());
    });
    ctx.stdout(command.json ? formatJson(answer) : formatStatus(answer, ctx.now()));
    return 0;
  },
};
