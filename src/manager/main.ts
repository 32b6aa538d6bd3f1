/**
 * Wiring of the manager process: DATA_DIR (store, cluster CA, tokens), the service, the watch hub and the
 * listeners (TLS on TCP, plain HTTP on unix sockets), with a clean shutdown when the caller's AbortSignal
 * fires. The CLI's `vxnet manager` command calls runManager(); tests call startManager() to get the
 * addresses and a close().
 */
import { isIP } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { renewalTime } from '../pki/identity.ts';
import { createPrivateFile, securePrivateDir } from '../pki/private-files.ts';
import type { Security } from './auth.ts';
import { CA_CERT_FILE, ClusterAuthority, DEFAULT_CERT_LIFETIME_MS } from './authority.ts';
import { createRequestHandler } from './http.ts';
import { parseListen } from '../http/server.ts';
import { type ConnectionLimits, type TlsCredentials, listenAll } from './listeners.ts';
import { DEFAULT_NODE_DOWN_AFTER_MS, ManagerService } from './service.ts';
import { shareLiveness } from './shared-liveness.ts';
import { DEFAULT_CERT_MAX_AGE_MS } from './service/identities.ts';
import { SqliteStore } from './store/sqlite.ts';
import type { EtcdTls } from './store/etcd.ts';
import { parseStoreUrl } from './store/open.ts';
import { META_SECRETS, type SharedSecrets, establishSharedSecrets, openRecord, publishRotation } from './store/shared-secrets.ts';
import type { Store } from './store/store.ts';
import { readFileSync } from 'node:fs';
import { ADMIN_TOKEN_FILE, JoinTokens, type Tokens, WORKER_TOKEN_FILE } from './tokens.ts';
import { WatchHub } from './watch-hub.ts';
import { ManagerMetrics } from './metrics.ts';
import { type MetricsListener, serveMetrics } from '../http/metrics.ts';

export interface ManagerOptions {
  dataDir: string;
  /** `ADDR:PORT` or `unix:/path`, at least one */
  listen: string[];
  log?: (line: string) => void;
  /** a node without a heartbeat for this long is `down` (default 15 000) */
  nodeDownAfterMs?: number;
  /** watch stream keep-alive (default 10 000) */
  pingIntervalMs?: number;
  /** lifetime of the node and admin certificates it issues (default 30 days) */
  certLifetimeMs?: number;
  /** how long after its join a node may keep renewing its certificate (default 365 days) */
  certMaxAgeMs?: number;
  /** addresses (reservations and endpoints) a node may hold on one network with its own certificate (default 128) */
  maxEndpointsPerNode?: number;
  /** more names (IP or DNS) for the server certificate, beside the listen addresses */
  subjectAltNames?: string[];
  /** caps and timeouts of the listeners (DEFAULT_CONNECTION_LIMITS in listeners.ts for what is not given) */
  connectionLimits?: Partial<ConnectionLimits>;
  /** ADDR:PORT for a plain-HTTP Prometheus `/metrics` listener (metrics.ts) */
  metricsListen?: string;
  /** `etcd://HOST:PORT,...`: keep the state in etcd, shared with other managers (default: SQLite in dataDir) */
  store?: string;
  /** PEM files for TLS to etcd: the CA of its server certificates, and a client certificate and key */
  etcdTls?: { ca: string; cert?: string; key?: string };
  /** the admin token a manager joining an existing etcd cluster proves itself with */
  tokenFile?: string;
}

export interface RunningManager {
  /** bound addresses, e.g. "127.0.0.1:7400", "unix:/run/vxnet.sock" */
  addresses: string[];
  clusterId: string;
  /** the tokens as of the start (a rotation later replaces them) */
  tokens: Tokens;
  /** the cluster CA (PEM) and its digest */
  caCertificate: string;
  caDigest: string;
  /** what the API authenticates with (for in-process requests in tests) */
  security: Security;
  service: ManagerService;
  hub: WatchHub;
  /** what --metrics-listen bound, e.g. "127.0.0.1:9476" */
  metricsAddress?: string;
  close(): Promise<void>;
}

export const DB_FILE = 'vxnet.db';

