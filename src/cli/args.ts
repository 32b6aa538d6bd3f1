/**
 * Command-line parsing: argv and the environment in, a typed Command out, or a UsageError with one
 * sentence. Pure (no I/O), so every rule is tested in-process.
 *
 * Conventions: `--flag value` or `--flag=value`; global flags (--manager, --token, --json, --help) may come
 * before or after the command words; a flag given twice is an error unless it is repeatable; numbers are
 * whole decimal numbers, nothing else; `--` ends the flags.
 */
import { parseManagerUrl } from '../client/client.ts';
import { VxnetError } from '../core/errors.ts';
import { parseCidr, parseIPv4 } from '../core/ipv4.ts';
import type { CreateEndpointRequest, CreateNetworkRequest } from '../core/model.ts';
import { normaliseNetns, requireContainerRef, requireIfname, requireName } from '../core/names.ts';

/** A mistake in the command line: exit status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export const ENV_MANAGER = 'VXNET_MANAGER';
export const ENV_TOKEN = 'VXNET_TOKEN';
export const ENV_CA = 'VXNET_CA';
export const DEFAULT_ATTACH_TIMEOUT_SECONDS = 30;

export interface Connection {
  url: string;
  token: string;
  /** file of the cluster CA certificate to trust for https:// (--ca or VXNET_CA); default: the token's digest */
  ca?: string;
}

/** The agent's connection: the token is needed only to join, not once the node has its certificate. */
export interface AgentConnection {
  url: string;
  token?: string;
  ca?: string;
}

export type Command =
  | { kind: 'help'; text: string }
  | { kind: 'version' }
  | {
      kind: 'manager';
      dataDir: string;
      listen: string[];
      nodeDownAfterSeconds?: number;
      certLifetimeSeconds?: number;
      subjectAltNames?: string[];
    }
  | {
      kind: 'agent';
      connection: AgentConnection;
      advertiseAddress: string;
      name: string | undefined;
      stateDir: string | undefined;
      watchTimeoutSeconds?: number;
      dockerSocket?: string;
      pluginSocket?: string;
    }
  | { kind: 'network-create'; connection: Connection; json: boolean; request: CreateNetworkRequest }
  | { kind: 'network-ls'; connection: Connection; json: boolean }
  | { kind: 'network-inspect'; connection: Connection; name: string }
  | { kind: 'network-rm'; connection: Connection; name: string; force: boolean }
  | { kind: 'node-ls'; connection: Connection; json: boolean }
  | { kind: 'node-rm'; connection: Connection; name: string; drain: boolean }
  | { kind: 'endpoint-ls'; connection: Connection; json: boolean; filter: { network?: string; node?: string } }
  | { kind: 'attach'; connection: Connection; json: boolean; request: CreateEndpointRequest; waitSeconds: number }
  | { kind: 'detach'; connection: Connection; network: string; node: string; netns?: string; container?: string; ifname: string }
  | { kind: 'token-rotate'; connection: Connection; role: 'worker' | 'admin' }
  | { kind: 'demo'; keep: boolean };

export type Env = Readonly<Record<string, string | undefined>>;

// ---- flag and command tables ------------------------------------------------------------------------

type FlagKind = 'string' | 'boolean' | 'integer' | 'ipv4' | 'cidr';

interface FlagSpec {
  name: string;
  kind: FlagKind;
  /** placeholder in help, e.g. "CIDR" */
  value?: string;
  repeatable?: boolean;
  help: string;
}

/** One flag occurrence, in command-line order (order matters for --subnet/--gateway pairs). */
interface FlagValue {
  name: string;
  value: string | true;
}

interface Parsed {
  path: string;
  positionals: string[];
  flags: FlagValue[];
  env: Env;
}

interface CommandSpec {
  /** the command words, e.g. "network create" */
  path: string;
  summary: string;
  /** positional placeholders, all required */
  args: string[];
  /** usage line after the command words */
  synopsis: string;
  flags: FlagSpec[];
  /** accepts --manager and --token */
  connection: boolean;
  /** accepts --json */
  json: boolean;
  build(parsed: Parsed): Command;
}

