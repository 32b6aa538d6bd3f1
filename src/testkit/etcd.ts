/**
 * Real etcd for tests (Debian's etcd-server 3.4, /usr/bin/etcd): one member on loopback for the store's
 * unit tests, or a 3-member cluster with one member per simulated host namespace for the HA integration
 * tests (docs/architecture.md, "Several managers on etcd"). Each member gets its own data dir under the
 * caller's scratch folder; nothing listens outside loopback or the test's own namespaces.
 *
 * A member counts as started once it answers its health endpoint (a member of a cluster only does so once
 * the cluster has a leader). kill() is SIGKILL, as the tests' "kill -9 the leader" needs.
 */
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { nsenterArgv } from './netns.ts';
import { run, sleep, start, type ChildProcessHandle } from './processes.ts';

export const ETCD_BINARY = '/usr/bin/etcd';
export const ETCDCTL_BINARY = '/usr/bin/etcdctl';
const START_TIMEOUT_MS = 20_000;

export interface EtcdMemberSpec {
  name: string;
  /** the address it listens on (client and peer ports) */
  address: string;
  clientPort: number;
  peerPort: number;
  /** the network namespace to run in; the machine's own when undefined */
  netns?: string;
}

export interface EtcdMember extends EtcdMemberSpec {
  /** `address:clientPort`, what `--store etcd://` lists */
  readonly endpoint: string;
  readonly dataDir: string;
  readonly handle: ChildProcessHandle | undefined;
  /** SIGKILL; resolves once the process is gone */
  kill(): Promise<void>;
  /** starts it again on the same data dir (it rejoins the cluster) */
  restart(): Promise<void>;
}

/** PEM files for etcd's client port: its server certificate and key, and the CA client certificates must chain to */
export interface EtcdTlsFiles {
  ca: string;
  cert: string;
  key: string;
}

export interface EtcdCluster {
  readonly members: EtcdMember[];
  /** `etcd://A,B,C` for `vxnet manager --store` */
  readonly url: string;
  /** the endpoints of the running members */
  endpoints(): string[];
  /** the member that is the leader now (asked of a running member), or undefined */
  leader(): Promise<EtcdMember | undefined>;
  stop(): Promise<void>;
}

