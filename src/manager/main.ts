/**
 * Wiring of the manager process: DATA_DIR (store + tokens), the service, the watch hub and the HTTP
 * listeners, with a clean shutdown when the caller's AbortSignal fires. The CLI's `vxnet manager` command
 * calls runManager(); tests call startManager() to get the addresses and a close().
 */
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createRequestHandler, listenAll } from './http.ts';
import { ManagerService } from './service.ts';
import { SqliteStore } from './store/sqlite.ts';
import { ADMIN_TOKEN_FILE, type Tokens, WORKER_TOKEN_FILE, loadOrCreateTokens } from './tokens.ts';
import { WatchHub } from './watch-hub.ts';

export interface ManagerOptions {
  dataDir: string;
  /** `ADDR:PORT` or `unix:/path`, at least one */
  listen: string[];
  log?: (line: string) => void;
  /** a node without a heartbeat for this long is `down` (default 15 000) */
  nodeDownAfterMs?: number;
  /** watch stream keep-alive (default 10 000) */
  pingIntervalMs?: number;
}

export interface RunningManager {
  /** bound addresses, e.g. "127.0.0.1:7400", "unix:/run/vxnet.sock" */
  addresses: string[];
  clusterId: string;
  tokens: Tokens;
  service: ManagerService;
  hub: WatchHub;
  close(): Promise<void>;
}

export const DB_FILE = 'vxnet.db';

export async function startManager(options: ManagerOptions): Promise<RunningManager> {
  const log = options.log ?? (() => {});
  if (options.listen.length === 0) throw new Error('the manager needs at least one --listen address.');
  // Tokens and the database live here: private to the manager's user. An existing directory is left as is.
  if (mkdirSync(options.dataDir, { recursive: true, mode: 0o700 }) !== undefined) chmodSync(options.dataDir, 0o700);

  const store = new SqliteStore(join(options.dataDir, DB_FILE), {
    onCallbackError: (err) => log(`store watch callback failed: ${String(err)}`),
  });
  let service: ManagerService | undefined;
  let hub: WatchHub | undefined;
  try {
    const { tokens, created } = loadOrCreateTokens(options.dataDir);
    service = await ManagerService.open(store, {
      log,
      ...(options.nodeDownAfterMs !== undefined ? { nodeDownAfterMs: options.nodeDownAfterMs } : {}),
    });
    hub = new WatchHub(service.state, {
      log,
      ...(options.pingIntervalMs !== undefined ? { pingIntervalMs: options.pingIntervalMs } : {}),
    });
    hub.start();
    const { clusterId } = service.info();
    if (created.length > 0) {
      log(`initialised cluster ${clusterId} in ${options.dataDir}`);
      if (created.includes('admin')) log(`admin token (saved in ${join(options.dataDir, ADMIN_TOKEN_FILE)}): ${tokens.admin}`);
      if (created.includes('worker')) log(`worker join token (saved in ${join(options.dataDir, WORKER_TOKEN_FILE)}): ${tokens.worker}`);
    }
    const listeners = await listenAll(createRequestHandler({ service, hub, tokens, log }), options.listen);
    log(`manager listening on ${listeners.addresses.join(', ')} (cluster ${clusterId})`);

    const runningService = service;
    const runningHub = hub;
    let closed: Promise<void> | undefined;
    return {
      addresses: listeners.addresses,
      clusterId,
      tokens,
      service,
      hub,
      close: () =>
        (closed ??= (async () => {
          runningHub.stop();
          await listeners.close();
          await runningService.close();
          await store.close();
          log('manager stopped');
        })()),
    };
  } catch (err) {
    hub?.stop();
    await service?.close();
    await store.close();
    throw err;
  }
}

/** Runs the manager until `signal` aborts, then shuts down cleanly. */
export async function runManager(
  options: { dataDir: string; listen: string[]; log?: (line: string) => void; nodeDownAfterMs?: number },
  signal: AbortSignal,
): Promise<void> {
  if (signal.aborted) return;
  const manager = await startManager(options);
  await new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
  await manager.close();
}
