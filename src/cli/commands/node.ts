/** `vxnet node ls`. */
import type { Command } from '../args.ts';
import { formatJson, formatNodeTable } from '../format.ts';
import { withClient, type CommandContext } from './context.ts';

export async function nodeList(command: Extract<Command, { kind: 'node-ls' }>, ctx: CommandContext): Promise<number> {
  const nodes = await withClient(command.connection, (client) => client.listNodes(ctx.signal));
  ctx.stdout(command.json ? formatJson(nodes) : formatNodeTable(nodes, ctx.now()));
  return 0;
}
