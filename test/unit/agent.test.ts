import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { networkRecord, runScriptedAgent, twoNodes } from './support/fixtures.ts';
import { until } from './support/until.ts';
import { desiredState } from '../../src/agent/desired.ts';
import { ClusterView } from '../../src/agent/view.ts';
import type { Endpoint, Network, Node, WatchMessage } from '../../src/core/model.ts';

const self = { name: 'host1', address: '10.99.0.11', underlayDevice: 'eth0' };
const nodes: Node[] = [...twoNodes, { name: 'host3', address: '10.99.0.13', mtu: 1500, registeredAt: '' }];
const blue: Network = networkRecord('blue', ['192.168.1.0/24', '192.168.10.0/24'], { vni: 1000 });

function endpoint(id: string, node: string, ip: string, network = 'blue'): Endpoint {
  const last = Number(ip.split('.')[3]);
  return {
    id,
    network,
    node,
    netns: `/run/netns/${id}`,
    ifname: 'eth0',
    ip,
    prefix: 24,
    gateway: ip.startsWith('192.168.10.') ? '192.168.10.1' : '192.168.1.1',
    mac: `02:78:c0:a8:01:${last.toString(16).padStart(2, '0')}`,
    status: 'pending',
    createdAt: '',
  };
}

function snapshot(endpoints: Endpoint[], revision = 10, networks: Network[] = [blue]): WatchMessage {
  return { type: 'snapshot', revision, nodes, networks, endpoints };
}

describe('desired state', () => {
  it('has no devices for a network without local endpoints (lazy)', () => {
    const view = new ClusterView();
    view.apply(snapshot([endpoint('aaaaaaaaaaaa', 'host2', '192.168.1.2')]));
    assert.deepEqual(desiredState(view, self), {
      networks: [], peers: [], floods: [], endpoints: [],
      // the VXLAN peer allow-list exists before the first network (see vxlan-filter.test.ts)
      vxlanFilter: { ports: [4789], allowedSources: ['10.99.0.12', '10.99.0.13'], underlayDevice: 'eth0' },
    });
  });

  it('programs one neighbour+FDB entry per remote endpoint and one flood entry per peer node', () => {
    const view = new ClusterView();
    view.apply(
      snapshot([
        endpoint('aaaaaaaaaaaa', 'host1', '192.168.1.2'),
        endpoint('bbbbbbbbbbbb', 'host2', '192.168.1.3'),
        endpoint('cccccccccccc', 'host2', '192.168.1.4'),
        endpoint('dddddddddddd', 'host3', '192.168.10.5'),
      ]),
    );
    const desired = desiredState(view, self);
    assert.equal(desired.networks.length, 1);
    const net = desired.networks[0]!;
    assert.equal(net.bridge, 'vxnb1000');
    assert.equal(net.vxlan, 'vxnv1000');
    assert.equal(net.localAddress, '10.99.0.11');
    assert.equal(net.gatewayMac, '02:78:c0:a8:01:01');
    assert.deepEqual(net.gatewayAddresses, ['192.168.1.1/24', '192.168.10.1/24']);
    assert.deepEqual(
      desired.peers.map((p) => `${p.ip}>${p.vtep}`).sort(),
      ['192.168.1.3>10.99.0.12', '192.168.1.4>10.99.0.12', '192.168.10.5>10.99.0.13'],
    );
    assert.deepEqual(desired.floods, [
      { vxlan: 'vxnv1000', vtep: '10.99.0.12' },
      { vxlan: 'vxnv1000', vtep: '10.99.0.13' },
    ]);
    assert.equal(desired.endpoints.length, 1);
    const local = desired.endpoints[0]!;
    assert.equal(local.address, '192.168.1.2/24');
    assert.equal(local.hostVeth, 'vxnhaaaaaaaaaa');
    assert.deepEqual(local.extraRoutes, ['192.168.10.0/24']);
    assert.equal(local.mtu, 1450);
  });

  it('uses the multicast group instead of flood entries when the network has one', () => {
    const view = new ClusterView();
    const endpoints = [endpoint('aaaaaaaaaaaa', 'host1', '192.168.1.2'), endpoint('bbbbbbbbbbbb', 'host2', '192.168.1.3')];
    view.apply(snapshot(endpoints, 1, [{ ...blue, multicastGroup: '239.1.1.1' }]));
    const desired = desiredState(view, self);
    assert.equal(desired.floods.length, 0);
    assert.equal(desired.networks[0]!.multicastGroup, '239.1.1.1');
    assert.equal(desired.networks[0]!.underlayDevice, 'eth0');
    assert.equal(desired.peers.length, 1);
  });

  it('forgets a network and its endpoints when told to', () => {
    const view = new ClusterView();
    view.apply(snapshot([endpoint('aaaaaaaaaaaa', 'host1', '192.168.1.2'), endpoint('bbbbbbbbbbbb', 'host2', '192.168.1.3')]));
    view.apply({ type: 'endpoint-deleted', revision: 11, id: 'aaaaaaaaaaaa', network: 'blue' });
    view.apply({ type: 'network-forgotten', revision: 12, name: 'blue' });
    assert.equal(view.endpoints.size, 0);
    assert.equal(view.networks.size, 0);
    assert.equal(view.revision, 12);
  });
});

