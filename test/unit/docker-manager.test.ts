/**
 * The manager's side of the Docker integration: address reservations (Docker's IPAM allocates before the
 * endpoint exists), endpoints that adopt them, the three kinds of endpoint target, and the watch stream's
 * `networks=all` mode that Docker-linked agents use.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { WatchMessage } from '../../src/core/model.ts';
import { WatchHub, type WatchSink } from '../../src/manager/watch-hub.ts';
import { ClusterView } from '../../src/agent/view.ts';
import { openTestManager, vxnetError } from './support/manager.ts';

const DOCKER_EP = 'a'.repeat(64);
const DOCKER_EP2 = 'b'.repeat(64);

function open() {
  return openTestManager({ nodes: ['host1', 'host2'], networks: [{ name: 'blue', subnets: [{ cidr: '10.1.0.0/24' }] }] });
}

describe('reservations (Docker IPAM)', () => {
  test('a reservation takes the lowest free address, or the one asked for, and holds it cluster-wide', async (t) => {
    const m = await open();
    t.after(() => m.close());
    const first = await m.service.createReservation({ network: 'blue', node: 'host1' });
    assert.deepEqual({ ip: first.ip, prefix: first.prefix, gateway: first.gateway, node: first.node }, { ip: '10.1.0.2', prefix: 24, gateway: '10.1.0.1', node: 'host1' });
    const asked = await m.service.createReservation({ network: 'blue', node: 'host2', ip: '10.1.0.50' });
    assert.equal(asked.ip, '10.1.0.50');
    // neither another reservation nor an ordinary endpoint can have them
    await assert.rejects(m.service.createReservation({ network: 'blue', node: 'host1', ip: '10.1.0.50' }), vxnetError('address_in_use'));
    await assert.rejects(m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'c1', ip: '10.1.0.2' }), vxnetError('address_in_use'));
    const ep = await m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'c1' });
    assert.equal(ep.ip, '10.1.0.3');
    assert.deepEqual(m.service.listReservations({ node: 'host2' }).map((r) => r.ip), ['10.1.0.50']);
  });

  test('reservations refuse what endpoints refuse: unknown network or node, the gateway, outside the subnet', async (t) => {
    const m = await open();
    t.after(() => m.close());
    await assert.rejects(m.service.createReservation({ network: 'red', node: 'host1' }), vxnetError('network_not_found'));
    await assert.rejects(m.service.createReservation({ network: 'blue', node: 'host9' }), vxnetError('node_not_found'));
    await assert.rejects(m.service.createReservation({ network: 'blue', node: 'host1', ip: '10.1.0.1' }), vxnetError('address_reserved'));
    await assert.rejects(m.service.createReservation({ network: 'blue', node: 'host1', ip: '10.2.0.5' }), vxnetError('address_outside_subnet'));
    assert.deepEqual(m.service.listReservations(), []);
  });

  test('concurrent reservations from two nodes never get the same address', async (t) => {
    const m = await open();
    t.after(() => m.close());
    const made = await Promise.all(
      Array.from({ length: 40 }, (_, i) => m.service.createReservation({ network: 'blue', node: i % 2 ? 'host1' : 'host2' })),
    );
    assert.equal(new Set(made.map((r) => r.ip)).size, 40);
  });

  test('a Docker endpoint adopts its node\'s reservation; deleting it keeps the address reserved until released', async (t) => {
    const m = await open();
    t.after(() => m.close());
    const r = await m.service.createReservation({ network: 'blue', node: 'host1', ip: '10.1.0.7' });
    const ep = await m.service.createEndpoint({ network: 'blue', node: 'host1', docker: DOCKER_EP, ip: r.ip, reserved: true });
    assert.equal(ep.reserved, true);
    assert.equal(ep.docker, DOCKER_EP);
    assert.equal(ep.netns, undefined);
    assert.equal(ep.ifname, 'eth');
    assert.equal(ep.mac, '02:78:0a:01:00:07');
    assert.equal(m.service.listReservations()[0]?.endpoint, ep.id);
    // a second adoption of the same reservation is refused
    await assert.rejects(
      m.service.createEndpoint({ network: 'blue', node: 'host1', docker: DOCKER_EP2, ip: r.ip, reserved: true }),
      vxnetError('address_in_use', /already used by endpoint/),
    );
    await m.service.deleteEndpoint(ep.id);
    // the address stays Docker's until ReleaseAddress
    await assert.rejects(m.service.createReservation({ network: 'blue', node: 'host2', ip: '10.1.0.7' }), vxnetError('address_in_use'));
    await m.service.deleteReservation('blue', '10.1.0.7', { node: 'host1' });
    assert.equal((await m.service.createReservation({ network: 'blue', node: 'host2', ip: '10.1.0.7' })).ip, '10.1.0.7');
  });

  test('only the node that holds a reservation can adopt or release it', async (t) => {
    const m = await open();
    t.after(() => m.close());
    await m.service.createReservation({ network: 'blue', node: 'host1', ip: '10.1.0.9' });
    await assert.rejects(
      m.service.createEndpoint({ network: 'blue', node: 'host2', docker: DOCKER_EP, ip: '10.1.0.9', reserved: true }),
      vxnetError('reservation_not_found', /not reserved by node host2/),
    );
    await assert.rejects(m.service.deleteReservation('blue', '10.1.0.9', { node: 'host2' }), vxnetError('reservation_not_found'));
    assert.equal(m.service.listReservations().length, 1);
    await assert.rejects(m.service.createEndpoint({ network: 'blue', node: 'host1', docker: DOCKER_EP, reserved: true }), vxnetError('bad_request'));
  });

  test('releasing a reservation deletes the endpoint still on it (Docker is done with the address)', async (t) => {
    const m = await open();
    t.after(() => m.close());
    const r = await m.service.createReservation({ network: 'blue', node: 'host1' });
    const ep = await m.service.createEndpoint({ network: 'blue', node: 'host1', docker: DOCKER_EP, ip: r.ip, reserved: true });
    await m.service.deleteReservation('blue', r.ip);
    assert.throws(() => m.service.getEndpoint(ep.id), vxnetError('endpoint_not_found'));
    assert.deepEqual(m.service.listReservations(), []);
    // and the address and the Docker endpoint's attachment are free again
    await m.service.createEndpoint({ network: 'blue', node: 'host1', docker: DOCKER_EP, ip: r.ip });
  });

  test('network delete: reserved addresses refuse it like endpoints do; force removes them too', async (t) => {
    const m = await open();
    t.after(() => m.close());
    await m.service.createReservation({ network: 'blue', node: 'host2' });
    await assert.rejects(m.service.deleteNetwork('blue'), vxnetError('network_in_use', /reserved by the Docker engine of node host2/));
    await m.service.deleteNetwork('blue', { force: true });
    assert.deepEqual(m.service.listReservations(), []);
    // a new network of the same subnet starts with every address free
    await m.service.createNetwork({ name: 'blue', subnets: [{ cidr: '10.1.0.0/24' }] });
    assert.equal((await m.service.createReservation({ network: 'blue', node: 'host2' })).ip, '10.1.0.2');
  });
});

describe('endpoint targets', () => {
  test('exactly one of netns, container, docker; each validated', async (t) => {
    const m = await open();
    t.after(() => m.close());
    await assert.rejects(m.service.createEndpoint({ network: 'blue', node: 'host1' }), vxnetError('bad_request', /exactly one target/));
    await assert.rejects(m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'c1', container: 'web' }), vxnetError('bad_request'));
    await assert.rejects(m.service.createEndpoint({ network: 'blue', node: 'host1', container: 'we b' }), vxnetError('invalid_name'));
    await assert.rejects(m.service.createEndpoint({ network: 'blue', node: 'host1', docker: 'abc' }), vxnetError('bad_request', /64 hex/));
    await assert.rejects(m.service.createEndpoint({ network: 'blue', node: 'host1', docker: DOCKER_EP, ifname: 'eth0' }), vxnetError('bad_request'));
    const c = await m.service.createEndpoint({ network: 'blue', node: 'host1', container: 'web' });
    assert.deepEqual([c.container, c.netns, c.ifname], ['web', undefined, 'eth0']);
    // one interface per (node, target, network): another ifname is refused too (issue 17, a second default route)
    await assert.rejects(m.service.createEndpoint({ network: 'blue', node: 'host1', container: 'web' }), vxnetError('endpoint_exists', /container web/));
    await assert.rejects(m.service.createEndpoint({ network: 'blue', node: 'host1', container: 'web', ifname: 'eth1' }), vxnetError('endpoint_exists', /container web/));
    await m.service.deleteEndpoint(c.id);
    await m.service.createEndpoint({ network: 'blue', node: 'host1', container: 'web' });
  });
});

class RecordingSink implements WatchSink {
  messages: WatchMessage[] = [];
  bufferedBytes = 0;
  write(text: string): void {
    for (const line of text.split('\n')) if (line !== '') this.messages.push(JSON.parse(line) as WatchMessage);
  }
  close(): void {}
  take(): string[] {
    const out = this.messages.map((m) => `${m.type}:${'name' in m ? m.name : 'network' in m && typeof m.network === 'object' ? m.network.name : ''}`);
    this.messages = [];
    return out;
  }
}

describe('watch with networks=all', () => {
  test('the snapshot has every network but only the endpoints of networks the node takes part in', async () => {
    const m = await open();
    const hub = new WatchHub(m.service.state, { pingIntervalMs: 60_000 });
    try {
      await m.service.createNetwork({ name: 'red', subnets: [{ cidr: '10.2.0.0/24' }] });
      await m.service.createEndpoint({ network: 'red', node: 'host2', netns: 'c2' });
      const all = hub.snapshot('host1', { allNetworks: true });
      assert.deepEqual(all.networks.map((n) => n.name), ['blue', 'red']);
      assert.deepEqual(all.endpoints, []);
      const filtered = hub.snapshot('host1');
      assert.deepEqual(filtered.networks, []);
    } finally {
      hub.stop();
      await m.close();
    }
  });

  test('every network change reaches an all-networks session; a deletion is network-deleted there, network-forgotten elsewhere', async () => {
    const m = await open();
    const hub = new WatchHub(m.service.state, { pingIntervalMs: 60_000 });
    hub.start();
    const all = new RecordingSink();
    const plain = new RecordingSink();
    try {
      hub.attach('host1', all, { allNetworks: true });
      hub.attach('host2', plain);
      all.take();
      plain.take();
      await m.service.createNetwork({ name: 'red', subnets: [{ cidr: '10.2.0.0/24' }] });
      assert.deepEqual(all.take(), ['network:red']);
      assert.deepEqual(plain.take(), []);
      const ep = await m.service.createEndpoint({ network: 'red', node: 'host2', netns: 'c2' });
      assert.deepEqual(all.take(), [], 'endpoints stay filtered');
      assert.deepEqual(plain.take(), ['network:red', 'endpoint:']);
      await m.service.deleteEndpoint(ep.id);
      plain.take();
      await m.service.deleteNetwork('red');
      assert.deepEqual(all.take(), ['network-deleted:red']);
      assert.deepEqual(plain.take(), []);
    } finally {
      hub.stop();
      await m.close();
    }
  });

  test('the view of an all-networks agent keeps a network when its last local endpoint goes, and drops it when deleted', () => {
    const view = new ClusterView({ allNetworks: true });
    const blue = { name: 'blue', vni: 1, subnets: [{ cidr: '10.1.0.0/24', gateway: '10.1.0.1' }], mtu: 1450, port: 4789, internal: false, createdAt: '' };
    view.apply({ type: 'snapshot', revision: 1, nodes: [], networks: [blue], endpoints: [] });
    view.apply({
      type: 'endpoint',
      revision: 2,
      endpoint: { id: 'e1', network: 'blue', node: 'host1', netns: '/run/netns/c', ifname: 'eth0', ip: '10.1.0.2', prefix: 24, gateway: '10.1.0.1', mac: '02:78:0a:01:00:02', status: 'ready', createdAt: '' },
    });
    assert.equal(view.apply({ type: 'network-forgotten', revision: 3, name: 'blue' }), true);
    assert.ok(view.networks.has('blue'));
    assert.equal(view.endpoints.size, 0);
    view.apply({ type: 'network-deleted', revision: 4, name: 'blue' });
    assert.ok(!view.networks.has('blue'));
    // an ordinary view forgets the network with its endpoints
    const plain = new ClusterView();
    plain.apply({ type: 'snapshot', revision: 1, nodes: [], networks: [blue], endpoints: [] });
    plain.apply({ type: 'network-forgotten', revision: 2, name: 'blue' });
    assert.ok(!plain.networks.has('blue'));
  });
});

describe('node removal and reservations', () => {
  test('removing a node releases the addresses its Docker engine reserved', async (t) => {
    const m = await open();
    t.after(() => m.close());
    await m.service.createReservation({ network: 'blue', node: 'host2', ip: '10.1.0.50' });
    await m.service.createReservation({ network: 'blue', node: 'host1', ip: '10.1.0.60' });
    await m.service.deleteNode('host2', { drain: true });
    assert.deepEqual(m.service.listReservations({}).map((r) => r.ip), ['10.1.0.60']);
    const ep = await m.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'c1', ip: '10.1.0.50' });
    assert.equal(ep.ip, '10.1.0.50', 'the released address can be handed out again');
  });
});

describe('IPv6 reservations (Docker IPAM with --ipv6)', () => {
  function openDual() {
    return openTestManager({
      nodes: ['host1', 'host2'],
      networks: [
        { name: 'dual', subnets: [{ cidr: '10.5.0.0/24' }, { cidr: 'fd00:5::/64' }] },
        { name: 'six', subnets: [{ cidr: 'fd00:6::/64' }] },
        { name: 'four', subnets: [{ cidr: '10.4.0.0/24' }] },
      ],
    });
  }

  test('an IPv6 reservation comes from the IPv6 subnet, cluster-wide unique, in RFC 5952 text whatever the spelling asked', async (t) => {
    const m = await openDual();
    t.after(() => m.close());
    const v6 = await m.service.createReservation({ network: 'dual', node: 'host1', family: 6 });
    assert.deepEqual({ ip: v6.ip, prefix: v6.prefix, gateway: v6.gateway }, { ip: 'fd00:5::2', prefix: 64, gateway: 'fd00:5::1' });
    const asked = await m.service.createReservation({ network: 'dual', node: 'host2', ip: 'FD00:5:0:0::0:77' });
    assert.equal(asked.ip, 'fd00:5::77');
    await assert.rejects(m.service.createReservation({ network: 'dual', node: 'host1', ip: 'fd00:5::77' }), vxnetError('address_in_use'));
    await assert.rejects(m.service.createEndpoint({ network: 'six', node: 'host1', netns: 'c1', ip: 'fd00:6::1' }), vxnetError('address_reserved'));
    // an IPv6-only network reserves IPv6 without being told; the IPv4 reservation of the dual one stays IPv4
    assert.equal((await m.service.createReservation({ network: 'six', node: 'host1' })).ip, 'fd00:6::2');
    assert.equal((await m.service.createReservation({ network: 'dual', node: 'host1' })).ip, '10.5.0.2');
  });

  test('bad IPv6 reservations get one sentence and leave nothing behind', async (t) => {
    const m = await openDual();
    t.after(() => m.close());
    await assert.rejects(m.service.createReservation({ network: 'four', node: 'host1', family: 6 }), vxnetError('bad_request', /has no IPv6 subnet/));
    await assert.rejects(m.service.createReservation({ network: 'six', node: 'host1', family: 4 }), vxnetError('bad_request', /IPv6 subnets only/));
    await assert.rejects(m.service.createReservation({ network: 'dual', node: 'host1', ip: '10.5.0.9', family: 6 }), vxnetError('bad_request', /not an IPv6 address/));
    await assert.rejects(m.service.createReservation({ network: 'dual', node: 'host1', ip: 'fd00:9::5' }), vxnetError('address_outside_subnet'));
    await assert.rejects(m.service.createReservation({ network: 'dual', node: 'host1', ip: 'fd00:5::1' }), vxnetError('address_reserved'));
    await assert.rejects(m.service.createReservation({ network: 'dual', node: 'host1', ip: 'fd00::5::1' }), vxnetError('invalid_address'));
    await assert.rejects(m.service.deleteReservation('dual', 'nope', { node: 'host1' }), vxnetError('invalid_address'));
    assert.deepEqual(m.service.listReservations(), []);
  });

  test('a dual-stack Docker endpoint adopts both reservations; deleting it keeps both reserved; each release frees its own', async (t) => {
    const m = await openDual();
    t.after(() => m.close());
    const r4 = await m.service.createReservation({ network: 'dual', node: 'host1' });
    const r6 = await m.service.createReservation({ network: 'dual', node: 'host1', ip: 'fd00:5::30' });
    const ep = await m.service.createEndpoint({ network: 'dual', node: 'host1', docker: DOCKER_EP, ip: r4.ip, ip6: 'fd00:5:0::30', reserved: true });
    assert.deepEqual(ep.addresses, [
      { ip: '10.5.0.2', prefix: 24, gateway: '10.5.0.1' },
      { ip: 'fd00:5::30', prefix: 64, gateway: 'fd00:5::1' },
    ]);
    assert.deepEqual(m.service.listReservations().map((r) => [r.ip, r.endpoint]), [['10.5.0.2', ep.id], ['fd00:5::30', ep.id]]);
    await m.service.deleteEndpoint(ep.id);
    for (const ip of [r4.ip, r6.ip]) {
      await assert.rejects(m.service.createReservation({ network: 'dual', node: 'host2', ip }), vxnetError('address_in_use'), ip);
    }
    await m.service.deleteReservation('dual', r6.ip, { node: 'host1' });
    assert.equal((await m.service.createReservation({ network: 'dual', node: 'host2', ip: 'fd00:5::30' })).ip, 'fd00:5::30');
    await assert.rejects(m.service.createReservation({ network: 'dual', node: 'host2', ip: r4.ip }), vxnetError('address_in_use'));
  });

  test('releasing one family while the endpoint lives deletes the endpoint and keeps the other family reserved', async (t) => {
    const m = await openDual();
    t.after(() => m.close());
    const r4 = await m.service.createReservation({ network: 'dual', node: 'host1' });
    const r6 = await m.service.createReservation({ network: 'dual', node: 'host1', family: 6 });
    const ep = await m.service.createEndpoint({ network: 'dual', node: 'host1', docker: DOCKER_EP, ip: r4.ip, ip6: r6.ip, reserved: true });
    await m.service.deleteReservation('dual', r4.ip, { node: 'host1' });
    assert.equal(m.service.listEndpoints().some((e) => e.id === ep.id), false);
    assert.deepEqual(m.service.listReservations().map((r) => r.ip), [r6.ip]);
    await assert.rejects(m.service.createReservation({ network: 'dual', node: 'host2', ip: r6.ip }), vxnetError('address_in_use'));
    await m.service.deleteReservation('dual', r6.ip, { node: 'host1' });
    assert.deepEqual(m.service.listReservations(), []);
    assert.equal((await m.service.createEndpoint({ network: 'dual', node: 'host2', netns: 'c2', ip: r4.ip })).ip, r4.ip);
  });

  test('an endpoint whose IPv6 reservation is missing or another node\'s is refused, and adopts nothing', async (t) => {
    const m = await openDual();
    t.after(() => m.close());
    const r4 = await m.service.createReservation({ network: 'dual', node: 'host1' });
    const other6 = await m.service.createReservation({ network: 'dual', node: 'host2', family: 6 });
    await assert.rejects(
      m.service.createEndpoint({ network: 'dual', node: 'host1', docker: DOCKER_EP, ip: r4.ip, ip6: other6.ip, reserved: true }),
      vxnetError('reservation_not_found', /not reserved by node host1/),
    );
    await assert.rejects(
      m.service.createEndpoint({ network: 'dual', node: 'host1', docker: DOCKER_EP, ip: r4.ip, ip6: 'fd00:5::99', reserved: true }),
      vxnetError('reservation_not_found'),
    );
    await assert.rejects(m.service.createEndpoint({ network: 'dual', node: 'host1', netns: 'c1', ip6: 'fd00:5::9' }), vxnetError('bad_request', /goes with an IPv4 "ip"/));
    await assert.rejects(m.service.createEndpoint({ network: 'four', node: 'host1', netns: 'c1', ip: '10.4.0.9', ip6: 'fd00:5::9' }), vxnetError('address_outside_subnet'));
    assert.deepEqual(m.service.listEndpoints(), []);
    assert.equal(m.service.listReservations().every((r) => r.endpoint === undefined), true);
    // a chosen IPv6 address beside an IPv4 one (no reservation): taken as asked
    const ep = await m.service.createEndpoint({ network: 'dual', node: 'host1', netns: 'c1', ip: '10.5.0.40', ip6: 'fd00:5::40' });
    assert.deepEqual(ep.addresses?.map((a) => a.ip), ['10.5.0.40', 'fd00:5::40']);
  });
});
