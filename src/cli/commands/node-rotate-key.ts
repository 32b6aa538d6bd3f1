/** `vxnet node rotate-key NAME`: the node's agent makes a new WireGuard key pair (encrypted networks). */
import { requireName } from '../../core/names.ts';
import { checked, connection, has, type CommandModule, type Connection } from '../command.ts';
import { withClient } from '../context.ts';
import { formatJson } from '../format.ts';

export interface NodeRotateKeyCommand {
  kind: 'node-rotate-key';
  connection: Connection;
  name: string;
  json: boolean;
}

export const nodeRotateKey: CommandModule<NodeRotateKeyCommand> = {
  path: 'node rotate-key',
  summary: "have a node make a new WireGuard key pair (its peers take the new public key)",
  args: ['NAME'],
  synopsis: 'NAME',
  flags: [],
  connection: true,
  json: true,
  build(p) {
    const name = p.positionals[0]!;
    checked(() => requireName(name, 'node'));
    return { kind: 'node-rotate-key', connection: connection(p), name, json: has(p, 'json') };
  },
  async run(command, ctx) {
    const node = await withClient(command.connection, (client) => client.updateNode(command.name, { rotateKey: true }, ctx.signal));
    ctx.stdout(
      command.json
        ? formatJson(node)
        : `node ${node.name} asked for a new WireGuard key (rotation ${node.keyRotation ?? 0}); its agent registers the new public key\n`,
    );
    return 0;
  },
};
