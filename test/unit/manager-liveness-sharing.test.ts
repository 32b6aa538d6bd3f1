/**
 * What a manager tells the others of its nodes' liveness and what it takes from them (liveness.ts,
 * shared-liveness.ts): news, not beats — a node heard once is written once and stays up everywhere while
 * its key stands; a heartbeat with nothing new writes nothing; a revision someone waits for is told at once;
 * a node this manager stops hearing has its key dropped, unless another manager took it over; never a node
 * moved back by older news.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LivenessTracker } from '../../src/manager/liveness.ts';
import { LIVENESS_PREFIX, shareLiveness } from '../../src/manager/shared-liveness.ts';
import type { StateChange } from '../../src/manager/state.ts';
import { SqliteStore } from '../../src/manager/store/sqlite.ts';
import type { Compare, Op, Store, WatchCallback } from '../../src/manager/store/store.ts';
import { temporaryDatabasePath } from './support/temporary.ts';
import { until } from './support/until.ts';

const DOWN_MS = 15_000;

const tracker = () => {
  let now = 1_000_000;
  const t = new LivenessTracker({ now: () => now, downAfterMs: DOWN_MS });
  return { t, advance: (ms: number) => (now += ms) };
};

describe('liveness tracker: what a manager heard and what the others report', () => {
  test('the nodes heard are taken once; those not told are taken again', () => {
    const { t } = tracker();
    t.heartbeat('n1', 7);
    t.seen('n2');
    t.heartbeat('n1', 8);
    assert.deepEqual(t.takeHeard().sort(), ['n1', 'n2']);
    assert.deepEqual(t.takeHeard(), [], 'nothing heard since');
    t.heardAgain(['n2']);
    assert.deepEqual(t.takeHeard(), ['n2']);
  });

  test("another manager's report keeps a node up while it stands, wakes waiters, and never moves it back", async () => {
    const { t, advance } = tracker();
    t.heartbeat('n1', 10);
    const waiting = t.waitReconciled('n1', 12, 2000);
    t.merge('n1', { lastSeen: 1_002_000, reconciledRevision: 12 });
    assert.equal(await waiting, true);
    assert.deepEqual(t.get('n1'), { state: 'up', lastSeen: new Date(1_002_000).toISOString(), reconciledRevision: 12 });
    t.merge('n1', { lastSeen: 900_000, reconciledRevision: 3 });
    assert.equal(t.get('n1').reconciledRevision, 12, 'older news never moves a node back');
    advance(DOWN_MS * 3);
    assert.equal(t.get('n1').state, 'up', 'reported by another manager, it stays up without news');
    assert.equal(t.hears('n1'), false, 'this manager itself no longer hears it');
    t.release('n1');
    assert.equal(t.get('n1').state, 'down', 'the report gone, the node is down');
  });

  test('a removed node is forgotten: not heard, not held, down until heard again', () => {
    const { t } = tracker();
    t.heartbeat('n1', 4);
    t.merge('n1', { lastSeen: 1_000_000, reconciledRevision: 4 });
    t.forget('n1');
    assert.deepEqual(t.takeHeard(), []);
    assert.equal(t.get('n1').state, 'down');
    t.heartbeat('n1', 1);
    assert.deepEqual(t.get('n1').reconciledRevision, 1, 'registered again, it starts afresh');
  });
});

/** A manager's index as shareLiveness sees it: the nodes, a revision, and the changes it emits. */
function fakeIndex(nodes: string[]) {
  const listeners = new Set<(change: StateChange) => void>();
  return {
    nodes: new Map(nodes.map((name) => [name, {}])) as never,
    revision: Number.MAX_SAFE_INTEGER,
    waitFor: () => Promise.resolve(),
    subscribe(listener: (change: StateChange) => void) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    emit(change: StateChange) {
      for (const l of listeners) l(change);
    },
  };
}

