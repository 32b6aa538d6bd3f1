/**
 * The in-process manager of the unit tests: a ManagerService on a SQLite store in a temporary folder,
 * optionally seeded with nodes and networks, optionally with a running watch hub. Every temporary folder
 * (support/temporary.ts) lives until the test file ends (not until `close()`), so a test may close a
 * manager and open its store again.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { VxnetError } from '../../../src/core/errors.ts';
import type { CreateNetworkRequest } from '../../../src/core/model.ts';
import { inject, type InjectRequest } from '../../../src/manager/http.ts';
import { startManager, type ManagerOptions, type RunningManager } from '../../../src/manager/main.ts';
import { ManagerService, type ManagerServiceOptions } from '../../../src/manager/service.ts';
import { SqliteStore } from '../../../src/manager/store/sqlite.ts';
import { WatchHub } from '../../../src/manager/watch-hub.ts';
import { temporaryDatabasePath, temporaryDirectory } from './temporary.ts';

export interface TestManager {
  store: SqliteStore;
  service: ManagerService;
  /** closes the service, then the store */
  close(): Promise<void>;
}

export interface TestManagerSeed {
  /** registered first, in order; see `registerNodes` */
  nodes?: readonly string[];
  /** created after the nodes, in order */
  networks?: readonly CreateNetworkRequest[];
  options?: ManagerServiceOptions;
}

/** Networks blue (10.1.0.0/24) and red (10.2.0.0/24), VNIs chosen by the manager, for `openTestManager*` seeds. */
export const BLUE_AND_RED: readonly CreateNetworkRequest[] = [
  { name: 'blue', subnets: [{ cidr: '10.1.0.0/24' }] },
  { name: 'red', subnets: [{ cidr: '10.2.0.0/24' }] },
];

/** Opens a manager on a fresh store and registers the seed's nodes and networks. */
export async function openTestManager(seed: TestManagerSeed = {}): Promise<TestManager> {
  const manager = await openEmpty(seed.options);
  await plant(manager.service, seed);
  return manager;
}

/**
 * Like `openTestManager`, with a watch hub started before the seed is planted. The hub pings every minute
 * unless `hubOptions` say otherwise, so that no ping lands among the messages a test counts.
 */
export async function openTestManagerWithHub(
  seed: TestManagerSeed = {},
  hubOptions: ConstructorParameters<typeof WatchHub>[1] = {},
): Promise<TestManager & { hub: WatchHub }> {
  const manager = await openEmpty(seed.options);
  const hub = new WatchHub(manager.service.state, { pingIntervalMs: 60_000, ...hubOptions });
  hub.start();
  await plant(manager.service, seed);
  return {
    ...manager,
    hub,
    async close() {
      hub.stop();
      await manager.close();
    },
  };
}

async function openEmpty(options: ManagerServiceOptions = {}): Promise<TestManager> {
  const store = new SqliteStore(temporaryDatabasePath('vxnet-manager-'));
  const service = await ManagerService.open(store, options);
  return {
    store,
    service,
    async close() {
      await service.close();
      await store.close();
    },
  };
}

async function plant(service: ManagerService, seed: TestManagerSeed): Promise<void> {
  await registerNodes(service, seed.nodes ?? []);
  for (const network of seed.networks ?? []) await service.createNetwork(network);
}

/** Registers each node by name, the n-th (from 0) at 192.0.2.<n+1> (TEST-NET-1, RFC 5737), MTU 1500. */
export async function registerNodes(service: ManagerService, names: readonly string[]): Promise<void> {
  for (const [i, name] of names.entries()) {
    await service.registerNode({ name, address: `192.0.2.${i + 1}`, mtu: 1500 });
  }
}

/**
 * A service started on a database as an older manager left it: a first service registers `node` (MTU 1500),
 * `age` then removes from the store what the older version never wrote, and a second service opens the same
 * database afresh. It is closed, with its store, when the test `t` ends.
 */
export async function startedOnOlderDatabase(
  t: TestContext,
  node: { name: string; address: string },
  age: (store: SqliteStore) => Promise<unknown>,
): Promise<ManagerService> {
  const path = temporaryDatabasePath();
  const first = new SqliteStore(path);
  const old = await ManagerService.open(first);
  await old.registerNode({ ...node, mtu: 1500 });
  await age(first);
  await old.close();
  await first.close();
  const store = new SqliteStore(path);
  const service = await ManagerService.open(store);
  t.after(async () => {
    await service.close();
    await store.close();
  });
  return service;
}

/**
 * A whole manager (src/manager/main.ts) listening with TLS on a free loopback port, its DATA_DIR in a new
 * temporary folder (`dir`/data); `options` adds to that. The caller closes it.
 */
export async function startTlsManager(
  prefix: string,
  options: Partial<ManagerOptions> = {},
): Promise<{ dir: string; manager: RunningManager; url: string }> {
  const dir = temporaryDirectory(prefix);
  const manager = await startManager({ dataDir: join(dir, 'data'), listen: ['127.0.0.1:0'], ...options });
  return { dir, manager, url: `https://${manager.addresses[0]}` };
}

/**
 * A whole manager (src/manager/main.ts) listening on a unix socket, its DATA_DIR `dataDir` in a new temporary
 * folder beside the socket; `options` adds to that. The caller closes it.
 */
export async function startSocketManager(prefix: string, options: Partial<ManagerOptions> = {}): Promise<{ dataDir: string; manager: RunningManager }> {
  const dataDir = join(temporaryDirectory(prefix), 'data');
  const manager = await startManager({ dataDir, listen: [`unix:${join(dataDir, '..', 'm.sock')}`], ...options });
  return { dataDir, manager };
}

/** One request to the manager's HTTP API in-process, no socket (http.ts inject); the manager is looked up per call. */
export function injectInto(manager: () => RunningManager): (req: InjectRequest) => ReturnType<typeof inject> {
  return (req) => {
    const { service, hub, security } = manager();
    return inject({ service, hub, security }, req);
  };
}

/**
 * For `assert.rejects`/`assert.throws`: the error must be a VxnetError with this code and, when given, a
 * message that matches `pattern`.
 */
export function vxnetError(code: string, pattern?: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof VxnetError, `expected VxnetError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (pattern) assert.match(err.message, pattern);
    return true;
  };
}
