/** `vxnet manager`: runs the manager (the cluster API and store) until interrupted. */
import { all, checkListen, given, integer, METRICS_LISTEN_FLAG, metricsListenOf, one, required, UsageError, type CommandModule, type FlagSpec, type Parsed } from '../command.ts';
import { daemonLogger, daemonLogOf, LOG_LEVEL_FLAG, type DaemonLog } from '../daemon-log.ts';

// Type-only: keeps the lazy import below typed without loading the manager for other commands.
type RunManager = typeof import('../../manager/main.ts').runManager;

export interface ManagerCommand {
  kind: 'manager';
  dataDir: string;
  listen: string[];
  nodeDownAfterSeconds?: number;
  certLifetimeSeconds?: number;
  certMaxAgeSeconds?: number;
  maxEndpointsPerNode?: number;
  subjectAltNames?: string[];
  /** --log-level, JOURNAL_STREAM: present only when given */
  log?: DaemonLog;
  /** --metrics-listen ADDR:PORT */
  metricsListen?: string;
  /** --store etcd://HOST:PORT,... (several managers on etcd) */
  store?: string;
  etcdCa?: string;
  etcdCert?: string;
  etcdKey?: string;
  /** --token-file: the admin token a manager joining an etcd-kept cluster proves itself with */
  tokenFile?: string;
}

/** TLS to etcd, for `vxnet manager --store` and `vxnet migrate` */
export const ETCD_TLS_FLAGS: readonly FlagSpec[] = [
  { name: 'etcd-ca', kind: 'string', value: 'FILE', help: "PEM of the CA of etcd's server certificates (TLS to etcd)" },
  { name: 'etcd-cert', kind: 'string', value: 'FILE', help: 'client certificate (PEM) for etcd' },
  { name: 'etcd-key', kind: 'string', value: 'FILE', help: 'key (PEM) of the client certificate for etcd' },
];

export function etcdTlsOf(p: Parsed): { etcdCa?: string; etcdCert?: string; etcdKey?: string } {
  const etcdCa = one(p, 'etcd-ca');
  const etcdCert = one(p, 'etcd-cert');
  const etcdKey = one(p, 'etcd-key');
  if ((etcdCert === undefined) !== (etcdKey === undefined)) throw new UsageError('--etcd-cert and --etcd-key go together.');
  if (etcdCert !== undefined && etcdCa === undefined) throw new UsageError('--etcd-cert needs --etcd-ca (TLS to etcd).');
  return given({ etcdCa, etcdCert, etcdKey });
}

/** The files of `etcdTlsOf`, as the manager's options take them. */
export function etcdTlsFiles(command: { etcdCa?: string; etcdCert?: string; etcdKey?: string }): { ca: string; cert?: string; key?: string } | undefined {
  return command.etcdCa === undefined ? undefined : { ca: command.etcdCa, ...given({ cert: command.etcdCert, key: command.etcdKey }) };
}

