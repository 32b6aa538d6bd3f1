/** IPv6 inside networks (issue 15), the manager's half: IPv6 and dual-stack subnets, IPv6 IPAM, endpoint addresses. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseCommandLine } from '../../src/cli/parse.ts';
import { endpointAddresses } from '../../src/core/model.ts';
import { NetworkAllocator6 } from '../../src/manager/ipam.ts';
import { parseCidr6, parseIPv6 } from '../../src/core/ipv6.ts';
import { openTestManager, vxnetError } from './support/manager.ts';

const ENV = { VXNET_MANAGER: 'unix:/run/vxnet.sock', VXNET_TOKEN: 't' };

describe('IPv6 networks', () => {
  test('IPv6-only and dual-stack networks store both families; the IPv6 gateway defaults to the first host address', async (t) => {
    const m = await openTestManager({ nodes: ['host1'] });
    t.after(() => m.close());
    const only = await m.service.createNetwork({ name: 'six', subnets: [{ cidr: 'FD00:1:0::/64' }] });
    assert.deepEqual(only.subnets, [{ cidr: 'fd00:1::/64', gateway: 'fd00:1::1' }]);
    const dual = await m.service.createNetwork({
      name: 'dual',
      subnets: [{ cidr: 'fd00:2::/64', gateway: 'fd00:2::fe' }, { cidr: '10.7.0.0/24' }],
    });
    // IPv4 first, whatever the order given: an endpoint's first address is its IPv4 one
    assert.deepEqual(dual.subnets, [
      { cidr: '10.7.0.0/24', gateway: '10.7.0.1' },
      { cidr: 'fd00:2::/64', gateway: 'fd00:2::fe' },
    ]);
  });

  test('bad IPv6 subnets and gateways are refused with one sentence each, and nothing is created', async (t) => {
    const m = await openTestManager({ nodes: ['host1'], networks: [{ name: 'a', subnets: [{ cidr: 'fd00:1::/64' }] }] });
    t.after(() => m.close());
    const refuse = async (cidr: string, code: string, pattern: RegExp, gateway?: string, mtu?: number) => {
      const subnets = [gateway === undefined ? { cidr } : { cidr, gateway }];
      await assert.rejects(m.service.createNetwork({ name: 'b', subnets, ...(mtu ? { mtu } : {}) }), vxnetError(code, pattern));
    };
    await refuse('fd00:2::1/64', 'invalid_cidr', /^subnet "fd00:2::1\/64" is not a valid IPv6 subnet: its host bits are set, the subnet of fd00:2::1\/64 is fd00:2::\/64\.$/);
    await refuse('fd00:2::/129', 'invalid_cidr', /the prefix length after "\/" must be a number from 0 to 128/);
    await refuse('fd00:2::', 'invalid_cidr', /the prefix length is missing, as in fd00:2::\/64\.$/);
    await refuse('fd00:1:0:0:8000::/65', 'subnet_overlap', /^subnet fd00:1:0:0:8000::\/65 overlaps fd00:1::\/64 of network a\.$/);
    await refuse('fd00:2::/32', 'invalid_cidr', /^subnet fd00:2::\/32 has prefix \/32: use \/48 to \/126 for IPv6\.$/);
    await refuse('fd00:2::/64', 'gateway_outside_subnet', /^gateway fd00:3::1 is not inside subnet fd00:2::\/64\.$/, 'fd00:3::1');
    await refuse('fd00:2::/64', 'address_reserved', /Subnet-Router anycast address/, 'fd00:2::');
    await refuse('fd00:2::/64', 'invalid_address', /gateway "10.0.0.1" is not a valid IPv6 address/, '10.0.0.1');
    await refuse('fd00:2::/64', 'invalid_mtu', /IPv6 needs at least 1280 bytes/, undefined, 1200);
    await assert.rejects(
      m.service.createNetwork({ name: 'b', subnets: [{ cidr: 'fd00:2::/64' }, { cidr: 'fd00:2::/80' }] }),
      vxnetError('subnet_overlap', /^subnets fd00:2::\/64 and fd00:2::\/80 of network b overlap\.$/),
    );
    assert.deepEqual(m.service.listNetworks().map((n) => n.name), ['a']);
  });

  test('endpoints get one address per family, IPv4 first; addresses are freed with the endpoint and not reused at once', async (t) => {
    const m = await openTestManager({
      nodes: ['host1', 'host2'],
      networks: [
        { name: 'six', subnets: [{ cidr: 'fd00:1::/64' }] },
        { name: 'dual', subnets: [{ cidr: '10.7.0.0/24' }, { cidr: 'fd00:2::/64' }] },
      ],
    });
    t.after(() => m.close());
    const a = await m.service.createEndpoint({ network: 'six', node: 'host1', netns: 'c1' });
    assert.equal(a.ip, 'fd00:1::2');
    assert.equal(a.prefix, 64);
    assert.equal(a.gateway, 'fd00:1::1');
    assert.equal(a.addresses, undefined);
    assert.equal(a.mac, '02:79:00:00:00:02');
    const d = await m.service.createEndpoint({ network: 'dual', node: 'host1', netns: 'c1', ifname: 'eth1' });
    assert.equal(d.ip, '10.7.0.2');
    assert.equal(d.mac, '02:78:0a:07:00:02');
    assert.deepEqual(d.addresses, [
      { ip: '10.7.0.2', prefix: 24, gateway: '10.7.0.1' },
      { ip: 'fd00:2::2', prefix: 64, gateway: 'fd00:2::1' },
    ]);
    // an explicit IPv6 address on a dual-stack network: the IPv4 one comes with it, first
    const e = await m.service.createEndpoint({ network: 'dual', node: 'host2', netns: 'c2', ip: 'fd00:2::0:99' });
    assert.deepEqual(endpointAddresses(e).map((x) => x.ip), ['10.7.0.3', 'fd00:2::99']);
    await assert.rejects(
      m.service.createEndpoint({ network: 'dual', node: 'host2', netns: 'c3', ip: 'fd00:2::99' }),
      vxnetError('address_in_use', /^address fd00:2::99 is already in use on network dual\.$/),
    );
    await assert.rejects(m.service.createEndpoint({ network: 'six', node: 'host2', netns: 'c3', ip: 'fd00:1::1' }), vxnetError('address_reserved', /gateway/));
    await assert.rejects(m.service.createEndpoint({ network: 'six', node: 'host2', netns: 'c3', ip: '10.7.0.9' }), vxnetError('address_outside_subnet'));
    await assert.rejects(m.service.createEndpoint({ network: 'six', node: 'host2', netns: 'c3', ip: 'fd00::zz' }), vxnetError('invalid_address'));
    await assert.rejects(
      m.service.createEndpoint({ network: 'six', node: 'host2', host: true }),
      vxnetError('bad_request', /^network six has IPv6 subnets only, and a host endpoint needs an IPv4 address: give the network an IPv4 subnet too\.$/),
    );
    // the store's keys hold every address, and a delete releases them all
    const ipamKeys = async () => (await m.store.list('/ipam/')).kvs.map((kv) => kv.key).sort();
    assert.deepEqual(await ipamKeys(), ['/ipam/dual/10.7.0.2', '/ipam/dual/10.7.0.3', '/ipam/dual/fd00:2::2', '/ipam/dual/fd00:2::99', '/ipam/six/fd00:1::2']);
    await m.service.deleteEndpoint(d.id);
    assert.deepEqual(await ipamKeys(), ['/ipam/dual/10.7.0.3', '/ipam/dual/fd00:2::99', '/ipam/six/fd00:1::2']);
    // IPv4 takes the lowest free address again; IPv6 goes on from its cursor (past the highest seen)
    const f = await m.service.createEndpoint({ network: 'dual', node: 'host1', netns: 'c4' });
    assert.deepEqual(endpointAddresses(f).map((x) => x.ip), ['10.7.0.2', 'fd00:2::9a']);
  });
});

describe('IPv6 allocator', () => {
  test('a /64 allocates without walking it; a full small subnet says so; the cursor wraps to freed addresses', () => {
    const big = new NetworkAllocator6('n', [{ cidr: parseCidr6('fd00::/64')!, gateway: parseIPv6('fd00::1')! }]);
    big.markUsed('fd00::ffff:ffff:ffff:fff0');
    const started = performance.now();
    assert.equal(big.reserveNext().ip, 'fd00::ffff:ffff:ffff:fff1');
    assert.ok(performance.now() - started < 50);
    const small = new NetworkAllocator6('s', [{ cidr: parseCidr6('fd00::/126')!, gateway: parseIPv6('fd00::1')! }]);
    assert.deepEqual([small.reserveNext().ip, small.reserveNext().ip], ['fd00::2', 'fd00::3']);
    assert.throws(() => small.reserveNext(), vxnetError('subnet_full', /^network s has no free address left in fd00::\/126\.$/));
    small.unreserve('fd00::2');
    assert.equal(small.reserveNext().ip, 'fd00::2');
  });
});

describe('IPv6 on the command line', () => {
  const build = (line: string) => parseCommandLine(line.split(' '), ENV);
  test('--subnet and --gateway take either family, repeatable; --ip takes either', () => {
    const parsed = build('network create n --subnet 10.0.0.0/24 --subnet fd00:1::/64 --gateway fd00:1::fe') as unknown as { request: { subnets: unknown } };
    assert.deepEqual(parsed.request.subnets, [{ cidr: '10.0.0.0/24' }, { cidr: 'fd00:1::/64', gateway: 'fd00:1::fe' }]);
    const attach = build('attach n --node h --netns c --ip fd00:1::5') as unknown as { request: { ip: string } };
    assert.equal(attach.request.ip, 'fd00:1::5');
  });
  test('bad IPv6 input is one sentence', () => {
    const message = (line: string) => {
      try {
        build(line);
      } catch (err) {
        return (err as Error).message;
      }
      return assert.fail(`"${line}" was accepted`);
    };
    assert.equal(message('network create n --subnet fd00::1/64'), '--subnet "fd00::1/64" is not a valid IPv6 subnet: its host bits are set, the subnet of fd00::1/64 is fd00::/64.');
    assert.equal(message('network create n --subnet fd00::/129'), '--subnet "fd00::/129" is not a valid IPv6 subnet: the prefix length after "/" must be a number from 0 to 128, as in fd00::/64.');
    assert.equal(message('network create n --subnet fd00::/64 --gateway fd00::g'), '--gateway "fd00::g" is not a valid IPv6 address.');
    assert.equal(message('attach n --node h --netns c --ip fd00:::1'), '--ip "fd00:::1" is not a valid IPv6 address.');
    assert.equal(message('attach n --node h --netns c --ip 10.0.0.300'), '--ip "10.0.0.300" is not a valid IPv4 address.');
  });
});
