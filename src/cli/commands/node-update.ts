/** `vxnet node update NAME --allow-network-create | --no-allow-network-create`. */
import { requireName } from '../../core/names.ts';
import { checked, connection, has, UsageError, type CommandModule, type Connection } from '../command.ts';
import { withClient } from '../context.ts';
import { formatJson, formatNodeTable } from '../format.ts';

export interface NodeUpdateCommand {
  kind: 'node-update';
  connection: Connection;
  name: string;
  allowNetworkCreate: boolean;
  json: boolean;
}

export const nodeUpdate: CommandModule<NodeUpdateCommand> = {
  path: 'node update',
  summary: 'grant or revoke a node the right to create networks (from Docker)',
  args: ['NAME'],
  synopsis: 'NAME --allow-network-create | --no-allow-network-create',
  flags: [
    {
      name: 'allow-network-create',
      kind: 'boolean',
      help: "the node may create networks with its certificate (docker network create on it), and delete unused ones it created",
    },
    { name: 'no-allow-network-create', kind: 'boolean', help: 'take that right away again' },
  ],
  connection: true,
  json: true,
  build(p) {
    const name = p.positionals[0]!;
    checked(() => requireName(name, 'node'));
    const allow = has(p, 'allow-network-create');
    const deny = has(p, 'no-allow-network-create');
    if (allow === deny) throw new UsageError('"vxnet node update" needs exactly one of --allow-network-create and --no-allow-network-create.');
    return { kind: 'node-update', connection: connection(p), name, allowNetworkCreate: allow, json: has(p, 'json') };
  },
  async run(command, ctx) {
    const node = await withClient(command.connection, (client) =>
      client.updateNode(command.name, { allowNetworkCreate: command.allowNetworkCreate }, ctx.signal),
    );
    ctx.stdout(command.json ? formatJson(node) : formatNodeTable([node], ctx.now()));
    return 0;
  },
};
