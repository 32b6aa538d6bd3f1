/**
 * Real Docker engines on simulated hosts, for the integration tests and the benchmark (ENVIRONMENT.md,
 * "Real container engines"). One `dockerd` per host, never the machine's own:
 *
 *   nsenter --net=/run/netns/HOST  unshare -m --propagation private  sh -c 'mount --bind PLUGINS /run/docker/plugins; exec dockerd ...'
 *
 * - `nsenter --net` (not `ip netns exec`, which remounts /sys and loses the cgroups dockerd needs) puts it in
 *   the host's network namespace, where the vxnet agent of that host runs too;
 * - a private mount namespace gives it its own view of /run/docker/plugins, the folder every engine scans
 *   for plugin sockets: the host's folder holds only that host's agent's `vxnet.sock`. Every mount the
 *   engine makes (layers, netns files, shm) lives and dies in that namespace: nothing leaks to the machine;
 * - its own data root, exec root, pidfile, API socket and config file (an empty one: /etc/docker is ignored)
 *   under one scratch folder, and its own cgroup parent, so its containers can be found and killed even if
 *   the engine itself dies first;
 * - mode "vxnet": `--iptables=false --ip6tables=false --bridge=none` (the engine touches no packet filter and
 *   makes no docker0: vxnet is the only network); mode "normal": Docker's defaults, as Swarm overlay needs.
 *
 * The image `busybox:local` is a busybox-static root file system (bin/busybox and one symlink per applet,
 * /www/index.html for httpd) imported with `docker import`: no registry is reachable.
 *
 * Cleanup: `destroy()` removes the containers, stops the engine (SIGTERM, then SIGKILL), kills whatever still
 * runs in its cgroup parent and deletes its scratch folder; a process exit does the killing synchronously.
 */
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import type { Cluster, SimHost } from './cluster.ts';
import { findCommand } from './preflight.ts';
import { type ChildProcessHandle, type RunResult, run, sleep, start } from './processes.ts';

export const BUSYBOX_IMAGE = 'busybox:local';
/** The page `httpd -f -h /www` serves from the image. */
export const INDEX_HTML = 'hello from vxnet\n';
/** Where every engine looks for plugin sockets; each engine sees its host's folder mounted there. */
export const PLUGIN_DIR = '/run/docker/plugins';

export type EngineMode = 'vxnet' | 'normal';

/**
 * One engine as the tests use it: the engine class without what only `startDockerEngines` and the exit
 * hook call.
 */
export type DockerEngine = Omit<Engine, 'prepare' | 'importImage' | 'killSync'>;

export interface StartEnginesOptions {
  mode?: EngineMode;
  /** engine output, one line at a time */
  log?: (line: string) => void;
  /** import busybox:local (default true) */
  image?: boolean;
}

/** The docker CLI of the engine's own package (another CLI on PATH may speak a newer API). */
export function dockerCli(): string {
  return existsSync('/usr/bin/docker') ? '/usr/bin/docker' : (findCommand('docker') ?? 'docker');
}

/** What is missing to run engines here, or undefined. */
export function dockerProblems(): string | undefined {
  const missing = ['dockerd', 'containerd', 'runc', 'unshare', 'tar'].filter((c) => !findCommand(c));
  if (!existsSync('/bin/busybox') && !findCommand('busybox')) missing.push('busybox');
  if (!findCommand('docker') && !existsSync('/usr/bin/docker')) missing.push('docker');
  return missing.length === 0 ? undefined : `missing ${missing.join(', ')}: apt-get install -y docker.io busybox-static`;
}

/** The agent flags that link a host's agent to its engine. */
export function dockerAgentArgs(engine: DockerEngine): string[] {
  return ['--docker-socket', engine.socket, '--plugin-socket', engine.pluginSocket];
}

// ---------------------------------------------------------------------------------------------------
// Safety net: containers of engines that die with the test process would run on for ever.

const liveEngines = new Set<Engine>();
let exitHooked = false;

function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.on('exit', () => {
    for (const engine of liveEngines) engine.killSync();
  });
}

let createdPluginDir = false;

export async function startDockerEngines(cluster: Cluster, hosts: readonly SimHost[], options: StartEnginesOptions = {}): Promise<DockerEngine[]> {
  const problem = dockerProblems();
  if (problem) throw new Error(`cannot start Docker engines: ${problem}`);
  if (!existsSync(PLUGIN_DIR)) {
    mkdirSync(PLUGIN_DIR, { recursive: true });
    createdPluginDir = true;
  }
  hookExit();
  const rootfs = options.image === false ? undefined : await busyboxRootfs(cluster.tmpDir);
  const engines = hosts.map((host) => new Engine(cluster, host, options.mode ?? 'vxnet', options.log));
  try {
    await Promise.all(
      engines.map(async (engine) => {
        await engine.prepare();
        await engine.start();
        if (rootfs) await engine.importImage(rootfs);
      }),
    );
  } catch (err) {
    await Promise.all(engines.map((engine) => engine.destroy()));
    throw err;
  }
  return engines;
}

