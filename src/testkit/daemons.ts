/**
 * The cluster's daemons: a real `vxnet manager` in the switch namespace and a real `vxnet agent` in each
 * host namespace, run from this checkout's CLI with nsenter (so that they share the machine's mount
 * namespace: the agent must see /run/netns). A daemon counts as started once it does its job, not once its
 * process runs: the manager when it answers on its unix socket, an agent when its node is registered and up.
 * Every incarnation's output is kept, stopped ones too, for the assertion messages of a failing test.
 */
import { mkdir } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NodeStatus } from '../core/model.ts';
import { requestJson, type JsonResponse } from './http.ts';
import { nsenterArgv } from './netns.ts';
import { describeExit, sleep, start, type ChildProcessHandle } from './processes.ts';
import { MANAGER_PORT, SWITCH_ADDRESS, type SimHost } from './topology.ts';

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

export interface DaemonsOptions {
  /** the CLI module the daemons run */
  cliPath: string;
  /** how long a daemon may take to become ready */
  timeoutMs: number;
  log?: ((line: string) => void) | undefined;
  /** called with every process started, for the cluster's cleanup */
  track: (handle: ChildProcessHandle) => void;
}

export class Daemons {
  readonly #o: DaemonsOptions;
  /** every daemon incarnation, in start order (stopped ones too, for the logs) */
  readonly #history: ChildProcessHandle[] = [];
  readonly #byLabel = new Map<string, ChildProcessHandle>();

  constructor(options: DaemonsOptions) {
    this.#o = options;
  }

  /** the running daemon of a role ("manager", "host1/agent"), if any */
  running(label: string): ChildProcessHandle | undefined {
    const handle = this.#byLabel.get(label);
    return handle && !handle.exitInfo ? handle : undefined;
  }

  /** Starts the manager in `netns`, its data in `tmpDir`/manager; resolves once it answers on its socket. */
  async startManager(netns: string, tmpDir: string, extraArgs: readonly string[]): Promise<ManagerInfo> {
    const dataDir = join(tmpDir, 'manager');
    const socketUrl = `unix:${join(tmpDir, 'manager.sock')}`;
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    const handle = this.#start('manager', netns, [
      'manager',
      '--data-dir',
      dataDir,
      '--listen',
      `${SWITCH_ADDRESS}:${MANAGER_PORT}`,
      '--listen',
      socketUrl,
      ...extraArgs,
    ]);
    const deadline = Date.now() + this.#o.timeoutMs;
    await handle.waitFor(/listening/i, this.#o.timeoutMs);
    const token = (file: string) => readFileSync(join(dataDir, file), 'utf8').trim();
    return waitUntil(handle, deadline, 'the manager to answer on its unix socket', async () => {
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
  }

  /**
   * Starts the agent of `host` with `args` (after `agent`); resolves once `nodes()` (the manager's node
   * list) shows the node up and registered or seen by this incarnation.
   */
  async startAgent(host: SimHost, args: readonly string[], nodes: () => Promise<JsonResponse<NodeStatus[]>>): Promise<void> {
    const startedAt = Date.now();
    const handle = this.#start(`${host.name}/agent`, host.netns, ['agent', ...args]);
    await waitUntil(handle, Date.now() + this.#o.timeoutMs, `node ${host.name} to register`, async () => {
      const answer = await nodes();
      if (answer.status !== 200 || !Array.isArray(answer.body)) throw new Error(`GET /v1/nodes answered ${answer.status}: ${answer.text}`);
      const node = answer.body.find((n) => n.name === host.name);
      if (!node) throw new Error(`node ${host.name} is not registered yet`);
      if (node.state !== 'up') throw new Error(`node ${host.name} is ${node.state}`);
      const since = (stamp: string | null | undefined) => typeof stamp === 'string' && Date.parse(stamp) >= startedAt;
      if (!since(node.registeredAt) && !since(node.lastSeen)) throw new Error(`node ${host.name} has not been seen since the agent started`);
      return true;
    });
  }

  /** the last lines of every daemon started so far */
  logs(linesPerDaemon: number): string {
    return this.#history
      .map((handle) => {
        const lines = handle.output().split('\n');
        const shown = lines.slice(-linesPerDaemon).join('\n');
        const cut = lines.length > linesPerDaemon ? `  (last ${linesPerDaemon} lines)` : '';
        return `--- ${handle.label} (pid ${handle.pid ?? '?'}, ${describeExit(handle.exitInfo)})${cut} ---\n${shown}`;
      })
      .join('\n');
  }

  #start(label: string, netns: string, args: readonly string[]): ChildProcessHandle {
    const handle = start(nsenterArgv(netns, [process.execPath, this.#o.cliPath, ...args]), {
      label,
      capacity: 1000,
      ...(this.#o.log ? { log: this.#o.log } : {}),
    });
    this.#o.track(handle);
    this.#history.push(handle);
    this.#byLabel.set(label, handle);
    return handle;
  }
}

/** Polls `probe` until it resolves; fails when `handle` exits or the deadline passes (with the last reason). */
async function waitUntil<T>(handle: ChildProcessHandle, deadline: number, what: string, probe: () => Promise<T>): Promise<T> {
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
