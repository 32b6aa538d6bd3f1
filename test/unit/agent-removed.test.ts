/**
 * The agent of a node that was removed from the cluster (its watch now fails with node_not_found): it says
 * so in its log, keeps its view and its kernel state as they are (no pass with an emptied desired state),
 * does not re-register on its own, and keeps asking with the longest back-off.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Agent, type AgentManagerApi } from '../../src/agent/agent.ts';
import type { Dataplane, DesiredState, ReconcileResult } from '../../src/agent/dataplane.ts';
import { VxnetError } from '../../src/core/errors.ts';
import type { Endpoint, Network, Node, WatchMessage } from '../../src/core/model.ts';

const nodes: Node[] = [
  { name: 'host1', address: '10.99.0.11', mtu: 1500, registeredAt: '' },
  { name: 'host2', address: '10.99.0.12', mtu: 1500, registeredAt: '' },
];
const blue: Network = {
  name: 'blue',
  vni: 1000,
  subnets: [{ cidr: '192.168.1.0/24', gateway: '192.168.1.1' }],
  mtu: 1450,
  port: 4789,
  internal: false,
  createdAt: '',
};
const endpoints: Endpoint[] = [
  ['aaaaaaaaaaaa', 'host1', '192.168.1.2'],
  ['bbbbbbbbbbbb', 'host2', '192.168.1.3'],
].map(([id, node, ip]) => ({
  id: id!,
  network: 'blue',
  node: node!,
  netns: `/run/netns/${id}`,
  ifname: 'eth0',
  ip: ip!,
  prefix: 24,
  gateway: '192.168.1.1',
  mac: `02:78:c0:a8:01:0${ip!.slice(-1)}`,
  status: 'ready',
  createdAt: '',
}));

describe('agent of a removed node', () => {
  it('logs that the node is no longer registered and keeps its state instead of tearing it down', async () => {
    const logs: string[] = [];
    const passes: DesiredState[] = [];
    let registrations = 0;
    let watches = 0;
    const api: AgentManagerApi = {
      registerNode: async (req) => {
        registrations++;
        return { ...req, registeredAt: '' };
      },
      heartbeat: async () => {
        throw new VxnetError('node_not_found', 'node host1 is not registered.');
      },
      setEndpointStatus: async () => {},
      watch: async (_node, onMessage) => {
        watches++;
        if (watches === 1) {
          const snapshot: WatchMessage = { type: 'snapshot', revision: 7, nodes, networks: [blue], endpoints };
          onMessage(snapshot);
          return; // the manager ends the stream: the node was removed
        }
        throw new VxnetError('node_not_found', 'node host1 is not registered.');
      },
    };
    const dataplane: Dataplane = {
      reconcile: async (desired): Promise<ReconcileResult> => {
        passes.push(desired);
        return { changes: 0, endpointErrors: new Map(), readyEndpoints: new Set(desired.endpoints.map((e) => e.id)) };
      },
    };
    const agent = new Agent({
      api,
      dataplane,
      self: { name: 'host1', address: '10.99.0.11', underlayDevice: 'eth0' },
      underlayMtu: 1500,
      log: (line) => logs.push(line),
    });
    const controller = new AbortController();
    const running = agent.run(controller.signal);
    for (let i = 0; i < 100 && !logs.some((l) => /no longer registered/.test(l)); i++) await new Promise((r) => setTimeout(r, 10));
    await agent.idle();
    controller.abort();
    await running;

    const removed = logs.filter((l) => /no longer registered/.test(l));
    assert.equal(removed.length, 1, logs.join('\n'));
    assert.match(removed[0]!, /^node host1 is no longer registered with the manager .*kernel state is left as it is/);
    assert.equal(registrations, 1, 'it does not re-register on its own');
    assert.ok(passes.length >= 1);
    for (const desired of passes) {
      assert.deepEqual(desired.endpoints.map((e) => e.id), ['aaaaaaaaaaaa'], 'the local endpoint is kept');
      assert.deepEqual(desired.peers.map((p) => p.ip), ['192.168.1.3'], 'the peer entry is kept');
    }
    assert.equal(agent.view.endpoints.size, 2, 'the view is kept');
  });
});
