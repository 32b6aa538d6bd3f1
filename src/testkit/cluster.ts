/**
 * A simulated vxnet cluster on one machine, for integration tests, the demo and the benchmark.
 *
 * Topology (every box a network namespace, every name unique per run):
 *
 *                         PREFIX-RUNID-sw  (br0 10.99.0.1/24, the manager listens here)
 *             h1 ──┐        Linux bridge, multicast snooping off so underlay groups flood
 *             h2 ──┼── br0
 *            out ──┘
 *   PREFIX-RUNID-h1 eth0 10.99.0.11   PREFIX-RUNID-h2 eth0 10.99.0.12   ...
 *   PREFIX-RUNID-out eth0 10.99.0.254 (+ 203.0.113.1 on lo): "the internet", reached by containers via NAT
 *
 * Hosts route by default via the outside namespace, like a machine via its default gateway. Containers are
 * further empty namespaces (PREFIX-RUNID-cNAME) that the vxnet agent wires up. The daemons are real
 * processes: the manager runs in the switch namespace, one agent in each host namespace, all started with
 * nsenter so that they share the machine's mount namespace (the agent must see /run/netns).
 *
 * Cleanup is the point of this module: `destroy()` kills every process the kit started, then whatever
 * else still lives in its namespaces, then deletes the namespaces (which takes their links, routes and
 * nftables tables with them). A half-built cluster is destroyed before `createCluster` rejects, a
 * process exit or SIGINT/SIGTERM deletes the namespaces synchronously, and `cleanupStale` removes what a
 * killed run (whose pid is part of every name) left behind.
 *
 * IPv6 is switched off in every namespace unless `ipv6: true`: the underlay is IPv4-only, and router
 * solicitations, DAD and MLD reports would otherwise show up as unexpected frames in packet captures.
 */
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomInt } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import type { NodeStatus } from '../core/model.ts';
import { requestJson, type JsonResponse } from './http.ts';
import {
  IPV6_OFF,
  addNetns,
  deleteNetns,
  deleteNetnsSync,
  ipBatch,
  listNetns,
  netnsExecArgv,
  netnsPids,
  nsenterArgv,
  setSysctls,
} from './netns.ts';
import { findCommand, isRoot } from './preflight.ts';
import {
  describeExit,
  run,
  sleep,
  start,
  type ChildProcessHandle,
  type ExitInfo,
  type RunResult,
} from './processes.ts';

export type { ChildProcessHandle, ExitInfo, RunResult } from './processes.ts';

export const DEFAULT_PREFIX = 'vxt';
export const UNDERLAY_SUBNET = '10.99.0.0/24';
export const UNDERLAY_PREFIX_LENGTH = 24;
export const SWITCH_ADDRESS = '10.99.0.1';
export const OUTSIDE_ADDRESS = '10.99.0.254';
/** TEST-NET-3 (RFC 5737): an address that is neither on the underlay nor in any overlay; held by "outside". */
export const INTERNET_ADDRESS = '203.0.113.1';
export const MANAGER_PORT = 7400;
export const UNDERLAY_DEVICE = 'eth0';
/** .11 .. .210: leaves .1 (switch) and .254 (outside) alone. */
export const MAX_HOSTS = 200;

export function hostAddress(index: number): string {
  return `10.99.0.${10 + index}`;
}

/** The vxnet CLI of this checkout (src/cli/main.ts), found relative to this module. */
export const DEFAULT_CLI_PATH = resolve(import.meta.dirname, '../cli/main.ts');

