/**
 * ManagerClient.close ends every request not yet answered, also those still waiting for a pooled connection:
 * destroying the pool alone left them queued until their own timeout (bench/scale: a finished run stayed alive
 * for minutes on requests queued to a manager that had stopped).
 */
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { ManagerClient } from '../../src/client/client.ts';
import { VxnetError } from '../../src/core/errors.ts';

test('close ends the request in flight and the ones queued behind it, at once', async () => {
  const held: ServerResponse[] = [];
  const server = createServer((_req, res) => void held.push(res)); // answers nothing
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = new ManagerClient({ url, token: 'test', maxConnections: 1, timeoutMs: 60_000 });
  try {
    const requests = [client.info(), client.info(), client.info()];
    for (let i = 0; i < 100 && held.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(held.length, 1, 'one connection: the first request is at the server, the others wait for it');
    const started = performance.now();
    client.close();
    const outcomes = await Promise.allSettled(requests);
    assert.ok(performance.now() - started < 1000, 'ended at once, not at the 60 s timeout');
    for (const outcome of outcomes) {
      assert.equal(outcome.status, 'rejected');
      const err = (outcome as PromiseRejectedResult).reason as unknown;
      assert.ok(err instanceof VxnetError, String(err));
      assert.equal(err.code, 'unavailable');
    }
  } finally {
    for (const res of held) res.destroy();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});
