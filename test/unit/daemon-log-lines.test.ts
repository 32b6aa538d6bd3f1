/**
 * The events an operator reads in the daemons' logs: the agent saying it is back after a manager outage and
 * that it stopped; the manager naming who it refused (401/403), from where, never with the token.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { AgentManagerApi } from '../../src/agent/agent.ts';
import { startManager } from '../../src/manager/main.ts';
import { agentOnStubs, blueNetwork, twoNodes } from './support/fixtures.ts';
import { temporaryDirectory } from './support/temporary.ts';

describe('agent log lines', () => {
  it('says how long the manager was away once a snapshot arrives again, and that it stopped', async () => {
    let watches = 0;
    const api: AgentManagerApi = {
      registerNode: async (req) => ({ ...req, registeredAt: '' }),
      heartbeat: async () => {},
      setEndpointStatus: async () => {},
      watch: async (_node, onMessage, signal) => {
        watches++;
        if (watches <= 2) throw new Error('connect ECONNREFUSED');
        onMessage({ type: 'snapshot', revision: 3, nodes: twoNodes, networks: [blueNetwork('')], endpoints: [] });
        await new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
      },
    };
    const { agent, logs } = agentOnStubs(api, {});
    const controller = new AbortController();
    const running = agent.run(controller.signal);
    for (let i = 0; i < 200 && !logs.some((l) => /reconnected/.test(l)); i++) await new Promise((r) => setTimeout(r, 10));
    controller.abort();
    await running;
    const back = logs.filter((l) => /reconnected/.test(l));
    assert.equal(back.length, 1, logs.join('\n'));
    assert.match(back[0]!, /^node host1 reconnected to the manager after \d+\.\d s$/);
    assert.equal(logs.at(-1), 'node host1: agent stopped (kernel state is left as it is)');
  });
});

describe('manager refusal log', () => {
  it('logs 401 and 403 as warnings with the caller and its address, never the token', async () => {
    const dir = temporaryDirectory();
    const socket = join(dir, 'm.sock');
    const lines: string[] = [];
    const manager = await startManager({ dataDir: join(dir, 'data'), listen: [`unix:${socket}`], log: (l) => lines.push(l) });
    const secret = 'VXN1-not-a-real-token-but-secret';
    try {
      assert.equal(await status(socket, 'GET', '/v1/networks?x=1', secret), 401);
      assert.equal(await status(socket, 'POST', '/v1/tokens/admin/rotate', manager.tokens.worker), 403);
      assert.equal(await status(socket, 'GET', '/v1/networks', manager.tokens.admin), 200);
    } finally {
      await manager.close();
    }
    const refused = lines.filter((l) => l.includes('refused'));
    assert.deepEqual(refused, [
      'warning: refused GET /v1/networks (401) from a bearer token that is not valid here at a local socket: ' +
        'this token was rotated or is unknown: use the current admin token (DATA_DIR/admin.token on the manager).',
      'warning: refused POST /v1/tokens/admin/rotate (403) from the worker token at a local socket: ' +
        'the worker token only admits POST /v1/join; POST /v1/tokens/admin/rotate needs a node certificate or the admin token.',
    ]);
    assert.ok(!refused.some((l) => l.includes(secret) || l.includes(manager.tokens.worker.slice(70))), refused.join('\n'));
  });
});

function status(socketPath: string, method: string, path: string, token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, headers: { authorization: `Bearer ${token}` } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
    req.end();
  });
}
