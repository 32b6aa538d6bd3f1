/**
 * Node names and underlay addresses are identities (docs/security.md, hole 3): the worker token cannot join
 * under the name of a registered node, a node registers only a routable unicast address, and no two nodes
 * hold one address, also when they register it at the same moment (claimed in the store, only if absent).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { RunningManager } from '../../src/manager/main.ts';
import { generateKeyPair } from '../../src/pki/x509.ts';
import { injectInto, openTestManager, startedOnOlderDatabase, startSocketManager, vxnetError } from './support/manager.ts';

const publicKey = () => generateKeyPair().publicKey.export({ type: 'spki', format: 'pem' }) as string;

describe('underlay addresses', () => {
  test('only routable unicast addresses: loopback, 0/8, link-local, multicast and 240/4 are refused, each by name', async (t) => {
    const m = await openTestManager();
    t.after(() => m.close());
    const refused: [string, RegExp][] = [
      ['127.0.0.1', /^node address 127\.0\.0\.1 is a loopback address \(127\.0\.0\.0\/8\): a node registers the unicast address the other nodes reach it at\.$/],
      ['127.8.9.10', /loopback/],
      ['0.0.0.0', /is in 0\.0\.0\.0\/8/],
      ['0.1.2.3', /is in 0\.0\.0\.0\/8/],
      ['169.254.10.1', /is a link-local address \(169\.254\.0\.0\/16\)/],
      ['224.0.0.1', /is a multicast address \(224\.0\.0\.0\/4\)/],
      ['239.255.255.255', /multicast/],
      ['240.0.0.1', /is a reserved or broadcast address \(240\.0\.0\.0\/4\)/],
      ['255.255.255.255', /reserved or broadcast/],
    ];
    for (const [address, message] of refused) {
      await assert.rejects(m.service.registerNode({ name: 'h', address, mtu: 1500 }), vxnetError('invalid_address', message), address);
    }
    assert.deepEqual(m.service.listNodes(), []);
    for (const [i, address] of ['1.0.0.1', '10.0.0.1', '126.255.255.255', '128.0.0.1', '169.253.0.1', '192.0.2.1', '223.255.255.254'].entries()) {
      await m.service.registerNode({ name: `ok${i}`, address, mtu: 1500 });
    }
  });

  test("a node cannot register another node's address; it may move to a free one, which frees its old one", async (t) => {
    const m = await openTestManager({ nodes: ['host1', 'host2'] });
    t.after(() => m.close());
    const before = await m.store.revision();
    await assert.rejects(
      m.service.registerNode({ name: 'host2', address: '192.0.2.1', mtu: 1500 }),
      vxnetError('address_in_use', /^underlay address 192\.0\.2\.1 is already registered by node host1: every node needs an address of its own\.$/),
    );
    await assert.rejects(m.service.registerNode({ name: 'host3', address: '192.0.2.1', mtu: 1500 }), vxnetError('address_in_use'));
    assert.equal(await m.store.revision(), before, 'nothing written');
    assert.equal(m.service.getNode('host2').address, '192.0.2.2');
    // host2 moves: its old address is free for another node
    await m.service.registerNode({ name: 'host2', address: '192.0.2.20', mtu: 1500 });
    await m.service.registerNode({ name: 'host3', address: '192.0.2.2', mtu: 1500 });
    // re-registering unchanged, or with another MTU, keeps the address
    await m.service.registerNode({ name: 'host1', address: '192.0.2.1', mtu: 9000 });
    assert.deepEqual([...m.service.state.nodeAddresses].sort(), [['192.0.2.1', 'host1'], ['192.0.2.2', 'host3'], ['192.0.2.20', 'host2']]);
    // a removed node's address is free again
    await m.service.deleteNode('host3');
    await m.service.registerNode({ name: 'host4', address: '192.0.2.2', mtu: 1500 });
  });

  test('of many nodes registering one address at the same moment, exactly one gets it', async (t) => {
    const m = await openTestManager();
    t.after(() => m.close());
    const results = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => m.service.registerNode({ name: `n${i}`, address: '192.0.2.77', mtu: 1500 })));
    const won = results.filter((r) => r.status === 'fulfilled');
    assert.equal(won.length, 1);
    for (const r of results) if (r.status === 'rejected') assert.equal((r.reason as { code: string }).code, 'address_in_use');
    assert.equal(m.service.listNodes().length, 1);
  });

  test('nodes registered before addresses were claimed get their claims at the next start', async (t) => {
    // as an older manager left it: the node without its claim
    const service = await startedOnOlderDatabase(t, { name: 'host1', address: '192.0.2.1' }, (store) =>
      store.txn([], [{ type: 'delete', key: '/node-addresses/192.0.2.1' }]),
    );
    assert.equal(service.state.nodeAddresses.get('192.0.2.1'), 'host1');
    await assert.rejects(service.registerNode({ name: 'host2', address: '192.0.2.1', mtu: 1500 }), vxnetError('address_in_use'));
  });
});

describe('node names', () => {
  let manager: RunningManager;
  const call = injectInto(() => manager);

  before(async () => {
    ({ manager } = await startSocketManager('vxnet-names-'));
    await manager.service.registerNode({ name: 'host1', address: '192.0.2.11', mtu: 1500 });
  });
  after(() => manager.close());

  test('the worker token cannot join under the name of a registered node; the sentence names vxnet node rm', async () => {
    const r = await call({ method: 'POST', path: '/v1/join', token: manager.tokens.worker, body: { name: 'host1', publicKey: publicKey() } });
    assert.equal(r.status, 409, JSON.stringify(r.body));
    assert.deepEqual(r.body.error, {
      code: 'node_exists',
      message:
        'node host1 is registered already, and the worker token cannot take over a registered node\'s name: remove it first with "vxnet node rm host1", or pick another name.',
    });
  });

  test('a new name joins; after vxnet node rm the name joins again', async () => {
    const fresh = await call({ method: 'POST', path: '/v1/join', token: manager.tokens.worker, body: { name: 'host2', publicKey: publicKey() } });
    assert.equal(fresh.status, 200);
    await manager.service.deleteNode('host1');
    const again = await call({ method: 'POST', path: '/v1/join', token: manager.tokens.worker, body: { name: 'host1', publicKey: publicKey() } });
    assert.equal(again.status, 200, JSON.stringify(again.body));
  });
});
