import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { WatchMessage } from '../../src/core/model.ts';
import type { WatchHub, WatchSink } from '../../src/manager/watch-hub.ts';
import { openTestManagerWithHub } from './support/manager.ts';

class RecordingSink implements WatchSink {
  messages: WatchMessage[] = [];
  closed: string | undefined;
  bufferedBytes = 0;
  write(text: string): void {
    for (const line of text.split('\n')) if (line !== '') this.messages.push(JSON.parse(line) as WatchMessage);
  }
  close(reason: string): void {
    this.closed = reason;
  }
  /** returns and clears what arrived since the last call, as "type:detail" */
  take(): string[] {
    const out = this.messages.map(label);
    this.messages = [];
    return out;
  }
}

function label(m: WatchMessage): string {
  switch (m.type) {
    case 'node':
      return `node:${m.node.name}`;
    case 'node-deleted':
      return `node-deleted:${m.name}`;
    case 'network':
      return `network:${m.network.name}`;
    case 'network-forgotten':
      return `network-forgotten:${m.name}`;
    case 'network-deleted':
      return `network-deleted:${m.name}`;
    case 'endpoint':
      return `endpoint:${m.endpoint.node}/${(m.endpoint.netns ?? '').split('/').pop()}:${m.endpoint.status}`;
    case 'endpoint-deleted':
      return `endpoint-deleted:${m.network}`;
    case 'ping':
      return 'ping';
    case 'diagnose':
      return `diagnose:${m.request.network}`;
    case 'snapshot':
      return `snapshot:${m.nodes.length}n/${m.networks.map((n) => n.name).join(',')}/${m.endpoints.length}e`;
  }
}

/** One sink per node, attached in this order, each with its snapshot taken already. */
function pastSnapshot<const Nodes extends readonly string[]>(m: { hub: WatchHub }, ...nodes: Nodes): { [K in keyof Nodes]: RecordingSink } {
  return nodes.map((node) => {
    const sink = new RecordingSink();
    m.hub.attach(node, sink);
    sink.take();
    return sink;
  }) as { [K in keyof Nodes]: RecordingSink };
}

function open() {
  return openTestManagerWithHub({ nodes: ['host1', 'host2', 'host3'], networks: [{ name: 'blue' }, { name: 'red' }] });
}

test('snapshot: all nodes, only the networks where the node has endpoints, all their endpoints', async (t) => {
  const m = await open();
  t.after(() => m.close());
  await m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'a' });
  await m.service.createEndpoint({ network: 'blue', node: 'host2', netns: 'b' });
  await m.service.createEndpoint({ network: 'red', node: 'host2', netns: 'c' });
  const s1 = new RecordingSink();
  const s3 = new RecordingSink();
  m.hub.attach('host1', s1);
  m.hub.attach('host3', s3);
  const snap = s1.messages[0]!;
  assert.equal(snap.type, 'snapshot');
  assert.equal(snap.type === 'snapshot' && snap.revision, m.service.state.revision);
  assert.deepEqual(s1.take(), ['snapshot:3n/blue/2e']);
  assert.deepEqual(s3.take(), ['snapshot:3n//0e']);
});

test('a node sees only its networks; its first endpoint brings the network and all its endpoints', async (t) => {
  const m = await open();
  t.after(() => m.close());
  const [host1, host2, host3] = pastSnapshot(m, 'host1', 'host2', 'host3');
  const sinks = { host1, host2, host3 };

  await m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'a' });
  assert.deepEqual(sinks.host1.take(), ['network:blue', 'endpoint:host1/a:pending']);
  assert.deepEqual(sinks.host2.take(), []);
  assert.deepEqual(sinks.host3.take(), []);

  await m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'a2' });
  assert.deepEqual(sinks.host1.take(), ['endpoint:host1/a2:pending']);

  await m.service.createEndpoint({ network: 'blue', node: 'host2', netns: 'b' });
  assert.deepEqual(sinks.host1.take(), ['endpoint:host2/b:pending']);
  assert.deepEqual(sinks.host2.take(), ['network:blue', 'endpoint:host1/a:pending', 'endpoint:host1/a2:pending', 'endpoint:host2/b:pending']);
  assert.deepEqual(sinks.host3.take(), []);

  // a network nobody on host3 uses stays invisible to it
  await m.service.createEndpoint({ network: 'red', node: 'host2', netns: 'r' });
  assert.deepEqual(sinks.host1.take(), []);
  assert.deepEqual(sinks.host2.take(), ['network:red', 'endpoint:host2/r:pending']);
  assert.deepEqual(sinks.host3.take(), []);
});