describe('agent reconcile loop', () => {
  it('does not touch the data plane before the first snapshot', async () => {
    const { dataplane, agent, stop } = await runScriptedAgent();
    agent.schedule();
    await agent.idle();
    assert.equal(dataplane.calls.length, 0);
    await stop();
  });

  it('coalesces a burst of changes into few passes and reports statuses once', async () => {
    const { api, dataplane, agent, stop } = await runScriptedAgent();
    dataplane.delayMs = 20;
    dataplane.failures.set('/run/netns/ffffffffffff', 'network namespace /run/netns/ffffffffffff does not exist');
    api.push!(snapshot([]));
    for (let i = 0; i < 50; i++) {
      api.push!({ type: 'endpoint', revision: 11 + i, endpoint: endpoint(`e${String(i).padStart(11, '0')}`, 'host2', `192.168.1.${i + 2}`) });
    }
    api.push!({ type: 'endpoint', revision: 70, endpoint: endpoint('aaaaaaaaaaaa', 'host1', '192.168.1.100') });
    api.push!({ type: 'endpoint', revision: 71, endpoint: endpoint('ffffffffffff', 'host1', '192.168.1.101') });
    await until(() => agent.reconciledRevision === 71, 'reconciled revision 71');
    await agent.idle();
    assert.ok(dataplane.calls.length <= 3, `expected at most 3 passes, got ${dataplane.calls.length}`);
    const last = dataplane.calls.at(-1)!;
    assert.equal(last.peers.length, 50);
    assert.equal(last.floods.length, 1);
    await until(() => api.statuses.length === 2, 'two status reports');
    assert.deepEqual(
      api.statuses.map(([id, s]) => `${id}:${s.status}`).sort(),
      ['aaaaaaaaaaaa:ready', 'ffffffffffff:error'],
    );
    assert.match(api.statuses.find(([id]) => id === 'ffffffffffff')![1].message!, /does not exist/);
    await stop();
  });

  it('reports its revision at once on a new snapshot and when a local endpoint goes, otherwise on the tick', async () => {
    const { api, agent, stop } = await runScriptedAgent({ heartbeatIntervalMs: 60_000 });
    api.push!(snapshot([endpoint('aaaaaaaaaaaa', 'host1', '192.168.1.2')]));
    await until(() => api.heartbeats.includes(10), 'heartbeat after the first pass');
    // a remote endpoint coming and going: nobody waits on this node for it
    api.push!({ type: 'endpoint', revision: 11, endpoint: endpoint('bbbbbbbbbbbb', 'host2', '192.168.1.3') });
    api.push!({ type: 'endpoint-deleted', revision: 12, id: 'bbbbbbbbbbbb', network: 'blue' });
    await until(() => agent.reconciledRevision === 12, 'passes for the remote changes');
    await agent.idle();
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(api.heartbeats, [10]);
    // a local endpoint deleted: a delete with `wait` is answered when this node confirms
    api.push!({ type: 'endpoint-deleted', revision: 13, id: 'aaaaaaaaaaaa', network: 'blue' });
    await until(() => api.heartbeats.includes(13), 'heartbeat with the revision of the local delete');
    await stop();
  });

  it('keeps its view and reconnects with a fresh snapshot when the stream ends', async () => {
    const { api, dataplane, agent, stop } = await runScriptedAgent();
    api.push!(snapshot([endpoint('aaaaaaaaaaaa', 'host1', '192.168.1.2')]));
    await until(() => agent.reconciledRevision === 10, 'first pass');
    const passes = dataplane.calls.length;
    api.endStream();
    await until(() => api.watchCalls === 2, 'reconnect');
    assert.equal(dataplane.calls.length, passes, 'losing the stream must not cause a pass');
    assert.equal(agent.view.endpoints.size, 1, 'view is kept while disconnected');
    api.push!(snapshot([endpoint('aaaaaaaaaaaa', 'host1', '192.168.1.2')], 20));
    await until(() => agent.reconciledRevision === 20, 'pass after the new snapshot');
    await stop();
  });
});