export const manager: CommandModule<ManagerCommand> = {
  path: 'manager',
  summary: 'run the manager (the cluster API and store)',
  args: [],
  synopsis: '--data-dir DIR --listen ADDR:PORT [--listen unix:PATH]... [--store etcd://HOST:PORT,... [--token-file FILE]]',
  flags: [
    { name: 'data-dir', kind: 'string', value: 'DIR', help: 'where the store and the tokens live' },
    { name: 'listen', kind: 'string', value: 'ADDR', repeatable: true, help: 'ADDR:PORT or unix:PATH to serve the API on (repeatable)' },
    {
      name: 'node-down-after',
      kind: 'integer',
      value: 'SECONDS',
      help: 'show a node as down after this long without a heartbeat (default: 15; agents send one every 5)',
    },
    {
      name: 'cert-lifetime',
      kind: 'integer',
      value: 'SECONDS',
      help: 'lifetime of the node certificates it issues (default: 2592000, 30 days; renewed at two thirds)',
    },
    {
      name: 'cert-max-age',
      kind: 'integer',
      value: 'SECONDS',
      help: 'how long after its join a node may keep renewing its certificate (default: 31536000, 365 days)',
    },
    {
      name: 'max-endpoints-per-node',
      kind: 'integer',
      value: 'N',
      help: 'addresses (endpoints and Docker reservations) a node may hold on one network with its own certificate (default: 128)',
    },
    {
      name: 'san',
      kind: 'string',
      value: 'NAME|IP',
      repeatable: true,
      help: "another name or address clients use for the manager, for its TLS certificate (repeatable)",
    },
    METRICS_LISTEN_FLAG,
    LOG_LEVEL_FLAG,
    {
      name: 'store',
      kind: 'string',
      value: 'etcd://HOST:PORT,...',
      help: 'keep the cluster state in etcd, shared by several managers (default: SQLite in --data-dir)',
    },
    ...ETCD_TLS_FLAGS,
    {
      name: 'token-file',
      kind: 'string',
      value: 'FILE',
      help: "with --store: the cluster's admin token, which lets this manager join managers already on that etcd",
    },
  ],
  connection: false,
  json: false,

  build(p) {
    const listen = all(p, 'listen');
    if (listen.length === 0) throw new UsageError('"vxnet manager" needs at least one --listen ADDR:PORT or --listen unix:PATH.');
    for (const address of listen) checkListen('listen', address, true);
    const command: ManagerCommand = { kind: 'manager', dataDir: required(p, 'data-dir'), listen, ...daemonLogOf(p), ...metricsListenOf(p) };
    const downAfter = integer(p, 'node-down-after');
    if (downAfter !== undefined) {
      if (downAfter < 1 || downAfter > 86_400) throw new UsageError('--node-down-after must be from 1 to 86400 seconds.');
      command.nodeDownAfterSeconds = downAfter;
    }
    const lifetime = integer(p, 'cert-lifetime');
    if (lifetime !== undefined) {
      if (lifetime < 10 || lifetime > 3650 * 86_400) throw new UsageError('--cert-lifetime must be from 10 seconds to 3650 days.');
      command.certLifetimeSeconds = lifetime;
    }
    const maxAge = integer(p, 'cert-max-age');
    if (maxAge !== undefined) {
      if (maxAge < 10 || maxAge > 3650 * 86_400) throw new UsageError('--cert-max-age must be from 10 seconds to 3650 days.');
      command.certMaxAgeSeconds = maxAge;
    }
    const perNode = integer(p, 'max-endpoints-per-node');
    if (perNode !== undefined) {
      if (perNode < 1 || perNode > 1_000_000) throw new UsageError('--max-endpoints-per-node must be from 1 to 1000000.');
      command.maxEndpointsPerNode = perNode;
    }
    const names = all(p, 'san');
    if (names.length > 0) command.subjectAltNames = names;
    const store = one(p, 'store');
    const { etcdCa, etcdCert, etcdKey } = etcdTlsOf(p);
    const tokenFile = one(p, 'token-file');
    if (store === undefined) {
      if (etcdCa !== undefined || etcdCert !== undefined || etcdKey !== undefined || tokenFile !== undefined) {
        throw new UsageError('--etcd-ca, --etcd-cert, --etcd-key and --token-file go with --store etcd://...');
      }
    } else {
      // the URL itself is checked by the manager before it touches anything (not here: that would load src/manager for every command)
      Object.assign(command, given({ store, etcdCa, etcdCert, etcdKey, tokenFile }));
    }
    return command;
  },

  async run(command, ctx) {
    const { runManager }: { runManager: RunManager } = await import('../../manager/main.ts');
    const options: Parameters<RunManager>[0] = { dataDir: command.dataDir, listen: command.listen, log: daemonLogger(command.log, ctx) };
    if (command.nodeDownAfterSeconds !== undefined) options.nodeDownAfterMs = command.nodeDownAfterSeconds * 1000;
    if (command.certLifetimeSeconds !== undefined) options.certLifetimeMs = command.certLifetimeSeconds * 1000;
    if (command.certMaxAgeSeconds !== undefined) options.certMaxAgeMs = command.certMaxAgeSeconds * 1000;
    if (command.maxEndpointsPerNode !== undefined) options.maxEndpointsPerNode = command.maxEndpointsPerNode;
    if (command.subjectAltNames !== undefined) options.subjectAltNames = command.subjectAltNames;
    if (command.metricsListen !== undefined) options.metricsListen = command.metricsListen;
    if (command.store !== undefined) options.store = command.store;
    const etcdTls = etcdTlsFiles(command);
    if (etcdTls) options.etcdTls = etcdTls;
    if (command.tokenFile !== undefined) options.tokenFile = command.tokenFile;
    await runManager(options, ctx.signal);
    return 0;
  },
};
