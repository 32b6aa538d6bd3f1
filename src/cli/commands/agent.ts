/** `vxnet agent`: runs the agent on this host until interrupted. */
import { requireName } from '../../core/names.ts';
import { checked, connectionOf, integer, one, required, UsageError, type AgentConnection, type CommandModule } from '../command.ts';
import { logToStderr, readCaFile } from '../context.ts';

// Type-only: keeps the lazy import below typed without loading the agent for other commands.
type RunAgent = typeof import('../../agent/main.ts').runAgent;

export interface AgentCommand {
  kind: 'agent';
  connection: AgentConnection;
  advertiseAddress: string;
  name: string | undefined;
  stateDir: string | undefined;
  watchTimeoutSeconds?: number;
  dockerSocket?: string;
  pluginSocket?: string;
}

export const agent: CommandModule<AgentCommand> = {
  path: 'agent',
  summary: 'run the agent on this host (programs VXLAN, bridges and endpoints)',
  args: [],
  synopsis:
    '--manager https://ADDR:PORT [--token TOKEN] --advertise-addr IP [--name NAME] [--state-dir DIR] [--docker-socket PATH [--plugin-socket PATH]]',
  flags: [
    { name: 'advertise-addr', kind: 'ipv4', value: 'IP', help: "this host's underlay address, the VTEP address peers send VXLAN to" },
    { name: 'name', kind: 'string', value: 'NAME', help: 'node name (default: the host name)' },
    {
      name: 'state-dir',
      kind: 'string',
      value: 'DIR',
      help: 'where the node certificate and key are kept (default: /var/lib/vxnet/agent); with them, no --token is needed',
    },
    {
      name: 'watch-timeout',
      kind: 'integer',
      value: 'SECONDS',
      help: 'reconnect when the manager has sent nothing for this long (default: 30; it pings every 10)',
    },
    {
      name: 'docker-socket',
      kind: 'string',
      value: 'PATH',
      help: "link the agent to the Docker engine with this API socket (e.g. /run/docker.sock): serve the vxnet network plugin, keep a Docker network per vxnet network, attach containers",
    },
    {
      name: 'plugin-socket',
      kind: 'string',
      value: 'PATH',
      help: 'where to serve the Docker plugin (default: /run/docker/plugins/vxnet.sock, where Docker looks)',
    },
  ],
  connection: true,
  json: false,

  build(p) {
    const name = one(p, 'name');
    if (name !== undefined) checked(() => requireName(name, 'node'));
    const command: AgentCommand = {
      kind: 'agent',
      connection: connectionOf(p),
      advertiseAddress: required(p, 'advertise-addr'),
      name,
      stateDir: one(p, 'state-dir'),
    };
    const watchTimeout = integer(p, 'watch-timeout');
    if (watchTimeout !== undefined) {
      if (watchTimeout < 1 || watchTimeout > 3600) throw new UsageError('--watch-timeout must be from 1 to 3600 seconds.');
      command.watchTimeoutSeconds = watchTimeout;
    }
    const dockerSocket = one(p, 'docker-socket');
    const pluginSocket = one(p, 'plugin-socket');
    for (const [flag, path] of [['docker-socket', dockerSocket], ['plugin-socket', pluginSocket]] as const) {
      if (path !== undefined && !path.startsWith('/')) throw new UsageError(`--${flag} needs an absolute path, not "${path}".`);
    }
    if (pluginSocket !== undefined && dockerSocket === undefined) {
      throw new UsageError('--plugin-socket needs --docker-socket: the plugin serves the Docker engine the agent is linked to.');
    }
    if (dockerSocket !== undefined) command.dockerSocket = dockerSocket;
    if (pluginSocket !== undefined) command.pluginSocket = pluginSocket;
    return command;
  },

  async run(command, ctx) {
    const { runAgent }: { runAgent: RunAgent } = await import('../../agent/main.ts');
    const options: Parameters<RunAgent>[0] = {
      managerUrl: command.connection.url,
      advertiseAddress: command.advertiseAddress,
      log: logToStderr(ctx),
    };
    // Without --name the agent uses the host name; without --token, the certificate in its state directory.
    if (command.name !== undefined) options.name = command.name;
    if (command.connection.token !== undefined) options.token = command.connection.token;
    if (command.connection.ca !== undefined) options.ca = readCaFile(command.connection.ca);
    if (command.stateDir !== undefined) options.stateDir = command.stateDir;
    if (command.watchTimeoutSeconds !== undefined) options.watchIdleMs = command.watchTimeoutSeconds * 1000;
    if (command.dockerSocket !== undefined) options.dockerSocket = command.dockerSocket;
    if (command.pluginSocket !== undefined) options.pluginSocket = command.pluginSocket;
    await runAgent(options, ctx.signal);
    return 0;
  },
};
