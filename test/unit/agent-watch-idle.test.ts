/**
 * A watch stream that goes silent (a manager unreachable without a reset, or one that restarted while
 * packets to it were dropped) is given up after `watchIdleMs` and opened again, keeping the kernel state
 * meanwhile; a stream that keeps delivering pings is never cut.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Agent, type AgentManagerApi } from '../../src/agent/agent.ts';
import type { Dataplane, DesiredState, ReconcileResult } from '../../src/agent/dataplane.ts';
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
const endpoint = (id: string, node: string, last: number): Endpoint => ({
  id,
  network: 'blue',
  node,
  netns: `/run/netns/${id}`,
  ifname: 'eth0',
  ip: `192.168.1.${last}`,
  prefix: 24,
  gateway: '192.168.1.1',
  mac: `02:78:c0:a8:01:0${last}`,
  status: 'ready',
  createdAt: '',
});

function harness(watch: AgentManagerApi['watch']) {
  const logs: string[] = [];
  const passes: DesiredState[] = [];
  const api: AgentManagerApi = {
    registerNode: async (req) => ({ ...req, registeredAt: '' }),
    heartbeat: async () => {},
    setEndpointStatus: async () => {},
    watch,
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
    watchIdleMs: 150,
  });
  return { agent, logs, passes };
}

/** Resolves when `signal` aborts, rejecting like the real client does. */
function untilAborted(signal: AbortSignal): Promise<void> {
  return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
}

describe('watch idle timeout', () => {
  it('gives up a silent stream, reconnects, and keeps the kernel state meanwhile', async () => {
    let watches = 0;
    const { agent, logs, passes } = harness(async (_node, onMessage, signal) => {
      watches++;
      if (watches === 1) {
        onMessage({ type: 'snapshot', revision: 5, nodes, networks: [blue], endpoints: [endpoint('aaaaaaaaaaaa', 'host1', 2)] });
        return untilAborted(signal); // then silence: no ping, no reset
      }
      onMessage({
        type: 'snapshot',
        revision: 9,
        nodes,
        networks: [blue],
        endpoints: [endpoint('aaaaaaaaaaaa', 'host1', 2), endpoint('bbbbbbbbbbbb', 'host2', 3)],
      });
      return untilAborted(signal);
    });
    const controller = new AbortController();
    const running = agent.run(controller.signal);
    for (let i = 0; i < 200 && agent.view.revision < 9; i++) await new Promise((r) => setTimeout(r, 10));
    await agent.idle();
    controller.abort();
    await running;

    assert.equal(watches, 2, logs.join('\n'));
    assert.ok(
      logs.some((l) => /^watch failed: the manager has sent nothing for 0\.15 s \(it pings every 10 s\); retrying in \d+ ms/.test(l)),
      logs.join('\n'),
    );
    assert.deepEqual(agent.view.endpoints.size, 2, 'the new snapshot arrived');
    assert.ok(passes.every((d) => d.endpoints.length === 1), 'the local endpoint was never dropped');
    assert.deepEqual(passes.at(-1)!.peers.map((p) => p.ip), ['192.168.1.3'], 'converged on the new peer');
  });

  it('keeps a stream that carries pings open', async () => {
    let watches = 0;
    const { agent, logs } = harness(async (_node, onMessage, signal) => {
      watches++;
      onMessage({ type: 'snapshot', revision: 5, nodes, networks: [blue], endpoints: [] });
      const timer = setInterval(() => onMessage({ type: 'ping', revision: 5 } satisfies WatchMessage), 50);
      return untilAborted(signal).finally(() => clearInterval(timer));
    });
    const controller = new AbortController();
    const running = agent.run(controller.signal);
    await new Promise((r) => setTimeout(r, 600));
    controller.abort();
    await running;
    assert.equal(watches, 1, logs.join('\n'));
    assert.equal(logs.filter((l) => /watch failed/.test(l)).length, 0);
  });

  it('keeps a stream open while bytes arrive, even when no whole message does (a long snapshot)', async () => {
    let watches = 0;
    const { agent, logs } = harness(async (_node, onMessage, signal, options) => {
      watches++;
      // 600 ms of a snapshot trickling in, four times the idle limit, then the whole line
      const timer = setInterval(() => options?.onData?.(), 50);
      await new Promise((r) => setTimeout(r, 600));
      clearInterval(timer);
      onMessage({ type: 'snapshot', revision: 5, nodes, networks: [blue], endpoints: [] });
      return untilAborted(signal);
    });
    const controller = new AbortController();
    const running = agent.run(controller.signal);
    await new Promise((r) => setTimeout(r, 700));
    const synced = agent.view.synced;
    controller.abort();
    await running;
    assert.equal(watches, 1, logs.join('\n'));
    assert.ok(synced, 'the snapshot arrived on the first stream');
  });
});