/** A free TCP port on loopback (for members on the machine's own namespace). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Starts the given members as one new cluster and waits until every one is healthy. */
export async function startEtcdCluster(
  specs: readonly EtcdMemberSpec[],
  options: { scratch: string; token: string; log?: (line: string) => void; tls?: EtcdTlsFiles },
): Promise<EtcdCluster> {
  const initialCluster = specs.map((s) => `${s.name}=http://${s.address}:${s.peerPort}`).join(',');
  const members: EtcdMember[] = specs.map((spec) => makeMember(spec, { ...options, initialCluster }));
  const cluster: EtcdCluster = {
    members,
    url: `etcd://${members.map((m) => m.endpoint).join(',')}`,
    endpoints: () => members.filter((m) => m.handle?.exitInfo === undefined).map((m) => m.endpoint),
    leader: async () => {
      for (const m of members) {
        if (m.handle?.exitInfo !== undefined) continue;
        const argv = [ETCDCTL_BINARY, ...ctlFlags(m, options.tls), '--command-timeout=2s', 'endpoint', 'status', '-w', 'json'];
        const res = await run(m.netns ? nsenterArgv(m.netns, argv) : argv, { env: { ...process.env, ETCDCTL_API: '3' }, timeoutMs: 5000 });
        if (res.code !== 0) continue;
        const status = (JSON.parse(res.stdout) as { Status: { header: { member_id: number | string }; leader: number | string } }[])[0]?.Status;
        if (!status) continue;
        if (String(status.leader) === String(status.header.member_id)) return m;
      }
      return undefined;
    },
    stop: async () => {
      await Promise.all(members.map((m) => m.kill()));
    },
  };
  try {
    await Promise.all(members.map((m) => m.restart()));
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

/** One member on loopback with free ports: enough for the store's contract tests. */
export async function startSingleEtcd(options: { scratch: string; log?: (line: string) => void; tls?: EtcdTlsFiles }): Promise<EtcdCluster> {
  const spec = { name: 'solo', address: '127.0.0.1', clientPort: await freePort(), peerPort: await freePort() };
  return startEtcdCluster([spec], { ...options, token: `vxnet-test-${process.pid}-${Date.now()}` });
}

function makeMember(
  spec: EtcdMemberSpec,
  options: { scratch: string; token: string; initialCluster: string; log?: (line: string) => void; tls?: EtcdTlsFiles },
): EtcdMember {
  const dataDir = join(options.scratch, `etcd-${spec.name}`);
  const endpoint = `${spec.address}:${spec.clientPort}`;
  let handle: ChildProcessHandle | undefined;
  let incarnation = 0;
  const scheme = options.tls ? 'https' : 'http';
  const tls = options.tls
    ? [`--cert-file=${options.tls.cert}`, `--key-file=${options.tls.key}`, `--trusted-ca-file=${options.tls.ca}`, '--client-cert-auth']
    : [];
  const argv = [
    ETCD_BINARY,
    `--name=${spec.name}`,
    `--data-dir=${dataDir}`,
    `--listen-client-urls=${scheme}://${endpoint}`,
    `--advertise-client-urls=${scheme}://${endpoint}`,
    ...tls,
    `--listen-peer-urls=http://${spec.address}:${spec.peerPort}`,
    `--initial-advertise-peer-urls=http://${spec.address}:${spec.peerPort}`,
    `--initial-cluster=${options.initialCluster}`,
    `--initial-cluster-token=${options.token}`,
    '--initial-cluster-state=new',
    // the machine is loaded: etcd's defaults (100 ms heartbeat, 1 s election) flap under it
    '--heartbeat-interval=100',
    '--election-timeout=1000',
    '--logger=zap',
    '--log-level=warn',
  ];
  return {
    ...spec,
    endpoint,
    dataDir,
    get handle() {
      return handle;
    },
    kill: async () => {
      if (!handle || handle.exitInfo !== undefined) return;
      await handle.stop('SIGKILL', 1000);
    },
    restart: async () => {
      if (handle && handle.exitInfo === undefined) return;
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      incarnation++;
      handle = start(spec.netns ? nsenterArgv(spec.netns, argv) : argv, {
        label: `etcd-${spec.name}#${incarnation}`,
        ...(options.log ? { log: options.log } : {}),
      });
      await waitHealthy(spec, handle, options.tls);
    },
  };
}

/** etcdctl's flags to reach `member` (over TLS with the test's certificate, which is also a client certificate) */
function ctlFlags(member: EtcdMemberSpec, tls: EtcdTlsFiles | undefined): string[] {
  const endpoint = `${member.address}:${member.clientPort}`;
  if (!tls) return [`--endpoints=http://${endpoint}`];
  return [`--endpoints=https://${endpoint}`, `--cacert=${tls.ca}`, `--cert=${tls.cert}`, `--key=${tls.key}`];
}

async function waitHealthy(spec: EtcdMemberSpec, handle: ChildProcessHandle, tls: EtcdTlsFiles | undefined): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  const argv = [ETCDCTL_BINARY, ...ctlFlags(spec, tls), '--command-timeout=1s', 'endpoint', 'health'];
  while (Date.now() < deadline) {
    if (handle.exitInfo !== undefined) throw new Error(`etcd member ${spec.name} exited at start:\n${handle.output()}`);
    const res = await run(spec.netns ? nsenterArgv(spec.netns, argv) : argv, { env: { ...process.env, ETCDCTL_API: '3' }, timeoutMs: 3000 });
    if (res.code === 0) return;
    await sleep(100);
  }
  throw new Error(`etcd member ${spec.name} was not healthy after ${START_TIMEOUT_MS} ms:\n${handle.output()}`);
}