describe('liveness shared through the store', () => {
  test('news only: one write per node heard, none per heartbeat; a revision waited for at once; a quiet node dropped unless taken over', async () => {
    const store = new SqliteStore(temporaryDatabasePath('vxnet-liveness-'));
    const writes: { manager: string; ops: Op[]; compares: Compare[] }[] = [];
    const counted = (manager: string): Store => {
      const view = Object.create(store) as Store;
      return Object.assign(view, {
        list: (prefix: string) => store.list(prefix),
        get: (key: string) => store.get(key),
        // SQLite has no sessions: its events are marked as etcd marks a key put with a live lease
        watch: (prefix: string, from: number, onEvents: WatchCallback) =>
          store.watch(prefix, from, (events) => onEvents(events.map((e) => (e.type === 'put' ? { ...e, kv: { ...e.kv, session: true as const } } : e)))),
        txn: (compares: Compare[], ops: Op[]) => {
          writes.push({ manager, ops, compares });
          return store.txn(compares, ops);
        },
      });
    };
    const clock = { now: 1_000_000 };
    const a = new LivenessTracker({ now: () => clock.now, downAfterMs: DOWN_MS });
    const b = new LivenessTracker({ now: () => clock.now, downAfterMs: DOWN_MS });
    const indexA = fakeIndex(['n1', 'n2']);
    const indexB = fakeIndex(['n1', 'n2']);
    const options = { downAfterMs: DOWN_MS, batchMs: 10, log: () => {} };
    const stops = [await shareLiveness(counted('a'), a, indexA, options), await shareLiveness(counted('b'), b, indexB, options)];
    const puts = (manager: string, node: string) =>
      writes.filter((w) => w.manager === manager && w.ops.some((op) => op.type === 'put' && op.key === LIVENESS_PREFIX + node)).length;
    const settle = () => new Promise((r) => setTimeout(r, 60));
    try {
      a.heartbeat('n1', 5);
      await until(() => b.get('n1').state === 'up', 'n1 up on manager b');
      assert.equal(puts('a', 'n1'), 1);
      assert.ok(writes[0]!.ops.every((op) => op.type === 'put' && op.session === true), 'liveness keys are session keys');

      // heartbeats with a higher revision but nothing anyone waits for: no write
      for (let i = 0; i < 5; i++) {
        clock.now += 5000;
        a.heartbeat('n1', 6 + i);
        await settle();
      }
      assert.equal(puts('a', 'n1'), 1, 'a heartbeat with nothing new reached the store');
      assert.equal(b.get('n1').state, 'up', 'n1 stays up on b without news');

      // an endpoint of n1 deleted at revision 20: a caller on b waits for n1 to pass it
      const waiting = b.waitReconciled('n1', 20, 2000);
      indexA.emit({ kind: 'endpoint-deleted', revision: 20, endpoint: { node: 'n1' } as never });
      indexB.emit({ kind: 'endpoint-deleted', revision: 20, endpoint: { node: 'n1' } as never });
      a.heartbeat('n1', 19);
      await settle();
      assert.equal(puts('a', 'n1'), 1, 'a revision short of the awaited one is not news');
      a.heartbeat('n1', 21);
      assert.equal(await waiting, true, 'the awaited revision reached the other manager');
      assert.equal(puts('a', 'n1'), 2);

      // n1's agent moves to b: b takes the key over; a, no longer hearing n1, leaves b's key alone
      b.heartbeat('n1', 21);
      await until(() => puts('b', 'n1') === 1, 'b writes n1 once');
      clock.now += DOWN_MS;
      b.heartbeat('n1', 21);
      await settle();
      assert.equal(writes.filter((w) => w.manager === 'a' && w.ops.some((op) => op.type === 'delete')).length, 0, "a deleted b's key");
      assert.equal(a.get('n1').state, 'up', "n1 is up on a through b's key");

      // n2 heard by a only, then silent for the down-time: a drops its key and b sees it down
      a.heartbeat('n2', 1);
      await until(() => b.get('n2').state === 'up', 'n2 up on manager b');
      clock.now += DOWN_MS;
      b.heartbeat('n1', 21);
      await until(() => b.get('n2').state === 'down', 'n2 down on b once a stopped hearing it');
      assert.equal(await store.get(LIVENESS_PREFIX + 'n2'), undefined);

      // a key without a lease (an earlier version's) counts by its sighting only: it cannot keep a node up for ever
      const c = new LivenessTracker({ now: () => clock.now, downAfterMs: DOWN_MS });
      await store.txn([], [{ type: 'put', key: LIVENESS_PREFIX + 'n3', value: JSON.stringify({ lastSeen: clock.now, reconciledRevision: 2 }) }]);
      stops.push(await shareLiveness(store, c, fakeIndex(['n1', 'n2', 'n3']), options));
      assert.equal(c.get('n3').state, 'up');
      clock.now += DOWN_MS;
      assert.equal(c.get('n3').state, 'down');
      assert.ok(await store.get(LIVENESS_PREFIX + 'n1'), "b's key of n1 stays");
    } finally {
      for (const stop of stops) stop();
      await store.close();
    }
  });
  test("a revision the manager's own store made is owed to nobody else: no write for a detach through the node's own manager; one through another still gets its news", async () => {
    const store = new SqliteStore(temporaryDatabasePath('vxnet-liveness-own-'));
    const writes: { manager: string; ops: Op[] }[] = [];
    /** the revisions each manager's store made (an etcd store knows them from its answers) */
    const made = new Map<string, Set<number>>([['a', new Set()], ['b', new Set()]]);
    const view = (manager: string): Store =>
      Object.assign(Object.create(store) as Store, {
        list: (prefix: string) => store.list(prefix),
        get: (key: string) => store.get(key),
        watch: (prefix: string, from: number, onEvents: WatchCallback) =>
          store.watch(prefix, from, (events) => onEvents(events.map((e) => (e.type === 'put' ? { ...e, kv: { ...e.kv, session: true as const } } : e)))),
        txn: (compares: Compare[], ops: Op[]) => {
          writes.push({ manager, ops });
          return store.txn(compares, ops);
        },
        madeRevision: (revision: number) => made.get(manager)!.has(revision),
      });
    const clock = { now: 1_000_000 };
    const a = new LivenessTracker({ now: () => clock.now, downAfterMs: DOWN_MS });
    const b = new LivenessTracker({ now: () => clock.now, downAfterMs: DOWN_MS });
    const indexA = fakeIndex(['n1']);
    const indexB = fakeIndex(['n1']);
    const options = { downAfterMs: DOWN_MS, batchMs: 10, log: () => {} };
    const stops = [await shareLiveness(view('a'), a, indexA, options), await shareLiveness(view('b'), b, indexB, options)];
    const puts = () => writes.filter((w) => w.manager === 'a' && w.ops.some((op) => op.type === 'put' && op.key === LIVENESS_PREFIX + 'n1')).length;
    const deleted = (revision: number) => {
      for (const index of [indexA, indexB]) index.emit({ kind: 'endpoint-deleted', revision, endpoint: { node: 'n1' } as never });
    };
    try {
      a.heartbeat('n1', 5);
      await until(() => b.get('n1').state === 'up', 'n1 up on manager b');
      assert.equal(puts(), 1);

      // a detach through a, which hears n1: answered by n1's own heartbeat, nothing to tell b
      made.get('a')!.add(30);
      deleted(30);
      const here = a.waitReconciled('n1', 30, 2000);
      a.heartbeat('n1', 31);
      assert.equal(await here, true);
      await new Promise((r) => setTimeout(r, 60));
      assert.equal(puts(), 1, 'a revision a itself made was told to the other managers');

      // a detach through b: a tells b as soon as n1 passes it
      made.get('b')!.add(40);
      const there = b.waitReconciled('n1', 40, 2000);
      deleted(40);
      a.heartbeat('n1', 41);
      assert.equal(await there, true, "b's detach got n1's confirmation through a");
      assert.equal(puts(), 2);
    } finally {
      for (const stop of stops) stop();
      await store.close();
    }
  });
});