test('status-only changes go to the endpoint\'s own node only', async (t) => {
  const m = await open();
  t.after(() => m.close());
  const a = await m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'a' });
  await m.service.createEndpoint({ network: 'blue', node: 'host2', netns: 'b' });
  const [s1, s2] = pastSnapshot(m, 'host1', 'host2');
  await m.service.setEndpointStatus(a.id, { status: 'ready' });
  assert.deepEqual(s1.take(), ['endpoint:host1/a:ready']);
  assert.deepEqual(s2.take(), []);
});

test('the last endpoint of a node on a network going away sends network-forgotten to that node only', async (t) => {
  const m = await open();
  t.after(() => m.close());
  const a = await m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'a' });
  const a2 = await m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'a2' });
  await m.service.createEndpoint({ network: 'blue', node: 'host2', netns: 'b' });
  const [s1, s2, s3] = pastSnapshot(m, 'host1', 'host2', 'host3');
  await m.service.deleteEndpoint(a.id);
  assert.deepEqual(s1.take(), ['endpoint-deleted:blue']);
  assert.deepEqual(s2.take(), ['endpoint-deleted:blue']);
  await m.service.deleteEndpoint(a2.id);
  assert.deepEqual(s1.take(), ['network-forgotten:blue']);
  assert.deepEqual(s2.take(), ['endpoint-deleted:blue']);
  assert.deepEqual(s3.take(), []);
  // a forced network delete: the remaining node forgets the network once
  await m.service.deleteNetwork('blue', { force: true });
  assert.deepEqual(s2.take(), ['network-forgotten:blue']);
  assert.deepEqual(s1.take(), []);
  assert.deepEqual(s3.take(), []);
});

test('node changes go to everyone; pings carry the current revision', async (t) => {
  const m = await open();
  t.after(() => m.close());
  const [s1, s3] = pastSnapshot(m, 'host1', 'host3');
  await m.service.registerNode({ name: 'host4', address: '192.0.2.4', mtu: 1500 });
  assert.deepEqual(s1.take(), ['node:host4']);
  assert.deepEqual(s3.take(), ['node:host4']);
  m.hub.pingAll();
  const ping = s1.messages[0]!;
  assert.deepEqual(ping, { type: 'ping', revision: m.service.state.revision });
});

test('detached and slow sessions stop receiving and are forgotten', async (t) => {
  const m = await open();
  t.after(() => m.close());
  const s1 = new RecordingSink();
  const slow = new RecordingSink();
  const detach = m.hub.attach('host1', s1);
  m.hub.attach('host2', slow);
  assert.equal(m.hub.sessionCount, 2);
  detach();
  slow.bufferedBytes = 100 * 1024 * 1024;
  await m.service.registerNode({ name: 'host4', address: '192.0.2.4', mtu: 1500 });
  assert.equal(slow.closed, 'too slow');
  assert.equal(m.hub.sessionCount, 0);
  s1.take();
  slow.take();
  await m.service.registerNode({ name: 'host5', address: '192.0.2.5', mtu: 1500 });
  assert.deepEqual(s1.take(), []);
  assert.deepEqual(slow.take(), []);
});

test('fan-out cost follows the network, not the cluster: 500 idle watchers see nothing of a busy network', async (t) => {
  const m = await open();
  t.after(() => m.close());
  const idle: RecordingSink[] = [];
  for (let i = 0; i < 500; i++) {
    const sink = new RecordingSink();
    m.hub.attach(`idle${i}`, sink);
    idle.push(sink);
  }
  const s1 = new RecordingSink();
  m.hub.attach('host1', s1);
  for (let i = 0; i < 20; i++) await m.service.createEndpoint({ network: 'blue', node: 'host1', netns: `n${i}` });
  assert.ok(idle.every((s) => s.messages.length === 1), 'idle watchers got only their snapshot');
  assert.equal(s1.messages.length, 1 + 1 + 20);
});

describe('hub lifecycle', () => {
  test('stop closes every session', async () => {
    const m = await open();
    const s = new RecordingSink();
    m.hub.attach('host1', s);
    await m.close();
    assert.equal(s.closed, 'manager shutting down');
  });
});
