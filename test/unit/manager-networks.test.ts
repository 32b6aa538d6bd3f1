import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { CreateNetworkRequest } from '../../src/core/model.ts';
import { ManagerService } from '../../src/manager/service.ts';
import { SqliteStore } from '../../src/manager/store/sqlite.ts';
import type { Store } from '../../src/manager/store/store.ts';
import { openTestManager, vxnetError } from './support/manager.ts';
import { temporaryDatabasePath } from './support/temporary.ts';

/** Asserts the request is refused with `c` and that the store did not change at all. */
async function refused(m: { store: Store; service: ManagerService }, req: CreateNetworkRequest, c: string, pattern?: RegExp) {
  const before = await m.store.list('');
  await assert.rejects(m.service.createNetwork(req), vxnetError(c, pattern));
  const afterList = await m.store.list('');
  assert.equal(afterList.revision, before.revision, `${c}: revision moved`);
  assert.deepEqual(afterList.kvs, before.kvs, `${c}: keys changed`);
}

/** A store whose writes yield first, like a remote store: lets two managers interleave. */
class SlowStore implements Store {
  #inner: Store;
  constructor(inner: Store) {
    this.#inner = inner;
  }
  get(key: string) {
    return this.#inner.get(key);
  }
  list(prefix: string) {
    return this.#inner.list(prefix);
  }
  revision() {
    return this.#inner.revision();
  }
  async txn(...args: Parameters<Store['txn']>) {
    await new Promise((r) => setImmediate(r));
    return this.#inner.txn(...args);
  }
  watch(...args: Parameters<Store['watch']>) {
    return this.#inner.watch(...args);
  }
  async close() {}
}

describe('network defaults', () => {
  test('with nothing given: VNI 4097, first free /24 of 10.200.0.0/16, first usable gateway, MTU 1450, port 4789', async (t) => {
    const m = await openTestManager();
    t.after(() => m.close());
    const net = await m.service.createNetwork({ name: 'blue' });
    assert.equal(net.vni, 4097);
    assert.deepEqual(net.subnets, [{ cidr: '10.200.0.0/24', gateway: '10.200.0.1' }]);
    assert.equal(net.mtu, 1450);
    assert.equal(net.port, 4789);
    assert.equal(net.internal, false);
    assert.equal(net.multicastGroup, undefined);
    assert.ok(!Number.isNaN(Date.parse(net.createdAt)));
    // the next default takes the lowest free VNI and /24 that overlap nothing
    await m.service.createNetwork({ name: 'x', vni: 4098, subnets: [{ cidr: '10.200.1.0/25' }] });
    const green = await m.service.createNetwork({ name: 'green' });
    assert.equal(green.vni, 4099);
    assert.equal(green.subnets[0]!.cidr, '10.200.2.0/24');
    await m.service.deleteNetwork('blue');
    const red = await m.service.createNetwork({ name: 'red' });
    assert.equal(red.vni, 4097);
    assert.equal(red.subnets[0]!.cidr, '10.200.0.0/24');
  });

  test('default MTU is the smallest node MTU minus 50; an explicit one is bounded by it', async (t) => {
    const m = await openTestManager();
    t.after(() => m.close());
    await m.service.registerNode({ name: 'host1', address: '192.0.2.1', mtu: 9000 });
    await m.service.registerNode({ name: 'host2', address: '192.0.2.2', mtu: 1400 });
    assert.equal((await m.service.createNetwork({ name: 'a' })).mtu, 1350);
    assert.equal((await m.service.createNetwork({ name: 'b', mtu: 1350 })).mtu, 1350);
    assert.equal((await m.service.createNetwork({ name: 'c', mtu: 68 })).mtu, 68);
    await refused(m, { name: 'd', mtu: 1351 }, 'mtu_too_large', /at most 1350.*node host2/);
    await refused(m, { name: 'd', mtu: 67 }, 'invalid_mtu');
  });

  test('without nodes an MTU above 1450 is too large', async (t) => {
    const m = await openTestManager();
    t.after(() => m.close());
    await refused(m, { name: 'd', mtu: 1451 }, 'mtu_too_large', /at most 1450/);
  });

  test('explicit settings are kept', async (t) => {
    const m = await openTestManager();
    t.after(() => m.close());
    const net = await m.service.createNetwork({
      name: 'custom',
      vni: 16777215,
      subnets: [{ cidr: '172.16.0.0/16', gateway: '172.16.255.254' }, { cidr: '10.0.0.0/8' }],
      mtu: 1400,
      port: 8472,
      internal: true,
      multicastGroup: '239.1.1.1',
    });
    assert.deepEqual(
      { ...net, createdAt: '' },
      {
        name: 'custom',
        vni: 16777215,
        subnets: [
          { cidr: '172.16.0.0/16', gateway: '172.16.255.254' },
          { cidr: '10.0.0.0/8', gateway: '10.0.0.1' },
        ],
        mtu: 1400,
        port: 8472,
        internal: true,
        multicastGroup: '239.1.1.1',
        createdAt: '',
      },
    );
    assert.deepEqual(m.service.getNetwork('custom').endpoints, []);
    assert.deepEqual(m.service.listNetworks().map((n) => n.name), ['custom']);
  });
});

