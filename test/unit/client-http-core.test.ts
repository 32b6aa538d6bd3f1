/**
 * The HTTP client core both clients share (src/http/client.ts): failures come out as HttpFailure kinds for
 * each client to word, a deadline covers queueing for a pooled connection, and a stream resolves at its head
 * without a deadline.
 */
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { HttpClient, HttpFailure, readBounded } from '../../src/http/client.ts';

describe('HttpClient', () => {
  const held: ServerResponse[] = [];
  const server = createServer((req, res) => {
    if (req.url === '/hold') return void held.push(res);
    if (req.url === '/stream') {
      res.writeHead(200);
      res.write('first\n');
      return void held.push(res);
    }
    res.end(`you asked ${req.method} ${req.url}`);
  });
  let client: HttpClient;

  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    client = new HttpClient({ target: { kind: 'tcp', host: '127.0.0.1', port }, maxSockets: 1, freeSocketTimeoutMs: 5_000 });
  });
  after(async () => {
    client.close();
    for (const res of held) res.destroy();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  test('answers whole; a request queued behind a held one times out on its own deadline', async () => {
    assert.deepEqual(await client.request({ method: 'GET', path: '/x', timeoutMs: 1_000 }), { status: 200, body: 'you asked GET /x' });
    const holding = client.request({ method: 'GET', path: '/hold', timeoutMs: 300 });
    const queued = client.request({ method: 'GET', path: '/y', timeoutMs: 150 });
    await assert.rejects(queued, (err: unknown) => err instanceof HttpFailure && err.kind === 'timeout');
    await assert.rejects(holding, (err: unknown) => err instanceof HttpFailure && err.kind === 'timeout');
  });

  test('an aborted signal rejects with its reason', async () => {
    await assert.rejects(client.request({ method: 'GET', path: '/x', timeoutMs: 1_000, signal: AbortSignal.abort(new Error('stop')) }), { message: 'stop' });
  });

  test('a stream resolves at its head, outside the pool and without a deadline', async () => {
    const res = await client.stream({ method: 'GET', path: '/stream' });
    const first = await new Promise<string>((resolve) => res.once('data', (chunk: Buffer) => resolve(chunk.toString())));
    assert.equal(first, 'first\n');
    // the pool (one connection) is free for requests meanwhile
    assert.equal((await client.request({ method: 'GET', path: '/z', timeoutMs: 1_000 })).status, 200);
    const cut = readBounded(res);
    res.destroy();
    await assert.rejects(cut, (err: unknown) => err instanceof HttpFailure && err.kind === 'transport');
  });

  test('an unreachable server is a transport failure with the errno', async () => {
    const dead = new HttpClient({ target: { kind: 'unix', socketPath: '/nonexistent/vxnet-test.sock' }, freeSocketTimeoutMs: 1_000 });
    await assert.rejects(
      dead.request({ method: 'GET', path: '/', timeoutMs: 1_000 }),
      (err: unknown) => err instanceof HttpFailure && err.kind === 'transport' && err.code === 'ENOENT',
    );
    dead.close();
  });
});
