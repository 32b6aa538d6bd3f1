/**
 * Real podman per simulated host, on vxnet through its CNI plugin (src/cni/). Debian's podman 4.3 uses CNI
 * only with `network_backend = "cni"`; each host gets a store, a run root, a plugin directory (the plugin
 * installed with `vxnet cni install`) and a network directory (the conflist from `vxnet cni config`) of its
 * own, so that hosts never share state, and its agent is given `--cni-socket` in that folder
 * (`podmanAgentArgs`). podman runs inside the host's network namespace with nsenter, which keeps the
 * machine's mount namespace: the container namespaces it makes under /run/netns are seen by the agent.
 *
 * Sandbox specifics (docs in /work/shared/ENVIRONMENT.md): setting rlimits is not permitted here
 * (`default_ulimits = []`), cgroups are managed as plain files (`cgroup_manager = "cgroupfs"`) and events go
 * to a file, not journald. The image is the same busybox-static root file system as Docker's, imported.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Cluster, SimHost } from './cluster.ts';
import { busyboxRootfs } from './docker.ts';
import { nsenterArgv } from './netns.ts';
import { findCommand } from './preflight.ts';
import { type RunResult, run } from './processes.ts';

export const PODMAN_IMAGE = 'localhost/busybox:local';
const SYSTEM_CNI_PLUGINS = '/usr/lib/cni';

/** What is missing to run these tests, or undefined. */
export function podmanProblems(): string | undefined {
  const missing: string[] = [];
  if (!findCommand('podman')) missing.push('podman');
  if (!existsSync(join(SYSTEM_CNI_PLUGINS, 'loopback'))) missing.push('containernetworking-plugins');
  return missing.length === 0 ? undefined : `missing ${missing.join(', ')}: apt-get install -y podman containernetworking-plugins`;
}

export interface PodmanHost {
  host: SimHost;
  dir: string;
  /** the agent's CNI socket on this host */
  cniSocket: string;
  /** podman ARGS on this host; never rejects on a non-zero exit */
  podman(args: readonly string[], options?: { timeoutMs?: number }): Promise<RunResult>;
  /** podman ARGS, which must exit 0; its trimmed stdout */
  podmanOk(args: readonly string[], options?: { timeoutMs?: number }): Promise<string>;
}

/** The folder and socket of `host`'s podman; call before starting its agent with `podmanAgentArgs`. */
export function podmanDir(cluster: Cluster, host: SimHost): string {
  return join(cluster.tmpDir, `${host.name}-podman`);
}

export function podmanAgentArgs(cluster: Cluster, host: SimHost): string[] {
  return ['--cni-socket', join(podmanDir(cluster, host), 'cni.sock')];
}

/**
 * Prepares podman on `host`: configuration, the plugin, a conflist per network in `networks`, the image.
 * The host's agent must run (with podmanAgentArgs) before containers start.
 */
export async function preparePodman(cluster: Cluster, host: SimHost, networks: readonly string[]): Promise<PodmanHost> {
  const dir = podmanDir(cluster, host);
  const cniSocket = join(dir, 'cni.sock');
  for (const sub of ['bin', 'net.d', 'root', 'runroot', 'tmp']) mkdirSync(join(dir, sub), { recursive: true });
  const conf = join(dir, 'containers.conf');
  writeFileSync(
    conf,
    [
      '[containers]',
      'default_ulimits = []',
      '[network]',
      'network_backend = "cni"',
      `cni_plugin_dirs = [${JSON.stringify(join(dir, 'bin'))}, ${JSON.stringify(SYSTEM_CNI_PLUGINS)}]`,
      `network_config_dir = ${JSON.stringify(join(dir, 'net.d'))}`,
      '[engine]',
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      `events_logfile_path = ${JSON.stringify(join(dir, 'events.log'))}`,
      '',
    ].join('\n'),
  );
  const cliOk = async (args: string[]): Promise<string> => {
    const result = await cluster.cli(args);
    if (result.code !== 0) throw new Error(`vxnet ${args.join(' ')}: ${result.stderr.trim()}`);
    return result.stdout;
  };
  await cliOk(['cni', 'install', '--bin-dir', join(dir, 'bin')]);
  for (const network of networks) {
    writeFileSync(join(dir, 'net.d', `${network}.conflist`), await cliOk(['cni', 'config', network, '--socket', cniSocket]));
  }
  const argv = (args: readonly string[]): string[] =>
    nsenterArgv(host.netns, ['podman', '--root', join(dir, 'root'), '--runroot', join(dir, 'runroot'), '--tmpdir', join(dir, 'tmp'), '--storage-driver', 'vfs', ...args]);
  const env = { ...process.env, CONTAINERS_CONF: conf };
  const podman = (args: readonly string[], options: { timeoutMs?: number } = {}): Promise<RunResult> => run(argv(args), { env, timeoutMs: options.timeoutMs ?? 60_000 });
  const podmanOk = async (args: readonly string[], options: { timeoutMs?: number } = {}): Promise<string> => {
    const result = await podman(args, options);
    if (result.code !== 0) throw new Error(`podman ${args.join(' ')} on ${host.name} exited ${result.code}: ${result.stderr.trim()}`);
    return result.stdout.trim();
  };
  const rootfs = await busyboxRootfs(cluster.tmpDir);
  const tar = await run(['tar', '-C', rootfs, '-cf', join(dir, 'busybox.tar'), '.']);
  if (tar.code !== 0) throw new Error(`tar of the busybox root file system failed: ${tar.stderr.trim()}`);
  await podmanOk(['import', '--change', 'CMD ["sh"]', join(dir, 'busybox.tar'), PODMAN_IMAGE]);
  return { host, dir, cniSocket, podman, podmanOk };
}

/** Removes every container of each host (podman then deletes their namespaces) and unmounts what podman left. */
export async function destroyPodman(hosts: readonly PodmanHost[]): Promise<void> {
  await Promise.all(hosts.map((h) => h.podman(['rm', '--force', '--all', '--time', '0'], { timeoutMs: 60_000 })));
  await Promise.all(hosts.map((h) => h.podman(['system', 'prune', '--force'], { timeoutMs: 60_000 })));
  const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n').map((line) => line.split(' ')[1] ?? '');
  for (const h of hosts) {
    for (const mount of mounts.filter((m) => m.startsWith(`${h.dir}/`)).reverse()) await run(['umount', '-l', mount]);
  }
}
