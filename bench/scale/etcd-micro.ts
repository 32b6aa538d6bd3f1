/**
 * The manager's CPU per store write on etcd, without the rest of the manager: one EtcdStore writing
 * endpoint-sized records one transaction at a time (as the churn's creates, status reports and deletes do)
 * while the same store follows the whole prefix (as every manager's index does), and `--watchers N` more
 * stores only following (the other managers). Prints CPU ms per write of the writing process, which holds
 * them all, and the CPU of the etcd process beside it; run before and after a change to the driver on the
 * same machine and compare the ratio. The stores watch as the managers' indexes do, without previous values
 * (store.ts WatchOptions); `--previous` asks for them, as every watch did before.
 *
 *   node bench/scale/etcd-micro.ts [--writes 2000] [--concurrency 1] [--watchers 2] [--previous]
 */
import { parseArgs } from 'node:util';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdStore } from '../../src/manager/store/etcd.ts';
import { startSingleEtcd } from '../../src/testkit/etcd.ts';

const { values } = parseArgs({ options: { writes: { type: 'string', default: '2000' }, concurrency: { type: 'string', default: '1' }, watchers: { type: 'string', default: '2' }, previous: { type: 'boolean', default: false } } });
const writes = Number(values.writes);
const concurrency = Number(values.concurrency);
const scratch = mkdtempSync(join(tmpdir(), 'vxnet-etcd-micro-'));
const etcd = await startSingleEtcd({ scratch });
const stores = Array.from({ length: 1 + Number(values.watchers) }, () => new EtcdStore({ endpoints: etcd.endpoints() }));
try {
  const writer = stores[0]!;
  let seen = 0;
  const start = await writer.revision();
  for (const s of stores) await s.watch('', start + 1, (events) => (seen += events.length), { previousValues: values.previous });
  // utime + stime of the etcd member, in clock ticks (100 a second on Linux)
  const etcdPid = etcd.members[0]!.handle?.pid;
  const etcdTicks = () => {
    if (etcdPid === undefined) return NaN;
    const fields = readFileSync(`/proc/${etcdPid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return Number(fields[11]) + Number(fields[12]);
  };
  const etcd0 = etcdTicks();
  const value = (i: number) => JSON.stringify({ id: `ep${i}`.padEnd(12, '0'), network: 'net7', node: `sim${i % 200}`, ip: `10.1.${(i >> 8) & 255}.${i & 255}`, mac: '02:42:0a:01:00:02', netns: `/run/netns/n7-${i}`, ifname: 'eth0', status: 'ready', createdAt: new Date().toISOString() });
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < writes) {
        const i = next++;
        const key = `/endpoints/ep${i}`;
        await writer.txn([{ key, modRevision: 0 }, { key: `/ipam/net7/${i}`, modRevision: 0 }], [{ type: 'put', key, value: value(i) }, { type: 'put', key: `/ipam/net7/${i}`, value: key }]);
      }
    }),
  );
  const expected = writes * 2 * stores.length;
  while (seen < expected) await new Promise((r) => setTimeout(r, 5));
  const cpu = process.cpuUsage(cpu0);
  const wall = performance.now() - t0;
  const etcdCpuMsPerWrite = ((etcdTicks() - etcd0) * 10) / writes;
  console.log(JSON.stringify({ writes, concurrency, watchers: stores.length, previous: values.previous, cpuMsPerWrite: (cpu.user + cpu.system) / 1000 / writes, etcdCpuMsPerWrite, wallMs: Math.round(wall), eventsSeen: seen }));
} finally {
  for (const s of stores) await s.close();
  await etcd.stop();
  rmSync(scratch, { recursive: true, force: true });
}
