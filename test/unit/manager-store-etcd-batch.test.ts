/**
 * Group commit of the etcd store (store/etcd-batch.ts): which transactions share a request, and, on a real
 * single-member etcd 3.4, that a burst of transactions takes fewer requests (revisions) than transactions
 * while each keeps its own outcome, and that one etcd refuses spoils none of the others.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { MAX_TXNS_PER_BATCH, takeBatch } from '../../src/manager/store/etcd-batch.ts';
import { EtcdStore } from '../../src/manager/store/etcd.ts';
import { ETCD_BINARY, type EtcdCluster, startSingleEtcd } from '../../src/testkit/etcd.ts';
import { temporaryDirectory } from './support/temporary.ts';

const txn = (name: string, writes: string[], extra: { alone?: boolean; bytes?: number; reads?: string[] } = {}) => ({
  name,
  writes,
  reads: extra.reads ?? [],
  bytes: extra.bytes ?? 100,
  alone: extra.alone ?? false,
});

describe('which transactions share an etcd request', () => {
  test('disjoint ones go together in order; one on a key taken or left behind waits, and so does all after it on that key', () => {
    const queue = [txn('a', ['/x']), txn('b', ['/y']), txn('c', ['/x', '/z']), txn('d', ['/z']), txn('e', ['/w'])];
    assert.deepEqual(takeBatch(queue).map((t) => t.name), ['a', 'b', 'e']);
    assert.deepEqual(queue.map((t) => t.name), ['c', 'd'], 'd touches /z, which c (left behind) writes: it must not pass c');
    assert.deepEqual(takeBatch(queue).map((t) => t.name), ['c']);
    assert.deepEqual(takeBatch(queue).map((t) => t.name), ['d']);
    assert.deepEqual(takeBatch(queue), []);
  });

  test('compares of one key go together; a write of a key another compares waits', () => {
    const queue = [txn('a', ['/a'], { reads: ['/net'] }), txn('b', ['/b'], { reads: ['/net'] }), txn('w', ['/net']), txn('c', ['/c'], { reads: ['/net'] })];
    assert.deepEqual(takeBatch(queue).map((t) => t.name), ['a', 'b']);
    assert.deepEqual(queue.map((t) => t.name), ['w', 'c'], 'c compares what w (left behind) writes: it must not pass w');
    assert.deepEqual(takeBatch(queue).map((t) => t.name), ['w']);
  });

  test('a large transaction goes alone, and a batch stops at its count and size', () => {
    const queue = [txn('big', ['/a'], { alone: true }), txn('b', ['/b'])];
    assert.deepEqual(takeBatch(queue).map((t) => t.name), ['big']);
    const many = Array.from({ length: MAX_TXNS_PER_BATCH + 5 }, (_, i) => txn(`t${i}`, [`/k${i}`]));
    assert.equal(takeBatch(many).length, MAX_TXNS_PER_BATCH);
    assert.equal(many.length, 5);
    const heavy = [txn('h1', ['/h1'], { bytes: 200_000 }), txn('h2', ['/h2'], { bytes: 200_000 }), txn('h3', ['/h3'])];
    assert.deepEqual(takeBatch(heavy).map((t) => t.name), ['h1', 'h3']);
  });
});

const skip = existsSync(ETCD_BINARY) ? undefined : `${ETCD_BINARY} is not installed (setup.sh installs it)`;

describe('group commit on etcd', { ...(skip ? { skip } : {}) }, () => {
  let etcd: EtcdCluster;
  let store: EtcdStore;
  before(async () => {
    etcd = await startSingleEtcd({ scratch: temporaryDirectory('vxnet-etcd-batch-') });
    store = new EtcdStore({ endpoints: etcd.endpoints() });
  });
  after(async () => {
    await store.close();
    await etcd.stop();
  });

  test('a burst shares requests, each transaction with its own outcome; claims of one key still give one winner', async () => {
    const claims = Array.from({ length: 60 }, (_, i) =>
      store.txn([{ key: `/ipam/burst/${i % 30}`, modRevision: 0 }], [{ type: 'put', key: `/ipam/burst/${i % 30}`, value: String(i) }]),
    );
    const results = await Promise.all(claims);
    assert.equal(results.filter((r) => r.succeeded).length, 30, 'one winner per key');
    const revisions = new Set(results.map((r) => r.revision));
    assert.ok(revisions.size < results.length, `no two of ${results.length} transactions shared a request`);
    const { kvs } = await store.list('/ipam/burst/');
    assert.equal(kvs.length, 30);
    for (const kv of kvs) {
      const winner = results.findIndex((r, i) => r.succeeded && i % 30 === Number(kv.key.split('/').pop()));
      assert.equal(kv.value, String(winner), `${kv.key} holds another value than its winner wrote`);
      assert.equal(kv.modRevision, results[winner]!.revision);
    }
  });

  test('a transaction etcd refuses fails alone; the others of its batch are applied', async () => {
    // a few writes in flight first, so that what follows queues and is batched
    const fillers = Array.from({ length: 8 }, (_, i) => store.txn([], [{ type: 'put', key: `/fill/${i}`, value: 'x' }]));
    const good = Array.from({ length: 10 }, (_, i) => store.txn([], [{ type: 'put', key: `/good/${i}`, value: 'ok' }]));
    // etcd refuses a transaction that writes one key twice
    const bad = store.txn([], [{ type: 'put', key: '/bad', value: '1' }, { type: 'put', key: '/bad', value: '2' }]).catch((err: Error) => err);
    await Promise.all(fillers);
    assert.match(String(await bad), /refused the request: .*duplicate key/);
    for (const result of await Promise.all(good)) assert.equal(result.succeeded, true);
    assert.equal((await store.list('/good/')).kvs.length, 10);
    assert.equal(await store.get('/bad'), undefined);
  });
});