/** Tears down a Docker test's world, also a half-built one: its client (if any), the engines, then the cluster. */
export async function destroyDockerCluster(engines: readonly DockerEngine[], cluster: { destroy(): Promise<void> } | undefined, client?: { close(): void }): Promise<void> {
  client?.close();
  await destroyDockerEngines(engines);
  await cluster?.destroy();
}

export async function destroyDockerEngines(engines: readonly DockerEngine[]): Promise<void> {
  await Promise.all(engines.map((engine) => engine.destroy()));
  if (createdPluginDir && liveEngines.size === 0) {
    for (const dir of [PLUGIN_DIR, '/run/docker']) {
      try {
        rmdirSync(dir);
      } catch {
        break; // not empty (someone else's) or gone
      }
    }
    createdPluginDir = false;
  }
}

class Engine {
  readonly host: SimHost;
  readonly mode: EngineMode;
  /** the engine's scratch folder */
  readonly dir: string;
  /** its API socket */
  readonly socket: string;
  /** the folder it sees as /run/docker/plugins */
  readonly pluginDir: string;
  /** where the host's agent serves the vxnet plugin for it */
  readonly pluginSocket: string;
  readonly #log: ((line: string) => void) | undefined;
  readonly #cgroupParent: string;
  #process: ChildProcessHandle | undefined;
  #destroyed: Promise<void> | undefined;

  constructor(cluster: Cluster, host: SimHost, mode: EngineMode, log: ((line: string) => void) | undefined) {
    this.host = host;
    this.mode = mode;
    this.#log = log;
    this.dir = join(cluster.tmpDir, `docker-${host.name}`);
    this.socket = join(this.dir, 'docker.sock');
    this.pluginDir = join(this.dir, 'plugins');
    this.pluginSocket = join(this.pluginDir, 'vxnet.sock');
    this.#cgroupParent = `${cluster.prefix}-${cluster.runId}-${host.name}`;
  }

  /** the running engine process, if any */
  get process(): ChildProcessHandle | undefined {
    return this.#process && !this.#process.exitInfo ? this.#process : undefined;
  }

  async prepare(): Promise<void> {
    await mkdir(this.pluginDir, { recursive: true, mode: 0o755 });
    await mkdir(join(this.dir, 'cli'), { recursive: true, mode: 0o700 });
    writeFileSync(join(this.dir, 'daemon.json'), '{}\n');
    liveEngines.add(this);
  }

  /** starts the engine (again) and waits until it answers */
  async start(): Promise<void> {
    if (this.process) throw new Error(`the engine of ${this.host.name} is already running`);
    const dockerd = [
      'dockerd',
      '--config-file', join(this.dir, 'daemon.json'),
      '--data-root', join(this.dir, 'root'),
      '--exec-root', join(this.dir, 'exec'),
      '--pidfile', join(this.dir, 'docker.pid'),
      '-H', `unix://${this.socket}`,
      '--cgroup-parent', this.#cgroupParent,
      // containers (busybox as pid 1 ignores SIGTERM) get this long at an engine stop
      '--shutdown-timeout', '2',
      '--log-level', 'warn',
      ...(this.mode === 'vxnet' ? ['--iptables=false', '--ip6tables=false', '--bridge=none'] : []),
    ];
    const argv = [
      'nsenter', `--net=/run/netns/${this.host.netns}`,
      'unshare', '-m', '--propagation', 'private',
      // the folder path is an argument of the script, never part of it
      'sh', '-c', `mount --bind "$1" ${PLUGIN_DIR} && shift && exec "$@"`, 'sh', this.pluginDir,
      ...dockerd,
    ];
    const handle = start(argv, {
      label: `${this.host.name}/dockerd`,
      capacity: 500,
      ...(this.#log ? { log: this.#log } : {}),
    });
    this.#process = handle;
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (handle.exitInfo) throw new Error(`dockerd of ${this.host.name} exited while starting:\n${handle.output()}`);
      if (await ping(this.socket)) return;
      if (Date.now() > deadline) throw new Error(`dockerd of ${this.host.name} did not answer within 30 s:\n${handle.output()}`);
      await sleep(50);
    }
  }

