import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, test } from 'node:test';
import { SqliteStore } from '../../src/manager/store/sqlite.ts';
import { CompactedError, type WatchEvent } from '../../src/manager/store/store.ts';
import { temporaryDatabasePath } from './support/temporary.ts';

const tempDb = () => temporaryDatabasePath('vxnet-store-');

describe('sqlite store', () => {
  test('puts get revisions; one txn is one revision; createRevision survives updates', async () => {
    const store = new SqliteStore(tempDb());
    assert.equal(await store.revision(), 0);
    const r1 = await store.txn([], [
      { type: 'put', key: '/a/1', value: 'one' },
      { type: 'put', key: '/a/2', value: 'two' },
    ]);
    assert.deepEqual(r1, { succeeded: true, revision: 1 });
    const r2 = await store.txn([], [{ type: 'put', key: '/a/1', value: 'uno' }]);
    assert.equal(r2.revision, 2);
    assert.deepEqual(await store.get('/a/1'), { key: '/a/1', value: 'uno', createRevision: 1, modRevision: 2 });
    assert.deepEqual(await store.get('/a/2'), { key: '/a/2', value: 'two', createRevision: 1, modRevision: 1 });
    assert.equal(await store.get('/nope'), undefined);
    await store.close();
  });

  test('list returns keys under a prefix, sorted, with the revision read at', async () => {
    const store = new SqliteStore(tempDb());
    await store.txn([], [
      { type: 'put', key: '/b/2', value: 'x' },
      { type: 'put', key: '/b/1', value: 'y' },
      { type: 'put', key: '/bb', value: 'z' },
      { type: 'put', key: '/c', value: 'w' },
    ]);
    const list = await store.list('/b/');
    assert.deepEqual(list.kvs.map((kv) => kv.key), ['/b/1', '/b/2']);
    assert.equal(list.revision, 1);
    assert.equal((await store.list('')).kvs.length, 4);
    await store.close();
  });

  test('compare on modRevision: 0 means absent; a failed compare changes nothing', async () => {
    const store = new SqliteStore(tempDb());
    const create = () => store.txn([{ key: '/vnis/7', modRevision: 0 }], [{ type: 'put', key: '/vnis/7', value: 'a' }]);
    assert.equal((await create()).succeeded, true);
    const again = await create();
    assert.deepEqual(again, { succeeded: false, revision: 1 });
    assert.equal((await store.get('/vnis/7'))?.value, 'a');
    const stale = await store.txn([{ key: '/vnis/7', modRevision: 99 }], [{ type: 'delete', key: '/vnis/7' }]);
    assert.equal(stale.succeeded, false);
    const fresh = await store.txn([{ key: '/vnis/7', modRevision: 1 }], [{ type: 'delete', key: '/vnis/7' }]);
    assert.deepEqual(fresh, { succeeded: true, revision: 2 });
    assert.equal(await store.get('/vnis/7'), undefined);
    // deleting an absent key changes nothing and does not move the revision
    assert.deepEqual(await store.txn([], [{ type: 'delete', key: '/vnis/7' }]), { succeeded: true, revision: 2 });
    await store.close();
  });

  test('watch replays history from a revision, then streams live changes in order, with prevValue', async () => {
    const store = new SqliteStore(tempDb());
    await store.txn([], [{ type: 'put', key: '/k/a', value: '1' }]);
    await store.txn([], [{ type: 'put', key: '/k/a', value: '2' }, { type: 'put', key: '/other', value: 'x' }]);
    await store.txn([], [{ type: 'delete', key: '/k/a' }]);
    const batches: WatchEvent[][] = [];
    const stop = await store.watch('/k/', 2, (events) => batches.push(events));
    await store.txn([], [{ type: 'put', key: '/k/b', value: '3' }]);
    await store.txn([], [{ type: 'put', key: '/other', value: 'y' }]);
    stop();
    await store.txn([], [{ type: 'put', key: '/k/c', value: '4' }]);
    assert.deepEqual(
      batches.map((b) => b.map((e) => [e.revision, e.type, e.type === 'put' ? e.kv.key : e.key, e.prevValue])),
      [[[2, 'put', '/k/a', '1']], [[3, 'delete', '/k/a', '2']], [[4, 'put', '/k/b', undefined]]],
    );
    await store.close();
  });

  test('a callback that writes does not reorder deliveries to other watchers', async () => {
    const store = new SqliteStore(tempDb());
    const seenByB: number[] = [];
    let wrote = false;
    await store.watch('', 1, (events) => {
      if (!wrote) {
        wrote = true;
        void store.txn([], [{ type: 'put', key: '/second', value: '2' }]);
      }
    });
    await store.watch('', 1, (events) => seenByB.push(events[0]!.revision));
    await store.txn([], [{ type: 'put', key: '/first', value: '1' }]);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(seenByB, [1, 2]);
    await store.close();
  });

  test('old history is compacted; watching from before it is refused', async () => {
    const store = new SqliteStore(tempDb(), { retainRevisions: 5, compactEvery: 5 });
    for (let i = 0; i < 20; i++) await store.txn([], [{ type: 'put', key: '/n', value: String(i) }]);
    await assert.rejects(store.watch('/', 3, () => {}), CompactedError);
    const seen: number[] = [];
    const stop = await store.watch('/', 16, (events) => seen.push(events[0]!.revision));
    stop();
    assert.deepEqual(seen, [16, 17, 18, 19, 20]);
    await store.close();
  });

  test('data, revisions and history survive close and reopen', async () => {
    const path = tempDb();
    const a = new SqliteStore(path);
    await a.txn([], [{ type: 'put', key: '/x', value: '1' }]);
    await a.txn([], [{ type: 'put', key: '/y', value: '2' }]);
    await a.txn([], [{ type: 'delete', key: '/y' }]);
    await a.close();
    const b = new SqliteStore(path);
    assert.equal(await b.revision(), 3);
    assert.equal((await b.get('/x'))?.value, '1');
    const seen: string[] = [];
    (await b.watch('/', 1, (events) => seen.push(...events.map((e) => `${e.revision}:${e.type}`))))();
    assert.deepEqual(seen, ['1:put', '2:put', '3:delete']);
    // the revision never goes back, even though the newest key was deleted
    assert.equal((await b.txn([], [{ type: 'put', key: '/z', value: '3' }])).revision, 4);
    await b.close();
  });

  test('a second process cannot open the same database', async () => {
    const path = tempDb();
    const a = new SqliteStore(path);
    await a.txn([], [{ type: 'put', key: '/x', value: '1' }]);
    assert.throws(() => new SqliteStore(path), /in use by another process/);
    await a.close();
  });

  test('acknowledged writes survive kill -9 of the writing process', async () => {
    const path = tempDb();
    const script = `
      import { SqliteStore } from ${JSON.stringify(new URL('../../src/manager/store/sqlite.ts', import.meta.url).href)};
      const store = new SqliteStore(${JSON.stringify(path)});
      for (let i = 1; ; i++) {
        const r = await store.txn([], [{ type: 'put', key: '/n/' + i, value: String(i) }]);
        process.stdout.write('ack ' + r.revision + '\\n');
      }`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let acked = 0;
    await new Promise<void>((resolve) => {
      child.stdout.setEncoding('utf8');
      let buffer = '';
      child.stdout.on('data', (chunk: string) => {
        buffer += chunk;
        const lines = buffer.split('\n');
        buffer = lines.pop()!;
        for (const line of lines) acked = Number(line.slice(4));
        if (acked >= 50 && child.exitCode === null && !child.killed) {
          child.kill('SIGKILL');
          resolve();
        }
      });
    });
    await new Promise((r) => child.once('close', r));
    const store = new SqliteStore(path);
    assert.ok((await store.revision()) >= acked, `revision ${await store.revision()} < acknowledged ${acked}`);
    assert.equal((await store.get(`/n/${acked}`))?.value, String(acked));
    await store.close();
  });
});
