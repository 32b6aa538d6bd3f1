/** `vxnet node ls`. */
import { connection, has, type CommandModule, type Connection } from '../command.ts';
import { requestAndPrint } from '../context.ts';
import { formatNodeTable } from '../format.ts';

export interface NodeListCommand {
  kind: 'node-ls';
  connection: Connection;
  json: boolean;
}

export const nodeList: CommandModule<NodeListCommand> = {
  path: 'node ls',
  summary: 'list nodes',
  args: [],
  synopsis: '',
  flags: [],
  connection: true,
  json: true,
  build: (p) => ({ kind: 'node-ls', connection: connection(p), json: has(p, 'json') }),
  run: (command, ctx) => requestAndPrint(command, ctx, (client) => client.listNodes(ctx.signal), (nodes) => formatNodeTable(nodes, ctx.now())),
};
