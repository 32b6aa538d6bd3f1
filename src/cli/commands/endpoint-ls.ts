/** `vxnet endpoint ls [--network NAME] [--node NODE]`. */
import { connection, given, has, one, type CommandModule, type Connection } from '../command.ts';
import { requestAndPrint } from '../context.ts';
import { formatEndpointTable } from '../format.ts';

export interface EndpointListCommand {
  kind: 'endpoint-ls';
  connection: Connection;
  json: boolean;
  filter: { network?: string; node?: string };
}

export const endpointList: CommandModule<EndpointListCommand> = {
  path: 'endpoint ls',
  summary: 'list endpoints',
  args: [],
  synopsis: '[--network NAME] [--node NODE]',
  flags: [
    { name: 'network', kind: 'string', value: 'NAME', help: 'only the endpoints of this network' },
    { name: 'node', kind: 'string', value: 'NODE', help: 'only the endpoints on this node' },
  ],
  connection: true,
  json: true,
  build: (p) => ({
    kind: 'endpoint-ls',
    connection: connection(p),
    json: has(p, 'json'),
    filter: given({ network: one(p, 'network'), node: one(p, 'node') }),
  }),
  run: (command, ctx) => requestAndPrint(command, ctx, (client) => client.listEndpoints(command.filter, ctx.signal), formatEndpointTable),
};
