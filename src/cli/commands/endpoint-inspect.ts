/** `vxnet endpoint inspect ID`: an endpoint, its node and network, and the peers (VTEPs) its traffic goes to (JSON). */
import { VxnetError } from '../../core/errors.ts';
import { connection, type CommandModule, type Connection } from '../command.ts';
import { requestAndPrint } from '../context.ts';
import { formatJson } from '../format.ts';
import { endpointView } from './inspect-views.ts';

export interface EndpointInspectCommand {
  kind: 'endpoint-inspect';
  connection: Connection;
  id: string;
}

export const endpointInspect: CommandModule<EndpointInspectCommand> = {
  path: 'endpoint inspect',
  summary: 'show an endpoint, its node and network, and the peers (VTEPs) its traffic goes to (JSON)',
  args: ['ID'],
  synopsis: 'ID',
  flags: [],
  connection: true,
  // The output is always JSON; --json is accepted so scripts may pass it everywhere.
  json: true,
  build: (p) => ({ kind: 'endpoint-inspect', connection: connection(p), id: p.positionals[0]! }),
  run: (command, ctx) =>
    requestAndPrint(
      command,
      ctx,
      async (client) => {
        const [nodes, networks, endpoints] = await Promise.all([client.listNodes(ctx.signal), client.listNetworks(ctx.signal), client.listEndpoints(undefined, ctx.signal)]);
        const view = endpointView(command.id, nodes, networks, endpoints);
        if (!view) throw new VxnetError('not_found', `endpoint ${command.id} does not exist.`);
        return view;
      },
      formatJson,
    ),
};
