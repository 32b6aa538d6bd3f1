/** `vxnet network inspect NAME`. */
import { connection, type CommandModule, type Connection } from '../command.ts';
import { withClient } from '../context.ts';
import { formatNetworkDetail } from '../format.ts';

export interface NetworkInspectCommand {
  kind: 'network-inspect';
  connection: Connection;
  name: string;
}

export const networkInspect: CommandModule<NetworkInspectCommand> = {
  path: 'network inspect',
  summary: 'show a network and its endpoints (JSON); an encrypted one with its tunnels, and a warning per tunnel that is down',
  args: ['NAME'],
  synopsis: 'NAME',
  flags: [],
  connection: true,
  // The output is always JSON; --json is accepted so scripts may pass it everywhere.
  json: true,
  build: (p) => ({ kind: 'network-inspect', connection: connection(p), name: p.positionals[0]! }),
  async run(command, ctx) {
    const detail = await withClient(command.connection, (client) => client.inspectNetwork(command.name, ctx.signal));
    ctx.stdout(formatNetworkDetail(detail));
    // a missing encrypted path is said on stderr too, where a person looking at the JSON notices it
    for (const warning of detail.warnings ?? []) ctx.stderr(`warning: ${warning}\n`);
    return 0;
  },
};
