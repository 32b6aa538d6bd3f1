/** --json is global: the commands that print nothing on success print a JSON result with it (issue 17). */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { runCli, stubManager } from './support/cli.ts';
import { blueEndpoint } from './support/fixtures.ts';

const TOKEN = 'admin-token-xyz';
const endpoint = blueEndpoint({ id: 'ep-1', node: 'h1', netns: '/run/netns/c1', host: 2, createdAt: '2024-05-01T10:00:00.000Z' });

const stub = stubManager((req, res) => {
  req.resume();
  req.on('end', () => {
    const route = `${req.method} ${new URL(req.url ?? '/', 'http://stub').pathname}`;
    const send = (status: number, body?: unknown) => {
      res.writeHead(status, body === undefined ? {} : { 'content-type': 'application/json' });
      res.end(body === undefined ? undefined : JSON.stringify(body));
    };
    if (route === 'DELETE /v1/networks/blue' || route === 'DELETE /v1/nodes/h1' || route === 'DELETE /v1/endpoints/ep-1') return send(204);
    if (route === 'GET /v1/endpoints') return send(200, [endpoint]);
    if (route === 'POST /v1/tokens/worker/rotate') return send(200, { role: 'worker', token: 'new-worker-token' });
    send(404, { error: { code: 'not_found', message: 'no such route.' } });
  });
});

const run = (argv: string[]) => runCli(argv, { VXNET_MANAGER: stub.url(), VXNET_TOKEN: TOKEN });

describe('--json on commands without a listing', () => {
  test('network rm and node rm print what they removed', async () => {
    assert.deepEqual(await run(['network', 'rm', 'blue', '--json']), { code: 0, stdout: '{\n  "removed": "blue"\n}\n', stderr: '' });
    assert.deepEqual(await run(['--json', 'node', 'rm', 'h1']), { code: 0, stdout: '{\n  "removed": "h1"\n}\n', stderr: '' });
    assert.deepEqual(await run(['network', 'rm', 'blue']), { code: 0, stdout: '', stderr: '' });
  });

  test('detach prints the endpoint it deleted', async () => {
    const out = await run(['detach', 'blue', '--node', 'h1', '--netns', 'c1', '--json']);
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(JSON.parse(out.stdout), { detached: 'ep-1', network: 'blue', node: 'h1' });
  });

  test('token rotate prints the API answer, role and token', async () => {
    const out = await run(['token', 'rotate', 'worker', '--json']);
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(JSON.parse(out.stdout), { role: 'worker', token: 'new-worker-token' });
    assert.equal((await run(['token', 'rotate', 'worker'])).stdout, 'new-worker-token\n');
  });
});
