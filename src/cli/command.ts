/**
 * What a command module declares — its words, flags, help, the builder that turns the parsed line into a
 * typed command, and the runner — and the helpers builders share. Builders are pure (no I/O), so every rule
 * is tested in-process. A module imports what its runner needs (the HTTP client, a daemon) only when it
 * runs, so that `vxnet --help`, which loads every module for its summaries, loads no runner's dependencies.
 */
import { parseManagerUrl } from '../client/manager-url.ts';
import { VxnetError } from '../core/errors.ts';
import { parseIPv4 } from '../core/ipv4.ts';
import { isIPv6 } from '../core/ipv6.ts';
import { normaliseNetns, requireContainerRef } from '../core/names.ts';
import { parseListen, type ListenAddress } from '../http/server.ts';

/** A mistake in the command line: the catalogue's `usage` code, exit status 2. */
export class UsageError extends VxnetError {
  constructor(message: string) {
    super('usage', message);
    this.name = 'UsageError';
  }
}

export const ENV_MANAGER = 'VXNET_MANAGER';
export const ENV_TOKEN = 'VXNET_TOKEN';
export const ENV_TOKEN_FILE = 'VXNET_TOKEN_FILE';
export const ENV_CA = 'VXNET_CA';

export type Env = Readonly<Record<string, string | undefined>>;

/** How a flag's value is checked while parsing, before any builder sees it. */
export type FlagKind = 'string' | 'boolean' | 'integer' | 'ipv4' | 'cidr';

export interface FlagSpec {
  name: string;
  kind: FlagKind;
  /** placeholder in help, e.g. "CIDR" */
  value?: string;
  repeatable?: boolean;
  help: string;
}

/** One flag occurrence, in command-line order (order matters for --subnet/--gateway pairs). */
export interface FlagValue {
  name: string;
  value: string | true;
}

/** The command line as the parser hands it to a builder: flags checked for shape, positionals counted. */
export interface Parsed {
  path: string;
  positionals: string[];
  flags: FlagValue[];
  env: Env;
}

/**
 * What a command gets from the outside world. Passed in (never taken from `process`) so that `main` can be
 * run in-process by the tests with captured output.
 */
export interface CommandContext {
  stdout(text: string): void;
  stderr(text: string): void;
  /** aborted on SIGINT/SIGTERM */
  signal: AbortSignal;
  now(): Date;
  /** stderr is a terminal (then daemon logs never take journald's form) */
  stderrIsTTY?: boolean;
}

export interface CommandModule<C extends { kind: string } = { kind: string }> {
  /** the command words, e.g. "network create" */
  path: string;
  summary: string;
  /** positional placeholders, all required */
  args: readonly string[];
  /** usage line after the command words */
  synopsis: string;
  flags: readonly FlagSpec[];
  /** accepts --manager, --token, --token-file and --ca */
  connection: boolean;
  /** accepts --json */
  json: boolean;
  /** the typed command, or a UsageError */
  build(parsed: Parsed): C;
  /** the exit status; errors are thrown */
  run(command: C, ctx: CommandContext): Promise<number>;
}

/**
 * A file holding the token, read by the runner (builders do no I/O). Unlike a token given as an argument,
 * which any local user reads in /proc/PID/cmdline, only the name of the file is visible there.
 */
export interface TokenFile {
  path: string;
  /** where the name came from, for messages */
  from: '--token-file' | typeof ENV_TOKEN_FILE;
}

/** The agent's connection: the token is needed only to join, not once the node has its certificate. */
export interface AgentConnection {
  url: string;
  /** the token itself (--token, or VXNET_TOKEN for commands other than the agent) */
  token?: string;
  /** or the file holding it (--token-file or VXNET_TOKEN_FILE) */
  tokenFile?: TokenFile;
  /** file of the cluster CA certificate to trust for https:// (--ca or VXNET_CA); default: the token's digest */
  ca?: string;
}

/** A connection with a token, given or in a file. */
export type Connection = AgentConnection & ({ token: string } | { tokenFile: TokenFile });

// ---- global flags -----------------------------------------------------------------------------------

