/** `vxnet node inspect NAME`: a node, its endpoints and, per network, the peers it sends to (JSON). */
import { VxnetError } from '../../core/errors.ts';
import { connection, type CommandModule, type Connection } from '../command.ts';
import { requestAndPrint } from '../context.ts';
import { formatJson } from '../format.ts';
import { nodeView } from './inspect-views.ts';

export interface NodeInspectCommand {
  kind: 'node-inspect';
  connection: Connection;
  name: string;
}

export const nodeInspect: CommandModule<NodeInspectCommand> = {
  path: 'node inspect',
  summary: 'show a node, its endpoints and the peers (VTEPs) of its networks (JSON)',
  args: ['NAME'],
  synopsis: 'NAME',
  flags: [],
  connection: true,
  // The output is always JSON; --json is accepted so scripts may pass it everywhere.
  json: true,
  build: (p) => ({ kind: 'node-inspect', connection: connection(p), name: p.positionals[0]! }),
  run: (command, ctx) =>
    requestAndPrint(
      command,
      ctx,
      async (client) => {
        const [nodes, networks, endpoints] = await Promise.all([client.listNodes(ctx.signal), client.listNetworks(ctx.signal), client.listEndpoints(undefined, ctx.signal)]);
        const view = nodeView(command.name, nodes, networks, endpoints);
        if (!view) throw new VxnetError('not_found', `node ${command.name} does not exist.`);
        return view;
      },
      formatJson,
    ),
};
