/**
 * An agent whose watch broke opens it again with the revision up to which it holds everything
 * (src/manager/watch-resume.ts), and a resumed stream changes its data plane only by what changed meanwhile.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { AgentManagerApi } from '../../src/agent/agent.ts';
import type { WatchOptions } from '../../src/agent/agent-options.ts';
import type { WatchMessage } from '../../src/core/model.ts';
import { agentOnStubs, blueEndpoint, blueNetwork, twoNodes } from './support/fixtures.ts';

const blue = blueNetwork('');
const endpoint = (id: string, node: string, host: number) => blueEndpoint({ id, node, netns: `/run/netns/${id}`, host, createdAt: '' });
const [a, b, c] = [endpoint('aaaaaaaaaaaa', 'host1', 2), endpoint('bbbbbbbbbbbb', 'host2', 3), endpoint('cccccccccccc', 'host2', 4)];

it('resumes from the revision it holds, keeps its data plane, and applies only what it missed', async () => {
  const calls: (WatchOptions | undefined)[] = [];
  const streams: WatchMessage[][] = [
    // a snapshot, a ping (everything up to 7 seen), then a change at 9 whose revision may have more lines
    [
      { type: 'snapshot', revision: 5, nodes: twoNodes, networks: [blue], endpoints: [a, b] },
      { type: 'ping', revision: 7 },
      { type: 'endpoint', revision: 9, endpoint: c },
    ],
    // resumed after 8: revision 9 again (nothing new in it), then what happened meanwhile
    [
      { type: 'endpoint', revision: 9, endpoint: c },
      { type: 'endpoint-deleted', revision: 11, id: b.id, network: 'blue' },
      { type: 'ping', revision: 12 },
    ],
  ];
  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));
  const watch: AgentManagerApi['watch'] = async (_node, onMessage, signal, options) => {
    calls.push(options);
    const stream = streams.shift();
    if (!stream) {
      done();
      await new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
      return;
    }
    for (const message of stream) onMessage(message);
    // the stream ends (the manager was killed): the agent reconnects
  };
  const api: AgentManagerApi = { registerNode: async (req) => ({ ...req, registeredAt: '' }), heartbeat: async () => {}, setEndpointStatus: async () => {}, watch };
  const { agent, logs, passes } = agentOnStubs(api);
  const controller = new AbortController();
  const running = agent.run(controller.signal);
  await finished;
  await agent.idle();
  controller.abort();
  await running;

  assert.equal(calls[0]?.since, undefined, 'the first watch asks for a snapshot');
  assert.equal(calls[1]?.since, 8, 'the second resumes after the last revision it holds whole');
  assert.equal(calls[2]?.since, 12, 'the third after the ping');
  assert.ok(logs.some((l) => /^node host1 resumed its watch from revision 8 after [\d.]+ s: no snapshot needed$/.test(l)), logs.join('\n'));
  assert.deepEqual([...agent.view.endpoints.keys()].sort(), [a.id, c.id]);
  assert.ok(passes.every((d) => d.endpoints.length === 1), 'the local endpoint was never dropped');
  assert.deepEqual(passes.at(-1)!.peers.map((p) => p.ip), [c.ip]);
});
