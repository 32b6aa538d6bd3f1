/** `vxnet node rm NAME [--drain]`. */
import { requireName } from '../../core/names.ts';
import { checked, connection, has, type CommandModule, type Connection } from '../command.ts';
import { withClient } from '../context.ts';
import { formatJson } from '../format.ts';

export interface NodeRemoveCommand {
  kind: 'node-rm';
  connection: Connection;
  name: string;
  drain: boolean;
  /** --json: print {"removed": NAME} */
  json?: true;
}

export const nodeRemove: CommandModule<NodeRemoveCommand> = {
  path: 'node rm',
  summary: "remove a node; --drain first withdraws its endpoints from every peer",
  args: ['NAME'],
  synopsis: 'NAME [--drain]',
  flags: [{ name: 'drain', kind: 'boolean', help: "delete the node's endpoints first (releasing their addresses)" }],
  connection: true,
  json: true,
  build(p) {
    const name = p.positionals[0]!;
    checked(() => requireName(name, 'node'));
    return { kind: 'node-rm', connection: connection(p), name, drain: has(p, 'drain'), ...(has(p, 'json') ? { json: true as const } : {}) };
  },
  async run(command, ctx) {
    await withClient(command.connection, (client) => client.removeNode(command.name, { drain: command.drain }, ctx.signal));
    if (command.json) ctx.stdout(formatJson({ removed: command.name }));
    return 0;
  },
};
