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
