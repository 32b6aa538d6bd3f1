import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { VxnetError } from '../../src/core/errors.ts';
import { parseCidr, parseIPv4 } from '../../src/core/ipv4.ts';
import { FreeBitmap, NetworkAllocator } from '../../src/manager/ipam.ts';
import { ManagerService } from '../../src/manager/service.ts';
import { openTestManager } from './support/manager.ts';

function open() {
  return openTestManager({ nodes: ['host1', 'host2'] });
}

function code(c: string) {
  return (err: unknown) => err instanceof VxnetError && err.code === c;
}

describe('FreeBitmap', () => {
  test('finds the lowest clear bit across levels, including after clears', () => {
    for (const size of [1, 2, 31, 32, 33, 1000, 32 * 32 + 5, 70_000]) {
      const bits = new FreeBitmap(size);
      for (let i = 0; i < size; i++) {
        assert.equal(bits.firstClear(), i);
        bits.set(i);
      }
      assert.equal(bits.firstClear(), -1, `size ${size} full`);
      const hole = Math.floor(size / 2);
      bits.clear(hole);
      assert.equal(bits.firstClear(), hole);
      if (hole === size - 1) continue;
      bits.clear(size - 1);
      assert.equal(bits.firstClear(), hole);
      bits.set(hole);
      assert.equal(bits.firstClear(), size - 1);
    }
  });

  test('agrees with a naive model under random operations', () => {
    const size = 5000;
    const bits = new FreeBitmap(size);
    const model = new Uint8Array(size);
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % size);
    for (let n = 0; n < 20_000; n++) {
      const i = rand();
      if (n % 3 === 0) {
        bits.clear(i);
        model[i] = 0;
      } else {
        bits.set(i);
        model[i] = 1;
      }
      assert.equal(bits.firstClear(), model.indexOf(0));
      assert.equal(bits.has(i), model[i] === 1);
    }
  });
});

describe('NetworkAllocator', () => {
  const subnet = (cidr: string, gateway: string) => ({ cidr: parseCidr(cidr)!, gateway: parseIPv4(gateway)! });

  test('skips network, broadcast and gateway; moves to the next subnet when one is full', () => {
    const a = new NetworkAllocator('n', [subnet('10.0.0.0/30', '10.0.0.1'), subnet('10.0.1.0/29', '10.0.1.6')]);
    assert.equal(a.reserveNext().ip, '10.0.0.2');
    const next = a.reserveNext();
    assert.deepEqual(next, { ip: '10.0.1.1', prefix: 29, gateway: '10.0.1.6' });
    for (const ip of ['10.0.1.2', '10.0.1.3', '10.0.1.4', '10.0.1.5']) assert.equal(a.reserveNext().ip, ip);
    assert.throws(() => a.reserveNext(), code('subnet_full'));
  });

  test('a reservation dropped before commit is free again; a committed one stays used', () => {
    const a = new NetworkAllocator('n', [subnet('10.0.0.0/29', '10.0.0.1')]);
    const x = a.reserveNext().ip;
    a.unreserve(x);
    assert.equal(a.reserveNext().ip, x);
    a.markUsed(x);
    a.unreserve(x);
    assert.equal(a.reserveNext().ip, '10.0.0.3');
    a.markFree(x);
    assert.throws(() => a.reserve('10.0.0.3'), code('address_in_use'));
    assert.equal(a.reserve(x).ip, x);
  });
});

