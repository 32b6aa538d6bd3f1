/**
 * Node removal in the service (in-process, SQLite in a temporary folder): refused while the node has
 * endpoints, drained in batches with every address released, never leaving an endpoint behind on a node
 * that no longer exists, and the removed node's watch stream ended cleanly after its last messages.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { WatchMessage } from '../../src/core/model.ts';
import { ManagerService } from '../../src/manager/service.ts';
import { SqliteStore } from '../../src/manager/store/sqlite.ts';
import { WatchHub, type WatchSink } from '../../src/manager/watch-hub.ts';
import { BLUE_AND_RED, openTestManager, registerNodes, vxnetError } from './support/manager.ts';
import { temporaryDatabasePath } from './support/temporary.ts';

const open = () => openTestManager({ nodes: ['host1', 'host2', 'host3'], networks: BLUE_AND_RED });

function recordingSink() {
  const lines: WatchMessage[] = [];
  const closed: string[] = [];
  const sink: WatchSink = {
    write: (line) => {
      for (const text of line.split('\n')) if (text) lines.push(JSON.parse(text) as WatchMessage);
    },
    bufferedBytes: 0,
    close: (reason) => closed.push(reason),
  };
  return { sink, lines, closed };
}

describe('node removal', () => {
  test('a node without endpoints is removed; an unknown node is not found', async (t) => {
    const m = await open();
    t.after(() => m.close());
    await m.service.deleteNode('host3');
    assert.deepEqual(m.service.listNodes().map((n) => n.name), ['host1', 'host2']);
    await assert.rejects(m.service.deleteNode('host3'), vxnetError('node_not_found', /^node host3 is not registered\.$/));
    assert.equal((await m.store.list('/removing-nodes/')).kvs.length, 0, 'no marker is left');
  });

  test('a node with endpoints is refused without drain, and nothing changes', async (t) => {
    const m = await open();
    t.after(() => m.close());
    await m.service.createEndpoint({ network: 'blue', node: 'host2', netns: 'c1' });
    const revision = m.service.info().revision;
    await assert.rejects(m.service.deleteNode('host2'), vxnetError('node_in_use', /^node host2 still has 1 endpoint: .*drain/));
    assert.equal(m.service.info().revision, revision, 'no write at all');
    assert.equal(m.service.listEndpoints({ node: 'host2' }).length, 1);
  });

  test('drain deletes every endpoint of the node (in batches), releases the addresses, then the node', async (t) => {
    const m = await open();
    t.after(() => m.close());
    const keep = await m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'k1' });
    const drained = [];
    for (let i = 0; i < 90; i++) {
      drained.push(await m.service.createEndpoint({ network: i % 2 ? 'blue' : 'red', node: 'host3', netns: `c${i}` }));
    }
    const result = await m.service.deleteNode('host3', { drain: true });
    assert.deepEqual(result, { endpoints: 90 });
    assert.deepEqual(m.service.listEndpoints().map((e) => e.id), [keep.id]);
    assert.deepEqual(m.service.listNodes().map((n) => n.name), ['host1', 'host2']);
    const ipam = (await m.store.list('/ipam/')).kvs.map((kv) => kv.key);
    assert.deepEqual(ipam, [`/ipam/blue/${keep.ip}`], 'every drained address is released');
    assert.deepEqual((await m.store.list('/attachments/')).kvs.map((kv) => kv.value), [keep.id]);
    // The released addresses are handed out again, lowest first.
    const next = await m.service.createEndpoint({ network: 'red', node: 'host1', netns: 'n1' });
    assert.equal(next.ip, '10.2.0.2');
  });

  test('no endpoint can be created on a node while it is being removed', async (t) => {
    const m = await open();
    t.after(() => m.close());
    for (let i = 0; i < 50; i++) await m.service.createEndpoint({ network: 'blue', node: 'host3', netns: `c${i}` });
    const removal = m.service.deleteNode('host3', { drain: true });
    const attempts = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => m.service.createEndpoint({ network: 'red', node: 'host3', netns: `late${i}` })),
    );
    await removal;
    for (const attempt of attempts) {
      if (attempt.status === 'rejected') assert.ok(vxnetError('node_not_found')(attempt.reason));
    }
    assert.deepEqual(m.service.listEndpoints(), [], 'no endpoint is left on a node that no longer exists');
    assert.equal((await m.store.list('/ipam/')).kvs.length, 0);
  });

  test('the removed node is told to forget its networks, then node-deleted, then its stream ends', async () => {
    const m = await open();
    const hub = new WatchHub(m.service.state);
    hub.start();
    try {
      await m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'a' });
      const own = await m.service.createEndpoint({ network: 'blue', node: 'host3', netns: 'b' });
      const removed = recordingSink();
      const peer = recordingSink();
      hub.attach('host3', removed.sink);
      hub.attach('host1', peer.sink);
      await m.service.deleteNode('host3', { drain: true });
      // Its last endpoint on blue went, so it is told to forget blue (and with it that endpoint).
      const snapshot = removed.lines[0];
      assert.ok(snapshot?.type === 'snapshot' && snapshot.endpoints.some((e) => e.id === own.id));
      assert.deepEqual(removed.lines.slice(1), [
        { type: 'network-forgotten', revision: removed.lines[1]!.revision, name: 'blue' },
        { type: 'node-deleted', revision: removed.lines[2]!.revision, name: 'host3' },
      ]);
      assert.deepEqual(removed.closed, ['node removed']);
      assert.equal(hub.sessionCount, 1, 'only the peer is still attached');
      assert.deepEqual(
        peer.lines.slice(1).map((l) => l.type),
        ['endpoint-deleted', 'node-deleted'],
        'the peer withdraws the endpoint and forgets the node',
      );
      assert.deepEqual(peer.closed, []);
    } finally {
      hub.stop();
      await m.close();
    }
  });

  test('a removal cut short by a crash leaves a marker that the next start clears', async () => {
    const path = temporaryDatabasePath('vxnet-node-');
    let store = new SqliteStore(path);
    let service = await ManagerService.open(store);
    await registerNodes(service, ['host1']);
    await store.txn([{ key: '/removing-nodes/host1', modRevision: 0 }], [{ type: 'put', key: '/removing-nodes/host1', value: '{}' }]);
    await service.close();
    await store.close();
    store = new SqliteStore(path);
    service = await ManagerService.open(store);
    try {
      assert.equal((await store.list('/removing-nodes/')).kvs.length, 0);
      await service.deleteNode('host1');
      assert.deepEqual(service.listNodes(), []);
    } finally {
      await service.close();
      await store.close();
    }
  });
});