export const GLOBAL_CONNECTION: readonly FlagSpec[] = [
  { name: 'manager', kind: 'string', value: 'URL', help: `manager address, https://ADDR:PORT or unix:/path (env ${ENV_MANAGER})` },
  {
    name: 'token',
    kind: 'string',
    value: 'TOKEN',
    help: `API token, for a one-off call: every local user can read it in /proc/PID/cmdline while the command runs (env ${ENV_TOKEN})`,
  },
  {
    name: 'token-file',
    kind: 'string',
    value: 'FILE',
    help: `file holding the API token, mode 0600; the way to give a daemon its token (env ${ENV_TOKEN_FILE})`,
  },
  {
    name: 'ca',
    kind: 'string',
    value: 'FILE',
    help: `the cluster CA certificate to trust for https:// (env ${ENV_CA}; default: the CA whose digest the token carries)`,
  },
];
export const GLOBAL_JSON: FlagSpec = { name: 'json', kind: 'boolean', help: 'print JSON (the API answer) instead of a table' };
export const GLOBAL_HELP: FlagSpec = { name: 'help', kind: 'boolean', help: 'show this help' };
/** Flags that may appear before the command words; each command then says whether it accepts them. */
export const GLOBAL_FLAGS: readonly FlagSpec[] = [...GLOBAL_CONNECTION, GLOBAL_JSON, GLOBAL_HELP];

/** The global flags a command accepts besides its own (--help is answered before parsing). */
export function globalFlagsOf(spec: Pick<CommandModule, 'connection' | 'json'>): FlagSpec[] {
  return [...(spec.connection ? GLOBAL_CONNECTION : []), ...(spec.json ? [GLOBAL_JSON] : [])];
}

// ---- helpers for builders -----------------------------------------------------------------------------

export function has(p: Parsed, name: string): boolean {
  return p.flags.some((f) => f.name === name);
}

export function one(p: Parsed, name: string): string | undefined {
  const found = p.flags.find((f) => f.name === name);
  return typeof found?.value === 'string' ? found.value : undefined;
}

export function all(p: Parsed, name: string): string[] {
  return p.flags.filter((f) => f.name === name && typeof f.value === 'string').map((f) => f.value as string);
}

export function required(p: Parsed, name: string): string {
  const value = one(p, name);
  if (value === undefined) throw new UsageError(`"vxnet ${p.path}" needs --${name}; run "vxnet ${p.path} --help" for its flags.`);
  return value;
}

/** An `integer` flag, already checked to be a whole decimal number by the parser. */
export function integer(p: Parsed, name: string): number | undefined {
  const value = one(p, name);
  return value === undefined ? undefined : Number(value);
}

/** Runs a core validator, turning its VxnetError into a UsageError with the same sentence. */
export function checked<T>(validate: () => T): T {
  try {
    return validate();
  } catch (err) {
    if (err instanceof VxnetError && !(err instanceof UsageError)) throw new UsageError(err.message);
    throw err;
  }
}

/**
 * Where an endpoint is, for the commands that name one (attach, detach): its node, its namespace (or a
 * container, whose help differs between them) and its interface name.
 */
export const NODE_FLAG: FlagSpec = { name: 'node', kind: 'string', value: 'NODE', help: 'the node that holds the namespace' };
export const NETNS_FLAG: FlagSpec = {
  name: 'netns',
  kind: 'string',
  value: 'NAME|PATH',
  help: 'namespace name (/run/netns/NAME) or path, e.g. /proc/PID/ns/net',
};
export const IFNAME_FLAG: FlagSpec = { name: 'ifname', kind: 'string', value: 'NAME', help: 'interface name inside the namespace (default: eth0)' };

/**
 * Checks a listen address flag: ADDR:PORT, and with `unix` also unix:/absolute/path. The address is read by
 * the daemons' own parser (src/http/server.ts); this adds what a command line should refuse beyond it (an
 * empty host, a relative socket path, a port written with leading zeros), in one sentence naming the flag.
 */
export function checkListen(flag: string, address: string, unix: boolean): void {
  const invalid = (): UsageError =>
    new UsageError(`--${flag} ${address} is invalid: use ADDR:PORT (as in ${unix ? '0.0.0.0:7946) or unix:/path/to.sock' : '127.0.0.1:9476)'}.`);
  let parsed: ListenAddress;
  try {
    parsed = parseListen(address);
  } catch {
    throw invalid();
  }
  if (parsed.kind === 'unix') {
    if (!unix) throw new UsageError(`--${flag} ${address} is invalid: it takes a TCP address, ADDR:PORT (as in 127.0.0.1:9476).`);
    if (!parsed.path.startsWith('/')) throw new UsageError(`--${flag} ${address} is invalid: a unix socket needs an absolute path, as in unix:/run/vxnet.sock.`);
    return;
  }
  const host = parsed.host;
  const hostOk = host !== undefined && (parseIPv4(host) !== undefined || isIPv6(host) || /^[A-Za-z0-9.-]+$/.test(host));
  if (!hostOk || !/:(0|[1-9][0-9]*)$/.test(address)) throw invalid();
}

