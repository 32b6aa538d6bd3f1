/** `vxnet endpoint ls [--network NAME] [--node NODE]`. */
import { connection, has, one, type CommandModule, type Connection } from '../command.ts';
import { withClient } from '../context.ts';
import { formatEndpointTable, formatJson } from '../format.ts';

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
  build(p) {
    const filter: { network?: string; node?: string } = {};
    const network = one(p, 'network');
    if (network !== undefined) filter.network = network;
    const node = one(p, 'node');
    if (node !== undefined) filter.node = node;
    return { kind: 'endpoint-ls', connection: connection(p), json: has(p, 'json'), filter };
  },
  async run(command, ctx) {
    const endpoints = await withClient(command.connection, (client) => client.listEndpoints(command.filter, ctx.signal));
    ctx.stdout(command.json ? formatJson(endpoints) : formatEndpointTable(endpoints));
    return 0;
  },
};