describe('IPAM through the service', () => {
  test('lowest free address first, and the static rules', async (t) => {
    const m = await open();
    t.after(() => m.close());
    await m.service.createNetwork({ name: 'blue', subnets: [{ cidr: '10.1.0.0/24' }] });
    const e1 = await m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'c1' });
    assert.equal(e1.ip, '10.1.0.2');
    assert.equal(e1.prefix, 24);
    assert.equal(e1.gateway, '10.1.0.1');
    assert.equal(e1.mac, '02:78:0a:01:00:02');
    const e2 = await m.service.createEndpoint({ network: 'blue', node: 'host2', netns: 'c1', ip: '10.1.0.50' });
    assert.equal(e2.ip, '10.1.0.50');
    const before = await m.store.revision();
    await assert.rejects(m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'c2', ip: '10.2.0.5' }), code('address_outside_subnet'));
    await assert.rejects(m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'c2', ip: '10.1.0.0' }), code('address_reserved'));
    await assert.rejects(m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'c2', ip: '10.1.0.255' }), code('address_reserved'));
    await assert.rejects(m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'c2', ip: '10.1.0.1' }), code('address_reserved'));
    await assert.rejects(m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'c2', ip: '10.1.0.50' }), code('address_in_use'));
    await assert.rejects(m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'c2', ip: '10.1.0.500' }), code('invalid_address'));
    assert.equal(await m.store.revision(), before, 'rejected requests wrote nothing');
    // the next automatic address is still the lowest free one
    assert.equal((await m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'c3' })).ip, '10.1.0.3');
  });

  test('a /30 holds exactly one endpoint; deleting it releases the address for reuse', async (t) => {
    const m = await open();
    t.after(() => m.close());
    await m.service.createNetwork({ name: 'tiny', subnets: [{ cidr: '10.9.0.0/30' }] });
    const only = await m.service.createEndpoint({ network: 'tiny', node: 'host1', netns: 'a' });
    assert.equal(only.ip, '10.9.0.2');
    const before = (await m.store.list('')).kvs.length;
    await assert.rejects(m.service.createEndpoint({ network: 'tiny', node: 'host1', netns: 'b' }), code('subnet_full'));
    assert.equal((await m.store.list('')).kvs.length, before);
    await m.service.deleteEndpoint(only.id);
    assert.equal((await m.store.list('/ipam/')).kvs.length, 0);
    const again = await m.service.createEndpoint({ network: 'tiny', node: 'host1', netns: 'b' });
    assert.equal(again.ip, '10.9.0.2');
  });

  test('addresses are per network: the same address can exist on two networks', async (t) => {
    const m = await open();
    t.after(() => m.close());
    await m.service.createNetwork({ name: 'a', subnets: [{ cidr: '10.3.0.0/24' }] });
    await m.service.createNetwork({ name: 'b', subnets: [{ cidr: '10.4.0.0/24', gateway: '10.4.0.254' }] });
    const x = await m.service.createEndpoint({ network: 'a', node: 'host1', netns: 'c' });
    const y = await m.service.createEndpoint({ network: 'b', node: 'host1', netns: 'c', ifname: 'eth1' });
    assert.equal(x.ip, '10.3.0.2');
    assert.equal(y.ip, '10.4.0.1');
    assert.equal(y.gateway, '10.4.0.254');
  });

  test('200 parallel creates get 200 distinct addresses, and the index matches the store after a restart', async () => {
    const m = await open();
    try {
      await m.service.createNetwork({ name: 'big', subnets: [{ cidr: '10.5.0.0/24' }, { cidr: '10.6.0.0/24' }] });
      const created = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          m.service.createEndpoint({ network: 'big', node: i % 2 ? 'host1' : 'host2', netns: `ns${i}` }),
        ),
      );
      const ips = new Set(created.map((e) => e.ip));
      assert.equal(ips.size, 200);
      assert.equal((await m.store.list('/ipam/big/')).kvs.length, 200);
      // lowest free first: the first subnet (253 usable addresses without the gateway) holds them all
      assert.ok(created.every((e) => e.ip.startsWith('10.5.0.')));
      // free some, restart on the same store, and the rebuilt allocator hands out the lowest hole again
      await m.service.deleteEndpoint(created.find((e) => e.ip === '10.5.0.7')!.id);
      await m.service.close();
      const again = await ManagerService.open(m.store);
      try {
        assert.equal((await again.createEndpoint({ network: 'big', node: 'host1', netns: 'new' })).ip, '10.5.0.7');
        assert.equal((await again.createEndpoint({ network: 'big', node: 'host1', netns: 'new2' })).ip, '10.5.0.202');
      } finally {
        await again.close();
      }
    } finally {
      await m.store.close();
    }
  });
});