describe('network rules: each refusal has its code and changes nothing', () => {
  test('names, VNIs, subnets, gateways, ports, multicast groups', async (t) => {
    const m = await openTestManager();
    t.after(() => m.close());
    await m.service.createNetwork({ name: 'taken', vni: 100, subnets: [{ cidr: '10.10.0.0/16' }] });
    await refused(m, { name: 'bad name' }, 'invalid_name');
    await refused(m, { name: '-dash' }, 'invalid_name');
    await refused(m, { name: 'taken' }, 'network_exists');
    await refused(m, { name: 'n', vni: 0 }, 'invalid_vni');
    await refused(m, { name: 'n', vni: 16777216 }, 'invalid_vni');
    await refused(m, { name: 'n', vni: 1.5 }, 'invalid_vni');
    await refused(m, { name: 'n', vni: 100 }, 'vni_in_use', /network taken/);
    await refused(m, { name: 'n', subnets: [{ cidr: '10.20.0.1/24' }] }, 'invalid_cidr');
    await refused(m, { name: 'n', subnets: [{ cidr: 'banana' }] }, 'invalid_cidr');
    await refused(m, { name: 'n', subnets: [{ cidr: '10.0.0.0/7' }] }, 'invalid_cidr', /\/8 to \/30/);
    await refused(m, { name: 'n', subnets: [{ cidr: '10.20.0.0/31' }] }, 'invalid_cidr');
    await refused(m, { name: 'n', subnets: [{ cidr: '10.10.5.0/24' }] }, 'subnet_overlap', /network taken/);
    await refused(m, { name: 'n', subnets: [{ cidr: '10.0.0.0/8' }] }, 'subnet_overlap');
    await refused(m, { name: 'n', subnets: [{ cidr: '10.20.0.0/16' }, { cidr: '10.20.1.0/24' }] }, 'subnet_overlap');
    await refused(m, { name: 'n', subnets: [] }, 'bad_request');
    await refused(m, { name: 'n', subnets: [{ cidr: '10.20.0.0/24', gateway: '10.21.0.1' }] }, 'gateway_outside_subnet');
    await refused(m, { name: 'n', subnets: [{ cidr: '10.20.0.0/24', gateway: '10.20.0.0' }] }, 'address_reserved');
    await refused(m, { name: 'n', subnets: [{ cidr: '10.20.0.0/24', gateway: '10.20.0.255' }] }, 'address_reserved');
    await refused(m, { name: 'n', subnets: [{ cidr: '10.20.0.0/24', gateway: 'x' }] }, 'invalid_address');
    await refused(m, { name: 'n', port: 0 }, 'invalid_port');
    await refused(m, { name: 'n', port: 65536 }, 'invalid_port');
    await refused(m, { name: 'n', multicastGroup: '10.1.1.1' }, 'invalid_address', /224\.0\.0\.0\/4/);
    await refused(m, { name: 'n', multicastGroup: '240.0.0.1' }, 'invalid_address');
    await refused(m, { name: 'n', multicastGroup: 'nope' }, 'invalid_address');
  });

  test('the default pool running out is an error, not an overlap', async (t) => {
    const m = await openTestManager();
    t.after(() => m.close());
    await m.service.createNetwork({ name: 'hog', subnets: [{ cidr: '10.200.0.0/16' }] });
    await refused(m, { name: 'n' }, 'subnet_pool_exhausted');
  });

  test('deleting: unknown → network_not_found; endpoints → network_in_use unless forced', async (t) => {
    const m = await openTestManager();
    t.after(() => m.close());
    await m.service.registerNode({ name: 'host1', address: '192.0.2.1', mtu: 1500 });
    await m.service.createNetwork({ name: 'blue' });
    const ep = await m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'c1' });
    await assert.rejects(m.service.deleteNetwork('nope'), vxnetError('network_not_found'));
    const before = await m.store.revision();
    await assert.rejects(m.service.deleteNetwork('blue'), vxnetError('network_in_use', /1 endpoint/));
    assert.equal(await m.store.revision(), before);
    await m.service.deleteNetwork('blue', { force: true });
    assert.deepEqual(m.service.listNetworks(), []);
    assert.throws(() => m.service.getEndpoint(ep.id), vxnetError('endpoint_not_found'));
    const left = (await m.store.list('')).kvs.map((kv) => kv.key);
    // the node's underlay address claim stays with the node (docs/security.md, hole 3)
    assert.deepEqual(left, ['/meta/cluster', '/meta/networks', '/node-addresses/192.0.2.1', '/nodes/host1']);
  });

  test('forced delete of a network with many endpoints removes them all, in batches', async (t) => {
    const m = await openTestManager();
    t.after(() => m.close());
    await m.service.registerNode({ name: 'host1', address: '192.0.2.1', mtu: 1500 });
    await m.service.createNetwork({ name: 'blue' });
    await Promise.all(Array.from({ length: 100 }, (_, i) => m.service.createEndpoint({ network: 'blue', node: 'host1', netns: `c${i}` })));
    await m.service.deleteNetwork('blue', { force: true });
    assert.deepEqual((await m.store.list('/endpoints/')).kvs, []);
    assert.deepEqual((await m.store.list('/ipam/')).kvs, []);
    assert.deepEqual((await m.store.list('/attachments/')).kvs, []);
    assert.deepEqual((await m.store.list('/deleting/')).kvs, []);
    assert.deepEqual((await m.store.list('/vnis/')).kvs, []);
  });
});

