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
 * topology.ts wires the underlay, daemons.ts runs the daemons, cleanup.ts tears down and keeps the safety net.
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
import { chmodSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { cleanupStale, guard, killEverythingIn, newRunId, requirePrefix, teardown, type Owned } from './cleanup.ts';
import { Daemons, type ManagerInfo } from './daemons.ts';
import type { NodeStatus } from '../core/model.ts';
import { requestJson, type JsonResponse } from './http.ts';
import { IPV6_OFF, addNetns, deleteNetns, ipBatch, listNetns, netnsExecArgv, setSysctls } from './netns.ts';
import { findCommand, isRoot } from './preflight.ts';
import { run, start, type ChildProcessHandle, type RunResult } from './processes.ts';
import {
  DEFAULT_PREFIX, INTERNET_ADDRESS, MAX_HOSTS, OUTSIDE_ADDRESS, UNDERLAY_DEVICE, UNDERLAY6_HOST_SYSCTLS,
  hostAddress, hostAddress6, rewireHost, switchPort, wireUnderlay, type SimHost,
} from './topology.ts';

export type { ChildProcessHandle, ExitInfo, RunResult } from './processes.ts';
export { cleanupStale } from './cleanup.ts';
export type { ManagerInfo } from './daemons.ts';
export {
  DEFAULT_PREFIX,
  INTERNET_ADDRESS,
  MANAGER_PORT,
  MAX_HOSTS,
  OUTSIDE_ADDRESS,
  SWITCH_ADDRESS,
  UNDERLAY_DEVICE,
  UNDERLAY_PREFIX_LENGTH,
  UNDERLAY_SUBNET,
  hostAddress,
  type SimHost,
} from './topology.ts';

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
  /** 'ipv6': an IPv6-only underlay (eth0 fd99::(10 + index)/64), the control plane on IPv4 (topology.ts); default 'ipv4' */
  underlay?: 'ipv4' | 'ipv6';
  /** the CLI module the daemons and `cli()` run (default: src/cli/main.ts of this checkout) */
  cliPath?: string;
  /** how long a daemon may take to become ready (default 20 s) */
  daemonTimeoutMs?: number;
  /** extra arguments for every `vxnet manager` the kit starts, e.g. ['--node-down-after', '7'] */
  managerArgs?: readonly string[];
  /** extra arguments for every `vxnet agent` the kit starts, e.g. ['--watch-timeout', '3'] */
  agentArgs?: readonly string[];
  /**
   * more arguments for one host's agent, asked at every start and restart (e.g. `--dataplane ovs --ovs-db
   * ...` for a host with Open vSwitch, see testkit/ovs.ts)
   */
  agentArgsFor?: (host: SimHost) => readonly string[];
}

