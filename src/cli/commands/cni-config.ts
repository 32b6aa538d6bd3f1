/**
 * `vxnet cni config NETWORK`: the CNI network configuration list that puts containers on a vxnet network.
 * Port publishing (`podman run -p`, a pod's hostPort) is the standard `portmap` plugin's, chained after vxnet:
 * it declares the `portMappings` capability, so the runtime hands it the mappings, and it programs the DNAT
 * on the host from the address vxnet's result gives. vxnet does not redo what every CNI installation has.
 */
import { requireName } from '../../core/names.ts';
import { DEFAULT_CNI_SOCKET } from '../../cni/socket.ts';
import { checked, has, one, UsageError, type CommandModule } from '../command.ts';

export interface CniConfigCommand {
  kind: 'cni config';
  network: string;
  socket: string;
  /** chain the `portmap` plugin (default); --no-portmap leaves it out */
  portmap: boolean;
}

/** The standard plugin (containernetworking-plugins) that publishes container ports on the host. */
export const PORTMAP_PLUGIN = { type: 'portmap', capabilities: { portMappings: true }, snat: true } as const;

/** The conflist: the runtime's network named like the vxnet network, the `vxnet` plugin, then `portmap`. */
export function cniConfigList(network: string, socket: string, portmap = true): Record<string, unknown> {
  const plugin: Record<string, unknown> = { type: 'vxnet', network };
  if (socket !== DEFAULT_CNI_SOCKET) plugin['socket'] = socket;
  return { cniVersion: '1.0.0', name: network, plugins: portmap ? [plugin, PORTMAP_PLUGIN] : [plugin] };
}

export const cniConfig: CommandModule<CniConfigCommand> = {
  path: 'cni config',
  summary: 'print the CNI network configuration (conflist) for a network',
  args: ['NETWORK'],
  synopsis: 'NETWORK [--socket PATH] [--no-portmap]',
  flags: [
    {
      name: 'socket',
      kind: 'string',
      value: 'PATH',
      help: `the agent's CNI socket (its --cni-socket; default: ${DEFAULT_CNI_SOCKET})`,
    },
    { name: 'no-portmap', kind: 'boolean', help: 'leave out the standard portmap plugin (published ports, podman -p), e.g. where it is not installed' },
  ],
  connection: false,
  json: false,

  build(p) {
    const network = checked(() => requireName(p.positionals[0], 'network'));
    const socket = one(p, 'socket') ?? DEFAULT_CNI_SOCKET;
    if (!socket.startsWith('/')) throw new UsageError(`--socket needs an absolute path, not "${socket}".`);
    return { kind: 'cni config', network, socket, portmap: !has(p, 'no-portmap') };
  },

  async run(command, ctx) {
    ctx.stdout(`${JSON.stringify(cniConfigList(command.network, command.socket, command.portmap), null, 2)}\n`);
    return 0;
  },
};
