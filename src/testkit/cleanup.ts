/**
 * What the test kit leaves behind, and how it never does: every live cluster registers what it owns (its
 * namespaces, processes and scratch folder) before it creates it, so that a process exit or SIGINT/SIGTERM
 * can still delete it synchronously; `teardown` removes it the orderly way; and `cleanupStale` removes what
 * a killed run left, recognised by the pid in every name it made.
 */
import { readdirSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomInt } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { deleteNetns, deleteNetnsSync, listNetns, netnsPids } from './netns.ts';
import type { ChildProcessHandle } from './processes.ts';
import { DEFAULT_PREFIX } from './topology.ts';

/** What one live cluster owns. */
export interface Owned {
  netns: Set<string>;
  processes: Set<ChildProcessHandle>;
  tmpDir: string | undefined;
}

const live = new Set<Owned>();
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
let netInstalled = false;

/** From now on, an exiting process deletes what `owned` holds (as it is at that moment). */
export function guard(owned: Owned): void {
  live.add(owned);
  installSafetyNet();
}

/** `owned` was cleaned up the orderly way. */
export function unguard(owned: Owned): void {
  live.delete(owned);
  if (live.size === 0) uninstallSafetyNet();
}

/**
 * The orderly way: stops what `owned` holds, then kills what else runs in its namespaces, then deletes
 * them (and with them every link, route and nftables table inside) and the scratch folder. Never throws:
 * whatever could not be removed is reported to `log` in one line.
 */
export async function teardown(owned: Owned, runId: string, log: (line: string) => void): Promise<void> {
  const problems: string[] = [];
  const attempt = async (what: string, step: () => Promise<unknown>) => {
    try {
      await step();
    } catch (err) {
      problems.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  // 1. its own processes: SIGTERM (daemons may flush), SIGKILL after a grace period
  await attempt('stopping processes', () => Promise.all([...owned.processes].map((p) => p.stop('SIGTERM', 2000))));
  // 2. anything else still inside its namespaces (children of daemons, processes started via exec)
  const names = withNetworkNamespaces(owned.netns);
  await attempt('killing leftovers', () => Promise.all(names.map(killEverythingIn)));
  // 3. the namespaces
  await attempt('deleting namespaces', async () => {
    const failures = await deleteNetns(names);
    if (failures.length > 0) throw new Error(failures.map((f) => `${f.name}: ${f.error}`).join('; '));
  });
  const tmpDir = owned.tmpDir;
  if (tmpDir) await attempt('removing the scratch folder', () => rm(tmpDir, { recursive: true, force: true }));
  unguard(owned);
  if (problems.length > 0) log(`vxnet testkit: cleanup of run ${runId} incomplete: ${problems.join('; ')}`);
}

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
    deleteNetnsSync(withNetworkNamespaces(owned.netns));
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

/** `owned` and the namespaces the agents of those hosts made for their networks (`--netns-prefix HOST-n`). */
function withNetworkNamespaces(owned: ReadonlySet<string>): string[] {
  const names = [...owned];
  let listed: string[] = [];
  try {
    listed = listNetns();
  } catch {
    // nothing listed: only the owned ones
  }
  for (const name of listed) if (!owned.has(name) && names.some((host) => name.startsWith(`${host}-n`))) names.push(name);
  return names;
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

export function newRunId(): string {
  // pid first (so that cleanupStale can tell whether the owner still lives), then 3 random letters
  let suffix = '';
  for (let i = 0; i < 3; i++) suffix += String.fromCharCode(97 + randomInt(26));
  return `${process.pid}${suffix}`;
}

function staleNamePattern(prefix: string): RegExp {
  return new RegExp(`^${prefix}-(\\d+)[a-z]{3}-`);
}

export function requirePrefix(prefix: string): string {
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

/** SIGKILLs every process inside `netns` (except this one). */
export async function killEverythingIn(netns: string): Promise<void> {
  for (const pid of await netnsPids(netns)) {
    if (pid === process.pid) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // exited meanwhile
    }
  }
}
