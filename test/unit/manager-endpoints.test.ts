import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ManagerService, type ManagerServiceOptions } from '../../src/manager/service.ts';
import type { WatchEvent } from '../../src/manager/store/store.ts';
import { openTestManager, vxnetError } from './support/manager.ts';

function open(options: ManagerServiceOptions = {}) {
  return openTestManager({ nodes: ['host1', 'host2'], networks: [{ name: 'blue', subnets: [{ cidr: '10.1.0.0/24' }] }], options });
}

/** Plays the agent: answers every new pending endpoint of `node` with `status`. */
function fakeAgent(service: ManagerService, node: string, status: 'ready' | 'error', message?: string) {
  return service.state.subscribe((change) => {
    if (change.kind === 'endpoint' && !change.prev && change.endpoint.node === node) {
      const id = change.endpoint.id;
      setTimeout(() => void service.setEndpointStatus(id, message ? { status, message } : { status }), 5);
    }
  });
}

describe('endpoints', () => {
  test('a created endpoint has an id, normalised netns, default ifname, derived mac, pending status', async (t) => {
    const m = await open();
    t.after(() => m.close());
    const ep = await m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'c1' });
    assert.match(ep.id, /^[0-9a-f]{12}$/);
    assert.equal(ep.netns, '/run/netns/c1');
    assert.equal(ep.ifname, 'eth0');
    assert.equal(ep.mac, '02:78:0a:01:00:02');
    assert.equal(ep.status, 'pending');
    assert.equal(ep.message, undefined);
    const other = await m.service.createEndpoint({ network: 'blue', node: 'host1', netns: '/proc/123/ns/net', ifname: 'net1' });
    assert.equal(other.netns, '/proc/123/ns/net');
    assert.equal(other.ifname, 'net1');
    assert.deepEqual(m.service.listEndpoints({ node: 'host1' }).map((e) => e.id), [ep.id, other.id]);
    assert.deepEqual(m.service.listEndpoints({ network: 'blue', node: 'host2' }), []);
    assert.deepEqual(m.service.getNetwork('blue').endpoints.map((e) => e.ip), ['10.1.0.2', '10.1.0.3']);
  });

  test('refusals: unknown node or network, bad names, duplicate interface — and nothing is written', async (t) => {
    const m = await open();
    t.after(() => m.close());
    await m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'c1' });
    const before = await m.store.list('');
    const cases: [Parameters<ManagerService['createEndpoint']>[0], string][] = [
      [{ network: 'nope', node: 'host1', netns: 'c2' }, 'network_not_found'],
      [{ network: 'blue', node: 'nope', netns: 'c2' }, 'node_not_found'],
      [{ network: 'blue', node: 'host1', netns: 'bad name' }, 'invalid_name'],
      [{ network: 'blue', node: 'host1', netns: '/run/../etc' }, 'invalid_name'],
      [{ network: 'blue', node: 'host1', netns: '' }, 'bad_request'],
      [{ network: 'blue', node: 'host1', netns: 'c2', ifname: 'this-name-is-too-long' }, 'invalid_name'],
      [{ network: 'blue', node: 'host1', netns: 'c1' }, 'endpoint_exists'],
      [{ network: 'blue', node: 'host1', netns: '/run/netns/c1', ifname: 'eth0' }, 'endpoint_exists'],
    ];
    for (const [req, c] of cases) await assert.rejects(m.service.createEndpoint(req), vxnetError(c));
    const afterList = await m.store.list('');
    assert.equal(afterList.revision, before.revision);
    assert.deepEqual(afterList.kvs, before.kvs);
    // the same netns with another ifname is refused too (issue 17: a second default route); on another node it is fine
    await assert.rejects(m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'c1', ifname: 'eth1' }), vxnetError('endpoint_exists'));
    await m.service.createEndpoint({ network: 'blue', node: 'host2', netns: 'c1' });
    await assert.rejects(m.service.deleteEndpoint('000000000000'), vxnetError('endpoint_not_found'));
    await assert.rejects(m.service.deleteEndpoint('../x'), vxnetError('endpoint_not_found'));
  });

  test('create with wait resolves when the agent reports ready', async () => {
    const m = await open();
    const stop = fakeAgent(m.service, 'host1', 'ready');
    try {
      const ep = await m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'c1' }, { waitMs: 2000 });
      assert.equal(ep.status, 'ready');
      assert.equal(m.service.getEndpoint(ep.id).status, 'ready');
    } finally {
      stop();
      await m.close();
    }
  });

  test('create with wait: an agent error deletes the endpoint, releases the address, fails attach_failed', async () => {
    const m = await open();
    const stop = fakeAgent(m.service, 'host1', 'error', 'netns /run/netns/c1 does not exist');
    try {
      await assert.rejects(
        m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'c1' }, { waitMs: 2000 }),
        vxnetError('attach_failed', /^attach failed on node host1: netns \/run\/netns\/c1 does not exist$/),
      );
      assert.deepEqual(m.service.listEndpoints(), []);
      assert.deepEqual((await m.store.list('/ipam/')).kvs, []);
      assert.deepEqual((await m.store.list('/attachments/')).kvs, []);
    } finally {
      stop();
    }
    try {
      // the address and the interface are free again
      const again = await m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'c1' });
      assert.equal(again.ip, '10.1.0.2');
    } finally {
      await m.close();
    }
  });

  test('create with wait: no answer from the node deletes the endpoint and fails with timeout', async (t) => {
    const m = await open();
    t.after(() => m.close());
    await assert.rejects(
      m.service.createEndpoint({ network: 'blue', node: 'host2', netns: 'c1' }, { waitMs: 50 }),
      vxnetError('timeout', /node host2 did not report endpoint [0-9a-f]{12} ready within/),
    );
    assert.deepEqual(m.service.listEndpoints(), []);
    assert.deepEqual((await m.store.list('/ipam/')).kvs, []);
  });

  test('delete with wait resolves once the node reports a revision at or past the deletion', async (t) => {
    const m = await open();
    t.after(() => m.close());
    const ep = await m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'c1' });
    let done = false;
    const deleting = m.service.deleteEndpoint(ep.id, { waitMs: 2000 }).then(() => (done = true));
    await new Promise((r) => setTimeout(r, 10));
    const deletedAt = m.service.state.revision;
    assert.throws(() => m.service.getEndpoint(ep.id), vxnetError('endpoint_not_found'));
    m.service.heartbeat('host1', { reconciledRevision: deletedAt - 1 });
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(done, false);
    m.service.heartbeat('host2', { reconciledRevision: deletedAt });
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(done, false, 'another node confirming does not count');
    m.service.heartbeat('host1', { reconciledRevision: deletedAt });
    await deleting;
    assert.equal(done, true);
  });

  test('delete with wait times out when the node never confirms, but the record is gone', async (t) => {
    const m = await open();
    t.after(() => m.close());
    const ep = await m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'c1' });
    await assert.rejects(
      m.service.deleteEndpoint(ep.id, { waitMs: 30 }),
      vxnetError('timeout', /deleted from the cluster.*node host1 did not confirm/),
    );
    assert.deepEqual(m.service.listEndpoints(), []);
  });

  test('status updates: stored with the message, a repeat writes nothing, bad status refused', async (t) => {
    const m = await open();
    t.after(() => m.close());
    const ep = await m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'c1' });
    await m.service.setEndpointStatus(ep.id, { status: 'error', message: 'boom' });
    assert.equal(m.service.getEndpoint(ep.id).message, 'boom');
    const rev = await m.store.revision();
    await m.service.setEndpointStatus(ep.id, { status: 'error', message: 'boom' });
    assert.equal(await m.store.revision(), rev);
    await m.service.setEndpointStatus(ep.id, { status: 'ready' });
    assert.equal(m.service.getEndpoint(ep.id).status, 'ready');
    assert.equal(m.service.getEndpoint(ep.id).message, undefined);
    await assert.rejects(m.service.setEndpointStatus(ep.id, { status: 'fine' as 'ready' }), vxnetError('bad_request'));
    await assert.rejects(m.service.setEndpointStatus('abcdefabcdef', { status: 'ready' }), vxnetError('endpoint_not_found'));
  });
});

