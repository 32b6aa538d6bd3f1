/** `vxnet attach NETWORK`: the manager answers once the node's agent has set the endpoint up (or failed to). */
import { parseIPv4 } from '../../core/ipv4.ts';
import { parseIPv6 } from '../../core/ipv6.ts';
import { endpointAddresses, type CreateEndpointRequest } from '../../core/model.ts';
import { requireEndpointName, requireIfname } from '../../core/names.ts';
import {
  all,
  checked,
  connection,
  given,
  has,
  IFNAME_FLAG,
  integer,
  NETNS_FLAG,
  NODE_FLAG,
  one,
  required,
  targetOf,
  UsageError,
  type CommandModule,
  type Connection,
  type FlagSpec,
  type Parsed,
} from '../command.ts';
import { requestAndPrint } from '../context.ts';
import { formatEndpointAddress } from '../format.ts';

export const DEFAULT_ATTACH_TIMEOUT_SECONDS = 30;

/** `vxnet attach|detach --host`: the node itself (src/agent/host-endpoint.ts). */
export const HOST_FLAG: FlagSpec = { name: 'host', kind: 'boolean', help: 'the node itself: the host gets an address on the network (interface vxhVNI)' };

/** `{host: true}` with --host (alone: not with --netns, --container or --ifname), else undefined. */
export function hostTarget(p: Parsed): { host: true } | undefined {
  if (!has(p, 'host')) return undefined;
  for (const other of ['netns', 'container', 'ifname']) {
    if (one(p, other) !== undefined) throw new UsageError(`"vxnet ${p.path}" takes --host or --${other}, not both.`);
  }
  return { host: true };
}

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
  synopsis: 'NETWORK --node NODE --netns NAME|PATH | --container NAME|ID | --host [--ip IP] [--ifname NAME] [--name NAME] [--alias NAME]... [--timeout SECONDS]',
  flags: [
    NODE_FLAG,
    NETNS_FLAG,
    {
      name: 'container',
      kind: 'string',
      value: 'NAME|ID',
      help: "a running container of the node's Docker engine (its agent needs --docker-socket), started with any network, even none",
    },
    {
      name: 'ip',
      kind: 'string',
      value: 'IP',
      help: "address to give, IPv4 or IPv6 (default: the lowest free one; on a dual-stack network the other family's next free one comes with it)",
    },
    IFNAME_FLAG,
    HOST_FLAG,
    {
      name: 'name',
      kind: 'string',
      value: 'NAME',
      help: 'its DNS name on the network, unique there: NAME and NAME.NETWORK resolve to it at the gateway (default: the namespace name of --netns NAME)',
    },
    { name: 'alias', kind: 'string', value: 'NAME', repeatable: true, help: 'another DNS name, which other endpoints may share (repeatable)' },
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
    const target = hostTarget(p) ?? targetOf(p, { normalise: false });
    const node = required(p, 'node');
    const ifname = one(p, 'ifname');
    const request: CreateEndpointRequest = {
      network: p.positionals[0]!,
      node,
      ...target,
      ...given({ ifname: ifname === undefined ? undefined : checked(() => requireIfname(ifname)), ip: checkIp(one(p, 'ip')) }),
      ...namesOf(p),
    };
    const waitSeconds = integer(p, 'timeout') ?? DEFAULT_ATTACH_TIMEOUT_SECONDS;
    return { kind: 'attach', connection: connection(p), json: has(p, 'json'), request, waitSeconds };
  },

  run: (command, ctx) =>
    requestAndPrint(
      command,
      ctx,
      (client) => client.createEndpoint(command.request, { waitSeconds: command.waitSeconds }, ctx.signal),
      // every address it was given, one per line (dual stack: IPv4, then IPv6)
      (endpoint) => endpointAddresses(endpoint).map((a) => `${formatEndpointAddress(a)}\n`).join(''),
    ),
};

/**
 * `--name` and `--alias`, checked. Without --name a namespace given by name still answers to it (see
 * defaultEndpointName in core/names.ts): the manager is not asked to reserve it, so two hosts' namespaces
 * of one name never refuse each other.
 */
function namesOf(p: Parsed): { name?: string; aliases?: string[] } {
  const name = one(p, 'name');
  const aliases = all(p, 'alias');
  for (const alias of aliases) checked(() => requireEndpointName(alias, 'alias'));
  return given({ name: name === undefined ? undefined : checked(() => requireEndpointName(name, 'name')), aliases: aliases.length > 0 ? aliases : undefined });
}

function checkIp(ip: string | undefined): string | undefined {
  if (ip === undefined || parseIPv4(ip) !== undefined || (ip.includes(':') && parseIPv6(ip) !== undefined)) return ip;
  throw new UsageError(`--ip "${ip}" is not a valid IPv${ip.includes(':') ? 6 : 4} address.`);
}
