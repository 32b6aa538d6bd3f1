/**
 * The revision fence of the etcd store (store/etcd.ts), on a real single-member etcd 3.4: every transaction
 * returns a revision the prefix watch delivers (the service waits for it), with the fence written only where
 * the transaction could otherwise change nothing; which revisions a store made itself (shared-liveness.ts
 * tells no one of those); and a watch without previous values gets deletes with ''.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { EtcdStore, FENCE_KEY } from '../../src/manager/store/etcd.ts';
import type { WatchEvent } from '../../src/manager/store/store.ts';
import { ETCD_BINARY, type EtcdCluster, startSingleEtcd } from '../../src/testkit/etcd.ts';
import { temporaryDirectory } from './support/temporary.ts';
import { until } from './support/until.ts';

const skip = existsSync(ETCD_BINARY) ? undefined : `${ETCD_BINARY} is not installed (setup.sh installs it)`;

describe('the revision fence on etcd', { ...(skip ? { skip } : {}) }, () => {
  let etcd: EtcdCluster;
  let store: EtcdStore;
  /** what a watch of the whole prefix without previous values delivered, and one with them */
  const bare: WatchEvent[] = [];
  const full: WatchEvent[] = [];
  const stops: (() => void)[] = [];
  const keyOf = (e: WatchEvent) => (e.type === 'put' ? e.kv.key : e.key);
  const at = (events: WatchEvent[], revision: number) => events.filter((e) => e.revision === revision);

  before(async () => {
    etcd = await startSingleEtcd({ scratch: temporaryDirectory('vxnet-etcd-fence-') });
    store = new EtcdStore({ endpoints: etcd.endpoints() });
    const from = (await store.revision()) + 1;
    stops.push(await store.watch('', from, (events) => bare.push(...events), { previousValues: false }));
    stops.push(await store.watch('', from, (events) => full.push(...events)));
  });
  after(async () => {
    for (const stop of stops) stop();
    await store.close();
    await etcd.stop();
  });

  test('a transaction that puts a key makes its own revision: no fence event beside it', async () => {
    const { succeeded, revision } = await store.txn([{ key: '/a', modRevision: 0 }], [{ type: 'put', key: '/a', value: 'one' }]);
    assert.equal(succeeded, true);
    await until(() => at(bare, revision).length > 0, 'the put is delivered');
    assert.deepEqual(at(bare, revision).map(keyOf), ['/a']);
  });

  test('deletes of a key already gone, and a failed compare, still return a revision the watch delivers', async () => {
    const gone = await store.txn([], [{ type: 'delete', key: '/never-there' }]);
    await until(() => at(bare, gone.revision).length > 0, `revision ${gone.revision} of the delete that changed nothing is delivered`);
    assert.deepEqual(at(bare, gone.revision).map(keyOf), [FENCE_KEY]);
    const refused = await store.txn([{ key: '/a', modRevision: 0 }], [{ type: 'put', key: '/a', value: 'two' }]);
    assert.equal(refused.succeeded, false);
    await until(() => at(bare, refused.revision).length > 0, `revision ${refused.revision} of the failed compare is delivered`);
    assert.deepEqual(at(bare, refused.revision).map(keyOf), [FENCE_KEY]);
  });

  test("a store knows the revisions its own transactions made, and never claims another store's", async () => {
    const other = new EtcdStore({ endpoints: etcd.endpoints() });
    try {
      const mine = await store.txn([], [{ type: 'put', key: '/mine', value: '1' }]);
      const theirs = await other.txn([], [{ type: 'put', key: '/theirs', value: '1' }]);
      assert.equal(store.madeRevision(mine.revision), true);
      assert.equal(store.madeRevision(theirs.revision), false);
      assert.equal(other.madeRevision(theirs.revision), true);
      assert.equal(other.madeRevision(mine.revision), false);
    } finally {
      await other.close();
    }
  });

  test('a delete comes with its previous value only to a watch that asked for previous values', async () => {
    const a = await store.get('/a');
    const { revision } = await store.txn([{ key: '/a', modRevision: a!.modRevision }], [{ type: 'delete', key: '/a' }]);
    await until(() => at(bare, revision).length > 0 && at(full, revision).length > 0, 'the delete is delivered to both watches');
    const deleted = (events: WatchEvent[]) => at(events, revision).find((e) => keyOf(e) === '/a');
    assert.deepEqual(deleted(bare), { type: 'delete', revision, key: '/a', prevValue: '' });
    assert.deepEqual(deleted(full), { type: 'delete', revision, key: '/a', prevValue: 'one' });
  });
});
