/** `vxnet detach NETWORK`: finds the endpoint the way attach described it, then deletes it. */
import { VxnetError } from '../../core/errors.ts';
import { requireIfname } from '../../core/names.ts';
import { checked, connection, has, IFNAME_FLAG, NETNS_FLAG, NODE_FLAG, one, required, targetOf, type CommandModule, type Connection } from '../command.ts';
import { withClient } from '../context.ts';
import { HOST_FLAG, hostTarget } from './attach.ts';
import { formatJson } from '../format.ts';

export interface DetachCommand {
  kind: 'detach';
  connection: Connection;
  network: string;
  node: string;
  netns?: string;
  container?: string;
  /** --host: the node's own endpoint on the network (whatever its interface) */
  host?: true;
  ifname: string;
  /** --json: print {"detached": ENDPOINT ID, "network", "node"} */
  json?: true;
}

export const detach: CommandModule<DetachCommand> = {
  path: 'detach',
  summary: 'disconnect a network namespace or a Docker container from a network',
  args: ['NETWORK'],
  synopsis: 'NETWORK --node NODE --netns NAME|PATH | --container NAME|ID | --host [--ifname NAME]',
  flags: [
    NODE_FLAG,
    NETNS_FLAG,
    { name: 'container', kind: 'string', value: 'NAME|ID', help: 'the container, as given to vxnet attach --container' },
    IFNAME_FLAG,
    HOST_FLAG,
  ],
  connection: true,
  json: true,

  build(p) {
    const target = hostTarget(p) ?? targetOf(p);
    const ifname = one(p, 'ifname') ?? 'eth0';
    return {
      kind: 'detach',
      connection: connection(p),
      network: p.positionals[0]!,
      node: required(p, 'node'),
      ...target,
      ifname: checked(() => requireIfname(ifname)),
      ...(has(p, 'json') ? { json: true as const } : {}),
    };
  },

  /**
   * Finds the endpoint by (network, node, netns or container, ifname) — netns already normalised like the
   * manager's, a container as it was given to attach.
   */
  async run(command, ctx) {
    const id = await withClient(command.connection, async (client) => {
      const endpoints = await client.listEndpoints({ network: command.network, node: command.node }, ctx.signal);
      const endpoint = endpoints.find(
        (e) =>
          e.network === command.network &&
          e.node === command.node &&
          e.netns === command.netns &&
          e.container === command.container &&
          e.host === command.host &&
          (command.host === true || e.ifname === command.ifname),
      );
      if (!endpoint) {
        const target = command.host ? 'the host' : command.container !== undefined ? `container ${command.container}` : command.netns;
        throw new VxnetError(
          'endpoint_not_found',
          `network ${command.network} has no endpoint on node ${command.node} in ${target} with interface ${command.ifname}.`,
        );
      }
      await client.deleteEndpoint(endpoint.id, {}, ctx.signal);
      return endpoint.id;
    });
    if (command.json) ctx.stdout(formatJson({ detached: id, network: command.network, node: command.node }));
    return 0;
  },
};
