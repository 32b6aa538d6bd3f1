/** `vxnet attach NETWORK`: the manager answers once the node's agent has set the endpoint up (or failed to). */
import type { CreateEndpointRequest } from '../../core/model.ts';
import { requireIfname } from '../../core/names.ts';
import { checked, connection, has, integer, one, required, targetOf, type CommandModule, type Connection } from '../command.ts';
import { withClient } from '../context.ts';
import { formatEndpointAddress, formatJson } from '../format.ts';

export const DEFAULT_ATTACH_TIMEOUT_SECONDS = 30;

export interface AttachCommand {
  kind: 'attach';
  connection: Connection;
  json: boolean;
  request: CreateEndpointRequest;
  waitSeconds: number;
}

export const attach: CommandModule<AttachCommand> = {
  path: 'attach',
  summary: 'connect a network namespace or a Docker container to a network',
  args: ['NETWORK'],
  synopsis: 'NETWORK --node NODE --netns NAME|PATH | --container NAME|ID [--ip IP] [--ifname NAME] [--timeout SECONDS]',
  flags: [
    { name: 'node', kind: 'string', value: 'NODE', help: 'the node that holds the namespace' },
    { name: 'netns', kind: 'string', value: 'NAME|PATH', help: 'namespace name (/run/netns/NAME) or path, e.g. /proc/PID/ns/net' },
    {
      name: 'container',
      kind: 'string',
      value: 'NAME|ID',
      help: "a running container of the node's Docker engine (its agent needs --docker-socket), started with any network, even none",
    },
    { name: 'ip', kind: 'ipv4', value: 'IP', help: 'address to give (default: the lowest free one)' },
    { name: 'ifname', kind: 'string', value: 'NAME', help: 'interface name inside the namespace (default: eth0)' },
    {
      name: 'timeout',
      kind: 'integer',
      value: 'SECONDS',
      help: `how long to wait for the node to set it up (default: ${DEFAULT_ATTACH_TIMEOUT_SECONDS}; 0: do not wait)`,
    },
  ],
  connection: true,
  json: true,

  build(p) {
    // the namespace goes as given (the manager normalises it); detach compares with the normalised form
    const target = targetOf(p, { normalise: false });
    const request: CreateEndpointRequest = { network: p.positionals[0]!, node: required(p, 'node'), ...target };
    const ifname = one(p, 'ifname');
    if (ifname !== undefined) request.ifname = checked(() => requireIfname(ifname));
    const ip = one(p, 'ip');
    if (ip !== undefined) request.ip = ip;
    const waitSeconds = integer(p, 'timeout') ?? DEFAULT_ATTACH_TIMEOUT_SECONDS;
    return { kind: 'attach', connection: connection(p), json: has(p, 'json'), request, waitSeconds };
  },

  async run(command, ctx) {
    const endpoint = await withClient(command.connection, (client) =>
      client.createEndpoint(command.request, { waitSeconds: command.waitSeconds }, ctx.signal),
    );
    ctx.stdout(command.json ? formatJson(endpoint) : `${formatEndpointAddress(endpoint)}\n`);
    return 0;
  },
};
