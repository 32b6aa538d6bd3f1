/** The dashboard's view (src/ui/view.ts): hosts with their endpoints, and the health of every path per network. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Info, NodeStatus } from '../../src/core/model.ts';
import { dashboardView } from '../../src/ui/view.ts';
import { blueEndpoint, networkRecord } from './support/fixtures.ts';

const NOW = new Date('2026-12-05T10:00:00Z');
const info: Info = { clusterId: 'c', revision: 9 } as Info;
const node = (name: string, state: NodeStatus['state'], tunnels?: NodeStatus['tunnels']): NodeStatus => ({
  name,
  address: `10.99.0.${name.slice(-1)}`,
  mtu: 1500,
  registeredAt: '',
  state,
  lastSeen: NOW.toISOString(),
  reconciledRevision: 9,
  ...(tunnels ? { tunnels } : {}),
});
const endpoints = [1, 2, 3].map((n) => blueEndpoint({ id: `e${n}`, node: `host${n}`, netns: `c${n}`, host: n + 1, createdAt: '' }));

describe('dashboard view', () => {
  it('lists every pair of hosts of a network once, ok while both are up, down when either is', () => {
    const view = dashboardView(info, [node('host1', 'up'), node('host2', 'up'), node('host3', 'down')], [networkRecord('blue', ['192.168.1.0/24'], { vni: 1000 })], endpoints, NOW);
    assert.deepEqual(view.networks[0]!.paths, [
      { a: 'host1', b: 'host2', health: 'ok' },
      { a: 'host1', b: 'host3', health: 'down' },
      { a: 'host2', b: 'host3', health: 'down' },
    ]);
    assert.deepEqual(view.networks[0]!.hosts, ['host1', 'host2', 'host3']);
    assert.deepEqual(view.hosts.map((h) => [h.name, h.endpoints.map((e) => e.ip)]), [['host1', ['192.168.1.2']], ['host2', ['192.168.1.3']], ['host3', ['192.168.1.4']]]);
    assert.equal(view.status.nodes.down, 1);
    assert.match(view.status.problems[0]!, /^node host3 is down/);
  });

  it('on an encrypted network, a path is ok only while a tunnel report says up and none says down', () => {
    const up = { up: true, latestHandshake: NOW.toISOString() };
    const nodes = [
      node('host1', 'up', [{ node: 'host2', ...up }, { node: 'host3', up: false, latestHandshake: null }]),
      node('host2', 'up', [{ node: 'host1', ...up }]),
      node('host3', 'up'),
    ];
    const view = dashboardView(info, nodes, [networkRecord('blue', ['192.168.1.0/24'], { vni: 1000, encrypted: true })], endpoints, NOW);
    assert.deepEqual(
      view.networks[0]!.paths.map((p) => p.health),
      ['ok', 'tunnel-down', 'tunnel-down'], // host1-host3 reported down; host2-host3 never reported
    );
    const plain = dashboardView(info, nodes, [networkRecord('blue', ['192.168.1.0/24'], { vni: 1000 })], endpoints, NOW);
    assert.deepEqual(plain.networks[0]!.paths.map((p) => p.health), ['ok', 'ok', 'ok']);
  });
});
