/**
 * Network namespace plumbing for the test kit, on top of iproute2. Namespaces are the named kind that
 * `ip netns` manages (a bind mount under /run/netns), so that every tool — and the vxnet agent — can find
 * them by name. Bulk work goes through `ip -batch -`: creating a 3-host topology is a handful of process
 * spawns, not dozens.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { run, runChecked, type RunResult } from './processes.ts';

export const NETNS_DIR = '/run/netns';

export function netnsPath(name: string): string {
  return `${NETNS_DIR}/${name}`;
}

/** Names of all named namespaces on the machine (not only ours). */
export function listNetns(): string[] {
  try {
    return readdirSync(NETNS_DIR).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** argv that runs `argv` inside a namespace with `ip netns exec` (fresh /sys of that namespace). */
export function netnsExecArgv(netns: string, argv: readonly string[]): string[] {
  return ['ip', 'netns', 'exec', netns, ...argv];
}

/**
 * argv that runs `argv` inside a namespace with nsenter: only the network namespace changes, the process
 * stays in the machine's mount namespace (so namespaces it creates under /run/netns are visible to all,
 * and cgroups stay mounted). Daemons are started this way.
 */
export function nsenterArgv(netns: string, argv: readonly string[]): string[] {
  return ['nsenter', `--net=${netnsPath(netns)}`, ...argv];
}

/** Runs `ip [-n netns] -batch -` with the given lines; rejects with the failing line's error. */
export async function ipBatch(netns: string | undefined, lines: readonly string[]): Promise<RunResult> {
  const argv = ['ip', ...(netns === undefined ? [] : ['-n', netns]), '-batch', '-'];
  return runChecked(argv, { input: lines.join('\n') + '\n' });
}

export async function addNetns(names: readonly string[]): Promise<void> {
  if (names.length === 0) return;
  await ipBatch(undefined, names.map((name) => `netns add ${name}`));
}

/**
 * Deletes namespaces; never throws. Missing namespaces count as deleted. Returns the names that are still
 * there afterwards, with the reason.
 */
export async function deleteNetns(names: readonly string[]): Promise<{ name: string; error: string }[]> {
  const wanted = new Set(names);
  const present = () => listNetns().filter((name) => wanted.has(name));
  let remaining = present();
  if (remaining.length === 0) return [];
  // -force: keep going after a failing line
  await run(['ip', '-force', '-batch', '-'], { input: remaining.map((name) => `netns del ${name}\n`).join('') });
  remaining = present();
  const failures: { name: string; error: string }[] = [];
  for (const name of remaining) {
    const result = await run(['ip', 'netns', 'del', name]);
    if (result.code !== 0 && listNetns().includes(name)) failures.push({ name, error: result.stderr.trim() });
  }
  return failures;
}

/** Synchronous deletion, for process exit handlers. Never throws. */
export function deleteNetnsSync(names: readonly string[]): void {
  try {
    const wanted = new Set(names);
    const remaining = listNetns().filter((name) => wanted.has(name));
    if (remaining.length === 0) return;
    spawnSync('ip', ['-force', '-batch', '-'], {
      input: remaining.map((name) => `netns del ${name}\n`).join(''),
      stdio: ['pipe', 'ignore', 'ignore'],
      timeout: 10_000,
    });
  } catch {
    // nothing more can be done while the process exits
  }
}

/** Pids of the processes whose network namespace is `name`. */
export async function netnsPids(name: string): Promise<number[]> {
  const result = await run(['ip', 'netns', 'pids', name]);
  if (result.code !== 0) return [];
  return result.stdout
    .split('\n')
    .map((line) => Number.parseInt(line, 10))
    .filter((pid) => Number.isInteger(pid) && pid > 0);
}

/** Sets sysctls (e.g. "net.ipv6.conf.all.disable_ipv6": "1") inside a namespace. */
export async function setSysctls(netns: string, settings: Record<string, string>): Promise<void> {
  const assignments = Object.entries(settings).map(([key, value]) => `${key}=${value}`);
  if (assignments.length === 0) return;
  await runChecked(nsenterArgv(netns, ['sysctl', '-q', '-w', ...assignments]));
}

/** IPv6 off in a namespace: no router solicitations, DAD or MLD reports on links created there later. */
export const IPV6_OFF: Record<string, string> = {
  'net.ipv6.conf.all.disable_ipv6': '1',
  'net.ipv6.conf.default.disable_ipv6': '1',
};