const GLOBAL_CONNECTION: FlagSpec[] = [
  { name: 'manager', kind: 'string', value: 'URL', help: `manager address, https://ADDR:PORT or unix:/path (env ${ENV_MANAGER})` },
  { name: 'token', kind: 'string', value: 'TOKEN', help: `API token (env ${ENV_TOKEN})` },
  {
    name: 'ca',
    kind: 'string',
    value: 'FILE',
    help: `the cluster CA certificate to trust for https:// (env ${ENV_CA}; default: the CA whose digest the token carries)`,
  },
];
const GLOBAL_JSON: FlagSpec = { name: 'json', kind: 'boolean', help: 'print JSON (the API answer) instead of a table' };
const GLOBAL_HELP: FlagSpec = { name: 'help', kind: 'boolean', help: 'show this help' };
/** Flags that may appear before the command words; each command then says whether it accepts them. */
const GLOBAL_FLAGS: FlagSpec[] = [...GLOBAL_CONNECTION, GLOBAL_JSON, GLOBAL_HELP];

const COMMANDS: CommandSpec[] = [
  {
    path: 'manager',
    summary: 'run the manager (the cluster API and store)',
    args: [],
    synopsis: '--data-dir DIR --listen ADDR:PORT [--listen unix:PATH]...',
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
        name: 'san',
        kind: 'string',
        value: 'NAME|IP',
        repeatable: true,
        help: "another name or address clients use for the manager, for its TLS certificate (repeatable)",
      },
    ],
    connection: false,
    json: false,
    build(p) {
      const listen = all(p, 'listen');
      if (listen.length === 0) throw new UsageError('"vxnet manager" needs at least one --listen ADDR:PORT or --listen unix:PATH.');
      for (const address of listen) checkListen(address);
      const command: Extract<Command, { kind: 'manager' }> = { kind: 'manager', dataDir: required(p, 'data-dir'), listen };
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
      const names = all(p, 'san');
      if (names.length > 0) command.subjectAltNames = names;
      return command;
    },
  },
  {
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
      const command: Extract<Command, { kind: 'agent' }> = {
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
  },
  {
    path: 'network create',
    summary: 'create an overlay network',
    args: ['NAME'],
    synopsis: 'NAME [--vni N] [--subnet CIDR [--gateway IP]]... [--mtu N] [--port N] [--internal] [--multicast-group IP]',
    flags: [
      { name: 'vni', kind: 'integer', value: 'N', help: 'VXLAN network identifier, 1-16777215 (default: the lowest free from 4097)' },
      { name: 'subnet', kind: 'cidr', value: 'CIDR', repeatable: true, help: 'an IPv4 subnet of the network (repeatable; default: a free /24 of 10.200.0.0/16)' },
      { name: 'gateway', kind: 'ipv4', value: 'IP', repeatable: true, help: 'gateway of the --subnet before it (default: its first address)' },
      { name: 'mtu', kind: 'integer', value: 'N', help: "MTU inside the network (default: the smallest node's MTU - 50)" },
      { name: 'port', kind: 'integer', value: 'N', help: 'UDP port of the VXLAN traffic (default: 4789)' },
      { name: 'internal', kind: 'boolean', help: 'no route out of the network' },
      { name: 'multicast-group', kind: 'ipv4', value: 'IP', help: 'send broadcast and multicast to this underlay group' },
    ],
    connection: true,
    json: true,
    build(p) {
      const request: CreateNetworkRequest = { name: p.positionals[0]! };
      const vni = integer(p, 'vni');
      if (vni !== undefined) request.vni = vni;
      const subnets = subnetsOf(p.flags);
      if (subnets.length > 0) request.subnets = subnets;
      const mtu = integer(p, 'mtu');
      if (mtu !== undefined) request.mtu = mtu;
      const port = integer(p, 'port');
      if (port !== undefined) request.port = port;
      if (has(p, 'internal')) request.internal = true;
      const group = one(p, 'multicast-group');
      if (group !== undefined) request.multicastGroup = group;
      return { kind: 'network-create', connection: connection(p), json: has(p, 'json'), request };
    },
  },
  {
    path: 'network ls',
    summary: 'list networks',
    args: [],
    synopsis: '',
    flags: [],
    connection: true,
    json: true,
    build: (p) => ({ kind: 'network-ls', connection: connection(p), json: has(p, 'json') }),
  },
  {
    path: 'network inspect',
    summary: 'show a network and its endpoints (JSON)',
    args: ['NAME'],
    synopsis: 'NAME',
    flags: [],
    connection: true,
    // The output is always JSON; --json is accepted so scripts may pass it everywhere.
    json: true,
    build: (p) => ({ kind: 'network-inspect', connection: connection(p), name: p.positionals[0]! }),
  },
  {
    path: 'network rm',
    summary: 'remove a network',
    args: ['NAME'],
    synopsis: 'NAME [--force]',
    flags: [{ name: 'force', kind: 'boolean', help: 'remove its endpoints first' }],
    connection: true,
    json: false,
    build: (p) => ({ kind: 'network-rm', connection: connection(p), name: p.positionals[0]!, force: has(p, 'force') }),
  },
  {
    path: 'node ls',
    summary: 'list nodes',
    args: [],
    synopsis: '',
    flags: [],
    connection: true,
    json: true,
    build: (p) => ({ kind: 'node-ls', connection: connection(p), json: has(p, 'json') }),
  },
  {
    path: 'node rm',
    summary: "remove a node; --drain first withdraws its endpoints from every peer",
    args: ['NAME'],
    synopsis: 'NAME [--drain]',
    flags: [{ name: 'drain', kind: 'boolean', help: "delete the node's endpoints first (releasing their addresses)" }],
    connection: true,
    json: false,
    build(p) {
      const name = p.positionals[0]!;
      checked(() => requireName(name, 'node'));
      return { kind: 'node-rm', connection: connection(p), name, drain: has(p, 'drain') };
    },
  },
  {
    path: 'endpoint ls',
    summary: 'list endpoints',
    args: [],
    synopsis: '[--network NAME] [--node NODE]',
    flags: [
      { name: 'network', kind: 'string', value: 'NAME', help: 'only the endpoints of this network' },
      { name: 'node', kind: 'string', value: 'NODE', help: 'only the endpoints on this node' },
    ],
    connection: true,
    json: true,
    build(p) {
      const filter: { network?: string; node?: string } = {};
      const network = one(p, 'network');
      if (network !== undefined) filter.network = network;
      const node = one(p, 'node');
      if (node !== undefined) filter.node = node;
      return { kind: 'endpoint-ls', connection: connection(p), json: has(p, 'json'), filter };
    },
  },
  {
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
  },
  {
    path: 'detach',
    summary: 'disconnect a network namespace or a Docker container from a network',
    args: ['NETWORK'],
    synopsis: 'NETWORK --node NODE --netns NAME|PATH | --container NAME|ID [--ifname NAME]',
    flags: [
      { name: 'node', kind: 'string', value: 'NODE', help: 'the node that holds the namespace' },
      { name: 'netns', kind: 'string', value: 'NAME|PATH', help: 'namespace name (/run/netns/NAME) or path' },
      { name: 'container', kind: 'string', value: 'NAME|ID', help: 'the container, as given to vxnet attach --container' },
      { name: 'ifname', kind: 'string', value: 'NAME', help: 'interface name inside the namespace (default: eth0)' },
    ],
    connection: true,
    json: false,
    build(p) {
      const target = targetOf(p);
      const ifname = one(p, 'ifname') ?? 'eth0';
      return {
        kind: 'detach',
        connection: connection(p),
        network: p.positionals[0]!,
        node: required(p, 'node'),
        ...target,
        ifname: checked(() => requireIfname(ifname)),
      };
    },
  },
  {
    path: 'token rotate',
    summary: 'replace the worker or the admin token (prints the new one); joined nodes are not affected',
    args: ['worker|admin'],
    synopsis: 'worker|admin',
    flags: [],
    connection: true,
    json: false,
    build(p) {
      const role = p.positionals[0];
      if (role !== 'worker' && role !== 'admin') throw new UsageError(`"vxnet token rotate" takes worker or admin, not "${role}".`);
      return { kind: 'token-rotate', connection: connection(p), role };
    },
  },
  {
    path: 'demo',
    summary: 'run a two-host cluster in network namespaces on this machine and ping across it (root)',
    args: [],
    synopsis: '[--keep]',
    flags: [{ name: 'keep', kind: 'boolean', help: 'leave the cluster running for exploration' }],
    connection: false,
    json: false,
    build: (p) => ({ kind: 'demo', keep: has(p, 'keep') }),
  },
  {
    path: 'version',
    summary: 'print the version',
    args: [],
    synopsis: '',
    flags: [],
    connection: false,
    json: false,
    build: () => ({ kind: 'version' }),
  },
];

