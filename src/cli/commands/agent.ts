/** `vxnet agent`: runs the agent on this host until interrupted. */
import { requireName } from '../../core/names.ts';
import { canonicalUnderlay } from '../../core/underlay.ts';
import {
  checked, connectionOf, ENV_TOKEN, ENV_TOKEN_FILE, given, has, integer, METRICS_LISTEN_FLAG, metricsListenOf, one, required, UsageError, type AgentConnection, type CommandModule,
} from '../command.ts';
import { readCaFile, readTokenFile, tokenOf } from '../context.ts';
import { DEFAULT_CNI_SOCKET } from '../../cni/socket.ts';
import { daemonLogger, daemonLogOf, LOG_LEVEL_FLAG, type DaemonLog } from '../daemon-log.ts';

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
  /** --admin-token-file: lets Docker create and delete vxnet networks through this agent */
  adminTokenFile?: string;
  /** VXNET_TOKEN is set: the agent says it does not read it */
  envTokenIgnored?: true;
  /** --log-level, JOURNAL_STREAM: present only when given */
  log?: DaemonLog;
  /** --metrics-listen ADDR:PORT */
  metricsListen?: string;
  /** --cni-socket PATH: serve the CNI plugin there (without it: DEFAULT_CNI_SOCKET) */
  cniSocket?: string;
  /** --resolv-conf PATH: where the gateways' DNS forwards names that are not vxnet's */
  resolvConf?: string;
  /** --dataplane ovs: program Open vSwitch instead of Linux bridges */
  dataplane?: 'linux' | 'ovs';
  /** --ovs-db unix:PATH */
  ovsDb?: string;
  /** --no-cni: serve no CNI plugin */
  noCni?: true;
  /** --netns-prefix PREFIX: each network's namespace is PREFIX<VNI> (default vxnet-) */
  netnsPrefix?: string;
  /** --no-network-namespaces: every network's devices in the host namespace */
  noNetworkNamespaces?: true;
}

