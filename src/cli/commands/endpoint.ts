/** `vxnet attach`, `vxnet detach`, `vxnet endpoint ls`. */
import { VxnetError } from '../../core/errors.ts';
import type { Command } from '../args.ts';
import { formatEndpointAddress, formatEndpointTable, formatJson } from '../format.ts';
import { withClient, type CommandContext } from './context.ts';

/** The manager answers once the node's agent has set the endpoint up (or failed to: then it throws). */
export async function attach(command: Extract<Command, { kind: 'attach' }>, ctx: CommandContext): Promise<number> {
  const endpoint = await withClient(command.connection, (client) =>
    client.createEndpoint(command.request, { waitSeconds: command.waitSeconds }, ctx.signal),
  );
  ctx.stdout(command.json ? formatJson(endpoint) : `${formatEndpointAddress(endpoint)}\n`);
  return 0;
}

/**
 * Finds the endpoint by (network, node, netns or container, ifname) — netns already normalised like the
 * manager's, a container as it was given to attach.
 */
export async function detach(command: Extract<Command, { kind: 'detach' }>, ctx: CommandContext): Promise<number> {
  await withClient(command.connection, async (client) => {
    const endpoints = await client.listEndpoints({ network: command.network, node: command.node }, ctx.signal);
    const endpoint = endpoints.find(
      (e) =>
        e.network === command.network &&
        e.node === command.node &&
        e.netns === command.netns &&
        e.container === command.container &&
        e.ifname === command.ifname,
    );
    if (!endpoint) {
      const target = command.container !== undefined ? `container ${command.container}` : command.netns;
      throw new VxnetError(
        'endpoint_not_found',
        `network ${command.network} has no endpoint on node ${command.node} in ${target} with interface ${command.ifname}.`,
      );
    }
    await client.deleteEndpoint(endpoint.id, {}, ctx.signal);
  });
  return 0;
}

export async function endpointList(command: Extract<Command, { kind: 'endpoint-ls' }>, ctx: CommandContext): Promise<number> {
  const endpoints = await withClient(command.connection, (client) => client.listEndpoints(command.filter, ctx.signal));
  ctx.stdout(command.json ? formatJson(endpoints) : formatEndpointTable(endpoints));
  return 0;
}