const GROUPS: Record<string, string> = {
  network: 'manage networks',
  node: 'list and remove nodes',
  endpoint: 'list endpoints',
  token: 'manage the join and admin tokens',
};

// ---- entry point ----------------------------------------------------------------------------------

/** Turns argv (without the node and script paths) into a Command, or throws a UsageError. */
export function parseCommandLine(argv: readonly string[], env: Env): Command {
  const { words, leading, rest } = splitCommandWords(argv);
  const first = words[0];
  if (first === undefined) {
    if (leading.some(isHelpToken)) return { kind: 'help', text: topHelp() };
    if (leading.some((t) => t === '--version')) return { kind: 'version' };
    throw new UsageError('no command given; run "vxnet --help" for the list of commands.');
  }
  if (first === 'help') return { kind: 'help', text: helpFor(rest.filter((t) => !t.startsWith('-'))) };

  if (Object.hasOwn(GROUPS, first)) {
    const sub = words[1];
    const wantsHelp = [...leading, ...rest].some(isHelpToken);
    if (sub === undefined) {
      if (wantsHelp) return { kind: 'help', text: groupHelp(first) };
      throw new UsageError(`"vxnet ${first}" needs a subcommand: ${subcommands(first).join(', ')}; run "vxnet ${first} --help" for more.`);
    }
  }
  const path = words.join(' ');
  const spec = COMMANDS.find((c) => c.path === path);
  if (!spec) throw new UsageError(`unknown command "${path}"; run "vxnet --help" for the list of commands.`);
  // Help wins over every other mistake on the line, so `vxnet attach --help` works without its flags.
  if ([...leading, ...untilDoubleDash(rest)].some(isHelpToken)) return { kind: 'help', text: commandHelp(spec) };

  const parsed = parseFlags(spec, [...leading, ...rest], env);
  return spec.build(parsed);
}

