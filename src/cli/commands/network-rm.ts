/** `vxnet network rm NAME [--force]`. */
import { connection, has, type CommandModule, type Connection } from '../command.ts';
import { withClient } from '../context.ts';

export interface NetworkRemoveCommand {
  kind: 'network-rm';
  connection: Connection;
  name: string;
  force: boolean;
}

export const networkRemove: CommandModule<NetworkRemoveCommand> = {
  path: 'network rm',
  summary: 'remove a network',
  args: ['NAME'],
  synopsis: 'NAME [--force]',
  flags: [{ name: 'force', kind: 'boolean', help: 'remove its endpoints first' }],
  connection: true,
  json: false,
  build: (p) => ({ kind: 'network-rm', connection: connection(p), name: p.positionals[0]!, force: has(p, 'force') }),
  async run(command, ctx) {
    await withClient(command.connection, (client) => client.removeNetwork(command.name, { force: command.force }, ctx.signal));
    return 0;
  },
};
