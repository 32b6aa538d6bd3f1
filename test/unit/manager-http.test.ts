import assert from 'node:assert/strict';
import { rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { WatchMessage } from '../../src/core/model.ts';
import { type ApiContext, inject } from '../../src/manager/http.ts';
import { parseListen } from '../../src/http/server.ts';
import { generateKeyPair } from '../../src/pki/x509.ts';
import { type RunningManager, startManager } from '../../src/manager/main.ts';
import { temporaryDirectory } from './support/temporary.ts';
import { until } from './support/until.ts';

const tempDir = () => temporaryDirectory('vxnet-http-');

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: any;
}

function call(socketPath: string, method: string, path: string, token: string | undefined, body?: unknown): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const text = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (text !== undefined) headers['content-type'] = 'application/json';
    const req = request({ socketPath, method, path, headers }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (data += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: data ? JSON.parse(data) : undefined }));
    });
    req.on('error', reject);
    req.end(text);
  });
}

/** Opens the NDJSON watch stream; `next()` resolves with each message in order. */
function watch(socketPath: string, node: string, token: string) {
  const queue: WatchMessage[] = [];
  const waiting: ((m: WatchMessage) => void)[] = [];
  let contentType: string | undefined;
  const req = request({ socketPath, path: `/v1/agent/watch?node=${node}`, headers: { authorization: `Bearer ${token}` } }, (res) => {
    contentType = res.headers['content-type'];
    res.setEncoding('utf8');
    let buffer = '';
    res.on('data', (chunk: string) => {
      buffer += chunk;
      const lines = buffer.split('\n');
      buffer = lines.pop()!;
      for (const line of lines) {
        const msg = JSON.parse(line) as WatchMessage;
        const w = waiting.shift();
        if (w) w(msg);
        else queue.push(msg);
      }
    });
  });
  req.on('error', () => {});
  req.end();
  return {
    next: () => new Promise<WatchMessage>((resolve) => (queue.length > 0 ? resolve(queue.shift()!) : waiting.push(resolve))),
    contentType: () => contentType,
    close: () => req.destroy(),
  };
}