/** Words of the command ("network", "create"), the global flags before them, and everything after. */
function splitCommandWords(argv: readonly string[]): { words: string[]; leading: string[]; rest: string[] } {
  const words: string[] = [];
  const leading: string[] = [];
  let i = 0;
  while (i < argv.length) {
    const token = argv[i]!;
    if (token.startsWith('-') && token !== '-') {
      if (token === '--') break;
      if (words.length > 0) break;
      // Only global flags may precede the command; they are the only ones whose arity is known here.
      const name = flagName(token);
      const spec = GLOBAL_FLAGS.find((f) => f.name === name);
      if (!spec && !isHelpToken(token) && token !== '--version') {
        throw new UsageError(`${displayFlag(token)} must come after the command; run "vxnet --help" for the list of commands.`);
      }
      leading.push(token);
      i++;
      if (spec && spec.kind !== 'boolean' && !token.includes('=') && i < argv.length) {
        leading.push(argv[i]!);
        i++;
      }
      continue;
    }
    words.push(token);
    i++;
    // A group takes one more word; anything else is complete.
    if (!(words.length === 1 && Object.hasOwn(GROUPS, token))) break;
  }
  return { words, leading, rest: argv.slice(i) };
}

function parseFlags(spec: CommandSpec, tokens: readonly string[], env: Env): Parsed {
  const accepted = [...spec.flags, ...(spec.connection ? GLOBAL_CONNECTION : []), ...(spec.json ? [GLOBAL_JSON] : [])];
  const flags: FlagValue[] = [];
  const positionals: string[] = [];
  let i = 0;
  while (i < tokens.length) {
    const token = tokens[i]!;
    i++;
    if (token === '--') {
      positionals.push(...tokens.slice(i));
      break;
    }
    if (!token.startsWith('-') || token === '-') {
      positionals.push(token);
      continue;
    }
    const name = flagName(token);
    const flag = token.startsWith('--') ? accepted.find((f) => f.name === name) : undefined;
    if (!flag) {
      throw new UsageError(`unknown flag ${displayFlag(token)} for "vxnet ${spec.path}"; run "vxnet ${spec.path} --help" for its flags.`);
    }
    const eq = token.indexOf('=');
    let value: string | true;
    if (flag.kind === 'boolean') {
      if (eq !== -1) throw new UsageError(`--${flag.name} takes no value.`);
      value = true;
    } else if (eq !== -1) {
      value = token.slice(eq + 1);
    } else {
      const next = tokens[i];
      if (next === undefined || next.startsWith('--')) {
        throw new UsageError(`--${flag.name} needs a value${flag.value ? ` (${flag.value})` : ''}.`);
      }
      value = next;
      i++;
    }
    if (!flag.repeatable && flags.some((f) => f.name === flag.name)) {
      throw new UsageError(`--${flag.name} is given more than once.`);
    }
    if (value !== true) checkValue(flag, value);
    flags.push({ name: flag.name, value });
  }

  if (positionals.length < spec.args.length) {
    const missing = spec.args[positionals.length]!;
    throw new UsageError(`"vxnet ${spec.path}" needs ${missing}; usage: vxnet ${spec.path} ${spec.synopsis}`.trimEnd());
  }
  if (positionals.length > spec.args.length) {
    throw new UsageError(`unexpected argument "${positionals[spec.args.length]}" for "vxnet ${spec.path}".`);
  }
  return { path: spec.path, positionals, flags, env };
}

