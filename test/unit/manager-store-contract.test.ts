/**
 * The Store contract (src/manager/store/store.ts), run against both drivers: SQLite, and etcd with a real
 * single-member etcd 3.4 on loopback (skipped with a reason where /usr/bin/etcd is missing). Revisions are
 * compared relative to where each test starts: etcd's are shared by every key of the cluster.
 * SQLite-only behaviour (durability, the exclusive lock, group commit) stays in manager-store*.test.ts.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { EtcdStore } from '../../src/manager/store/etcd.ts';
import { SqliteStore } from '../../src/manager/store/sqlite.ts';
import { CompactedError, type Store, type WatchEvent } from '../../src/manager/store/store.ts';
import { ETCD_BINARY, ETCDCTL_BINARY, type EtcdCluster, startSingleEtcd } from '../../src/testkit/etcd.ts';
import { runChecked } from '../../src/testkit/processes.ts';
import { temporaryDatabasePath, temporaryDirectory } from './support/temporary.ts';

interface Driver {
  name: string;
  skip?: string;
  /** a new empty store */
  open(): Promise<Store>;
  /** drops watch history up to `revision` */
  compact(store: Store, revision: number): Promise<void>;
  /** a write the store does not see (etcd: another prefix of the same cluster, which moves the revision) */
  foreignWrite?(): Promise<void>;
}

let etcd: EtcdCluster | undefined;
let prefixes = 0;
/** closed after the last test, so that a failed assertion does not leave a client keeping the process alive */
const opened: Store[] = [];
const noEtcd = existsSync(ETCD_BINARY) && existsSync(ETCDCTL_BINARY) ? undefined : `${ETCD_BINARY} is not installed (setup.sh installs it)`;

before(async () => {
  if (!noEtcd) etcd = await startSingleEtcd({ scratch: temporaryDirectory('vxnet-etcd-') });
});
after(async () => {
  await Promise.all(opened.map((store) => store.close()));
  await etcd?.stop();
});

const drivers: Driver[] = [
  {
    name: 'sqlite',
    open: async () => remember(new SqliteStore(temporaryDatabasePath('vxnet-contract-'), { retainRevisions: 5, compactEvery: 5 })),
    // the SQLite store compacts by itself (every 5 revisions here, keeping 5): write until it has
    compact: async (store, revision) => {
      while ((await store.revision()) < revision + 10) await store.txn([], [{ type: 'put', key: '/filler', value: 'x' }]);
    },
  },
  {
    name: 'etcd',
    ...(noEtcd ? { skip: noEtcd } : {}),
    open: async () => remember(new EtcdStore({ endpoints: etcd!.endpoints(), prefix: `/contract-${process.pid}-${++prefixes}` })),
    compact: async (_store, revision) => {
      await runChecked([ETCDCTL_BINARY, `--endpoints=http://${etcd!.endpoints()[0]}`, 'compact', String(revision)], {
        env: { ...process.env, ETCDCTL_API: '3' },
      });
    },
    foreignWrite: async () => {
      const other = new EtcdStore({ endpoints: etcd!.endpoints(), prefix: `/foreign-${process.pid}` });
      await other.txn([], [{ type: 'put', key: '/y', value: String(Date.now()) }]);
      await other.close();
    },
  },
];

function remember(store: Store): Store {
  opened.push(store);
  return store;
}