describe('HTTP API', () => {
  let manager: RunningManager;
  let ctx: ApiContext;
  let socket: string;
  let admin: string;
  let worker: string;

  before(async () => {
    const dir = tempDir();
    socket = join(dir, 'manager.sock');
    writeFileSync(socket, ''); // a leftover regular file must not be deleted
    await assert.rejects(startManager({ dataDir: join(dir, 'data'), listen: [`unix:${socket}`] }), /not a socket/);
    rmSync(socket);
    manager = await startManager({ dataDir: join(dir, 'data'), listen: [`unix:${socket}`, '127.0.0.1:0'], pingIntervalMs: 50 });
    ctx = { service: manager.service, hub: manager.hub, security: manager.security };
    admin = manager.tokens.admin;
    worker = manager.tokens.worker;
  });
  after(async () => {
    await manager.close();
  });

  test('listens on every address; the unix socket is mode 0600', () => {
    assert.equal(manager.addresses[0], `unix:${socket}`);
    assert.match(manager.addresses[1]!, /^127\.0\.0\.1:\d+$/);
    assert.equal(statSync(socket).mode & 0o777, 0o600);
  });

  test('401 without or with an unknown token, before anything is done', async () => {
    const rev = manager.service.state.revision;
    for (const token of [undefined, 'nope']) {
      const r = await inject(ctx, { method: 'POST', path: '/v1/networks', ...(token ? { token } : {}), body: { name: 'x' } });
      assert.equal(r.status, 401);
      assert.equal(r.body.error.code, 'unauthorized');
    }
    assert.equal((await inject(ctx, { method: 'GET', path: '/v1/nowhere' })).status, 401);
    assert.equal(manager.service.state.revision, rev);
  });

  test('403 for admin and agent routes with the worker token; a node certificate does what agents do', async () => {
    const rev = manager.service.state.revision;
    for (const [method, path] of [
      ['POST', '/v1/networks'],
      ['DELETE', '/v1/networks/x'],
      ['POST', '/v1/endpoints'],
      ['DELETE', '/v1/endpoints/abcdefabcdef'],
      ['POST', '/v1/nodes'],
      ['GET', '/v1/nodes'],
    ] as const) {
      const r = await inject(ctx, { method, path, token: worker, body: { name: 'x' } });
      assert.equal(r.status, 403, `${method} ${path}`);
      assert.equal(r.body.error.code, 'forbidden');
    }
    assert.equal(manager.service.state.revision, rev);
    const joined = await inject(ctx, {
      method: 'POST',
      path: '/v1/join',
      token: worker,
      body: { name: 'w1', publicKey: generateKeyPair().publicKey.export({ type: 'spki', format: 'pem' }) },
    });
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
    const certificate: string = joined.body.certificate;
    const reg = await inject(ctx, { method: 'POST', path: '/v1/nodes', certificate, body: { name: 'w1', address: '192.0.2.50', mtu: 1500 } });
    assert.equal(reg.status, 200);
    assert.equal(reg.body.name, 'w1');
    assert.equal((await inject(ctx, { method: 'POST', path: '/v1/nodes/w1/heartbeat', certificate, body: { reconciledRevision: 1 } })).status, 204);
    const nodes = await inject(ctx, { method: 'GET', path: '/v1/nodes', certificate });
    assert.equal(nodes.body.find((n: { name: string }) => n.name === 'w1').state, 'up');
    const info = await inject(ctx, { method: 'GET', path: '/v1/info', certificate });
    assert.deepEqual(info.body, { clusterId: manager.clusterId, revision: manager.service.state.revision });
  });

  test('strict bodies: bad JSON, wrong types, unknown and missing fields are 400 naming the field', async () => {
    const rev = manager.service.state.revision;
    const cases: [unknown, RegExp][] = [
      ['{"name": ', /not valid JSON/],
      ['', /must be a JSON object/],
      [[1, 2], /must be a JSON object/],
      [{ name: 'n', vni: '5' }, /"vni" must be an integer/],
      [{ name: 'n', internal: 'yes' }, /"internal" must be true or false/],
      [{ name: 'n', subnet: '10.0.0.0/24' }, /unknown field "subnet"/],
      [{ name: 'n', subnets: [{ cidr: '10.0.0.0/24', gw: '10.0.0.1' }] }, /unknown field "subnets\[0\]\.gw"/],
      [{ name: 'n', subnets: '10.0.0.0/24' }, /"subnets" must be an array/],
      [{ vni: 5 }, /"name" is required/],
      [{ name: 'n', mtu: null }, /"mtu" must be an integer/],
    ];
    for (const [body, pattern] of cases) {
      const r = await inject(ctx, { method: 'POST', path: '/v1/networks', token: admin, body });
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.body.error.code, 'bad_request');
      assert.match(r.body.error.message, pattern);
    }
    const hb = await inject(ctx, { method: 'POST', path: '/v1/nodes/w1/heartbeat', token: admin, body: { reconciledRevision: 1, extra: true } });
    assert.equal(hb.status, 400);
    const st = await inject(ctx, { method: 'PUT', path: '/v1/endpoints/abcdefabcdef/status', token: admin, body: { status: 'done' } });
    assert.equal(st.status, 400);
    const wait = await inject(ctx, { method: 'POST', path: '/v1/endpoints?wait=soon', token: admin, body: { network: 'a', node: 'b', netns: 'c' } });
    assert.equal(wait.status, 400);
    assert.match(wait.body.error.message, /"wait"/);
    assert.equal(manager.service.state.revision, rev);
  });

  test('bodies over 1 MiB get 413 with a JSON error, in-process and over the socket', async () => {
    const big = { name: 'n', padding: 'x'.repeat(1024 * 1024) };
    const r = await inject(ctx, { method: 'POST', path: '/v1/networks', token: admin, body: big });
    assert.equal(r.status, 413);
    assert.equal(r.body.error.code, 'payload_too_large');
    const real = await call(socket, 'POST', '/v1/networks', admin, big);
    assert.equal(real.status, 413);
    assert.equal(real.body.error.code, 'payload_too_large');
  });

  test('unknown routes and resources are 404 with the error JSON', async () => {
    const r = await inject(ctx, { method: 'GET', path: '/v1/nowhere', token: admin });
    assert.equal(r.status, 404);
    assert.equal(r.body.error.code, 'not_found');
    const n = await inject(ctx, { method: 'GET', path: '/v1/networks/ghost', token: admin });
    assert.deepEqual(n, { status: 404, body: { error: { code: 'network_not_found', message: 'network ghost does not exist.' } } });
  });

  test('over the unix socket: create a network, watch as an agent, attach an endpoint with wait', async () => {
    const created = await call(socket, 'POST', '/v1/networks', admin, { name: 'web' });
    assert.equal(created.status, 201);
    assert.equal(created.headers['content-type'], 'application/json; charset=utf-8');
    assert.equal(created.body.vni, 4097);
    const dup = await call(socket, 'POST', '/v1/networks', admin, { name: 'web' });
    assert.deepEqual([dup.status, dup.body.error.code], [409, 'network_exists']);

    assert.equal((await call(socket, 'POST', '/v1/nodes', admin, { name: 'agent1', address: '192.0.2.60', mtu: 1500 })).status, 200);
    const missing = await call(socket, 'GET', '/v1/agent/watch?node=ghost', admin);
    assert.equal(missing.status, 404);

    const stream = watch(socket, 'agent1', admin);
    const snapshot = await stream.next();
    assert.equal(stream.contentType(), 'application/x-ndjson');
    assert.equal(snapshot.type, 'snapshot');
    assert.ok(snapshot.type === 'snapshot' && snapshot.nodes.some((n) => n.name === 'agent1'));
    assert.ok(snapshot.type === 'snapshot' && snapshot.networks.length === 0);

    // the "agent" answers from the stream: the endpoint message carries the id to report ready
    const answering = (async () => {
      for (;;) {
        const msg = await stream.next();
        if (msg.type === 'endpoint' && msg.endpoint.status === 'pending') {
          const r = await call(socket, 'PUT', `/v1/endpoints/${msg.endpoint.id}/status`, admin, { status: 'ready' });
          assert.equal(r.status, 204);
          return msg;
        }
        assert.ok(msg.type === 'network' || msg.type === 'ping', `unexpected ${msg.type}`);
      }
    })();
    const ep = await call(socket, 'POST', '/v1/endpoints?wait=5', admin, { network: 'web', node: 'agent1', netns: 'c1' });
    assert.equal(ep.status, 201);
    assert.equal(ep.body.status, 'ready');
    assert.equal(ep.body.ip, '10.200.0.2');
    assert.equal((await answering).endpoint.id, ep.body.id);

    // pings keep flowing and carry the revision; status-only echo went to the own node
    let msg = await stream.next();
    while (msg.type === 'ping') msg = await stream.next();
    assert.equal(msg.type, 'endpoint');
    assert.equal(msg.type === 'endpoint' && msg.endpoint.status, 'ready');
    let ping = await stream.next();
    while (ping.type !== 'ping') ping = await stream.next();
    assert.equal(ping.revision, manager.service.state.revision);

    const list = await call(socket, 'GET', '/v1/endpoints?network=web', admin);
    assert.deepEqual(list.body.map((e: { id: string }) => e.id), [ep.body.id]);
    const detail = await call(socket, 'GET', '/v1/networks/web', admin);
    assert.equal(detail.body.endpoints.length, 1);

    const inUse = await call(socket, 'DELETE', '/v1/networks/web', admin);
    assert.deepEqual([inUse.status, inUse.body.error.code], [409, 'network_in_use']);
    const del = await call(socket, 'DELETE', `/v1/endpoints/${ep.body.id}?wait=0`, admin);
    assert.equal(del.status, 204);
    assert.equal(del.body, undefined);
    let forgotten = await stream.next();
    while (forgotten.type === 'ping') forgotten = await stream.next();
    assert.deepEqual(forgotten, { type: 'network-forgotten', revision: manager.service.state.revision, name: 'web' });
    assert.equal((await call(socket, 'DELETE', '/v1/networks/web?force=true', admin)).status, 204);
    stream.close();
    await until(() => manager.hub.sessionCount === 0, 'the manager to end the closed watch session');
    assert.equal(manager.hub.sessionCount, 0);
  });

  test('create with wait=0 answers at once with a pending endpoint; an agent error is 422 attach_failed', async () => {
    await call(socket, 'POST', '/v1/networks', admin, { name: 'db' });
    await call(socket, 'POST', '/v1/nodes', admin, { name: 'agent2', address: '192.0.2.61', mtu: 1500 });
    const quick = await call(socket, 'POST', '/v1/endpoints?wait=0', admin, { network: 'db', node: 'agent2', netns: 'q' });
    assert.deepEqual([quick.status, quick.body.status], [201, 'pending']);
    const stream = watch(socket, 'agent2', admin);
    const failing = (async () => {
      for (;;) {
        const msg = await stream.next();
        if (msg.type === 'endpoint' && msg.endpoint.netns === '/run/netns/bad') {
          await call(socket, 'PUT', `/v1/endpoints/${msg.endpoint.id}/status`, admin, { status: 'error', message: 'veth create failed' });
          return;
        }
      }
    })();
    const r = await call(socket, 'POST', '/v1/endpoints?wait=5', admin, { network: 'db', node: 'agent2', netns: 'bad' });
    await failing;
    stream.close();
    assert.equal(r.status, 422);
    assert.deepEqual(r.body.error, { code: 'attach_failed', message: 'attach failed on node agent2: veth create failed' });
    const left = await call(socket, 'GET', '/v1/endpoints?node=agent2', admin);
    assert.deepEqual(left.body.map((e: { netns: string }) => e.netns), ['/run/netns/q']);
  });
  test('a client that goes away during create-with-wait leaves no endpoint behind', async () => {
    await call(socket, 'POST', '/v1/networks', admin, { name: 'gone' });
    await call(socket, 'POST', '/v1/nodes', admin, { name: 'agent3', address: '192.0.2.62', mtu: 1500 });
    const req = request({
      socketPath: socket,
      method: 'POST',
      path: '/v1/endpoints?wait=30',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
    });
    req.on('error', () => {});
    req.end(JSON.stringify({ network: 'gone', node: 'agent3', netns: 'x' }));
    for (let i = 0; i < 100 && manager.service.listEndpoints({ network: 'gone' }).length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(manager.service.listEndpoints({ network: 'gone' }).length, 1);
    req.destroy();
    for (let i = 0; i < 100 && manager.service.listEndpoints({ network: 'gone' }).length > 0; i++) await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(manager.service.listEndpoints({ network: 'gone' }), []);
  });
});

describe('parseListen', () => {
  test('accepts ADDR:PORT, [V6]:PORT, :PORT and unix:/path; rejects the rest', () => {
    assert.deepEqual(parseListen('0.0.0.0:7400'), { kind: 'tcp', host: '0.0.0.0', port: 7400 });
    assert.deepEqual(parseListen('[::1]:7400'), { kind: 'tcp', host: '::1', port: 7400 });
    assert.deepEqual(parseListen(':7400'), { kind: 'tcp', host: undefined, port: 7400 });
    assert.deepEqual(parseListen('unix:/run/vxnet.sock'), { kind: 'unix', path: '/run/vxnet.sock' });
    for (const bad of ['7400', 'host:99999', 'unix:', 'a:b']) assert.throws(() => parseListen(bad));
  });
});
