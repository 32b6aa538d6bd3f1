/**
 * The watch hub at scale (bench/scale measures it with 1,000 agents): snapshots and endpoint lines are the
 * stored JSON sent verbatim, a snapshot bigger than the slow-consumer bound does not get its session closed,
 * and when many agents connect at once snapshots are admitted against a byte budget.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { WatchMessage } from '../../src/core/model.ts';
import { pieces, WatchHub, type WatchSink } from '../../src/manager/watch-hub.ts';
import { openTestManagerWithHub } from './support/manager.ts';
import { until } from './support/until.ts';

/** A sink that keeps what it was given and pretends the peer reads only when told to. */
class SlowSink implements WatchSink {
  text = '';
  unread = 0;
  closed: string | undefined;
  write(line: string): void {
    this.text += line;
    this.unread += Buffer.byteLength(line);
  }
  get bufferedBytes(): number {
    return this.unread;
  }
  close(reason: string): void {
    this.closed = reason;
  }
  drain(): void {
    this.unread = 0;
  }
  messages(): WatchMessage[] {
    return this.text
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as WatchMessage);
  }
}

async function open(hubOptions: ConstructorParameters<typeof WatchHub>[1] = {}) {
  const m = await openTestManagerWithHub(
    { nodes: ['host1', 'host2', 'host3'], networks: [{ name: 'blue', subnets: [{ cidr: '10.1.0.0/16' }] }] },
    hubOptions,
  );
  let containers = 0;
  return {
    ...m,
    async endpoints(node: string, count: number) {
      for (let i = 0; i < count; i++) await m.service.createEndpoint({ network: 'blue', node, netns: `${node}-c${containers++}` });
    },
  };
}

test('snapshot and endpoint lines, built from the stored JSON, are byte for byte what serialising the messages gives', async (t) => {
  const m = await open();
  t.after(() => m.close());
  await m.endpoints('host1', 3);
  await m.endpoints('host2', 2);
  const sink = new SlowSink();
  m.hub.attach('host1', sink);
  const expected = JSON.stringify(m.hub.snapshot('host1')) + '\n';
  assert.equal(sink.text, expected);
  sink.text = '';
  const created = await m.service.createEndpoint({ network: 'blue', node: 'host2', netns: 'late' });
  const revision = m.service.state.revision;
  assert.equal(sink.text, JSON.stringify({ type: 'endpoint', revision, endpoint: created }) + '\n');
});

test('a snapshot streamed in pieces as the peer reads is exactly the snapshot; live lines wait behind it', async (t) => {
  const m = await open();
  t.after(() => m.close());
  await m.endpoints('host1', 700); // ~210 KB: four pieces
  const sink = new SlowSink();
  m.hub.attach('host1', sink);
  const expected = JSON.stringify(m.hub.snapshot('host1')) + '\n';
  const late = await m.service.createEndpoint({ network: 'blue', node: 'host2', netns: 'late' });
  assert.ok(sink.text.length < expected.length, 'only what the connection takes is written');
  for (let i = 0; i < 20 && !sink.text.includes(late.id); i++) {
    sink.drain();
    await new Promise((resolve) => setTimeout(resolve, 30));
  }
  const [snapshot, change] = sink.text.split('\n');
  assert.equal(snapshot + '\n', expected);
  assert.equal((JSON.parse(change!) as WatchMessage).type, 'endpoint');
});

test('a snapshot larger than the slow-consumer bound is sent whole; only lag beyond it closes the session', async (t) => {
  const m = await open({ maxBufferedBytes: 2048 });
  t.after(() => m.close());
  await m.endpoints('host1', 30); // a snapshot of ~9 KB, four times the bound
  const sink = new SlowSink();
  m.hub.attach('host1', sink);
  assert.equal(sink.closed, undefined, 'the snapshot alone must not close the session');
  const snapshot = sink.messages()[0]!;
  assert.equal(snapshot.type === 'snapshot' && snapshot.endpoints.length, 30);
  // the agent reads the snapshot; then falling behind by more than the bound still closes the session
  sink.drain();
  await m.endpoints('host1', 12);
  assert.equal(sink.closed, 'too slow');
});

test('over the snapshot budget, a new session waits and then gets a snapshot holding what changed meanwhile', async (t) => {
  const m = await open({ snapshotBudgetBytes: 1 });
  t.after(() => m.close());
  await m.endpoints('host1', 400); // > 64 KiB: the first snapshot stays "unsent" until drained
  await m.endpoints('host2', 1);
  const first = new SlowSink();
  m.hub.attach('host1', first);
  // streamed: the first piece is written, the rest follows as the connection drains
  assert.ok(first.text.startsWith('{"type":"snapshot"'));
  assert.ok(!first.text.endsWith('\n'), 'not all of it while the peer reads nothing');
  const second = new SlowSink();
  m.hub.attach('host2', second);
  assert.equal(second.text, '', 'the second snapshot waits for the first to drain');
  assert.equal(m.hub.waitingCount, 1);

  const during = await m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'during' });
  assert.equal(second.text, '', 'a waiting session gets no change lines');
  m.hub.pingAll();
  assert.deepEqual(second.messages(), [{ type: 'ping', revision: 0 }], 'only keep-alives that claim nothing');
  second.text = '';
  first.drain();
  await until(() => first.text.endsWith('\n'), 'the rest of the first snapshot');
  assert.equal(first.messages()[0]?.type, 'snapshot', 'the rest of the first snapshot once its peer read');
  for (let i = 0; i < 20 && !second.text.endsWith('\n'); i++) {
    second.drain();
    await new Promise((resolve) => setTimeout(resolve, 30));
  }
  const [snapshot, ...rest] = second.messages();
  assert.equal(snapshot?.type, 'snapshot');
  assert.deepEqual(rest, []);
  assert.ok(snapshot?.type === 'snapshot' && snapshot.endpoints.some((e) => e.id === during.id), 'the late snapshot holds the change');
  assert.equal(snapshot?.type === 'snapshot' && snapshot.revision, m.service.state.revision);
  assert.equal(m.hub.waitingCount, 0);

  // and from then on it gets changes as usual
  await m.service.createEndpoint({ network: 'blue', node: 'host3', netns: 'after' });
  assert.equal(second.messages().at(-1)?.type, 'endpoint');
});

test('pieces: joined they are the whole text, whatever the sizes; a head longer than a piece is never sent alone', () => {
  const part = (i: number, size: number) => `{"n":${i},"pad":"${'x'.repeat(size)}"}`;
  const cases: [head: string, parts: string[]][] = [
    ['{"head":[', [part(0, 10)]],
    ['{"head":[', Array.from({ length: 700 }, (_, i) => part(i, 300))],
    // the nodes of 1,000 hosts made the head of a snapshot ~100 KB, longer than a piece
    [`{"nodes":"${'n'.repeat(100_000)}","endpoints":[`, Array.from({ length: 50 }, (_, i) => part(i, 5000))],
    [`{"nodes":"${'n'.repeat(100_000)}","endpoints":[`, [part(0, 200_000)]],
  ];
  for (const [head, parts] of cases) {
    const out = [...pieces(head, parts, ',', ']}')];
    const text = out.join('');
    assert.equal(text, head + parts.join(',') + ']}');
    assert.doesNotThrow(() => JSON.parse(text));
    assert.ok(!out.slice(1).some((piece) => piece === ','), 'no piece is a bare separator');
  }
  assert.deepEqual([...pieces('{"a":[', [], ',', ']}')], ['{"a":[]}']);
});
