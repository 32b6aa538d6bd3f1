/** `vxnet network inspect NAME`. */
import { connection, type CommandModule, type Connection } from '../command.ts';
import { requestAndPrint } from '../context.ts';
import { formatNetworkDetail } from '../format.ts';

export interface NetworkInspectCommand {
  kind: 'network-inspect';
  connection: Connection;
  name: string;
}

export const networkInspect: CommandModule<NetworkInspectCommand> = {
  path: 'network inspect',
  summary: 'show a network and its endpoints (JSON)',
  args: ['NAME'],
  synopsis: 'NAME',
  flags: [],
  connection: true,
  // The output is always JSON; --json is accepted so scripts may pass it everywhere.
  json: true,
  build: (p) => ({ kind: 'network-inspect', connection: connection(p), name: p.positionals[0]! }),
  run: (command, ctx) => requestAndPrint(command, ctx, (client) => client.inspectNetwork(command.name, ctx.signal), formatNetworkDetail),
};
