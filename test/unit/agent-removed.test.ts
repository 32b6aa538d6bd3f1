/**
 * The agent of a node that was removed from the cluster (its watch now fails with node_not_found): it says
 * so in its log, keeps its view and its kernel state as they are (no pass with an emptied desired state),
 * does not re-register on its own, and keeps asking with the longest back-off.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AgentManagerApi } from '../../src/agent/agent.ts';
import { VxnetError } from '../../src/core/errors.ts';
import type { WatchMessage } from '../../src/core/model.ts';
import { agentOnStubs, blueEndpoint, blueNetwork, twoNodes } from './support/fixtures.ts';

const nodes = twoNodes;
const blue = blueNetwork('');
const endpoints = [
  blueEndpoint({ id: 'aaaaaaaaaaaa', node: 'host1', netns: '/run/netns/aaaaaaaaaaaa', host: 2, createdAt: '' }),
  blueEndpoint({ id: 'bbbbbbbbbbbb', node: 'host2', netns: '/run/netns/bbbbbbbbbbbb', host: 3, createdAt: '' }),
];

/**
 * A manager that hands the agent one snapshot and ends the stream, then refuses the node with `refusal` on
 * every heartbeat and every later watch; it counts the registrations.
 */
function removedNodeApi(refusal: VxnetError) {
  const calls = { registrations: 0, watches: 0 };
  const api: AgentManagerApi = {
    registerNode: async (req) => {
      calls.registrations++;
      return { ...req, registeredAt: '' };
    },
    heartbeat: async () => {
      throw refusal;
    },
    setEndpointStatus: async () => {},
    watch: async (_node, onMessage) => {
      calls.watches++;
      if (calls.watches === 1) {
        const snapshot: WatchMessage = { type: 'snapshot', revision: 7, nodes, networks: [blue], endpoints };
        onMessage(snapshot);
        return; // the manager ends the stream: the node was removed
      }
      throw refusal;
    },
  };
  return { api, calls };
}

/** Runs the agent of host1 on `api` until it logs that its node is no longer registered (or 1 s has passed). */
async function runUntilRemoved(api: AgentManagerApi) {
  const stubs = agentOnStubs(api);
  const controller = new AbortController();
  const running = stubs.agent.run(controller.signal);
  for (let i = 0; i < 100 && !stubs.logs.some((l) => /no longer registered/.test(l)); i++) await new Promise((r) => setTimeout(r, 10));
  await stubs.agent.idle();
  controller.abort();
  await running;
  return stubs;
}

describe('agent of a removed node', () => {
  it('logs that the node is no longer registered and keeps its state instead of tearing it down', async () => {
    const { api, calls } = removedNodeApi(new VxnetError('node_not_found', 'node host1 is not registered.'));
    const { agent, logs, passes } = await runUntilRemoved(api);

    const removed = logs.filter((l) => /no longer registered/.test(l));
    assert.equal(removed.length, 1, logs.join('\n'));
    assert.match(removed[0]!, /^node host1 is no longer registered with the manager .*kernel state is left as it is/);
    assert.equal(calls.registrations, 1, 'it does not re-register on its own');
    assert.ok(passes.length >= 1);
    for (const desired of passes) {
      assert.deepEqual(desired.endpoints.map((e) => e.id), ['aaaaaaaaaaaa'], 'the local endpoint is kept');
      assert.deepEqual(desired.peers.map((p) => p.ip), ['192.168.1.3'], 'the peer entry is kept');
    }
    assert.equal(agent.view.endpoints.size, 2, 'the view is kept');
  });
  it('says the node was removed with "vxnet node rm" when the manager refuses its certificate as revoked', async () => {
    const revoked = new VxnetError('certificate_revoked', 'the certificate of node host1 is revoked: the node was removed with "vxnet node rm"; join again with the worker token.');
    const { agent, logs } = await runUntilRemoved(removedNodeApi(revoked).api);
    const removed = logs.filter((l) => /no longer registered/.test(l));
    assert.equal(removed.length, 1, logs.join('\n'));
    assert.match(removed[0]!, /^node host1 is no longer registered with the manager: it was removed with "vxnet node rm" and its certificate is revoked; kernel state is left as it is; start the agent with the worker token to join again$/);
    assert.ok(!logs.some((l) => /^watch failed/.test(l)), 'not reported as an outage');
    assert.equal(agent.view.endpoints.size, 2, 'the view is kept');
  });
});
