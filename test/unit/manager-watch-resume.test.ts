/**
 * Resuming a watch from a revision (src/manager/watch-resume.ts): an agent that reconnects with `since` gets
 * the changes after it, and ends with the view a stream that never broke would have given it; when the hub
 * cannot replay what the live stream sent (history gone, the manager behind, the node joined a network
 * meanwhile), it gets a snapshot and the manager says why.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClusterView } from '../../src/agent/view.ts';
import type { WatchMessage } from '../../src/core/model.ts';
import type { WatchSink } from '../../src/manager/watch-hub.ts';
import { ChangeHistory } from '../../src/manager/watch-resume.ts';
import type { StateChange } from '../../src/manager/state.ts';
import { openTestManagerWithHub } from './support/manager.ts';

/** A sink feeding a ClusterView, as the agent does. */
class ViewSink implements WatchSink {
  readonly view = new ClusterView();
  readonly types: string[] = [];
  bufferedBytes = 0;
  write(text: string): void {
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const message = JSON.parse(line) as WatchMessage;
      this.types.push(message.type);
      this.view.apply(message);
    }
  }
  close(): void {}
}

const contents = (view: ClusterView) => ({
  nodes: [...view.nodes.keys()].sort(),
  networks: [...view.networks.keys()].sort(),
  endpoints: [...view.endpoints.values()].map((e) => `${e.id} ${e.network} ${e.node} ${e.ip} ${e.status}`).sort(),
});

async function open(t: { after: (fn: () => Promise<void>) => void }) {
  const logs: string[] = [];
  const m = await openTestManagerWithHub(
    { nodes: ['host1', 'host2', 'host3'], networks: [{ name: 'blue' }, { name: 'red' }] },
    { log: (line) => logs.push(line) },
  );
  t.after(() => m.close());
  return { m, logs };
}

test('a watch resumed from the revision it held ends with the view of a stream that never broke, without a snapshot', async (t) => {
  const { m, logs } = await open(t);
  const a = await m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'a' });
  await m.service.createEndpoint({ network: 'blue', node: 'host2', netns: 'b' });
  const live = new ViewSink();
  const broken = new ViewSink();
  m.hub.attach('host1', live);
  const detach = m.hub.attach('host1', broken);
  const held = broken.view.revision;
  detach();

  // meanwhile: endpoints come and go on its network and elsewhere, its own endpoint reports its status, a node joins
  const c = await m.service.createEndpoint({ network: 'blue', node: 'host3', netns: 'c' });
  await m.service.createEndpoint({ network: 'red', node: 'host2', netns: 'd' });
  await m.service.setEndpointStatus(a.id, { status: 'ready' });
  await m.service.deleteEndpoint(c.id);
  await m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'e' });
  await m.service.registerNode({ name: 'host4', address: '192.0.2.99', mtu: 1500 });

  const snapshotsBefore = m.hub.snapshots;
  broken.types.length = 0;
  m.hub.attach('host1', broken, { since: held });
  assert.equal(m.hub.snapshots, snapshotsBefore, 'no snapshot taken');
  assert.ok(!broken.types.includes('snapshot'));
  assert.equal(broken.types.at(-1), 'ping');
  assert.deepEqual(contents(broken.view), contents(live.view));
  assert.equal(broken.view.revision, m.service.state.revision);
  assert.match(logs.join('\n'), new RegExp(`watch of node host1 resumed from revision ${held} at \\d+: \\d+ changes sent, no snapshot`));
  // nothing of red, where host1 has no endpoint
  assert.ok(!contents(broken.view).endpoints.some((e) => e.includes(' red ')));

  // resuming at the current revision sends just the ping
  const again = new ViewSink();
  m.hub.attach('host1', again, { since: m.service.state.revision });
  assert.deepEqual(again.types, ['ping']);
});

test('a resume the hub cannot replay gets a snapshot, and the manager says why', async (t) => {
  const { m, logs } = await open(t);
  await m.service.createEndpoint({ network: 'blue', node: 'host2', netns: 'b' });
  const held = m.service.state.revision;
  // host1 gets its first endpoint on blue meanwhile: the live stream sent it a burst of that moment
  await m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'a' });
  const joined = new ViewSink();
  m.hub.attach('host1', joined, { since: held });
  assert.deepEqual(joined.types, ['snapshot']);
  assert.match(logs.at(-1)!, /^watch of node host1 from revision \d+: the node joined network blue meanwhile; sending a snapshot$/);

  // a revision this manager has not reached (another manager's, or a store restored from a backup)
  const ahead = new ViewSink();
  m.hub.attach('host2', ahead, { since: m.service.state.revision + 5 });
  assert.deepEqual(ahead.types, ['snapshot']);
  assert.match(logs.at(-1)!, /this manager is at revision \d+ only; sending a snapshot$/);

  // older than what the hub keeps (it started after revision 0: the seed was planted after it)
  const old = new ViewSink();
  m.hub.attach('host2', old, { since: 0 });
  assert.deepEqual(old.types, ['snapshot']);
  assert.match(logs.at(-1)!, /this manager keeps the changes after revision \d+ only; sending a snapshot$/);
});

test('the change history keeps what follows the revision it starts at and drops its older half when full', () => {
  const change = (revision: number): StateChange => ({ kind: 'node-deleted', revision, node: { name: `n${revision}`, address: '192.0.2.1', mtu: 1500, registeredAt: '' } });
  const history = new ChangeHistory(10, 4);
  for (const r of [11, 12, 12, 13]) history.record(change(r));
  assert.deepEqual(history.after(12)?.map((c) => c.revision), [13]);
  assert.deepEqual(history.after(10)?.map((c) => c.revision), [11, 12, 12, 13]);
  assert.equal(history.after(9), undefined);
  for (const r of [14, 15, 16, 17]) history.record(change(r));
  // 8 kept changes reached twice the capacity: the oldest 4 went, and with them revisions up to 13
  assert.equal(history.from, 13);
  assert.equal(history.after(12), undefined);
  assert.deepEqual(history.after(13)?.map((c) => c.revision), [14, 15, 16, 17]);
});
