/** `vxnet network ls`. */
import { connection, has, type CommandModule, type Connection } from '../command.ts';
import { withClient } from '../context.ts';
import { formatJson, formatNetworkTable } from '../format.ts';

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
  async run(command, ctx) {
    const networks = await withClient(command.connection, (client) => client.listNetworks(ctx.signal));
    ctx.stdout(command.json ? formatJson(networks) : formatNetworkTable(networks));
    return 0;
  },
};
