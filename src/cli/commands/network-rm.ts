/** `vxnet network rm NAME [--force]`. */
import { connection, has, type CommandModule, type Connection } from '../command.ts';
import { withClient } from '../context.ts';
import { formatJson } from '../format.ts';

export interface NetworkRemoveCommand {
  kind: 'network-rm';
  connection: Connection;
  name: string;
  force: boolean;
  /** --json: print {"removed": NAME} */
  json?: true;
}

export const networkRemove: CommandModule<NetworkRemoveCommand> = {
  path: 'network rm',
  summary: 'remove a network',
  args: ['NAME'],
  synopsis: 'NAME [--force]',
  flags: [{ name: 'force', kind: 'boolean', help: 'remove its endpoints first' }],
  connection: true,
  json: true,
  build: (p) => ({
    kind: 'network-rm',
    connection: connection(p),
    name: p.positionals[0]!,
    force: has(p, 'force'),
    ...(has(p, 'json') ? { json: true as const } : {}),
  }),
  async run(command, ctx) {
    await withClient(command.connection, (client) => client.removeNetwork(command.name, { force: command.force }, ctx.signal));
    if (command.json) ctx.stdout(formatJson({ removed: command.name }));
    return 0;
  },
};
