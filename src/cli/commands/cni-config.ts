/** `vxnet cni config NETWORK`: the CNI network configuration list that puts containers on a vxnet network. */
import { requireName } from '../../core/names.ts';
import { DEFAULT_CNI_SOCKET } from '../../cni/protocol.ts';
import { checked, one, UsageError, type CommandModule } from '../command.ts';

export interface CniConfigCommand {
  kind: 'cni config';
  network: string;
  socket: string;
}

/** The conflist: the runtime's network named like the vxnet network, one plugin of type `vxnet`. */
export function cniConfigList(network: string, socket: string): Record<string, unknown> {
  const plugin: Record<string, unknown> = { type: 'vxnet', network };
  if (socket !== DEFAULT_CNI_SOCKET) plugin['socket'] = socket;
  return { cniVersion: '1.0.0', name: network, plugins: [plugin] };
}

export const cniConfig: CommandModule<CniConfigCommand> = {
  path: 'cni config',
  summary: 'print the CNI network configuration (conflist) for a network',
  args: ['NETWORK'],
  synopsis: 'NETWORK [--socket PATH]',
  flags: [
    {
      name: 'socket',
      kind: 'string',
      value: 'PATH',
      help: `the agent's CNI socket (its --cni-socket; default: ${DEFAULT_CNI_SOCKET})`,
    },
  ],
  connection: false,
  json: false,

  build(p) {
    const network = checked(() => requireName(p.positionals[0], 'network'));
    const socket = one(p, 'socket') ?? DEFAULT_CNI_SOCKET;
    if (!socket.startsWith('/')) throw new UsageError(`--socket needs an absolute path, not "${socket}".`);
    return { kind: 'cni config', network, socket };
  },

  async run(command, ctx) {
    ctx.stdout(`${JSON.stringify(cniConfigList(command.network, command.socket), null, 2)}\n`);
    return 0;
  },
};