export const agent: CommandModule<AgentCommand> = {
  path: 'agent',
  summary: 'run the agent on this host (programs VXLAN, bridges and endpoints)',
  args: [],
  synopsis:
    '--manager https://ADDR:PORT [--token-file FILE] --advertise-addr IP [--name NAME] [--state-dir DIR] [--docker-socket PATH [--plugin-socket PATH] [--admin-token-file FILE]] [--cni-socket PATH | --no-cni] [--dataplane ovs [--ovs-db unix:PATH]]',
  flags: [
    { name: 'advertise-addr', kind: 'string', value: 'IP', help: "this host's underlay address, the VTEP address peers send VXLAN to (IPv4 or IPv6; every node of a cluster uses the same family)" },
    { name: 'name', kind: 'string', value: 'NAME', help: 'node name (default: the host name)' },
    {
      name: 'state-dir',
      kind: 'string',
      value: 'DIR',
      help: 'where the node certificate and key are kept (default: /var/lib/vxnet/agent); with them, no join token is needed',
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
    {
      name: 'admin-token-file',
      kind: 'string',
      value: 'FILE',
      help: 'file holding the admin token (mode 0600), for "docker network create/rm" to create and delete vxnet networks; never used to join',
    },
    {
      name: 'cni-socket',
      kind: 'string',
      value: 'PATH',
      help: `serve the CNI plugin ("vxnet cni install") on this unix socket (mode 0600; default: ${DEFAULT_CNI_SOCKET}, the plugin's default)`,
    },
    {
      name: 'resolv-conf',
      kind: 'string',
      value: 'PATH',
      help: "the resolv.conf whose nameservers get the names the networks' gateways do not answer themselves (default: /etc/resolv.conf)",
    },
    {
      name: 'dataplane',
      kind: 'string',
      value: 'linux|ovs',
      help: 'what programs this host: Linux bridges and VXLAN devices (linux, the default) or Open vSwitch (ovs: one bridge vxnovs, OpenFlow rules)',
    },
    {
      name: 'ovs-db',
      kind: 'string',
      value: 'unix:PATH',
      help: "Open vSwitch's database socket with --dataplane ovs (default: unix:$OVS_RUNDIR/db.sock, OVS_RUNDIR defaulting to /var/run/openvswitch)",
    },
    { name: 'no-cni', kind: 'boolean', help: 'serve no CNI plugin (by default the agent serves it on the --cni-socket path)' },
    {
      name: 'netns-prefix',
      kind: 'string',
      value: 'PREFIX',
      help: "with the Linux data plane, each network's bridge and VXLAN device live in network namespace PREFIX<VNI> (default: vxnet-; pinned in /run/netns)",
    },
    { name: 'no-network-namespaces', kind: 'boolean', help: "keep every network's bridge and VXLAN device in the host's namespace (the layout before issue 19)" },
    METRICS_LISTEN_FLAG,
    LOG_LEVEL_FLAG,
  ],
  connection: true,
  json: false,

  build(p) {
    const name = one(p, 'name');
    if (name !== undefined) checked(() => requireName(name, 'node'));
    const command: AgentCommand = {
      kind: 'agent',
      connection: connectionOf(p, { envToken: false }),
      advertiseAddress: checked(() => canonicalUnderlay(required(p, 'advertise-addr'), '--advertise-addr')),
      name,
      stateDir: one(p, 'state-dir'),
      ...daemonLogOf(p),
      ...metricsListenOf(p),
    };
    const watchTimeout = integer(p, 'watch-timeout');
    if (watchTimeout !== undefined) {
      if (watchTimeout < 1 || watchTimeout > 3600) throw new UsageError('--watch-timeout must be from 1 to 3600 seconds.');
      command.watchTimeoutSeconds = watchTimeout;
    }
    const dockerSocket = one(p, 'docker-socket');
    const pluginSocket = one(p, 'plugin-socket');
    const cniSocket = one(p, 'cni-socket');
    const resolvConf = one(p, 'resolv-conf');
    for (const [flag, path] of [['docker-socket', dockerSocket], ['plugin-socket', pluginSocket], ['cni-socket', cniSocket], ['resolv-conf', resolvConf]] as const) {
      if (path !== undefined && !path.startsWith('/')) throw new UsageError(`--${flag} needs an absolute path, not "${path}".`);
    }
    if (pluginSocket !== undefined && dockerSocket === undefined) {
      throw new UsageError('--plugin-socket needs --docker-socket: the plugin serves the Docker engine the agent is linked to.');
    }
    const dataplane = one(p, 'dataplane');
    if (dataplane !== undefined && dataplane !== 'linux' && dataplane !== 'ovs') throw new UsageError(`--dataplane must be linux or ovs, not "${dataplane}".`);
    const ovsDb = one(p, 'ovs-db');
    if (ovsDb !== undefined && dataplane !== 'ovs') throw new UsageError('--ovs-db needs --dataplane ovs: only the OVS data plane talks to Open vSwitch.');
    if (ovsDb !== undefined && !/^unix:\/./.test(ovsDb)) throw new UsageError(`--ovs-db must be unix:ABSOLUTE-PATH (the ovsdb-server socket), not "${ovsDb}".`);
    const noCni = has(p, 'no-cni') ? (true as const) : undefined;
    if (noCni && cniSocket !== undefined) throw new UsageError('--no-cni and --cni-socket exclude each other: the first serves no CNI plugin, the second says where to serve it.');
    const adminTokenFile = one(p, 'admin-token-file');
    if (adminTokenFile !== undefined && dockerSocket === undefined) {
      throw new UsageError('--admin-token-file needs --docker-socket: only the Docker integration creates networks with it.');
    }
    const netnsPrefix = one(p, 'netns-prefix');
    if (netnsPrefix !== undefined && !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$/.test(netnsPrefix)) {
      throw new UsageError(`--netns-prefix must be 1 to 40 letters, digits, "_", "." or "-", starting with a letter or digit, not "${netnsPrefix}".`);
    }
    const noNetworkNamespaces = has(p, 'no-network-namespaces') ? (true as const) : undefined;
    if (noNetworkNamespaces && netnsPrefix !== undefined) throw new UsageError('--no-network-namespaces and --netns-prefix exclude each other: the first makes no namespaces, the second names them.');
    return {
      ...command,
      ...given({ netnsPrefix, noNetworkNamespaces }),
      ...given({ dockerSocket, pluginSocket, adminTokenFile, cniSocket, resolvConf, dataplane: dataplane as AgentCommand['dataplane'], ovsDb, noCni, envTokenIgnored: (p.env[ENV_TOKEN] ?? '') !== '' ? (true as const) : undefined }),
    };
  },

  async run(command, ctx) {
    const { runAgent }: { runAgent: RunAgent } = await import('../../agent/main.ts');
    const log = daemonLogger(command.log, ctx);
    for (const line of joinTokenNotes(command)) log(line);
    const { connection, adminTokenFile, watchTimeoutSeconds } = command;
    const options: Parameters<RunAgent>[0] = {
      managerUrl: connection.url,
      advertiseAddress: command.advertiseAddress,
      log,
      // Without --name the agent uses the host name; without a join token, the certificate in its state directory.
      ...given({
        name: command.name,
        token: tokenOf(connection),
        adminToken: adminTokenFile === undefined ? undefined : readTokenFile(adminTokenFile, 'the admin token file (--admin-token-file)'),
        ca: connection.ca === undefined ? undefined : readCaFile(connection.ca),
        stateDir: command.stateDir,
        watchIdleMs: watchTimeoutSeconds === undefined ? undefined : watchTimeoutSeconds * 1000,
        dockerSocket: command.dockerSocket,
        pluginSocket: command.pluginSocket,
        metricsListen: command.metricsListen,
        cniSocket: command.cniSocket,
        resolvConf: command.resolvConf,
        dataplane: command.dataplane,
        ovsDb: command.ovsDb,
        noCni: command.noCni,
      }),
      ...given({ netnsPrefix: command.netnsPrefix, noNetworkNamespaces: command.noNetworkNamespaces }),
    };
    await runAgent(options, ctx.signal);
    return 0;
  },
};

/** What the agent says about its join token before it starts: where it came from, and what it ignored. */
export function joinTokenNotes(command: Pick<AgentCommand, 'connection' | 'envTokenIgnored'>): string[] {
  const notes: string[] = [];
  const { token, tokenFile } = command.connection;
  if (token !== undefined) {
    notes.push(
      'warning: a token given with --token is visible to every local user in /proc/PID/cmdline (ps shows it) for as long as the agent runs; give it with --token-file FILE (mode 0600) instead.',
    );
    notes.push('join token (needed only to join) from --token');
  } else if (tokenFile !== undefined) {
    notes.push(`join token (needed only to join) from the file ${tokenFile.path} (${tokenFile.from})`);
  }
  if (command.envTokenIgnored) {
    notes.push(`${ENV_TOKEN} is set but the agent does not read it: give the join token with --token-file FILE or ${ENV_TOKEN_FILE}.`);
  }
  return notes;
}
