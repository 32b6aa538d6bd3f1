/**
 * The dashboard's view (src/ui/view.ts), pure: hosts with their health, peerings between hosts that share a
 * network judged from heartbeats, revisions and WireGuard tunnels, and a layout that stays inside the drawing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Endpoint, NetworkDetail, NodeStatus } from '../../src/core/model.ts';
import { BEHIND_TOLERANCE, dashboardView } from '../../src/ui/view.ts';

const node = (name: string, state: 'up' | 'down' = 'up', reconciledRevision = 100): NodeStatus => ({
  name, address: `10.0.0.${name.slice(-1)}`, mtu: 1500, registeredAt: 'T', state, lastSeen: '2026-01-01T00:00:00Z', reconciledRevision,
});
const ep = (id: string, network: string, nodeName: string): Endpoint => ({
  id, network, node: nodeName, netns: `/run/netns/${id}`, ifname: 'eth0', ip: `192.168.1.${id.length}`, prefix: 24, gateway: '192.168.1.1', mac: '02:00:00:00:00:01', status: 'ready', createdAt: 'T',
});
const net = (name: string, endpoints: Endpoint[], extra: Partial<NetworkDetail> = {}): NetworkDetail => ({
  name, vni: 1, subnets: [{ cidr: '192.168.1.0/24', gateway: '192.168.1.1' }], mtu: 1450, port: 4789, internal: false, createdAt: 'T', endpoints, ...extra,
});
const info = { clusterId: 'c', revision: 100 };
const now = new Date('2026-01-01T00:00:05Z');

describe('dashboardView', () => {
  it('a peering per pair of hosts sharing a network, ok while both are up and caught up', () => {
    const view = dashboardView(info, [node('h2'), node('h1'), node('h3')], [net('blue', [ep('a', 'blue', 'h1'), ep('bb', 'blue', 'h2')]), net('red', [ep('ccc', 'red', 'h2'), ep('dddd', 'red', 'h1')])], now);
    assert.deepEqual(view.hosts.map((h) => [h.name, h.health, h.endpoints]), [['h1', 'ok', 2], ['h2', 'ok', 2], ['h3', 'ok', 0]]);
    assert.deepEqual(view.peerings, [{ a: 'h1', b: 'h2', networks: ['blue', 'red'], health: 'ok', reason: '' }]);
    assert.notEqual(view.networks[0]!.color, view.networks[1]!.color);
    for (const p of [...view.hosts, ...view.endpoints]) assert.ok(p.x >= 0 && p.x <= view.width && p.y >= 0 && p.y <= view.height, JSON.stringify(p));
  });

  it('a host down takes its peerings down; one far behind degrades them; a tunnel without handshake too', () => {
    const nets = [net('blue', [ep('a', 'blue', 'h1'), ep('bb', 'blue', 'h2'), ep('ccc', 'blue', 'h3')])];
    const view = dashboardView(info, [node('h1'), node('h2', 'down'), node('h3', 'up', 100 - BEHIND_TOLERANCE - 1)], nets, now);
    assert.deepEqual(view.peerings.map((p) => [p.a, p.b, p.health, p.reason]), [
      ['h1', 'h2', 'down', 'h2 is down.'],
      ['h1', 'h3', 'degraded', 'h3 is 51 revisions behind.'],
      ['h2', 'h3', 'down', 'h2 is down; h3 is 51 revisions behind.'],
    ]);
    const encrypted = net('secret', [ep('a', 'secret', 'h1'), ep('bb', 'secret', 'h2')], { encrypted: true, tunnels: [{ from: 'h1', to: 'h2', up: false, latestHandshake: null }] });
    assert.deepEqual(dashboardView(info, [node('h1'), node('h2')], [encrypted], now).peerings[0]!.reason, 'the WireGuard tunnel from h1 to h2 has no recent handshake.');
  });
});
