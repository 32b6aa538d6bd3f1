/** `vxnet node ls`. */
import { connection, has, type CommandModule, type Connection } from '../command.ts';
import { withClient } from '../context.ts';
import { formatJson, formatNodeTable } from '../format.ts';

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
  async run(command, ctx) {
    const nodes = await withClient(command.connection, (client) => client.listNodes(ctx.signal));
    ctx.stdout(command.json ? formatJson(nodes) : formatNodeTable(nodes, ctx.now()));
    return 0;
  },
};