/** Resolves once `seen` holds an event of at least `revision`. */
async function reached(seen: number[], revision: number): Promise<void> {
  const deadline = Date.now() + 5000;
  while ((seen.at(-1) ?? 0) < revision) {
    if (Date.now() > deadline) assert.fail(`the watch never reached revision ${revision} (last ${seen.at(-1)})`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

for (const driver of drivers) {
  describe(`store contract: ${driver.name}`, { ...(driver.skip ? { skip: driver.skip } : {}) }, () => {
    test('one txn is one revision; createRevision survives updates; get of an absent key is undefined', async () => {
      const store = await driver.open();
      const r1 = await store.txn([], [
        { type: 'put', key: '/a/1', value: 'one' },
        { type: 'put', key: '/a/2', value: 'two' },
      ]);
      assert.equal(r1.succeeded, true);
      const r2 = await store.txn([], [{ type: 'put', key: '/a/1', value: 'uno' }]);
      assert.equal(r2.revision, r1.revision + 1);
      assert.deepEqual(await store.get('/a/1'), { key: '/a/1', value: 'uno', createRevision: r1.revision, modRevision: r2.revision });
      assert.deepEqual(await store.get('/a/2'), { key: '/a/2', value: 'two', createRevision: r1.revision, modRevision: r1.revision });
      assert.equal(await store.get('/nope'), undefined);
      assert.ok((await store.revision()) >= r2.revision);
      await store.close();
    });

    test('list returns the keys under a prefix, sorted, with the revision read at', async () => {
      const store = await driver.open();
      const r = await store.txn([], [
        { type: 'put', key: '/b/2', value: 'x' },
        { type: 'put', key: '/b/1', value: 'y' },
        { type: 'put', key: '/bb', value: 'z' },
      ]);
      const list = await store.list('/b/');
      assert.deepEqual(list.kvs.map((kv) => kv.key), ['/b/1', '/b/2']);
      assert.ok(list.revision >= r.revision);
      await store.close();
    });

    test('compare on modRevision: 0 means absent; a failed compare changes nothing', async () => {
      const store = await driver.open();
      const create = () => store.txn([{ key: '/vnis/7', modRevision: 0 }], [{ type: 'put', key: '/vnis/7', value: 'a' }]);
      const first = await create();
      assert.equal(first.succeeded, true);
      assert.equal((await create()).succeeded, false);
      assert.equal((await store.get('/vnis/7'))?.value, 'a');
      assert.equal((await store.txn([{ key: '/vnis/7', modRevision: first.revision + 99 }], [{ type: 'delete', key: '/vnis/7' }])).succeeded, false);
      assert.equal((await store.txn([{ key: '/vnis/7', modRevision: first.revision }], [{ type: 'delete', key: '/vnis/7' }])).succeeded, true);
      assert.equal(await store.get('/vnis/7'), undefined);
      assert.equal((await store.txn([], [{ type: 'delete', key: '/vnis/7' }])).succeeded, true);
      await store.close();
    });

    test('of many concurrent claims of one key exactly one succeeds', async () => {
      const store = await driver.open();
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => store.txn([{ key: '/ipam/n/10.0.0.2', modRevision: 0 }], [{ type: 'put', key: '/ipam/n/10.0.0.2', value: String(i) }])),
      );
      assert.equal(results.filter((r) => r.succeeded).length, 1);
      await store.close();
    });

    test('watch replays history from a revision, then streams live changes in order, with prevValue', async () => {
      const store = await driver.open();
      const a = await store.txn([], [{ type: 'put', key: '/k/a', value: '1' }]);
      const b = await store.txn([], [{ type: 'put', key: '/k/a', value: '2' }, { type: 'put', key: '/other', value: 'x' }]);
      const c = await store.txn([], [{ type: 'delete', key: '/k/a' }]);
      const batches: WatchEvent[][] = [];
      const seen: number[] = [];
      const stop = await store.watch('/k/', b.revision, (events) => {
        batches.push(events);
        seen.push(events[0]!.revision);
      });
      const d = await store.txn([], [{ type: 'put', key: '/k/b', value: '3' }]);
      await store.txn([], [{ type: 'put', key: '/other', value: 'y' }]);
      await reached(seen, d.revision);
      stop();
      await store.txn([], [{ type: 'put', key: '/k/c', value: '4' }]);
      await new Promise((r) => setTimeout(r, 50));
      assert.ok(a.revision < b.revision);
      assert.deepEqual(
        batches.map((batch) => batch.map((e) => [e.revision, e.type, e.type === 'put' ? e.kv.key : e.key, e.prevValue])),
        [[[b.revision, 'put', '/k/a', '1']], [[c.revision, 'delete', '/k/a', '2']], [[d.revision, 'put', '/k/b', undefined]]],
      );
      await store.close();
    });

    test('after any transaction, succeeded or not, a watch of everything reaches the revision it returned', async () => {
      // the service waits for exactly that after every write (service/cas.ts)
      const store = await driver.open();
      const start = await store.txn([], [{ type: 'put', key: '/x', value: '1' }]);
      const seen: number[] = [];
      const stop = await store.watch('', start.revision, (events) => seen.push(events[0]!.revision));
      await driver.foreignWrite?.();
      const failed = await store.txn([{ key: '/x', modRevision: 0 }], [{ type: 'put', key: '/x', value: '2' }]);
      assert.equal(failed.succeeded, false);
      await reached(seen, failed.revision);
      await driver.foreignWrite?.();
      const noop = await store.txn([], [{ type: 'delete', key: '/absent' }]);
      await reached(seen, noop.revision);
      stop();
      await store.close();
    });

    test('watching from before the retained history is refused with CompactedError', async () => {
      const store = await driver.open();
      const first = await store.txn([], [{ type: 'put', key: '/n', value: '0' }]);
      for (let i = 1; i < 8; i++) await store.txn([], [{ type: 'put', key: '/n', value: String(i) }]);
      await driver.compact(store, (await store.revision()) - 1);
      await assert.rejects(store.watch('/', first.revision, () => {}), CompactedError);
      const now = await store.revision();
      const seen: number[] = [];
      const stop = await store.watch('/', now, (events) => seen.push(events[0]!.revision));
      const next = await store.txn([], [{ type: 'put', key: '/n', value: 'last' }]);
      await reached(seen, next.revision);
      stop();
      await store.close();
    });
  });
}
