/**
 * The connection limits of the manager's TCP listeners (docs/security.md, "Connection limits"): a connection
 * must finish its TLS handshake and send its request head in bounded time, the listeners hold a bounded
 * number of connections, and none of it cuts a watch stream, which is a long-lived answer. The cap per
 * remote address exempts loopback, so it is proven in test/integration/security-connection-flood.test.ts.
 */
import assert from 'node:assert/strict';
import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { ManagerClient } from '../../src/client/client.ts';
import type { WatchMessage } from '../../src/core/model.ts';
import { type ManagerOptions, type RunningManager, startManager } from '../../src/manager/main.ts';
import { temporaryDirectory } from './support/temporary.ts';

function port(manager: RunningManager): number {
  return Number(manager.addresses.find((a) => a.startsWith('127.'))!.split(':')[1]);
}

/** Resolves with how long after `since` the socket closed (or `limitMs` if it did not by then). */
function closedAfter(socket: Socket, since: number, limitMs: number): Promise<number> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(limitMs), limitMs);
    socket.on('error', () => {});
    socket.resume(); // reads what the server sends last (a 408), so the close is seen
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(performance.now() - since);
    });
  });
}

/** A manager with its own temporary DATA_DIR, listening with TLS on a free loopback port, with these limits. */
function startOnLoopback(options: Pick<ManagerOptions, 'connectionLimits' | 'pingIntervalMs'>): Promise<RunningManager> {
  return startManager({ dataDir: temporaryDirectory('vxnet-limits-'), listen: ['127.0.0.1:0'], ...options });
}

function openIdle(manager: RunningManager): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connectTcp(port(manager), '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });
}

describe('manager connection timeouts', () => {
  let manager: RunningManager;
  before(async () => {
    manager = await startOnLoopback({
      pingIntervalMs: 100,
      connectionLimits: { handshakeTimeoutMs: 300, headersTimeoutMs: 500, requestTimeoutMs: 1_000 },
    });
  });
  after(() => manager.close());

  test('a connection that never completes its TLS handshake is closed after the handshake timeout', async () => {
    const started = performance.now();
    const socket = await openIdle(manager);
    const ms = await closedAfter(socket, started, 5_000);
    socket.destroy();
    assert.ok(ms >= 250 && ms < 2_000, `closed after ${Math.round(ms)} ms`);
  });

  test('a TLS connection that sends no request head is closed after the head timeout', async () => {
    const socket = connectTls({ host: '127.0.0.1', port: port(manager), rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    });
    const started = performance.now();
    // the timeout is checked once a second: 500 ms late at most, plus scheduling
    const ms = await closedAfter(socket, started, 5_000);
    socket.destroy();
    assert.ok(ms >= 400 && ms < 3_000, `closed after ${Math.round(ms)} ms`);
  });

  test('a watch stream outlives the handshake, head and request timeouts', async () => {
    const admin = new ManagerClient({ url: `https://${manager.addresses[0]}`, token: manager.tokens.admin });
    try {
      await admin.registerNode({ name: 'h1', address: '10.0.0.1', mtu: 1500 });
      const controller = new AbortController();
      const got: WatchMessage[] = [];
      const watching = admin.watch('h1', (m) => got.push(m), controller.signal);
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      controller.abort();
      await assert.rejects(watching, { name: 'AbortError' });
      assert.equal(got[0]?.type, 'snapshot');
      assert.ok(got.filter((m) => m.type === 'ping').length >= 10, `${got.length} messages`);
    } finally {
      admin.close();
    }
  });
});

describe('manager connection cap', () => {
  let manager: RunningManager;
  before(async () => {
    manager = await startOnLoopback({ connectionLimits: { maxConnections: 4, maxConnectionsPerAddress: 1 } });
  });
  after(() => manager.close());

  test('past the total cap new connections are closed at once; loopback is not capped per address; freed slots are reused', async () => {
    const held = await Promise.all([1, 2, 3, 4].map(() => openIdle(manager)));
    await new Promise((resolve) => setTimeout(resolve, 100)); // accepted by the server by now
    const states = held.map((socket) => closedAfter(socket, performance.now(), 300));
    const started = performance.now();
    const fifth = await openIdle(manager);
    const ms = await closedAfter(fifth, started, 2_000);
    assert.ok(ms < 1_000, `the connection over the cap closed after ${Math.round(ms)} ms`);
    assert.deepEqual(await Promise.all(states), [300, 300, 300, 300], 'the four within the cap stay open');
    held[0]!.destroy();
    held[1]!.destroy(); // the client fetches the CA on a connection of its own first
    await new Promise((resolve) => setTimeout(resolve, 100));
    const admin = new ManagerClient({ url: `https://${manager.addresses[0]}`, token: manager.tokens.admin });
    try {
      assert.deepEqual(await admin.listNetworks(), []);
    } finally {
      admin.close();
      for (const socket of held) socket.destroy();
    }
  });
});
