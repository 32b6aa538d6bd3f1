/**
 * A watch stream that goes silent (a manager unreachable without a reset, or one that restarted while
 * packets to it were dropped) is given up after `watchIdleMs` and opened again, keeping the kernel state
 * meanwhile; a stream that keeps delivering pings is never cut.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AgentManagerApi } from '../../src/agent/agent.ts';
import { VxnetError } from '../../src/core/errors.ts';
import type { WatchMessage } from '../../src/core/model.ts';
import { agentOnStubs, blueEndpoint, blueNetwork, twoNodes } from './support/fixtures.ts';

const nodes = twoNodes;
const blue = blueNetwork('');
const endpoint = (id: string, node: string, host: number) => blueEndpoint({ id, node, netns: `/run/netns/${id}`, host, createdAt: '' });

function harness(watch: AgentManagerApi['watch']) {
  const api: AgentManagerApi = {
    registerNode: async (req) => ({ ...req, registeredAt: '' }),
    heartbeat: async () => {},
    setEndpointStatus: async () => {},
    watch,
  };
  return agentOnStubs(api, { watchIdleMs: 150 });
}

/** Settles when `signal` aborts (at once if it already has), rejecting like the real client does. */
function untilAborted(signal: AbortSignal): Promise<void> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
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
      // a stream the agent gave up delivers nothing more, as with the real client
      if (signal.aborted) throw signal.reason;
      onMessage({ type: 'snapshot', revision: 5, nodes, networks: [blue], endpoints: [] });
      return untilAborted(signal);
    });
    const controller = new AbortController();
    const running = agent.run(controller.signal);
    for (let i = 0; i < 300 && !agent.view.synced; i++) await new Promise((r) => setTimeout(r, 10));
    const synced = agent.view.synced;
    controller.abort();
    await running;
    assert.equal(watches, 1, logs.join('\n'));
    assert.ok(synced, 'the snapshot arrived on the first stream');
  });

  it('reconnects to a manager that went away within 1 s, however long it stays away', async () => {
    const started: number[] = [];
    const { agent, logs } = harness(async () => {
      started.push(performance.now());
      throw new Error('connect ECONNREFUSED');
    });
    const controller = new AbortController();
    const running = agent.run(controller.signal);
    for (let i = 0; i < 400 && started.length < 6; i++) await new Promise((r) => setTimeout(r, 10));
    controller.abort();
    await running;

    const ceilings = logs.flatMap((l) => /^watch failed: .*; retrying in (\d+) ms or less/.exec(l)?.[1] ?? []).map(Number);
    assert.deepEqual(ceilings.slice(0, 5), [100, 200, 400, 800, 1000], logs.join('\n'));
    const gaps = started.slice(1).map((t, i) => t - started[i]!);
    // timers fire a little late on a busy machine; a wait longer than the cap plus that would be a regression
    assert.ok(gaps.every((gap) => gap < 1_250), `waits between attempts: ${gaps.map((g) => g.toFixed(0)).join(', ')} ms`);
  });

  it('backs off up to 5 s from a manager that is up but fails the attempt (overloaded), and to 1 s again once it refuses', async () => {
    // the manager cut the TLS handshake (as under a thousand agents starting at once), then went down
    const failures = [...Array(6).fill('ECONNRESET'), 'ECONNREFUSED'];
    let attempts = 0;
    const { agent, logs } = harness(async () => {
      const code = failures[Math.min(attempts++, failures.length - 1)]!;
      throw new VxnetError('unavailable', `cannot reach the manager at https://127.0.0.1:1: ${code}`, { cause: Object.assign(new Error(code), { code }) });
    });
    const controller = new AbortController();
    const running = agent.run(controller.signal);
    for (let i = 0; i < 2_000 && attempts < failures.length + 1; i++) await new Promise((r) => setTimeout(r, 10));
    controller.abort();
    await running;

    const ceilings = logs.flatMap((l) => /^watch failed: .*; retrying in (\d+) ms or less/.exec(l)?.[1] ?? []).map(Number);
    assert.deepEqual(ceilings.slice(0, 7), [100, 200, 400, 800, 1600, 3200, 1000], logs.join('\n'));
  });
});