export async function startManager(options: ManagerOptions): Promise<RunningManager> {
  const log = options.log ?? (() => {});
  if (options.listen.length === 0) throw new Error('the manager needs at least one --listen address.');
  // The CA key, the tokens and the database live here: checked and made private to the manager's user at
  // every start, whoever made the directory. SQLite gives its -wal and -shm files the mode of the database
  // file, so that one is made (0600) before SQLite would make it under the umask.
  const etcd = options.store === undefined ? undefined : parseStoreUrl(options.store);
  if (!etcd && options.tokenFile !== undefined) throw new Error('--token-file is for joining a cluster kept in etcd (--store etcd://...).');
  securePrivateDir(options.dataDir, { label: 'DATA_DIR', daemon: 'the manager', publicFiles: [CA_CERT_FILE], log });
  const onCallbackError = (err: unknown) => log(`store watch callback failed: ${String(err)}`);
  let store: Store;
  if (etcd) {
    // loaded only here: the gRPC client it brings costs a single manager on SQLite start-up time and memory
    const { EtcdStore } = await import('./store/etcd.ts');
    store = new EtcdStore({ endpoints: etcd.endpoints, onCallbackError, ...readEtcdTls(options.etcdTls) });
  } else {
    createPrivateFile(join(options.dataDir, DB_FILE));
    store = new SqliteStore(join(options.dataDir, DB_FILE), { onCallbackError });
  }
  const storeName = etcd ? `etcd at ${etcd.endpoints.join(',')}` : join(options.dataDir, DB_FILE);
  let service: ManagerService | undefined;
  let hub: WatchHub | undefined;
  let renewTimer: NodeJS.Timeout | undefined;
  let unwatchSecrets: (() => void) | undefined;
  let stopSharingLiveness: (() => void) | undefined;
  try {
    service = await ManagerService.open(store, {
      log,
      ...(options.nodeDownAfterMs !== undefined ? { nodeDownAfterMs: options.nodeDownAfterMs } : {}),
      ...(options.maxEndpointsPerNode !== undefined ? { maxEndpointsPerNode: options.maxEndpointsPerNode } : {}),
    });
    hub = new WatchHub(service.state, {
      log,
      ...(options.pingIntervalMs !== undefined ? { pingIntervalMs: options.pingIntervalMs } : {}),
    });
    hub.start();
    const { clusterId } = service.info();
    const commonName = `vxnet cluster CA ${clusterId}`;
    // several managers: DATA_DIR gets the cluster's CA and tokens from etcd (or puts them there, the first)
    const shared: SharedSecrets | undefined = etcd
      ? await establishSharedSecrets(store, { dataDir: options.dataDir, storeName, commonName, ...(options.tokenFile !== undefined ? { tokenFile: options.tokenFile } : {}) })
      : undefined;
    const loaded = ClusterAuthority.loadOrCreate(options.dataDir, { commonName });
    const authority = loaded.authority;
    const caCreated = loaded.created || (shared?.made.ca ?? false);
    const opened = JoinTokens.open(options.dataDir, authority.digest);
    const { keeper, tokens } = opened;
    const created = [...opened.created, ...(shared?.made.tokens ?? [])];
    if (shared) {
      unwatchSecrets = await followSharedSecrets(store, shared, keeper, log);
      stopSharingLiveness = await shareLiveness(store, service.liveness, service.state, { downAfterMs: options.nodeDownAfterMs ?? DEFAULT_NODE_DOWN_AFTER_MS, log });
      if (!shared.created) log(`joined cluster ${clusterId} kept in ${storeName}`);
    }
    if (caCreated) log(`initialised cluster ${clusterId} in ${options.dataDir}`);
    if (caCreated) log(`cluster CA created in ${join(options.dataDir, CA_CERT_FILE)} (sha256 ${authority.digest})`);
    if (created.includes('admin')) log(`admin token (saved in ${join(options.dataDir, ADMIN_TOKEN_FILE)}): ${tokens.admin}`);
    if (created.includes('worker')) log(`worker join token (saved in ${join(options.dataDir, WORKER_TOKEN_FILE)}): ${tokens.worker}`);
    const identities = service.state.identities;
    const security: Security = {
      authority,
      tokens: keeper,
      certLifetimeMs: options.certLifetimeMs ?? DEFAULT_CERT_LIFETIME_MS,
      certMaxAgeMs: options.certMaxAgeMs ?? DEFAULT_CERT_MAX_AGE_MS,
      nodeIdentity: (name) => identities.get(name)?.identity,
    };

    const altNames = serverAltNames(options.listen, options.subjectAltNames ?? []);
    const serverTls = (): TlsCredentials & { notAfter: Date; notBefore: Date } => {
      const { key, cert, notAfter } = authority.serverCredentials(altNames);
      return { key, cert, ca: authority.pem, notAfter, notBefore: new Date() };
    };
    let tls = serverTls();
    const metrics = options.metricsListen === undefined ? undefined : new ManagerMetrics(service, hub);
    const listeners = await listenAll(
      createRequestHandler({ service, hub, security, log, ...(metrics ? { observe: metrics.observe } : {}) }),
      options.listen,
      tls,
      options.connectionLimits,
    );
    let metricsListener: MetricsListener | undefined;
    if (metrics) {
      try {
        metricsListener = await serveMetrics(options.metricsListen!, metrics.registry);
      } catch (err) {
        await listeners.close();
        throw err;
      }
      log(`serving metrics on http://${metricsListener.address}/metrics`);
    }
    // The server certificate is made at every start; a manager that runs for months renews it in place.
    renewTimer = setInterval(() => {
      if (Date.now() < renewalTime(tls).getTime()) return;
      tls = serverTls();
      listeners.setTlsCredentials(tls);
      log(`renewed the manager's server certificate (valid until ${tls.notAfter.toISOString()})`);
    }, 60 * 60 * 1000);
    renewTimer.unref();
    log(`manager listening on ${listeners.addresses.join(', ')} (cluster ${clusterId})`);

    const runningService = service;
    const runningHub = hub;
    let closed: Promise<void> | undefined;
    return {
      addresses: listeners.addresses,
      clusterId,
      tokens,
      caCertificate: authority.pem,
      caDigest: authority.digest,
      security,
      service,
      hub,
      ...(metricsListener ? { metricsAddress: metricsListener.address } : {}),
      close: () =>
        (closed ??= (async () => {
          clearInterval(renewTimer);
          unwatchSecrets?.();
          stopSharingLiveness?.();
          runningHub.stop();
          await listeners.close();
          await metricsListener?.close();
          await runningService.close();
          await store.close();
          log('manager stopped');
        })()),
    };
  } catch (err) {
    clearInterval(renewTimer);
    unwatchSecrets?.();
    stopSharingLiveness?.();
    hub?.stop();
    await service?.close();
    await store.close();
    throw err;
  }
}

