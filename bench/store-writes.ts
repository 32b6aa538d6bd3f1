/**
 * Section `store` of `npm run bench`: write latency and throughput of the manager on its two stores, side by
 * side in one run — SQLite in a data directory (one manager) and a 3-member etcd on loopback (several
 * managers; every write is a Raft round to a majority). Measured in-process on the manager's service, so
 * the numbers are the store's cost plus the service's, without HTTP: network create and attach (endpoint
 * create with wait=0) one at a time (p50/p99), and attaches with 16 in flight (writes per second).
 * A benchmark: it prints, it asserts nothing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startManager } from '../src/manager/main.ts';
import { type EtcdCluster, freePort, startEtcdCluster } from '../src/testkit/etcd.ts';
import { distribution, fixed, ratio } from './stats.ts';

export interface StoreWrites {
  json: Record<string, unknown>;
  markdown: string[];
}

interface Figures {
  networkCreate: ReturnType<typeof distribution>;
  attach: ReturnType<typeof distribution>;
  attachesPerSecond: number;
}

export async function measureStoreWrites(options: { writes: number; log: (line: string) => void }): Promise<StoreWrites> {
  const scratch = mkdtempSync(join(tmpdir(), 'vxnet-bench-store-'));
  let etcd: EtcdCluster | undefined;
  try {
    const specs = await Promise.all(
      ['m1', 'm2', 'm3'].map(async (name) => ({ name, address: '127.0.0.1', clientPort: await freePort(), peerPort: await freePort() })),
    );
    etcd = await startEtcdCluster(specs, { scratch, token: `vxnet-bench-${process.pid}` });
    options.log(`store: ${options.writes} writes of each kind on SQLite, then on a 3-member etcd ...`);
    const sqlite = await measure({ dataDir: join(scratch, 'sqlite') }, options.writes);
    const onEtcd = await measure({ dataDir: join(scratch, 'etcd'), store: etcd.url }, options.writes);
    const row = (label: string, s: ReturnType<typeof distribution>, e: ReturnType<typeof distribution>) =>
      `| ${label} | ${fixed(s.p50, 2)} / ${fixed(s.p99, 2)} | ${fixed(e.p50, 2)} / ${fixed(e.p99, 2)} | ${ratio(e.p50, s.p50)} |`;
    return {
      json: { writes: options.writes, sqlite, etcd: onEtcd },
      markdown: [
        '### Manager writes: SQLite vs etcd (3 members)',
        '',
        `In-process on the manager's service, ${options.writes} writes of each kind; etcd on loopback, so a write costs its Raft round and fsyncs but no network latency.`,
        '',
        '| write | SQLite p50 / p99 (ms) | etcd p50 / p99 (ms) | etcd / SQLite (p50) |',
        '| --- | --- | --- | --- |',
        row('network create, one at a time', sqlite.networkCreate, onEtcd.networkCreate),
        row('attach (wait=0), one at a time', sqlite.attach, onEtcd.attach),
        `| attaches, 16 in flight (per second) | ${fixed(sqlite.attachesPerSecond, 0)} | ${fixed(onEtcd.attachesPerSecond, 0)} | ${ratio(onEtcd.attachesPerSecond, sqlite.attachesPerSecond)} |`,
        '',
      ],
    };
  } finally {
    await etcd?.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
}

async function measure(where: { dataDir: string; store?: string }, writes: number): Promise<Figures> {
  const manager = await startManager({ ...where, listen: [`unix:${where.dataDir}.sock`] });
  try {
    const service = manager.service;
    await service.registerNode({ name: 'bench1', address: '192.0.2.1', mtu: 1500 });
    const timed = async (fn: () => Promise<unknown>) => {
      const start = performance.now();
      await fn();
      return performance.now() - start;
    };
    const creates: number[] = [];
    for (let i = 0; i < writes; i++) creates.push(await timed(() => service.createNetwork({ name: `bench${i}`, subnets: [{ cidr: `10.${100 + (i >> 8)}.${i & 255}.0/24` }] })));
    await service.createNetwork({ name: 'wide', subnets: [{ cidr: '172.16.0.0/16' }] });
    const attaches: number[] = [];
    for (let i = 0; i < writes; i++) attaches.push(await timed(() => service.createEndpoint({ network: 'wide', node: 'bench1', netns: `/run/netns/b${i}` })));
    let next = 0;
    const total = writes * 2;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < total) await service.createEndpoint({ network: 'wide', node: 'bench1', netns: `/run/netns/p${next++}` });
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    return { networkCreate: distribution(creates), attach: distribution(attaches), attachesPerSecond: total / seconds };
  } finally {
    await manager.close();
  }
}
