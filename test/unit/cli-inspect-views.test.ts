/** The views of `vxnet node inspect` and `vxnet endpoint inspect`: peers per network, from the manager's lists. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { endpointView, nodeView } from '../../src/cli/commands/inspect-views.ts';
import type { Endpoint, Network, NodeStatus } from '../../src/core/model.ts';

const node = (name: string, address: string, state: 'up' | 'down' = 'up'): NodeStatus => ({ name, address, mtu: 1500, state, lastSeen: null, reconciledRevision: 3, registeredAt: '2026-12-05T04:00:00Z' });
const net = (name: string, vni: number) => ({ name, vni, port: 4789, mtu: 1450 }) as Network;
const ep = (id: string, network: string, on: string, ip: string): Endpoint =>
  ({ id, network, node: on, netns: `/run/netns/${id}`, ifname: 'eth0', ip, prefix: 24, gateway: '192.168.1.1', mac: '02:00:00:00:00:01', status: 'ready', createdAt: '2026-12-05T04:00:00Z' }) as Endpoint;

const nodes = [node('h1', '10.0.0.1'), node('h2', '10.0.0.2', 'down'), node('h3', '10.0.0.3')];
const networks = [net('blue', 1000), net('red', 2000)];
const endpoints = [ep('a', 'blue', 'h1', '192.168.1.2'), ep('b', 'blue', 'h2', '192.168.1.3'), ep('c', 'blue', 'h2', '192.168.1.4'), ep('d', 'red', 'h3', '192.168.2.2'), ep('e', 'red', 'h1', '192.168.2.3')];

describe('inspect views', () => {
  it('a node: its endpoints and, per network it is in, the other nodes with endpoints there', () => {
    const view = nodeView('h1', nodes, networks, endpoints)!;
    assert.deepEqual(view.endpoints.map((e) => [e.id, e.address, e.target]), [['a', '192.168.1.2/24', '/run/netns/a'], ['e', '192.168.2.3/24', '/run/netns/e']]);
    assert.deepEqual(view.networks, [
      { name: 'blue', vni: 1000, port: 4789, peers: [{ node: 'h2', address: '10.0.0.2', state: 'down', endpoints: 2 }] },
      { name: 'red', vni: 2000, port: 4789, peers: [{ node: 'h3', address: '10.0.0.3', state: 'up', endpoints: 1 }] },
    ]);
    assert.equal(nodeView('nosuch', nodes, networks, endpoints), undefined);
  });

  it('an endpoint: its node and network, and the peers of its network but its own node', () => {
    const view = endpointView('b', nodes, networks, endpoints)!;
    assert.deepEqual(view.node, { name: 'h2', address: '10.0.0.2', state: 'down', reconciledRevision: 3 });
    assert.deepEqual(view.network, { name: 'blue', vni: 1000, port: 4789, mtu: 1450 });
    assert.deepEqual(view.peers, [{ node: 'h1', address: '10.0.0.1', state: 'up', endpoints: 1 }]);
    assert.equal(endpointView('zzz', nodes, networks, endpoints), undefined);
  });
});