function checkValue(flag: FlagSpec, value: string): void {
  switch (flag.kind) {
    case 'integer':
      if (!/^(0|[1-9][0-9]*)$/.test(value) || !Number.isSafeInteger(Number(value))) {
        throw new UsageError(`--${flag.name} must be a whole number, not "${value}".`);
      }
      return;
    case 'ipv4':
      if (parseIPv4(value) === undefined) throw new UsageError(`--${flag.name} "${value}" is not a valid IPv4 address.`);
      return;
    case 'cidr':
      if (parseCidr(value) === undefined) {
        throw new UsageError(
          `--${flag.name} "${value}" is not a valid IPv4 subnet such as 192.168.1.0/24 (host bits must be zero).`,
        );
      }
      return;
    case 'string':
      if (value === '') throw new UsageError(`--${flag.name} needs a non-empty value.`);
      return;
    case 'boolean':
      return;
  }
}

// ---- helpers used by the builders -------------------------------------------------------------------

function has(p: Parsed, name: string): boolean {
  return p.flags.some((f) => f.name === name);
}

function one(p: Parsed, name: string): string | undefined {
  const found = p.flags.find((f) => f.name === name);
  return typeof found?.value === 'string' ? found.value : undefined;
}

function all(p: Parsed, name: string): string[] {
  return p.flags.filter((f) => f.name === name && typeof f.value === 'string').map((f) => f.value as string);
}

