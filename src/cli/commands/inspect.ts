/**
 * `vxnet node inspect NAME` and `vxnet endpoint inspect ID`: one object with, per network, the peers
 * (VTEPs) its traffic goes to (JSON), from the manager's lists (inspect-views.ts).
 */
import { VxnetError } from '../../core/errors.ts';
import type { Endpoint, Network, NodeStatus } from '../../core/model.ts';
import { connection, type CommandModule, type Connection } from '../command.ts';
import { requestAndPrint } from '../context.ts';
import { formatJson } from '../format.ts';
import { endpointView, nodeView } from './inspect-views.ts';

export interface InspectCommand<K extends string> {
  kind: K;
  connection: Connection;
  key: string;
}

type View = (key: string, nodes: readonly NodeStatus[], networks: readonly Network[], endpoints: readonly Endpoint[]) => object | undefined;

function inspectCommand<K extends string>(kind: K, what: 'node' | 'endpoint', arg: string, summary: string, view: View): CommandModule<InspectCommand<K>> {
  return {
    path: `${what} inspect`,
    summary,
    args: [arg],
    synopsis: arg,
    flags: [],
    connection: true,
    // The output is always JSON; --json is accepted so scripts may pass it everywhere.
    json: true,
    build: (p) => ({ kind, connection: connection(p), key: p.positionals[0]! }),
    run: (command, ctx) =>
      requestAndPrint(
        command,
        ctx,
        async (client) => {
          const [nodes, networks, endpoints] = await Promise.all([client.listNodes(ctx.signal), client.listNetworks(ctx.signal), client.listEndpoints(undefined, ctx.signal)]);
          const found = view(command.key, nodes, networks, endpoints);
          if (!found) throw new VxnetError('not_found', `${what} ${command.key} does not exist.`);
          return found;
        },
        formatJson,
      ),
  };
}

export const nodeInspect = inspectCommand('node-inspect', 'node', 'NAME', 'show a node, its endpoints and the peers (VTEPs) of its networks (JSON)', nodeView);
export const endpointInspect = inspectCommand('endpoint-inspect', 'endpoint', 'ID', 'show an endpoint, its node and network, and the peers (VTEPs) its traffic goes to (JSON)', endpointView);
