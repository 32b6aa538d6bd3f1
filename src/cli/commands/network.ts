/** `vxnet network create|ls|inspect|rm`. */
import type { Command } from '../args.ts';
import { formatJson, formatNetworkCreated, formatNetworkDetail, formatNetworkTable } from '../format.ts';
import { withClient, type CommandContext } from './context.ts';

export async function networkCreate(command: Extract<Command, { kind: 'network-create' }>, ctx: CommandContext): Promise<number> {
  const network = await withClient(command.connection, (client) => client.createNetwork(command.request, ctx.signal));
  ctx.stdout(command.json ? formatJson(network) : formatNetworkCreated(network));
  return 0;
}

export async function networkList(command: Extract<Command, { kind: 'network-ls' }>, ctx: CommandContext): Promise<number> {
  const networks = await withClient(command.connection, (client) => client.listNetworks(ctx.signal));
  ctx.stdout(command.json ? formatJson(networks) : formatNetworkTable(networks));
  return 0;
}

export async function networkInspect(command: Extract<Command, { kind: 'network-inspect' }>, ctx: CommandContext): Promise<number> {
  const detail = await withClient(command.connection, (client) => client.inspectNetwork(command.name, ctx.signal));
  ctx.stdout(formatNetworkDetail(detail));
  return 0;
}

export async function networkRemove(command: Extract<Command, { kind: 'network-rm' }>, ctx: CommandContext): Promise<number> {
  await withClient(command.connection, (client) => client.removeNetwork(command.name, { force: command.force }, ctx.signal));
  return 0;
}