function required(p: Parsed, name: string): string {
  const value = one(p, name);
  if (value === undefined) throw new UsageError(`"vxnet ${p.path}" needs --${name}; run "vxnet ${p.path} --help" for its flags.`);
  return value;
}

function integer(p: Parsed, name: string): number | undefined {
  const value = one(p, name);
  return value === undefined ? undefined : Number(value);
}

/** Runs a core validator, turning its VxnetError into a UsageError with the same sentence. */
function checked<T>(validate: () => T): T {
  try {
    return validate();
  } catch (err) {
    if (err instanceof VxnetError) throw new UsageError(err.message);
    throw err;
  }
}

/** `--netns` (checked, and normalised to a path unless told not to) or `--container`, exactly one. */
function targetOf(p: Parsed, options: { normalise?: boolean } = {}): { netns: string } | { container: string } {
  const netns = one(p, 'netns');
  const container = one(p, 'container');
  if (netns !== undefined && container !== undefined) {
    throw new UsageError(`"vxnet ${p.path}" takes --netns or --container, not both.`);
  }
  if (container !== undefined) return { container: checked(() => requireContainerRef(container)) };
  if (netns === undefined) {
    throw new UsageError(`"vxnet ${p.path}" needs --netns NAME|PATH or --container NAME|ID; run "vxnet ${p.path} --help" for its flags.`);
  }
  const path = checked(() => normaliseNetns(netns));
  return { netns: options.normalise === false ? netns : path };
}

/** Each --gateway belongs to the --subnet just before it. */
function subnetsOf(flags: readonly FlagValue[]): { cidr: string; gateway?: string }[] {
  const subnets: { cidr: string; gateway?: string }[] = [];
  for (const flag of flags) {
    if (typeof flag.value !== 'string') continue;
    if (flag.name === 'subnet') subnets.push({ cidr: flag.value });
    if (flag.name === 'gateway') {
      const last = subnets.at(-1);
      if (!last) throw new UsageError(`--gateway ${flag.value} must follow the --subnet it belongs to.`);
      if (last.gateway !== undefined) throw new UsageError(`--subnet ${last.cidr} is given two gateways; give one --gateway after each --subnet.`);
      last.gateway = flag.value;
    }
  }
  return subnets;
}

/** --manager/--token/--ca, or VXNET_MANAGER/VXNET_TOKEN/VXNET_CA. The token never appears in a message. */
function connection(p: Parsed): Connection {
  const { url, token, ca } = connectionOf(p);
  if (token === undefined) {
    throw new UsageError(
      `no token given: pass --token TOKEN or set ${ENV_TOKEN} (the manager keeps it in DATA_DIR/admin.token, or worker.token for agents).`,
    );
  }
  return ca === undefined ? { url, token } : { url, token, ca };
}

