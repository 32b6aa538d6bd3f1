/**
 * Group commit in the SQLite store: transactions issued together share one SQLite transaction (one fsync)
 * but keep the contract of running alone, one after the other — own revision, own compares, all or nothing.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SqliteStore } from '../../src/manager/store/sqlite.ts';
import type { WatchEvent } from '../../src/manager/store/store.ts';
import { temporaryDatabasePath } from './support/temporary.ts';

const tempDb = () => temporaryDatabasePath('vxnet-group-');

test('transactions issued together get consecutive revisions in issue order, each delivered on its own', async () => {
  const store = new SqliteStore(tempDb());
  const seen: number[][] = [];
  await store.watch('', 1, (events) => seen.push(events.map((e) => e.revision)));
  const results = await Promise.all(
    Array.from({ length: 50 }, (_, i) => store.txn([], [{ type: 'put', key: `/n/${i}`, value: String(i) }, { type: 'put', key: `/m/${i}`, value: 'x' }])),
  );
  assert.deepEqual(
    results.map((r) => r.revision),
    Array.from({ length: 50 }, (_, i) => i + 1),
  );
  assert.deepEqual(
    seen,
    Array.from({ length: 50 }, (_, i) => [i + 1, i + 1]),
  );
  assert.equal((await store.list('/n/')).kvs.length, 50);
  await store.close();
});

test('in one group, a transaction sees the ones before it; a failed compare or a no-op changes nothing', async () => {
  const store = new SqliteStore(tempDb());
  const events: WatchEvent[] = [];
  await store.watch('', 1, (batch) => events.push(...batch));
  const [a, b, c, d, e] = await Promise.all([
    store.txn([{ key: '/vnis/7', modRevision: 0 }], [{ type: 'put', key: '/vnis/7', value: 'a' }]),
    // claims the same key: it is no longer absent, so this one fails and writes nothing
    store.txn([{ key: '/vnis/7', modRevision: 0 }], [{ type: 'put', key: '/vnis/7', value: 'b' }, { type: 'put', key: '/other', value: 'b' }]),
    store.txn([], [{ type: 'delete', key: '/absent' }]),
    store.txn([{ key: '/vnis/7', modRevision: 1 }], [{ type: 'put', key: '/vnis/7', value: 'd' }]),
    store.txn([], [{ type: 'delete', key: '/vnis/7' }]),
  ]);
  assert.deepEqual(a, { succeeded: true, revision: 1 });
  assert.deepEqual(b, { succeeded: false, revision: 1 });
  assert.deepEqual(c, { succeeded: true, revision: 1 });
  assert.deepEqual(d, { succeeded: true, revision: 2 });
  assert.deepEqual(e, { succeeded: true, revision: 3 });
  assert.equal(await store.get('/other'), undefined);
  assert.equal(await store.get('/vnis/7'), undefined);
  assert.deepEqual(
    events.map((ev) => `${ev.revision}:${ev.type}:${ev.type === 'put' ? ev.kv.value : ev.prevValue}`),
    ['1:put:a', '2:put:d', '3:delete:d'],
  );
  assert.equal(await store.revision(), 3);
  await store.close();
});

test('closing the store fails the transactions still waiting for their group', async () => {
  const store = new SqliteStore(tempDb());
  const pending = store.txn([], [{ type: 'put', key: '/x', value: '1' }]);
  await store.close();
  await assert.rejects(pending, /closed/);
});
