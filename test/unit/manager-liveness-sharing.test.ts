/**
 * What a manager tells the others of its nodes' liveness and what it takes from them (liveness.ts,
 * shared-liveness.ts): a higher revision at once, a sighting only when a third of the down-time newer,
 * nothing twice, never a node moved back by older news, and what failed to be written told again.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LivenessTracker } from '../../src/manager/liveness.ts';

describe('liveness shared between managers', () => {
  const tracker = () => {
    let now = 1_000_000;
    const t = new LivenessTracker({ now: () => now, downAfterMs: 15_000 });
    return { t, advance: (ms: number) => (now += ms) };
  };

  test('tells a new node, then a higher revision at once, a later sighting only 5 s newer', () => {
    const { t, advance } = tracker();
    t.heartbeat('n1', 7);
    assert.deepEqual(t.unpublished(5000), [['n1', { lastSeen: 1_000_000, reconciledRevision: 7 }]]);
    assert.deepEqual(t.unpublished(5000), [], 'nothing new, nothing told');
    advance(1000);
    t.heartbeat('n1', 7);
    assert.deepEqual(t.unpublished(5000), [], 'a sighting 1 s newer waits');
    t.heartbeat('n1', 9);
    assert.deepEqual(t.unpublished(5000), [['n1', { lastSeen: 1_001_000, reconciledRevision: 9 }]], 'a higher revision goes at once');
    advance(5000);
    t.heartbeat('n1', 9);
    assert.equal(t.unpublished(5000).length, 1, 'a sighting 5 s newer goes');
  });

  test('takes the later sighting and the higher revision, wakes waiters, and does not tell it back', async () => {
    const { t } = tracker();
    t.heartbeat('n1', 10);
    t.unpublished(5000);
    const waiting = t.waitReconciled('n1', 12, 2000);
    t.merge('n1', { lastSeen: 1_002_000, reconciledRevision: 12 });
    assert.equal(await waiting, true);
    assert.deepEqual(t.get('n1'), { state: 'up', lastSeen: new Date(1_002_000).toISOString(), reconciledRevision: 12 });
    t.merge('n1', { lastSeen: 900_000, reconciledRevision: 3 });
    assert.equal(t.get('n1').reconciledRevision, 12, 'older news never moves a node back');
    assert.deepEqual(t.unpublished(5000), [], 'what another manager told is not told back');
  });

  test('a batch that could not be written is told again', () => {
    const { t } = tracker();
    t.heartbeat('n1', 4);
    t.heartbeat('n2', 4);
    assert.equal(t.unpublished(5000).length, 2);
    t.untold(['n2']);
    assert.deepEqual(t.unpublished(5000).map(([node]) => node), ['n2']);
  });

  test('a removed node is forgotten: not told, and down until heard again', () => {
    const { t } = tracker();
    t.heartbeat('n1', 4);
    t.forget('n1');
    assert.deepEqual(t.unpublished(5000), []);
    assert.equal(t.get('n1').state, 'down');
    t.heartbeat('n1', 1);
    assert.deepEqual(t.unpublished(5000), [['n1', { lastSeen: 1_000_000, reconciledRevision: 1 }]], 'registered again, it starts afresh');
  });
});
