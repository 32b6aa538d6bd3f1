/** `vxnet node ls`, `vxnet node rm`. */
import type { Command } from '../args.ts';
import { formatJson, formatNodeTable } from '../format.ts';
import { withClient, type CommandContext } from './context.ts';

export async function nodeList(command: Extract<Command, { kind: 'node-ls' }>, ctx: CommandContext): Promise<number> {
  const nodes = await withClient(command.connection, (client) => client.listNodes(ctx.signal));
  ctx.stdout(command.json ? formatJson(nodes) : formatNodeTable(nodes, ctx.now()));
  return 0;
}

export async function nodeRemove(command: Extract<Command, { kind: 'node-rm' }>, ctx: CommandContext): Promise<number> {
  await withClient(command.connection, (client) => client.removeNode(command.name, { drain: command.drain }, ctx.signal));
  return 0;
}
