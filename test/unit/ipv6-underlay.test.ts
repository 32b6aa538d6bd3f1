/**
 * IPv6 underlays (vxnet issue 15, docs/architecture.md "IPv6 underlay"): nodes whose advertise address is
 * IPv6 — the address checks and canonical text, the 70-byte overhead, the one-family-per-cluster rule at
 * registration, and the agent's detection of the interface holding the address.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { findUnderlay } from '../../src/agent/kernel/host.ts';
import { runAgent } from '../../src/agent/main.ts';
import { wireguardEndpoint } from '../../src/agent/wireguard/render.ts';
import { UsageError } from '../../src/cli/command.ts';
import { parseCommandLine } from '../../src/cli/parse.ts';
import { VXLAN_OVERHEAD, VXLAN_OVERHEAD_IPV6 } from '../../src/core/model.ts';
import { canonicalUnderlay, underlayFamily, vxlanOverheadAt, vxlanOverheadOf } from '../../src/core/underlay.ts';
import { mtuBound, validateNodeRequest } from '../../src/manager/validation.ts';
import { openTestManager, vxnetError } from './support/manager.ts';
import { describeRecord, formatFrame } from '../../src/capture/describe.ts';
import { encodeEthernet, ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from '../../src/packet/ethernet.ts';
import { encodeIpv4, IPPROTO_UDP } from '../../src/packet/ipv4.ts';
import { encodeIpv6, IPPROTO_IPV6_FRAGMENT } from '../../src/packet/ipv6.ts';
import { LINKTYPE_ETHERNET, type PcapRecord } from '../../src/packet/pcap.ts';
import { encodeUdp } from '../../src/packet/udp.ts';
import { encodeVxlan } from '../../src/packet/vxlan.ts';

describe('underlay addresses', () => {
  test('the family of an address and the VXLAN overhead on it: 50 over IPv4, 70 over IPv6', () => {
    assert.equal(underlayFamily('10.0.0.1'), 'IPv4');
    assert.equal(underlayFamily('fd99::3'), 'IPv6');
    assert.equal(underlayFamily('host1'), undefined);
    assert.equal(VXLAN_OVERHEAD_IPV6 - VXLAN_OVERHEAD, 20, 'the outer IPv6 header is 40 bytes against IPv4\'s 20');
    assert.equal(vxlanOverheadOf('IPv4'), 50);
    assert.equal(vxlanOverheadOf('IPv6'), 70);
    assert.equal(vxlanOverheadAt('fd99::3'), 70);
    assert.equal(vxlanOverheadAt('10.0.0.1'), 50);
  });

  test('an IPv6 underlay address is kept in RFC 5952 text, as iproute2 prints it', () => {
    assert.equal(canonicalUnderlay('FD99:0000:0:0::0003', 'x'), 'fd99::3');
    assert.equal(canonicalUnderlay('2001:db8:0:1:0:0:0:1', 'x'), '2001:db8:0:1::1');
    assert.equal(validateNodeRequest({ name: 'h1', address: 'FD99::0:3', mtu: 1500 }).address, 'fd99::3');
  });

  test('addresses no peer can reach are refused with one sentence', () => {
    for (const [address, why] of [
      ['::1', /loopback/],
      ['::', /unspecified/],
      ['fe80::1', /link-local/],
      ['ff02::1', /multicast/],
      ['::ffff:10.0.0.1', /IPv4-mapped/],
      ['fd99::3::1', /is not a valid IPv6 address/],
    ] as const) {
      assert.throws(() => validateNodeRequest({ name: 'h1', address, mtu: 1500 }), vxnetError('invalid_address', why), address);
    }
  });

  test('the network MTU bound takes 70 bytes off an IPv6 underlay, and WireGuard 80 on top of VXLAN 50', () => {
    const v6 = [{ name: 'a', address: 'fd99::1', mtu: 1500, registeredAt: '' }, { name: 'b', address: 'fd99::2', mtu: 1400, registeredAt: '' }];
    assert.deepEqual(mtuBound(v6), { limit: 1330, node: v6[1], overhead: 70 });
    assert.equal(mtuBound(v6, true).limit, 1400 - 50 - 80);
    assert.equal(mtuBound([{ name: 'c', address: '10.0.0.1', mtu: 1500, registeredAt: '' }]).limit, 1450);
  });

  test('vxnet agent --advertise-addr takes an IPv6 address, canonical; a bad one is a usage error', () => {
    const command = parseCommandLine(['agent', '--manager', 'https://10.0.0.1:7400', '--advertise-addr', 'FD99:0::3'], {});
    assert.equal((command as { advertiseAddress: string }).advertiseAddress, 'fd99::3');
    assert.throws(
      () => parseCommandLine(['agent', '--manager', 'https://10.0.0.1:7400', '--advertise-addr', 'fe80::1'], {}),
      (err: unknown) => err instanceof UsageError && /--advertise-addr fe80::1 is a link-local address/.test(err.message),
    );
  });

  test('an Open vSwitch host refuses an IPv6 underlay with a sentence, before touching anything', async () => {
    await assert.rejects(
      runAgent({ managerUrl: 'https://10.0.0.1:7400', advertiseAddress: 'fd99::3', dataplane: 'ovs', log: () => {} }, new AbortController().signal),
      vxnetError('bad_request', /^the Open vSwitch data plane needs an IPv4 underlay: advertise an IPv4 address instead of fd99::3, or run the Linux data plane\.$/),
    );
  });

  test('WireGuard reaches an IPv6 peer at [address]:port', () => {
    assert.equal(wireguardEndpoint('fd99::3', 51820), '[fd99::3]:51820');
    assert.equal(wireguardEndpoint('10.0.0.3', 51820), '10.0.0.3:51820');
  });
});

describe('one underlay family per cluster', () => {
  test('the first node sets the family; a node of the other family is refused, saying which family the cluster uses', async (t) => {
    const m = await openTestManager();
    t.after(() => m.close());
    await m.service.registerNode({ name: 'h1', address: 'fd99::1', mtu: 1500 });
    await m.service.registerNode({ name: 'h2', address: 'fd99::2', mtu: 1500 });
    await assert.rejects(
      m.service.registerNode({ name: 'h3', address: '10.0.0.3', mtu: 1500 }),
      vxnetError('invalid_address', /^node h3 advertises the IPv4 underlay address 10\.0\.0\.3, but this cluster's nodes use IPv6 underlay addresses \(node h\d has fd99::\d\)/),
    );
    assert.deepEqual(m.service.listNodes().map((n) => n.name), ['h1', 'h2'], 'nothing stored for the refused node');
    // a registered node moving to the other family is refused the same way while others remain
    await assert.rejects(m.service.registerNode({ name: 'h2', address: '10.0.0.2', mtu: 1500 }), vxnetError('invalid_address', /use IPv6 underlay addresses/));
    assert.equal(m.service.listNodes().find((n) => n.name === 'h2')?.address, 'fd99::2');
  });

  test('an IPv4 cluster refuses an IPv6 node', async (t) => {
    const m = await openTestManager({ nodes: ['h1'] });
    t.after(() => m.close());
    await assert.rejects(
      m.service.registerNode({ name: 'h2', address: 'fd99::2', mtu: 1500 }),
      vxnetError('invalid_address', /IPv6 underlay address fd99::2, but this cluster's nodes use IPv4 underlay addresses .*advertise an IPv4 address\.$/),
    );
  });

  test('a network created in an IPv6 cluster gets the underlay MTU minus 70 by default', async (t) => {
    const m = await openTestManager();
    t.after(() => m.close());
    await m.service.registerNode({ name: 'h1', address: 'fd99::1', mtu: 1500 });
    const network = await m.service.createNetwork({ name: 'blue', subnets: [{ cidr: '10.1.0.0/24' }] });
    assert.equal(network.mtu, 1430);
    await assert.rejects(m.service.createNetwork({ name: 'red', mtu: 1431 }), vxnetError('mtu_too_large', /at most 1430 .*minus 70 bytes of VXLAN overhead/));
  });
});

describe('multicast groups over an IPv6 underlay', () => {
  test('the manager refuses a multicast-group network in an IPv6 cluster with one sentence', async (t) => {
    const m = await openTestManager();
    t.after(() => m.close());
    await m.service.registerNode({ name: 'h1', address: 'fd99::1', mtu: 1500 });
    await assert.rejects(
      m.service.createNetwork({ name: 'blue', multicastGroup: '239.1.1.1' }),
      vxnetError('bad_request', /^a network cannot use multicast group 239\.1\.1\.1 in this cluster: its nodes have IPv6 underlay addresses \(node h1 has fd99::1\)/),
    );
    assert.equal((await m.service.createNetwork({ name: 'red' })).multicastGroup, undefined);
  });
});

describe('finding the underlay interface', () => {
  const dump = JSON.stringify([
    { ifindex: 1, ifname: 'lo', mtu: 65536, flags: ['UP'], addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8 }, { family: 'inet6', local: '::1', prefixlen: 128, scope: 'host' }] },
    {
      ifindex: 2, ifname: 'u0', mtu: 1480, flags: ['UP'],
      addr_info: [{ family: 'inet6', local: 'fd99::3', prefixlen: 64, scope: 'global' }, { family: 'inet6', local: 'fe80::1', prefixlen: 64, scope: 'link' }],
    },
  ]);
  test('the interface holding an IPv6 advertise address, with its MTU', () => {
    assert.deepEqual(findUnderlay(dump, 'fd99::3'), { device: 'u0', mtu: 1480 });
    assert.equal(findUnderlay(dump, 'fe80::1'), undefined, 'link-local addresses are no underlay');
    assert.equal(findUnderlay(dump, 'fd99::4'), undefined);
  });
});

describe('capture over an IPv6 underlay', () => {
  const innerIp = encodeIpv4({ src: '192.168.1.2', dst: '192.168.1.3', protocol: IPPROTO_UDP }, encodeUdp({ srcPort: 5000, dstPort: 53 }, new Uint8Array(4)));
  const inner = encodeEthernet({ src: '02:78:c0:a8:01:02', dst: '02:78:c0:a8:01:03', ethertype: ETHERTYPE_IPV4 }, innerIp);
  const vxlan = new Uint8Array([...encodeVxlan(4097), ...inner]);
  const record = (data: Uint8Array): PcapRecord => ({ seconds: 0, fraction: 0, timestampMicros: 0, capturedLength: data.length, originalLength: data.length, data });
  const outer = (nextHeader: number, payload: Uint8Array) =>
    encodeEthernet({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02', ethertype: ETHERTYPE_IPV6 }, encodeIpv6({ src: 'fd99::11', dst: 'fd99::12', nextHeader }, payload));

  test('VXLAN in UDP in IPv6 is decoded with the outer IPv6 addresses and the inner IPv4 frame', () => {
    const udp = encodeUdp({ srcPort: 40000, dstPort: 4789 }, vxlan);
    const frame = describeRecord(record(outer(IPPROTO_UDP, udp)), LINKTYPE_ETHERNET, [4789]);
    assert.deepEqual(frame?.outer, { src: 'fd99::11', dst: 'fd99::12', srcPort: 40000, dstPort: 4789 });
    assert.equal(frame?.vni, 4097);
    assert.equal(frame?.inner.protocol, 'udp');
    assert.match(formatFrame(frame!), /fd99::11 → fd99::12 VNI 4097 UDP 192\.168\.1\.2 → 192\.168\.1\.3 5000 → 53/);
  });

  test('other ports and fragments are not VXLAN frames', () => {
    const udp = encodeUdp({ srcPort: 40000, dstPort: 4790 }, vxlan);
    assert.equal(describeRecord(record(outer(IPPROTO_UDP, udp)), LINKTYPE_ETHERNET, [4789]), undefined);
    assert.equal(describeRecord(record(outer(IPPROTO_IPV6_FRAGMENT, new Uint8Array(64))), LINKTYPE_ETHERNET, [4789]), undefined);
  });
});