describe('nodes', () => {
  test('register validates, keeps registeredAt on update, and an identical re-register writes nothing', async (t) => {
    const m = await open();
    t.after(() => m.close());
    const first = m.service.getNode('host1');
    const rev = await m.store.revision();
    await m.service.registerNode({ name: 'host1', address: '192.0.2.1', mtu: 1500 });
    assert.equal(await m.store.revision(), rev);
    const moved = await m.service.registerNode({ name: 'host1', address: '192.0.2.11', mtu: 9000 });
    assert.equal(moved.address, '192.0.2.11');
    assert.equal(moved.registeredAt, first.registeredAt);
    const before = await m.store.revision();
    await assert.rejects(m.service.registerNode({ name: 'bad name', address: '192.0.2.9', mtu: 1500 }), vxnetError('invalid_name'));
    await assert.rejects(m.service.registerNode({ name: 'h', address: '192.0.2', mtu: 1500 }), vxnetError('invalid_address'));
    await assert.rejects(m.service.registerNode({ name: 'h', address: '239.0.0.1', mtu: 1500 }), vxnetError('invalid_address'));
    await assert.rejects(m.service.registerNode({ name: 'h', address: '192.0.2.9', mtu: 575 }), vxnetError('invalid_mtu'));
    await assert.rejects(m.service.registerNode({ name: 'h', address: '192.0.2.9', mtu: 65536 }), vxnetError('invalid_mtu'));
    assert.equal(await m.store.revision(), before);
    assert.deepEqual(m.service.listNodes().map((n) => n.name), ['host1', 'host2']);
  });

  test('heartbeats update liveness in memory only: no store write, no watch event', async (t) => {
    const m = await open();
    t.after(() => m.close());
    const events: WatchEvent[] = [];
    const rev = await m.store.revision();
    const stop = await m.store.watch('', rev + 1, (batch) => events.push(...batch));
    for (let i = 0; i < 10; i++) m.service.heartbeat('host1', { reconciledRevision: rev });
    stop();
    assert.equal(await m.store.revision(), rev);
    assert.deepEqual(events, []);
    assert.equal(m.service.getNode('host1').reconciledRevision, rev);
    assert.throws(() => m.service.heartbeat('ghost', { reconciledRevision: 1 }), vxnetError('node_not_found'));
    assert.throws(() => m.service.heartbeat('host1', { reconciledRevision: -1 }), vxnetError('bad_request'));
  });

  test('a node is down once no heartbeat arrived for the threshold, up again after one', async () => {
    let now = 1_000_000;
    const m = await open({ now: () => now, nodeDownAfterMs: 15_000 });
    try {
      m.service.heartbeat('host1', { reconciledRevision: 3 });
      assert.equal(m.service.getNode('host1').state, 'up');
      assert.equal(m.service.getNode('host1').lastSeen, new Date(now).toISOString());
      now += 14_999;
      assert.equal(m.service.getNode('host1').state, 'up');
      now += 1;
      assert.equal(m.service.getNode('host1').state, 'down');
      m.service.heartbeat('host1', { reconciledRevision: 4 });
      assert.equal(m.service.getNode('host1').state, 'up');
    } finally {
      await m.close();
    }
  });

  test('a node never heard from after a manager restart is down with no lastSeen', async () => {
    const m = await open();
    await m.service.close();
    const again = await ManagerService.open(m.store);
    try {
      const node = again.getNode('host2');
      assert.equal(node.state, 'down');
      assert.equal(node.lastSeen, null);
      assert.equal(node.reconciledRevision, 0);
    } finally {
      await again.close();
      await m.store.close();
    }
  });
});
