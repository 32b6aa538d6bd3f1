/** `vxnet network ls`. */
import { connection, has, type CommandModule, type Connection } from '../command.ts';
import { requestAndPrint } from '../context.ts';
import { formatNetworkTable } from '../format.ts';

export interface NetworkListCommand {
  kind: 'network-ls';
  connection: Connection;
  json: boolean;
}

export const networkList: CommandModule<NetworkListCommand> = {
  path: 'network ls',
  summary: 'list networks',
  args: [],
  synopsis: '',
  flags: [],
  connection: true,
  json: true,
  build: (p) => ({ kind: 'network-ls', connection: connection(p), json: has(p, 'json') }),
  run: (command, ctx) => requestAndPrint(command, ctx, (client) => client.listNetworks(ctx.signal), formatNetworkTable),
};