/** `--metrics-listen ADDR:PORT` of both daemons (src/http/metrics.ts). */
export const METRICS_LISTEN_FLAG: FlagSpec = {
  name: 'metrics-listen',
  kind: 'string',
  value: 'ADDR:PORT',
  help: 'also serve Prometheus metrics over plain HTTP at http://ADDR:PORT/metrics (no authentication: use localhost or a scrape network)',
};

/** The checked --metrics-listen value, when given. */
export function metricsListenOf(p: Parsed): { metricsListen?: string } {
  const address = one(p, 'metrics-listen');
  if (address === undefined) return {};
  checkListen('metrics-listen', address, false);
  return { metricsListen: address };
}

/**
 * The fields whose value is defined: an optional flag that was not given leaves no key at all, so a
 * command or request never carries a field set to undefined (strict deep equality tells the two apart).
 */
export function given<T extends Record<string, unknown>>(fields: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) if (value !== undefined) out[key] = value;
  return out as { [K in keyof T]?: Exclude<T[K], undefined> };
}

/** `--netns` (checked, and normalised to a path unless told not to) or `--container`, exactly one. */
export function targetOf(p: Parsed, options: { normalise?: boolean } = {}): { netns: string } | { container: string } {
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

/**
 * --manager, --token or --token-file, --ca, or VXNET_MANAGER, VXNET_TOKEN or VXNET_TOKEN_FILE, VXNET_CA; a
 * flag wins over the environment. The token never appears in a message.
 */
export function connection(p: Parsed): Connection {
  const c = connectionOf(p);
  if (c.token !== undefined) return { ...c, token: c.token };
  if (c.tokenFile !== undefined) return { ...c, tokenFile: c.tokenFile };
  throw new UsageError(
    `no token given: pass --token TOKEN or set ${ENV_TOKEN} for a one-off call, or name a file holding it with --token-file FILE or ${ENV_TOKEN_FILE} (the manager keeps it in DATA_DIR/admin.token).`,
  );
}

/**
 * The connection flags, the token optional. `envToken: false` (the agent) leaves VXNET_TOKEN unread: a
 * daemon takes its token only from what its own command line or VXNET_TOKEN_FILE names, never from a
 * variable exported in the shell that started it.
 */
export function connectionOf(p: Parsed, options: { envToken?: boolean } = {}): AgentConnection {
  const url = one(p, 'manager') ?? nonEmpty(p.env[ENV_MANAGER]);
  if (url === undefined) {
    throw new UsageError(`no manager given: pass --manager URL or set ${ENV_MANAGER} (https://ADDR:PORT or unix:/path).`);
  }
  checked(() => parseManagerUrl(url));
  const out: AgentConnection = { url };
  const flagToken = one(p, 'token');
  const flagFile = one(p, 'token-file');
  if (flagToken !== undefined && flagFile !== undefined) throw new UsageError('pass the token with --token or --token-file, not both.');
  let token = flagToken;
  let file: TokenFile | undefined = flagFile === undefined ? undefined : { path: flagFile, from: '--token-file' };
  if (flagToken === undefined && flagFile === undefined) {
    const envToken = options.envToken === false ? undefined : nonEmpty(p.env[ENV_TOKEN]);
    const envFile = nonEmpty(p.env[ENV_TOKEN_FILE]);
    if (envToken !== undefined && envFile !== undefined) throw new UsageError(`both ${ENV_TOKEN} and ${ENV_TOKEN_FILE} are set: unset one of them.`);
    token = envToken;
    file = envFile === undefined ? undefined : { path: envFile, from: ENV_TOKEN_FILE };
  }
  token = token?.trim();
  if (token !== undefined && token !== '') {
    if (!/^[\x21-\x7e]+$/.test(token)) throw new UsageError('the token contains spaces or control characters; check --token or VXNET_TOKEN.');
    out.token = token;
  }
  if (file !== undefined) out.tokenFile = file;
  const ca = one(p, 'ca') ?? nonEmpty(p.env[ENV_CA]);
  if (ca !== undefined) out.ca = ca;
  return out;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}