export interface ClusterOptions {
  /** number of simulated hosts, 1..200 */
  hosts: number;
  /** MTU of every underlay link (default 1500) */
  underlayMtu?: number;
  /** add an "outside" namespace on the underlay (default true) */
  outside?: boolean;
  /** name prefix (1-8 lowercase letters or digits, default "vxt"); every name also gets a unique run id */
  prefix?: string;
  /** start the manager and one agent per host (default true) */
  startDaemons?: boolean;
  /** daemon output goes here, one line at a time, prefixed with "[manager]", "[host1/agent]", ... */
  log?: (line: string) => void;
  /** keep IPv6 enabled in the kit's namespaces (default false: IPv6 off, quiet captures) */
  ipv6?: boolean;
  /** the CLI module the daemons and `cli()` run (default: src/cli/main.ts of this checkout) */
  cliPath?: string;
  /** how long a daemon may take to become ready (default 20 s) */
  daemonTimeoutMs?: number;
  /** extra arguments for every `vxnet manager` the kit starts, e.g. ['--node-down-after', '7'] */
  managerArgs?: readonly string[];
  /** extra arguments for every `vxnet agent` the kit starts, e.g. ['--watch-timeout', '3'] */
  agentArgs?: readonly string[];
}

export interface SimHost {
  /** the node name its agent registers: "host1", "host2", ... */
  readonly name: string;
  /** 1-based */
  readonly index: number;
  readonly netns: string;
  /** underlay address, 10.99.0.(10 + index) */
  readonly address: string;
  readonly underlayDevice: string;
}

export interface ManagerInfo {
  /** https://10.99.0.1:7400 (TLS, client certificates), reachable from the host namespaces */
  readonly url: string;
  /** unix:/tmp/.../manager.sock, reachable from anywhere on the machine */
  readonly socketUrl: string;
  /** the current tokens, read from DATA_DIR at each use (so a `vxnet token rotate` is followed) */
  readonly adminToken: string;
  readonly workerToken: string;
  readonly dataDir: string;
  /** DATA_DIR/ca.pem, the cluster CA */
  readonly caFile: string;
}

export interface StartAgentOptions {
  /** the join token to pass (default: the current worker token); false: start without --token */
  token?: string | false;
  /** more arguments for this agent, after `agentArgs` (e.g. --docker-socket, see testkit/docker.ts) */
  args?: readonly string[];
}

