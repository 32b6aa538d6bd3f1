/** `vxnet network create NAME`: the flags map one to one onto the API's CreateNetworkRequest. */
import type { CreateNetworkRequest } from '../../core/model.ts';
import { parseCidr, parseIPv4, whyNotCidr } from '../../core/ipv4.ts';
import { parseCidr6, parseIPv6, whyNotCidr6 } from '../../core/ipv6.ts';
import { connection, given, has, integer, one, UsageError, type CommandModule, type Connection, type FlagValue } from '../command.ts';
import { requestAndPrint } from '../context.ts';
import { formatNetworkCreated } from '../format.ts';

export interface NetworkCreateCommand {
  kind: 'network-create';
  connection: Connection;
  json: boolean;
  request: CreateNetworkRequest;
}

export const networkCreate: CommandModule<NetworkCreateCommand> = {
  path: 'network create',
  summary: 'create an overlay network',
  args: ['NAME'],
  synopsis: 'NAME [--vni N] [--subnet CIDR [--gateway IP]]... [--mtu N] [--port N] [--internal] [--multicast-group IP] [--encrypt]',
  flags: [
    { name: 'vni', kind: 'integer', value: 'N', help: 'VXLAN network identifier, 1-16777215 (default: the lowest free from 4097)' },
    // both families: checked in subnetsOf (an IPv6 one is told by its colon), not by the parser's IPv4 kinds
    {
      name: 'subnet',
      kind: 'string',
      value: 'CIDR',
      repeatable: true,
      help: 'an IPv4 or IPv6 subnet of the network (repeatable, one of each family for dual stack; default: a free /24 of 10.200.0.0/16)',
    },
    { name: 'gateway', kind: 'string', value: 'IP', repeatable: true, help: 'gateway of the --subnet before it (default: its first address)' },
    { name: 'mtu', kind: 'integer', value: 'N', help: "MTU inside the network (default: the smallest node's MTU - 50)" },
    { name: 'port', kind: 'integer', value: 'N', help: 'UDP port of the VXLAN traffic (default: 4789)' },
    { name: 'internal', kind: 'boolean', help: 'no route out of the network' },
    { name: 'multicast-group', kind: 'ipv4', value: 'IP', help: 'send broadcast and multicast to this underlay group' },
    { name: 'encrypt', kind: 'boolean', help: "carry the network's traffic between hosts only inside WireGuard tunnels (MTU: 60 bytes less)" },
  ],
  connection: true,
  json: true,

  build(p) {
    const subnets = subnetsOf(p.flags);
    const request: CreateNetworkRequest = {
      name: p.positionals[0]!,
      ...given({
        vni: integer(p, 'vni'),
        subnets: subnets.length > 0 ? subnets : undefined,
        mtu: integer(p, 'mtu'),
        port: integer(p, 'port'),
        internal: has(p, 'internal') ? true : undefined,
        multicastGroup: one(p, 'multicast-group'),
        encrypted: has(p, 'encrypt') ? true : undefined,
      }),
    };
    return { kind: 'network-create', connection: connection(p), json: has(p, 'json'), request };
  },

  run: (command, ctx) => requestAndPrint(command, ctx, (client) => client.createNetwork(command.request, ctx.signal), formatNetworkCreated),
};

/** Each --gateway belongs to the --subnet just before it. */
function subnetsOf(flags: readonly FlagValue[]): { cidr: string; gateway?: string }[] {
  const subnets: { cidr: string; gateway?: string }[] = [];
  for (const flag of flags) {
    if (typeof flag.value !== 'string') continue;
    if (flag.name === 'subnet') subnets.push({ cidr: checkSubnet(flag.value) });
    if (flag.name === 'gateway') {
      checkGateway(flag.value);
      const last = subnets.at(-1);
      if (!last) throw new UsageError(`--gateway ${flag.value} must follow the --subnet it belongs to.`);
      if (last.gateway !== undefined) throw new UsageError(`--subnet ${last.cidr} is given two gateways; give one --gateway after each --subnet.`);
      last.gateway = flag.value;
    }
  }
  return subnets;
}

/** A --subnet of either family, refused in the words of its family's parser. */
function checkSubnet(value: string): string {
  if (value.includes(':')) {
    if (parseCidr6(value) === undefined) throw new UsageError(`--subnet "${value}" is not a valid IPv6 subnet: ${whyNotCidr6(value)}.`);
  } else if (parseCidr(value) === undefined) {
    throw new UsageError(`--subnet "${value}" is not a valid IPv4 subnet: ${whyNotCidr(value)}.`);
  }
  return value;
}

function checkGateway(value: string): void {
  const v6 = value.includes(':');
  if (v6 ? parseIPv6(value) === undefined : parseIPv4(value) === undefined) {
    throw new UsageError(`--gateway "${value}" is not a valid IPv${v6 ? 6 : 4} address.`);
  }
}