describe('two managers on one store (the compare-and-swap is the arbiter)', () => {
  async function pair() {
    const inner = new SqliteStore(temporaryDatabasePath('vxnet-pair-'));
    const a = await ManagerService.open(new SlowStore(inner));
    const b = await ManagerService.open(new SlowStore(inner));
    return {
      inner,
      a,
      b,
      async close() {
        await a.close();
        await b.close();
        await inner.close();
      },
    };
  }

  test('overlapping creates on both: exactly one wins', async (t) => {
    const p = await pair();
    t.after(() => p.close());
    const results = await Promise.allSettled([
      p.a.createNetwork({ name: 'one', subnets: [{ cidr: '10.50.0.0/16' }] }),
      p.b.createNetwork({ name: 'two', subnets: [{ cidr: '10.50.1.0/24' }] }),
    ]);
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    const failure = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    assert.equal(failure.reason.code, 'subnet_overlap');
    // default VNIs and subnets chosen concurrently never collide either
    const nets = await Promise.all([p.a.createNetwork({ name: 'x' }), p.b.createNetwork({ name: 'y' })]);
    assert.notEqual(nets[0].vni, nets[1].vni);
    assert.notEqual(nets[0].subnets[0]!.cidr, nets[1].subnets[0]!.cidr);
  });

  test('parallel endpoint creates on both managers never share an address', async (t) => {
    const p = await pair();
    t.after(() => p.close());
    await p.a.registerNode({ name: 'host1', address: '192.0.2.1', mtu: 1500 });
    await p.a.createNetwork({ name: 'blue', subnets: [{ cidr: '10.60.0.0/24' }] });
    await p.b.state.waitFor(await p.inner.revision());
    const created = await Promise.all(
      Array.from({ length: 60 }, (_, i) => (i % 2 ? p.a : p.b).createEndpoint({ network: 'blue', node: 'host1', netns: `n${i}` })),
    );
    assert.equal(new Set(created.map((e) => e.ip)).size, 60);
    assert.equal((await p.inner.list('/ipam/blue/')).kvs.length, 60);
    // the same interface cannot be claimed twice either
    const dup = await Promise.allSettled([
      p.a.createEndpoint({ network: 'blue', node: 'host1', netns: 'same' }),
      p.b.createEndpoint({ network: 'blue', node: 'host1', netns: 'same' }),
    ]);
    assert.equal(dup.filter((r) => r.status === 'fulfilled').length, 1);
    assert.equal((dup.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason.code, 'endpoint_exists');
  });

  for (const createFirst of [false, true]) {
    test(`an endpoint created while the network is deleted lands before the delete or fails (create issued ${createFirst ? 'first' : 'second'})`, async (t) => {
      const p = await pair();
      t.after(() => p.close());
      await p.a.registerNode({ name: 'host1', address: '192.0.2.1', mtu: 1500 });
      await p.a.createNetwork({ name: 'blue' });
      await p.b.state.waitFor(await p.inner.revision());
      const create = () => p.b.createEndpoint({ network: 'blue', node: 'host1', netns: 'x' });
      let createP: Promise<unknown>;
      let delP: Promise<unknown>;
      if (createFirst) {
        createP = create();
        delP = p.a.deleteNetwork('blue');
      } else {
        delP = p.a.deleteNetwork('blue');
        createP = create();
      }
      const [del, made] = await Promise.allSettled([delP, createP]);
      if (del.status === 'fulfilled') {
        assert.equal(made.status, 'rejected');
        assert.deepEqual((await p.inner.list('/endpoints/')).kvs, []);
      } else {
        assert.equal(del.reason.code, 'network_in_use');
        assert.equal(made.status, 'fulfilled');
        assert.equal((await p.inner.list('/endpoints/')).kvs.length, 1);
      }
      assert.equal(del.status === 'fulfilled', !createFirst);
      assert.deepEqual((await p.inner.list('/deleting/')).kvs, []);
    });
  }
});