export interface Cluster {
  readonly runId: string;
  readonly prefix: string;
  readonly hosts: readonly SimHost[];
  readonly outside: { readonly netns: string; readonly address: string; readonly internetAddress: string } | undefined;
  readonly switchNetns: string;
  readonly underlayMtu: number;
  /** the run's scratch folder (manager data, socket); removed by destroy() */
  readonly tmpDir: string;
  /** throws until the manager has been started once */
  readonly manager: ManagerInfo;
  /** host by 1-based index, or by name ("host2") */
  host(which: number | string): SimHost;
  /** env for running the CLI against this cluster: VXNET_MANAGER=unix:..., VXNET_TOKEN=admin token */
  cliEnv(): Record<string, string>;
  /** runs `node src/cli/main.ts ...args` with cliEnv(); never rejects on a non-zero exit */
  cli(args: readonly string[], options?: { timeoutMs?: number; input?: string }): Promise<RunResult>;
  /** one manager API call over the unix socket with the admin token */
  api<T = unknown>(method: string, path: string, body?: unknown): Promise<JsonResponse<T>>;
  /** a new namespace standing for a container (only lo, up); returns its name */
  addContainer(name: string): Promise<string>;
  removeContainer(netns: string): Promise<void>;
  /** runs argv inside a namespace (ip netns exec); never rejects on a non-zero exit */
  exec(netns: string, argv: readonly string[], options?: { timeoutMs?: number; input?: string }): Promise<RunResult>;
  /** a long-running process inside a namespace (ping loop, tcpdump, iperf3 -s, ...); stopped by destroy() */
  spawn(netns: string, argv: readonly string[], options?: { label?: string }): ChildProcessHandle;
  startManager(): Promise<void>;
  stopManager(signal?: NodeJS.Signals): Promise<void>;
  /** starts the agent of a host, with its state directory agentStateDir(host); resolves once it registered */
  startAgent(host: SimHost, options?: StartAgentOptions): Promise<void>;
  /** where the agent of a host keeps its node certificate (kept across restarts, removed by destroy()) */
  agentStateDir(host: SimHost): string;
  stopAgent(host: SimHost, signal?: NodeJS.Signals): Promise<void>;
  restartAgent(host: SimHost, signal?: NodeJS.Signals): Promise<void>;
  /**
   * Destroys a host as a machine loss would: kills its agent and everything else in its namespace (-9),
   * deletes the namespace (with every device, veth, FDB/neighbour entry and nftables table in it), and
   * makes it again with the same name, underlay address and switch port. Its agent is not started.
   * Container namespaces are separate and stay, but lose the interfaces whose other end was on the host.
   */
  recreateHost(host: SimHost): Promise<void>;
  /** the running daemon of a role ("manager", "host1/agent"), if any */
  daemon(label: string): ChildProcessHandle | undefined;
  /** the last lines of every daemon started so far, for assertion messages */
  daemonLogs(linesPerDaemon?: number): string;
  /** kills every process it started, deletes every namespace it made; idempotent; never throws */
  destroy(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------
// Safety net: what every live cluster owns, so that an exiting process can still clean up synchronously.

interface Owned {
  netns: Set<string>;
  processes: Set<ChildProcessHandle>;
  tmpDir: string | undefined;
}

const live = new Set<Owned>();
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
let netInstalled = false;

function emergencyCleanup(): void {
  for (const owned of live) {
    for (const handle of owned.processes) {
      try {
        if (!handle.exitInfo) handle.process.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const netns of owned.netns) killEverythingInSync(netns);
    deleteNetnsSync([...owned.netns]);
    if (owned.tmpDir) {
      try {
        rmSync(owned.tmpDir, { recursive: true, force: true });
      } catch {
        // best effort while exiting
      }
    }
  }
  live.clear();
}

function killEverythingInSync(netns: string): void {
  try {
    const listed = spawnSync('ip', ['netns', 'pids', netns], { encoding: 'utf8', timeout: 5000 });
    for (const line of (listed.stdout ?? '').split('\n')) {
      const pid = Number.parseInt(line, 10);
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid) process.kill(pid, 'SIGKILL');
    }
  } catch {
    // best effort while exiting
  }
}

function onExit(): void {
  emergencyCleanup();
}

function onSignal(signal: NodeJS.Signals): void {
  // Another listener (the demo, the test runner) owns the signal and will destroy or exit; 'exit' still
  // catches the case where it exits without destroying.
  if (process.listenerCount(signal) > 1) return;
  emergencyCleanup();
  uninstallSafetyNet();
  // Without other listeners Node's default for the signal (terminate) is what the user asked for.
  process.kill(process.pid, signal);
}

function installSafetyNet(): void {
  if (netInstalled) return;
  netInstalled = true;
  process.on('exit', onExit);
  for (const signal of SIGNALS) process.on(signal, onSignal);
}

function uninstallSafetyNet(): void {
  if (!netInstalled) return;
  netInstalled = false;
  process.off('exit', onExit);
  for (const signal of SIGNALS) process.off(signal, onSignal);
}

// ---------------------------------------------------------------------------------------------------
// Names

function newRunId(): string {
  // pid first (so that cleanupStale can tell whether the owner still lives), then 3 random letters
  let suffix = '';
  for (let i = 0; i < 3; i++) suffix += String.fromCharCode(97 + randomInt(26));
  return `${process.pid}${suffix}`;
}

function staleNamePattern(prefix: string): RegExp {
  return new RegExp(`^${prefix}-(\\d+)[a-z]{3}-`);
}

function requirePrefix(prefix: string): string {
  if (!/^[a-z0-9]{1,8}$/.test(prefix)) {
    throw new TypeError(`cluster prefix ${JSON.stringify(prefix)} is invalid: use 1-8 lowercase letters or digits.`);
  }
  return prefix;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Deletes namespaces (and scratch folders) of this prefix left by runs whose process no longer exists,
 * killing whatever still runs inside them. Runs of live processes, including this one, are never touched.
 * Returns the deleted namespace names.
 */
export async function cleanupStale(prefix: string = DEFAULT_PREFIX): Promise<string[]> {
  const pattern = staleNamePattern(requirePrefix(prefix));
  const isStale = (name: string): boolean => {
    const match = pattern.exec(name);
    if (!match) return false;
    const pid = Number(match[1]);
    return pid !== process.pid && !pidAlive(pid);
  };
  const stale = listNetns().filter(isStale);
  await Promise.all(stale.map(killEverythingIn));
  await deleteNetns(stale);
  try {
    for (const entry of readdirSync(tmpdir())) {
      if (isStale(entry)) rmSync(join(tmpdir(), entry), { recursive: true, force: true });
    }
  } catch {
    // scratch folders are a nicety; namespaces are what matters
  }
  return stale;
}

async function killEverythingIn(netns: string): Promise<void> {
  for (const pid of await netnsPids(netns)) {
    if (pid === process.pid) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // exited meanwhile
    }
  }
}

// ---------------------------------------------------------------------------------------------------

function validate(options: ClusterOptions): Required<Pick<ClusterOptions, 'hosts' | 'underlayMtu' | 'outside' | 'prefix'>> {
  const { hosts } = options;
  if (!Number.isInteger(hosts) || hosts < 1 || hosts > MAX_HOSTS) {
    throw new RangeError(`createCluster: hosts must be an integer from 1 to ${MAX_HOSTS} (got ${String(hosts)}).`);
  }
  const underlayMtu = options.underlayMtu ?? 1500;
  if (!Number.isInteger(underlayMtu) || underlayMtu < 68 || underlayMtu > 65535) {
    throw new RangeError(`createCluster: underlayMtu must be an integer from 68 to 65535 (got ${String(underlayMtu)}).`);
  }
  const prefix = requirePrefix(options.prefix ?? DEFAULT_PREFIX);
  if (!isRoot()) throw new Error('createCluster: must run as root (it creates network namespaces and links).');
  for (const [command, pkg] of [['ip', 'iproute2'], ['nsenter', 'util-linux'], ['sysctl', 'procps']] as const) {
    if (!findCommand(command)) throw new Error(`createCluster: command "${command}" not found; install it with: apt-get install -y ${pkg}`);
  }
  return { hosts, underlayMtu, outside: options.outside ?? true, prefix };
}

/** Builds the cluster; on any failure destroys what it built and rejects with the daemons' last words. */
export async function createCluster(options: ClusterOptions): Promise<Cluster> {
  const checked = validate(options);
  await cleanupStale(checked.prefix).catch(() => []);
  const cluster = new SimCluster(options, checked);
  try {
    await cluster.build();
    if (options.startDaemons ?? true) {
      await cluster.startManager();
      await Promise.all(cluster.hosts.map((host) => cluster.startAgent(host)));
    }
    return cluster;
  } catch (err) {
    const logs = cluster.daemonLogs();
    await cluster.destroy();
    const message = err instanceof Error ? err.message : String(err);
    throw new Error(`createCluster failed: ${message}${logs ? `\n${logs}` : ''}`, { cause: err });
  }
}

/** Runs fn with a new cluster and always destroys it afterwards. */
export async function withCluster<T>(options: ClusterOptions, fn: (cluster: Cluster) => Promise<T>): Promise<T> {
  const cluster = await createCluster(options);
  try {
    return await fn(cluster);
  } finally {
    await cluster.destroy();
  }
}

class SimCluster implements Cluster {
  readonly runId: string;
  readonly prefix: string;
  readonly hosts: readonly SimHost[];
  readonly outside: Cluster['outside'];
  readonly switchNetns: string;
  readonly underlayMtu: number;

  readonly #options: ClusterOptions;
  readonly #owned: Owned = { netns: new Set(), processes: new Set(), tmpDir: undefined };
  readonly #cliPath: string;
  readonly #daemonTimeoutMs: number;
  readonly #ipv6: boolean;
  /** every daemon incarnation, in start order (stopped ones too, for the logs) */
  readonly #daemonHistory: ChildProcessHandle[] = [];
  readonly #daemons = new Map<string, ChildProcessHandle>();
  #tmpDir: string | undefined;
  #manager: ManagerInfo | undefined;
  #destroyed: Promise<void> | undefined;

  constructor(options: ClusterOptions, checked: ReturnType<typeof validate>) {
    this.#options = options;
    this.prefix = checked.prefix;
    // A pid can be reused after a run was killed: never adopt names its leftovers still hold.
    const taken = listNetns();
    do this.runId = newRunId();
    while (taken.some((name) => name.startsWith(`${this.prefix}-${this.runId}-`)));
    this.underlayMtu = checked.underlayMtu;
    this.#cliPath = options.cliPath ?? DEFAULT_CLI_PATH;
    this.#daemonTimeoutMs = options.daemonTimeoutMs ?? 20_000;
    this.#ipv6 = options.ipv6 ?? false;
    const base = `${this.prefix}-${this.runId}`;
    this.switchNetns = `${base}-sw`;
    this.hosts = Array.from({ length: checked.hosts }, (_, i) => ({
      name: `host${i + 1}`,
      index: i + 1,
      netns: `${base}-h${i + 1}`,
      address: hostAddress(i + 1),
      underlayDevice: UNDERLAY_DEVICE,
    }));
    this.outside = checked.outside
      ? { netns: `${base}-out`, address: OUTSIDE_ADDRESS, internetAddress: INTERNET_ADDRESS }
      : undefined;
  }

  get tmpDir(): string {
    if (!this.#tmpDir) throw new Error('cluster is not built');
    return this.#tmpDir;
  }

  get manager(): ManagerInfo {
    if (!this.#manager) throw new Error('the manager has not been started (startDaemons: false?)');
    return this.#manager;
  }

  host(which: number | string): SimHost {
    const host = this.hosts.find((h) => h.index === which || h.name === which);
    if (!host) throw new RangeError(`no host ${String(which)} in this cluster (it has ${this.hosts.length})`);
    return host;
  }

  /** Creates namespaces and links. Everything is registered for cleanup before it is created. */
  async build(): Promise<void> {
    live.add(this.#owned);
    installSafetyNet();
    this.#tmpDir = await mkdtemp(join(tmpdir(), `${this.prefix}-${this.runId}-`));
    this.#owned.tmpDir = this.#tmpDir;

    const mtu = this.underlayMtu;
    const all = [this.switchNetns, ...this.hosts.map((h) => h.netns), ...(this.outside ? [this.outside.netns] : [])];
    for (const name of all) this.#owned.netns.add(name);
    await addNetns(all);
    if (!this.#ipv6) await Promise.all(all.map((name) => setSysctls(name, IPV6_OFF)));

    // The switch: one bridge, one veth per host (and outside); the peers land in their namespaces as eth0.
    const switchLines = ['link set lo up', `link add br0 mtu ${mtu} type bridge mcast_snooping 0`];
    const ports = [
      ...this.hosts.map((h) => ({ port: `h${h.index}`, netns: h.netns })),
      ...(this.outside ? [{ port: 'out', netns: this.outside.netns }] : []),
    ];
    for (const { port, netns } of ports) {
      switchLines.push(
        `link add ${port} mtu ${mtu} type veth peer name ${UNDERLAY_DEVICE} netns ${netns} mtu ${mtu}`,
        `link set ${port} master br0`,
        `link set ${port} up`,
      );
    }
    switchLines.push(`addr add ${SWITCH_ADDRESS}/${UNDERLAY_PREFIX_LENGTH} dev br0`, 'link set br0 up');
    await ipBatch(this.switchNetns, switchLines);

    const hostLines = (address: string, extra: string[]) => [
      'link set lo up',
      `link set ${UNDERLAY_DEVICE} up`,
      `addr add ${address}/${UNDERLAY_PREFIX_LENGTH} dev ${UNDERLAY_DEVICE}`,
      ...extra,
    ];
    const outside = this.outside;
    await Promise.all([
      ...this.hosts.map((h) =>
        ipBatch(h.netns, hostLines(h.address, outside ? [`route add default via ${outside.address} dev ${UNDERLAY_DEVICE}`] : [])),
      ),
      ...(outside ? [ipBatch(outside.netns, hostLines(outside.address, [`addr add ${outside.internetAddress}/32 dev lo`]))] : []),
    ]);
  }

  cliEnv(): Record<string, string> {
    return { VXNET_MANAGER: this.manager.socketUrl, VXNET_TOKEN: this.manager.adminToken };
  }

  async cli(args: readonly string[], options: { timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
    return run([process.execPath, this.#cliPath, ...args], {
      env: { ...process.env, ...this.cliEnv() },
      timeoutMs: options.timeoutMs ?? 30_000,
      ...(options.input === undefined ? {} : { input: options.input }),
    });
  }

  api<T = unknown>(method: string, path: string, body?: unknown): Promise<JsonResponse<T>> {
    return requestJson<T>({ url: this.manager.socketUrl, token: this.manager.adminToken, method, path, body });
  }

  async addContainer(name: string): Promise<string> {
    this.#assertUsable();
    if (!/^[A-Za-z0-9_.-]{1,32}$/.test(name)) {
      throw new TypeError(`container name ${JSON.stringify(name)} is invalid: use 1-32 letters, digits, "_", "." or "-".`);
    }
    const netns = `${this.prefix}-${this.runId}-c${name}`;
    if (this.#owned.netns.has(netns)) throw new Error(`container ${name} already exists (${netns})`);
    this.#owned.netns.add(netns);
    try {
      await addNetns([netns]);
      await Promise.all([ipBatch(netns, ['link set lo up']), this.#ipv6 ? undefined : setSysctls(netns, IPV6_OFF)]);
    } catch (err) {
      await deleteNetns([netns]);
      this.#owned.netns.delete(netns);
      throw err;
    }
    return netns;
  }

  async removeContainer(netns: string): Promise<void> {
    if (!netns.startsWith(`${this.prefix}-${this.runId}-c`) || !this.#owned.netns.has(netns)) {
      throw new Error(`${netns} is not a container of this cluster`);
    }
    await Promise.all([...this.#owned.processes].filter((p) => p.label.startsWith(`${netns}:`)).map((p) => p.stop('SIGKILL')));
    await killEverythingIn(netns);
    const failures = await deleteNetns([netns]);
    if (failures.length > 0) throw new Error(`could not delete ${netns}: ${failures[0]?.error}`);
    this.#owned.netns.delete(netns);
  }

  exec(netns: string, argv: readonly string[], options: { timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
    return run(netnsExecArgv(netns, argv), options);
  }

  spawn(netns: string, argv: readonly string[], options: { label?: string } = {}): ChildProcessHandle {
    this.#assertUsable();
    const handle = start(netnsExecArgv(netns, argv), { label: `${netns}: ${options.label ?? argv.join(' ')}` });
    this.#track(handle);
    return handle;
  }

  daemon(label: string): ChildProcessHandle | undefined {
    const handle = this.#daemons.get(label);
    return handle && !handle.exitInfo ? handle : undefined;
  }

  async startManager(): Promise<void> {
    this.#assertUsable();
    if (this.daemon('manager')) throw new Error('the manager is already running');
    const dataDir = join(this.tmpDir, 'manager');
    const socketUrl = `unix:${join(this.tmpDir, 'manager.sock')}`;
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    const handle = this.#startDaemon('manager', this.switchNetns, [
      'manager',
      '--data-dir',
      dataDir,
      '--listen',
      `${SWITCH_ADDRESS}:${MANAGER_PORT}`,
      '--listen',
      socketUrl,
      ...(this.#options.managerArgs ?? []),
    ]);
    const deadline = Date.now() + this.#daemonTimeoutMs;
    await handle.waitFor(/listening/i, this.#daemonTimeoutMs);
    const token = (file: string) => readFileSync(join(dataDir, file), 'utf8').trim();
    const manager = await this.#waitUntil(handle, deadline, 'the manager to answer on its unix socket', async () => {
      const info: ManagerInfo = {
        url: `https://${SWITCH_ADDRESS}:${MANAGER_PORT}`,
        socketUrl,
        get adminToken() {
          return token('admin.token');
        },
        get workerToken() {
          return token('worker.token');
        },
        dataDir,
        caFile: join(dataDir, 'ca.pem'),
      };
      const answer = await requestJson({ url: socketUrl, token: info.adminToken, path: '/v1/info', timeoutMs: 2000 });
      if (answer.status !== 200) throw new Error(`GET /v1/info answered ${answer.status}: ${answer.text}`);
      return info;
    });
    this.#manager = manager;
  }

  async stopManager(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.daemon('manager')?.stop(signal);
  }

  agentStateDir(host: SimHost): string {
    return join(this.tmpDir, `${host.name}-agent`);
  }

  async startAgent(host: SimHost, options: StartAgentOptions = {}): Promise<void> {
    this.#assertUsable();
    const label = `${host.name}/agent`;
    if (this.daemon(label)) throw new Error(`the agent of ${host.name} is already running`);
    const token = options.token ?? this.manager.workerToken;
    const startedAt = Date.now();
    // The agent joins over mTLS with the join token (the CA pinned by its digest) and keeps its node
    // certificate in its state directory, so a restart finds it there.
    const handle = this.#startDaemon(label, host.netns, [
      'agent',
      '--manager',
      this.manager.url,
      ...(token === false ? [] : ['--token', token]),
      '--state-dir',
      this.agentStateDir(host),
      '--advertise-addr',
      host.address,
      '--name',
      host.name,
      ...(this.#options.agentArgs ?? []),
      ...(options.args ?? []),
    ]);
    // Registered by this incarnation: the node is up and was (re-)registered or seen since the start.
    await this.#waitUntil(handle, Date.now() + this.#daemonTimeoutMs, `node ${host.name} to register`, async () => {
      const answer = await this.api<NodeStatus[]>('GET', '/v1/nodes');
      if (answer.status !== 200 || !Array.isArray(answer.body)) throw new Error(`GET /v1/nodes answered ${answer.status}: ${answer.text}`);
      const node = answer.body.find((n) => n.name === host.name);
      if (!node) throw new Error(`node ${host.name} is not registered yet`);
      if (node.state !== 'up') throw new Error(`node ${host.name} is ${node.state}`);
      const since = (stamp: string | null | undefined) => typeof stamp === 'string' && Date.parse(stamp) >= startedAt;
      if (!since(node.registeredAt) && !since(node.lastSeen)) throw new Error(`node ${host.name} has not been seen since the agent started`);
      return true;
    });
  }

  async stopAgent(host: SimHost, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.daemon(`${host.name}/agent`)?.stop(signal);
  }

  async restartAgent(host: SimHost, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.stopAgent(host, signal);
    await this.startAgent(host);
  }

  async recreateHost(host: SimHost): Promise<void> {
    this.#assertUsable();
    if (this.hosts[host.index - 1] !== host) throw new Error(`${host.name} is not a host of this cluster`);
    await this.stopAgent(host, 'SIGKILL');
    await Promise.all([...this.#owned.processes].filter((p) => p.label.startsWith(`${host.netns}:`)).map((p) => p.stop('SIGKILL')));
    await killEverythingIn(host.netns);
    // Deleting the switch end of the underlay veth takes the host's eth0 with it at once; the namespace
    // itself may linger in the kernel a little after `ip netns del`, but nothing refers to it by name.
    const port = `h${host.index}`;
    await run(['ip', '-n', this.switchNetns, 'link', 'del', port]);
    const failures = await deleteNetns([host.netns]);
    if (failures.length > 0) throw new Error(`could not delete ${host.netns}: ${failures[0]?.error}`);
    await addNetns([host.netns]);
    if (!this.#ipv6) await setSysctls(host.netns, IPV6_OFF);
    const mtu = this.underlayMtu;
    await ipBatch(this.switchNetns, [
      `link add ${port} mtu ${mtu} type veth peer name ${UNDERLAY_DEVICE} netns ${host.netns} mtu ${mtu}`,
      `link set ${port} master br0`,
      `link set ${port} up`,
    ]);
    await ipBatch(host.netns, [
      'link set lo up',
      `link set ${UNDERLAY_DEVICE} up`,
      `addr add ${host.address}/${UNDERLAY_PREFIX_LENGTH} dev ${UNDERLAY_DEVICE}`,
      ...(this.outside ? [`route add default via ${this.outside.address} dev ${UNDERLAY_DEVICE}`] : []),
    ]);
  }

  daemonLogs(linesPerDaemon = 40): string {
    return this.#daemonHistory
      .map((handle) => {
        const lines = handle.output().split('\n');
        const shown = lines.slice(-linesPerDaemon).join('\n');
        const cut = lines.length > linesPerDaemon ? `  (last ${linesPerDaemon} lines)` : '';
        return `--- ${handle.label} (pid ${handle.pid ?? '?'}, ${describeExit(handle.exitInfo)})${cut} ---\n${shown}`;
      })
      .join('\n');
  }

  destroy(): Promise<void> {
    this.#destroyed ??= this.#teardown();
    return this.#destroyed;
  }

  async #teardown(): Promise<void> {
    const problems: string[] = [];
    const attempt = async (what: string, step: () => Promise<unknown>) => {
      try {
        await step();
      } catch (err) {
        problems.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
      }
    };
    // 1. our own processes: SIGTERM (daemons may flush), SIGKILL after a grace period
    await attempt('stopping processes', () => Promise.all([...this.#owned.processes].map((p) => p.stop('SIGTERM', 2000))));
    // 2. anything else still inside our namespaces (children of daemons, processes started via exec)
    const names = [...this.#owned.netns];
    await attempt('killing leftovers', () => Promise.all(names.map(killEverythingIn)));
    // 3. the namespaces, and with them every link, route and nftables table inside
    await attempt('deleting namespaces', async () => {
      const failures = await deleteNetns(names);
      if (failures.length > 0) throw new Error(failures.map((f) => `${f.name}: ${f.error}`).join('; '));
    });
    if (this.#tmpDir) await attempt('removing the scratch folder', () => rm(this.#tmpDir as string, { recursive: true, force: true }));
    live.delete(this.#owned);
    if (live.size === 0) uninstallSafetyNet();
    if (problems.length > 0) {
      const line = `vxnet testkit: cleanup of run ${this.runId} incomplete: ${problems.join('; ')}`;
      (this.#options.log ?? console.error)(line);
    }
  }

  #assertUsable(): void {
    if (this.#destroyed) throw new Error(`cluster ${this.runId} has been destroyed`);
  }

  #track(handle: ChildProcessHandle): void {
    this.#owned.processes.add(handle);
    void handle.exited.then(() => this.#owned.processes.delete(handle));
  }

  #startDaemon(label: string, netns: string, args: readonly string[]): ChildProcessHandle {
    const handle = start(nsenterArgv(netns, [process.execPath, this.#cliPath, ...args]), {
      label,
      capacity: 1000,
      ...(this.#options.log ? { log: this.#options.log } : {}),
    });
    this.#track(handle);
    this.#daemonHistory.push(handle);
    this.#daemons.set(label, handle);
    return handle;
  }

  /** Polls `probe` until it resolves; fails when `handle` exits or the deadline passes (with the last reason). */
  async #waitUntil<T>(handle: ChildProcessHandle, deadline: number, what: string, probe: () => Promise<T>): Promise<T> {
    let lastError = 'no attempt yet';
    for (let delay = 20; ; delay = Math.min(delay * 2, 100)) {
      if (handle.exitInfo) throw new Error(`${handle.label} exited (${describeExit(handle.exitInfo)}) while waiting for ${what}`);
      try {
        return await probe();
      } catch (err) {
        lastError = err instanceof Error ? err.message : String(err);
      }
      if (Date.now() >= deadline) throw new Error(`timed out waiting for ${what}: ${lastError}`);
      await sleep(delay);
    }
  }
}