/** The PEM files of `--etcd-ca/--etcd-cert/--etcd-key`, read, as EtcdStore takes them. */
export function readEtcdTls(files: { ca: string; cert?: string; key?: string } | undefined): { tls?: EtcdTls } {
  if (!files) return {};
  const tls: EtcdTls = { ca: readFileSync(files.ca) };
  if (files.cert !== undefined) tls.cert = readFileSync(files.cert);
  if (files.key !== undefined) tls.key = readFileSync(files.key);
  return { tls };
}

/**
 * Keeps this manager's tokens in step with the other managers': a rotation here is published to the
 * store; one published by another manager is adopted here (its files rewritten, the old token refused).
 */
async function followSharedSecrets(store: Store, shared: SharedSecrets, keeper: JoinTokens, log: (line: string) => void): Promise<() => void> {
  keeper.onRotate = (role, token) => {
    publishRotation(store, shared.clusterKey, role, token).catch((err) =>
      log(`the rotated ${role} token could not be shared with the other managers: ${err instanceof Error ? err.message : String(err)}`),
    );
  };
  return store.watch(META_SECRETS, shared.revision + 1, (events) => {
    for (const event of events) {
      if (event.type !== 'put' || event.kv.key !== META_SECRETS) continue;
      const tokens = openRecord(event.kv.value, shared.clusterKey);
      if (tokens) keeper.adopt(tokens);
      else log('the shared cluster secrets in the store cannot be opened with this manager\'s cluster key');
    }
  });
}

/** What `vxnet manager` sets: everything but the test-only ping interval. */
export type RunManagerOptions = Omit<ManagerOptions, 'pingIntervalMs'>;

/** Runs the manager until `signal` aborts, then shuts down cleanly. */
export async function runManager(options: RunManagerOptions, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return;
  const manager = await startManager(options);
  await new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
  await manager.close();
}

/**
 * The names clients may use for the manager, for its server certificate: each TCP listen address, every
 * address of this host when listening on a wildcard (plus localhost and the host name), and `extra`.
 */
export function serverAltNames(listen: readonly string[], extra: readonly string[]): { dns: string[]; ip: string[] } {
  const dns = new Set<string>();
  const ip = new Set<string>();
  const add = (name: string) => (isIP(name) ? ip : dns).add(name);
  for (const text of listen) {
    const address = parseListen(text);
    if (address.kind !== 'tcp') continue;
    if (address.host === undefined || address.host === '0.0.0.0' || address.host === '::') {
      for (const list of Object.values(networkInterfaces())) {
        // link-local IPv6 addresses need a zone, which a certificate cannot name
        for (const info of list ?? []) if (!info.address.toLowerCase().startsWith('fe80:')) add(info.address);
      }
      add('localhost');
      add(hostname());
    } else {
      add(address.host);
    }
  }
  for (const name of extra) add(name);
  return { dns: [...dns], ip: [...ip] };
}