  async importImage(rootfs: string): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const tar = spawn('tar', ['-C', rootfs, '-c', '.'], { stdio: ['ignore', 'pipe', 'pipe'] });
      const importer = spawn(dockerCli(), ['-H', `unix://${this.socket}`, 'import', '-c', 'CMD ["sh"]', '-', BUSYBOX_IMAGE], {
        stdio: ['pipe', 'pipe', 'pipe'],
        env: this.#env(),
      });
      let stderr = '';
      importer.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
      tar.stdout!.pipe(importer.stdin!);
      importer.on('error', reject);
      importer.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`docker import on ${this.host.name} failed: ${stderr.trim()}`))));
    });
  }

  #env(): NodeJS.ProcessEnv {
    return { ...process.env, DOCKER_CONFIG: join(this.dir, 'cli') };
  }

  /** runs the docker CLI against this engine; never rejects on a non-zero exit */
  docker(args: readonly string[], options: { timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
    return run([dockerCli(), '-H', `unix://${this.socket}`, ...args], {
      env: this.#env(),
      timeoutMs: options.timeoutMs ?? 60_000,
      ...(options.input === undefined ? {} : { input: options.input }),
    });
  }

  /** the same, rejecting with the CLI's error unless it exits 0; resolves with stdout, trimmed */
  async dockerOk(args: readonly string[], options: { timeoutMs?: number } = {}): Promise<string> {
    const result = await this.docker(args, options);
    if (result.code !== 0) throw new Error(`docker ${args.join(' ')} on ${this.host.name} failed (exit ${result.code}): ${result.stderr.trim() || result.stdout.trim()}`);
    return result.stdout.trim();
  }

  /** the pid of a running container's init process (its namespaces are under /proc/PID/ns) */
  async pidOf(container: string): Promise<number> {
    const pid = Number(await this.dockerOk(['inspect', '-f', '{{.State.Pid}}', container]));
    if (!(pid > 0)) throw new Error(`container ${container} on ${this.host.name} is not running`);
    return pid;
  }

  /** stops the engine gracefully (its containers stop too, releasing their networks) */
  async stopEngine(): Promise<void> {
    await this.#process?.stop('SIGTERM', 20_000);
  }

  /** removes every container, stops the engine, kills what is left and deletes the scratch folder; never throws */
  destroy(): Promise<void> {
    this.#destroyed ??= this.#teardown();
    return this.#destroyed;
  }

  async #teardown(): Promise<void> {
    try {
      if (this.process) {
        const ids = await this.docker(['ps', '-aq'], { timeoutMs: 10_000 });
        const list = ids.stdout.split('\n').filter(Boolean);
        if (list.length > 0) await this.docker(['rm', '-f', ...list], { timeoutMs: 30_000 });
      }
    } catch {
      // the engine may be wedged: the kill below takes care of its containers
    }
    await this.#process?.stop('SIGTERM', 15_000).catch(() => undefined);
    this.killSync();
    liveEngines.delete(this);
    await rm(this.dir, { recursive: true, force: true }).catch(() => undefined);
  }

  /** Kills the engine and everything in its containers' cgroups, synchronously (also from an exit hook). */
  killSync(): void {
    const pid = this.#process?.pid;
    if (pid !== undefined && !this.#process?.exitInfo) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    for (const controller of CGROUP_CONTROLLERS) {
      const root = join('/sys/fs/cgroup', controller, this.#cgroupParent);
      for (const pidText of cgroupProcs(root)) {
        try {
          process.kill(Number(pidText), 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
    // empty cgroups can then go (deepest first)
    for (const controller of CGROUP_CONTROLLERS) {
      removeCgroup(join('/sys/fs/cgroup', controller, this.#cgroupParent));
    }
  }
}

/** cgroup v1 hierarchies an engine's cgroup parent may appear in, and the v2 one ("unified"). */
const CGROUP_CONTROLLERS = ['pids', 'memory', 'cpu', 'freezer', 'devices', 'blkio', 'cpuset', 'cpuacct', 'unified'];

function cgroupProcs(dir: string): string[] {
  const out: string[] = [];
  try {
    out.push(...readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean));
    for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) out.push(...cgroupProcs(join(dir, entry.name)));
  } catch {
    // no such cgroup
  }
  return out;
}

function removeCgroup(dir: string): void {
  try {
    for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) removeCgroup(join(dir, entry.name));
    rmdirSync(dir);
  } catch {
    // not there, or still busy for a moment
  }
}

/** GET /_ping on the engine's socket. */
function ping(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/_ping', method: 'GET', timeout: 1000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200));
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/** A busybox-static root file system (once per scratch folder). */
export async function busyboxRootfs(scratch: string): Promise<string> {
  const dir = join(scratch, 'busybox-rootfs');
  if (existsSync(join(dir, 'bin', 'busybox'))) return dir;
  const busybox = existsSync('/bin/busybox') ? '/bin/busybox' : findCommand('busybox')!;
  mkdirSync(join(dir, 'bin'), { recursive: true });
  for (const sub of ['www', 'tmp', 'etc', 'proc', 'sys', 'dev']) mkdirSync(join(dir, sub), { recursive: true });
  copyFileSync(busybox, join(dir, 'bin', 'busybox'));
  const applets = spawnSync(busybox, ['--list'], { encoding: 'utf8' }).stdout.split('\n').filter((a) => /^[a-z0-9_.[-]+$/.test(a) && a !== 'busybox');
  for (const applet of applets) symlinkSync('busybox', join(dir, 'bin', applet));
  writeFileSync(join(dir, 'www', 'index.html'), INDEX_HTML);
  return dir;
}