/** The connection flags, the token optional. */
function connectionOf(p: Parsed): AgentConnection {
  const url = one(p, 'manager') ?? nonEmpty(p.env[ENV_MANAGER]);
  if (url === undefined) {
    throw new UsageError(`no manager given: pass --manager URL or set ${ENV_MANAGER} (https://ADDR:PORT or unix:/path).`);
  }
  checked(() => parseManagerUrl(url));
  const out: AgentConnection = { url };
  const token = (one(p, 'token') ?? nonEmpty(p.env[ENV_TOKEN]))?.trim();
  if (token !== undefined && token !== '') {
    if (!/^[\x21-\x7e]+$/.test(token)) throw new UsageError('the token contains spaces or control characters; check --token or VXNET_TOKEN.');
    out.token = token;
  }
  const ca = one(p, 'ca') ?? nonEmpty(p.env[ENV_CA]);
  if (ca !== undefined) out.ca = ca;
  return out;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function checkListen(address: string): void {
  if (address.startsWith('unix:')) {
    if (!address.slice('unix:'.length).startsWith('/')) {
      throw new UsageError(`--listen ${address} is invalid: a unix socket needs an absolute path, as in unix:/run/vxnet.sock.`);
    }
    return;
  }
  const match = /^(.+):([0-9]+)$/.exec(address);
  const host = match?.[1];
  const port = Number(match?.[2]);
  const hostOk = host !== undefined && (parseIPv4(host) !== undefined || /^\[[0-9A-Fa-f:.]+\]$/.test(host) || /^[A-Za-z0-9.-]+$/.test(host));
  if (!match || !hostOk || !/^(0|[1-9][0-9]*)$/.test(match[2]!) || port > 65535) {
    throw new UsageError(`--listen ${address} is invalid: use ADDR:PORT (as in 0.0.0.0:7946) or unix:/path/to.sock.`);
  }
}

function flagName(token: string): string {
  const body = token.replace(/^--?/, '');
  const eq = body.indexOf('=');
  return eq === -1 ? body : body.slice(0, eq);
}

/** The flag as typed, without any value (which could be a token). */
function displayFlag(token: string): string {
  const eq = token.indexOf('=');
  return eq === -1 ? token : token.slice(0, eq);
}

function isHelpToken(token: string): boolean {
  return token === '--help' || token === '-h';
}

function untilDoubleDash(tokens: readonly string[]): readonly string[] {
  const end = tokens.indexOf('--');
  return end === -1 ? tokens : tokens.slice(0, end);
}

// ---- help ---------------------------------------------------------------------------------------

function subcommands(group: string): string[] {
  return COMMANDS.filter((c) => c.path.startsWith(`${group} `)).map((c) => c.path.slice(group.length + 1));
}

function flagLines(flags: readonly FlagSpec[]): string[] {
  const left = flags.map((f) => (f.name === 'help' ? '-h, --help' : `--${f.name}${f.value ? ` ${f.value}` : ''}`));
  const width = Math.max(...left.map((l) => l.length));
  return flags.map((f, i) => `  ${left[i]!.padEnd(width)}   ${f.help}`);
}

function commandHelp(spec: CommandSpec): string {
  const lines = [`Usage: vxnet ${spec.path} ${spec.synopsis}`.trimEnd(), '', `${capitalise(spec.summary)}.`];
  if (spec.flags.length > 0) lines.push('', 'Flags:', ...flagLines(spec.flags));
  const globals = [...(spec.connection ? GLOBAL_CONNECTION : []), ...(spec.json ? [GLOBAL_JSON] : []), GLOBAL_HELP];
  lines.push('', 'Global flags:', ...flagLines(globals));
  return `${lines.join('\n')}\n`;
}

function groupHelp(group: string): string {
  const specs = COMMANDS.filter((c) => c.path.startsWith(`${group} `));
  const width = Math.max(...specs.map((c) => c.path.length));
  return [
    `Usage: vxnet ${group} COMMAND`,
    '',
    `${capitalise(GROUPS[group] ?? group)}.`,
    '',
    'Commands:',
    ...specs.map((c) => `  ${c.path.padEnd(width)}   ${c.summary}`),
    '',
    `Run "vxnet ${group} COMMAND --help" for the flags of a command.`,
    '',
  ].join('\n');
}

function topHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.path.length));
  return [
    'Usage: vxnet COMMAND [flags]',
    '',
    'Multi-host container overlay networks over VXLAN.',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.path.padEnd(width)}   ${c.summary}`),
    '',
    'Global flags:',
    ...flagLines(GLOBAL_FLAGS),
    '',
    'Run "vxnet COMMAND --help" for the flags of a command.',
    '',
  ].join('\n');
}

function helpFor(words: readonly string[]): string {
  if (words.length === 0) return topHelp();
  const path = words.join(' ');
  const spec = COMMANDS.find((c) => c.path === path);
  if (spec) return commandHelp(spec);
  if (words.length === 1 && Object.hasOwn(GROUPS, path)) return groupHelp(path);
  throw new UsageError(`unknown command "${path}"; run "vxnet --help" for the list of commands.`);
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