export interface StartAgentOptions {
  /** the join token, passed in a file with --token-file (default: the current worker token); false: none */
  token?: string | false;
  /** also give the agent the admin token with --admin-token-file (for Docker's network create/rm) */
  adminToken?: boolean;
  /** more arguments for this agent, after `agentArgs` (e.g. --docker-socket, see testkit/docker.ts) */
  args?: readonly string[];
  /** --advertise-addr (default: the host's underlay address), for a test that re-addresses the host */
  advertiseAddress?: string;
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
  readonly #ipv6: boolean;
  readonly #daemons: Daemons;
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
    this.#daemons = new Daemons({
      cliPath: this.#cliPath,
      timeoutMs: options.daemonTimeoutMs ?? 20_000,
      log: options.log,
      track: (handle) => this.#track(handle),
    });
    this.#ipv6 = options.ipv6 ?? false;
    const base = `${this.prefix}-${this.runId}`;
    this.switchNetns = `${base}-sw`;
    this.hosts = Array.from({ length: checked.hosts }, (_, i) => ({
      name: `host${i + 1}`,
      index: i + 1,
      netns: `${base}-h${i + 1}`,
      address: options.underlay === 'ipv6' ? hostAddress6(i + 1) : hostAddress(i + 1),
      underlayDevice: UNDERLAY_DEVICE,
      ...(options.underlay === 'ipv6' ? { controlAddress: hostAddress(i + 1) } : {}),
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
    guard(this.#owned);
    this.#tmpDir = await mkdtemp(join(tmpdir(), `${this.prefix}-${this.runId}-`));
    this.#owned.tmpDir = this.#tmpDir;

    const all = [this.switchNetns, ...this.hosts.map((h) => h.netns), ...(this.outside ? [this.outside.netns] : [])];
    for (const name of all) this.#owned.netns.add(name);
    await addNetns(all);
    await Promise.all(all.map((name) => this.#quiet(name)));

    await wireUnderlay({ switchNetns: this.switchNetns, hosts: this.hosts, outside: this.outside, mtu: this.underlayMtu });
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
    return this.#daemons.running(label);
  }

  async startManager(): Promise<void> {
    this.#assertUsable();
    if (this.daemon('manager')) throw new Error('the manager is already running');
    this.#manager = await this.#daemons.startManager(this.switchNetns, this.tmpDir, this.#options.managerArgs ?? []);
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
    // The agent joins over mTLS with the join token (the CA pinned by its digest) and keeps its node
    // certificate in its state directory, so a restart finds it there. Tokens go in files, as on a real
    // host: on the command line every local user could read them.
    const tokenFile = (kind: string, text: string): string => {
      const path = join(this.tmpDir, `${host.name}-${kind}.token`);
      writeFileSync(path, `${text}\n`, { mode: 0o600 });
      chmodSync(path, 0o600);
      return path;
    };
    const args = [
      '--manager',
      this.manager.url,
      ...(token === false ? [] : ['--token-file', tokenFile('join', token)]),
      ...(options.adminToken ? ['--admin-token-file', tokenFile('admin', this.manager.adminToken)] : []),
      '--state-dir',
      this.agentStateDir(host),
      '--advertise-addr',
      options.advertiseAddress ?? host.address,
      '--name',
      host.name,
      ...(this.#options.agentArgs ?? []),
      ...(this.#options.agentArgsFor?.(host) ?? []),
      ...(options.args ?? []),
    ];
    // The agent serves the CNI plugin by default on one path per machine: each simulated host gets its own.
    if (!args.includes('--cni-socket') && !args.includes('--no-cni')) args.push('--cni-socket', join(this.tmpDir, `${host.name}-cni.sock`));
    // Network namespaces are pinned in /run/netns, which all simulated hosts share: named after the host, never shared.
    if (!args.includes('--netns-prefix') && !args.includes('--no-network-namespaces')) args.push('--netns-prefix', `${host.netns}-n`);
    await this.#daemons.startAgent(host, args, () => this.api<NodeStatus[]>('GET', '/v1/nodes'));
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
    const port = switchPort(host);
    await run(['ip', '-n', this.switchNetns, 'link', 'del', port]);
    // the agent's network namespaces (--netns-prefix HOST-n) go with the machine, as after a reboot
    const failures = await deleteNetns([host.netns, ...listNetns().filter((name) => name.startsWith(`${host.netns}-n`))]);
    if (failures.length > 0) throw new Error(`could not delete ${host.netns}: ${failures[0]?.error}`);
    await addNetns([host.netns]);
    await this.#quiet(host.netns);
    await rewireHost({ switchNetns: this.switchNetns, hosts: this.hosts, outside: this.outside, mtu: this.underlayMtu }, host);
  }

  daemonLogs(linesPerDaemon = 40): string {
    return this.#daemons.logs(linesPerDaemon);
  }

  destroy(): Promise<void> {
    this.#destroyed ??= teardown(this.#owned, this.runId, this.#options.log ?? console.error);
    return this.#destroyed;
  }

  /** IPv6 off in a namespace unless asked for; a host on an IPv6 underlay has it on its underlay link alone. */
  async #quiet(netns: string): Promise<void> {
    if (this.#options.underlay === 'ipv6' && this.hosts.some((h) => h.netns === netns)) await setSysctls(netns, UNDERLAY6_HOST_SYSCTLS);
    else if (!this.#ipv6) await setSysctls(netns, IPV6_OFF);
  }

  #assertUsable(): void {
    if (this.#destroyed) throw new Error(`cluster ${this.runId} has been destroyed`);
  }

  #track(handle: ChildProcessHandle): void {
    this.#owned.processes.add(handle);
    void handle.exited.then(() => this.#owned.processes.delete(handle));
  }
}
