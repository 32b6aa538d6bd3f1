import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { ManagerClient } from '../../src/client/client.ts';
import { parseManagerUrl } from '../../src/client/manager-url.ts';
import { VxnetError } from '../../src/core/errors.ts';
import type { WatchMessage } from '../../src/core/model.ts';
import { temporaryDirectory } from './support/temporary.ts';

const TOKEN = 'secret-token-123';

interface Seen {
  method: string;
  url: string;
  authorization: string | undefined;
  contentType: string | undefined;
  body: string;
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void;

/** A tiny manager stand-in: records every request and answers with the handler registered for "METHOD path". */
class StubServer {
  readonly seen: Seen[] = [];
  readonly routes = new Map<string, Handler>();
  readonly server: http.Server;

  constructor() {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        this.seen.push({
          method: req.method ?? '',
          url: req.url ?? '',
          authorization: req.headers.authorization,
          contentType: req.headers['content-type'],
          body,
        });
        const path = (req.url ?? '').split('?')[0];
        const handler = this.routes.get(`${req.method} ${path}`);
        if (!handler) return json(res, 404, { error: { code: 'not_found', message: `no route ${req.method} ${path}.` } });
        handler(req, res, body);
      });
    });
  }

  listen(target: number | string): Promise<void> {
    return new Promise((resolve) => {
      if (typeof target === 'number') this.server.listen(target, '127.0.0.1', resolve);
      else this.server.listen(target, resolve);
    });
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * Registers the calling suite's hooks: before its first test `stub` listens on `target` (a TCP port on
 * 127.0.0.1, or a unix socket path) and `connect` makes the client of its URL; after its last test both close.
 */
function serveSuite(stub: StubServer, target: number | string, connect: (url: string) => ManagerClient): void {
  let client: ManagerClient | undefined;
  before(async () => {
    await stub.listen(target);
    client = connect(typeof target === 'string' ? `unix:${target}` : `http://127.0.0.1:${stub.port}`);
  });
  after(async () => {
    client?.close();
    await stub.close();
  });
}

function json(res: http.ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

const network = {
  name: 'blue',
  vni: 4097,
  subnets: [{ cidr: '192.168.1.0/24', gateway: '192.168.1.1' }],
  mtu: 1450,
  port: 4789,
  internal: false,
  createdAt: '2024-01-01T00:00:00.000Z',
};

const endpoint = {
  id: 'ep-1',
  network: 'blue',
  node: 'h1',
  netns: '/run/netns/c1',
  ifname: 'eth0',
  ip: '192.168.1.2',
  prefix: 24,
  gateway: '192.168.1.1',
  mac: '02:78:c0:a8:01:02',
  status: 'ready',
  createdAt: '2024-01-01T00:00:00.000Z',
};

async function rejectsWith(promise: Promise<unknown>, code: string, message?: RegExp | string): Promise<VxnetError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof VxnetError, `expected a VxnetError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (typeof message === 'string') assert.equal(err.message, message);
    else if (message) assert.match(err.message, message);
    return err;
  }
  assert.fail('expected a rejection');
}

describe('parseManagerUrl', () => {
  test('accepts http://ADDR:PORT and both unix: spellings', () => {
    assert.deepEqual(parseManagerUrl('http://10.0.0.1:7946'), { kind: 'tcp', url: 'http://10.0.0.1:7946', host: '10.0.0.1', port: 7946 });
    assert.deepEqual(parseManagerUrl('http://127.0.0.1:80/'), { kind: 'tcp', url: 'http://127.0.0.1', host: '127.0.0.1', port: 80 });
    assert.deepEqual(parseManagerUrl('http://[::1]:9000'), { kind: 'tcp', url: 'http://[::1]:9000', host: '::1', port: 9000 });
    assert.deepEqual(parseManagerUrl('unix:/run/vxnet.sock'), { kind: 'unix', url: 'unix:/run/vxnet.sock', socketPath: '/run/vxnet.sock' });
    assert.deepEqual(parseManagerUrl('https://10.0.0.1:7400'), { kind: 'tls', url: 'https://10.0.0.1:7400', host: '10.0.0.1', port: 7400 });
    assert.deepEqual(parseManagerUrl('https://m.example'), { kind: 'tls', url: 'https://m.example', host: 'm.example', port: 443 });
    assert.deepEqual(parseManagerUrl('unix:///run/vxnet.sock'), { kind: 'unix', url: 'unix:///run/vxnet.sock', socketPath: '/run/vxnet.sock' });
  });

  test('rejects other forms with a sentence naming the accepted ones', () => {
    for (const url of ['', '10.0.0.1:7946', 'ftp://m', 'http://m:1/v1', 'https://m:1?x=1', 'unix:relative.sock', 'http://:1']) {
      assert.throws(
        () => parseManagerUrl(url),
        (err: unknown) => err instanceof VxnetError && err.code === 'bad_request' && /unix/.test(err.message) && err.message.endsWith('.'),
        url,
      );
    }
  });

  test('does not echo a URL that carries a credential', () => {
    assert.throws(
      () => parseManagerUrl('http://admin:hunter2@m:1'),
      (err: unknown) => err instanceof VxnetError && !err.message.includes('hunter2'),
    );
  });

  test('the constructor validates the URL and the token up front', () => {
    assert.throws(() => new ManagerClient({ url: 'nope', token: TOKEN }), { code: 'bad_request' });
    assert.throws(() => new ManagerClient({ url: 'http://127.0.0.1:1', token: '' }), { code: 'bad_request' });
    assert.throws(
      () => new ManagerClient({ url: 'http://127.0.0.1:1', token: 'bad token\n' }),
      (err: unknown) => err instanceof VxnetError && !err.message.includes('bad token'),
    );
  });
});

describe('ManagerClient over TCP', () => {
  const stub = new StubServer();
  let client: ManagerClient;
  serveSuite(stub, 0, (url) => (client = new ManagerClient({ url, token: TOKEN })));

  test('sends the bearer token and parses the answer', async () => {
    stub.routes.set('GET /v1/info', (_req, res) => json(res, 200, { clusterId: 'c-1', revision: 7 }));
    assert.deepEqual(await client.info(), { clusterId: 'c-1', revision: 7 });
    const last = stub.seen.at(-1)!;
    assert.equal(last.authorization, `Bearer ${TOKEN}`);
    assert.equal(last.method, 'GET');
  });

  test('reuses one keep-alive connection for consecutive requests', async () => {
    const sockets = new Set<unknown>();
    stub.routes.set('GET /v1/networks', (req, res) => {
      sockets.add(req.socket);
      json(res, 200, [network]);
    });
    for (let i = 0; i < 3; i++) assert.deepEqual(await client.listNetworks(), [network]);
    assert.equal(sockets.size, 1);
  });

  test('createNetwork posts the request as JSON', async () => {
    // a whole Network, as the manager answers: the client checks every answer against its schema
    stub.routes.set('POST /v1/networks', (_req, res, body) => json(res, 201, { ...network, name: JSON.parse(body).name }));
    const created = await client.createNetwork({ name: 'blue', subnets: [{ cidr: '192.168.1.0/24' }] });
    assert.equal(created.vni, 4097);
    const last = stub.seen.at(-1)!;
    assert.equal(last.contentType, 'application/json');
    assert.deepEqual(JSON.parse(last.body), { name: 'blue', subnets: [{ cidr: '192.168.1.0/24' }] });
  });

  test('names are escaped in paths and filters become query parameters', async () => {
    stub.routes.set('GET /v1/networks/a%2Fb', (_req, res) => json(res, 200, { ...network, endpoints: [] }));
    await client.inspectNetwork('a/b');
    stub.routes.set('GET /v1/endpoints', (_req, res) => json(res, 200, [endpoint]));
    assert.deepEqual(await client.listEndpoints({ network: 'blue', node: 'h 1' }), [endpoint]);
    assert.equal(stub.seen.at(-1)!.url, '/v1/endpoints?network=blue&node=h+1');
    await client.listEndpoints();
    assert.equal(stub.seen.at(-1)!.url, '/v1/endpoints');
  });

  test('removeNetwork sends force only when asked, and 204 resolves to nothing', async () => {
    stub.routes.set('DELETE /v1/networks/blue', (_req, res) => res.writeHead(204).end());
    assert.equal(await client.removeNetwork('blue'), undefined);
    assert.equal(stub.seen.at(-1)!.url, '/v1/networks/blue');
    await client.removeNetwork('blue', { force: true });
    assert.equal(stub.seen.at(-1)!.url, '/v1/networks/blue?force=true');
  });

  test('agent calls: register, heartbeat, endpoint status', async () => {
    stub.routes.set('POST /v1/nodes', (_req, res, body) => json(res, 200, { ...JSON.parse(body), registeredAt: 'now' }));
    stub.routes.set('POST /v1/nodes/h1/heartbeat', (_req, res) => res.writeHead(204).end());
    stub.routes.set('PUT /v1/endpoints/ep-1/status', (_req, res) => res.writeHead(204).end());
    const node = await client.registerNode({ name: 'h1', address: '10.0.0.1', mtu: 1500 });
    assert.equal(node.address, '10.0.0.1');
    await client.heartbeat('h1', { reconciledRevision: 3 });
    assert.deepEqual(JSON.parse(stub.seen.at(-1)!.body), { reconciledRevision: 3 });
    await client.setEndpointStatus('ep-1', { status: 'error', message: 'no such netns' });
    assert.deepEqual(JSON.parse(stub.seen.at(-1)!.body), { status: 'error', message: 'no such netns' });
    stub.routes.set('GET /v1/nodes', (_req, res) => json(res, 200, []));
    assert.deepEqual(await client.listNodes(), []);
  });

  test('createEndpoint and deleteEndpoint send ?wait (30 s unless told) and wait longer than the default timeout', async () => {
    const quick = new ManagerClient({ url: `http://127.0.0.1:${stub.port}`, token: TOKEN, timeoutMs: 100 });
    try {
      stub.routes.set('POST /v1/endpoints', (_req, res) => setTimeout(() => json(res, 201, endpoint), 300));
      stub.routes.set('DELETE /v1/endpoints/ep-1', (_req, res) => setTimeout(() => res.writeHead(204).end(), 300));
      assert.deepEqual(await quick.createEndpoint({ network: 'blue', node: 'h1', netns: 'c1' }, { waitSeconds: 1 }), endpoint);
      assert.equal(stub.seen.at(-1)!.url, '/v1/endpoints?wait=1');
      await quick.createEndpoint({ network: 'blue', node: 'h1', netns: 'c1' });
      assert.equal(stub.seen.at(-1)!.url, '/v1/endpoints?wait=30');
      await quick.deleteEndpoint('ep-1', { waitSeconds: 0 });
      assert.equal(stub.seen.at(-1)!.url, '/v1/endpoints/ep-1?wait=0');
      await assert.rejects(quick.deleteEndpoint('ep-1', { waitSeconds: -1 }), { code: 'bad_request' });
    } finally {
      quick.close();
    }
  });

  test('a manager error becomes a VxnetError with its code and sentence', async () => {
    stub.routes.set('POST /v1/networks', (_req, res) =>
      json(res, 409, { error: { code: 'subnet_overlap', message: 'subnet 10.0.0.0/24 overlaps network red.' } }),
    );
    const err = await rejectsWith(client.createNetwork({ name: 'x' }), 'subnet_overlap', 'subnet 10.0.0.0/24 overlaps network red.');
    assert.equal(err.status, 409);
  });

  test('an unknown error code becomes internal, keeping the sentence', async () => {
    stub.routes.set('GET /v1/nodes', (_req, res) => json(res, 418, { error: { code: 'teapot', message: 'I am a teapot.' } }));
    await rejectsWith(client.listNodes(), 'internal', 'I am a teapot.');
  });

  test('an error answer without a JSON body still gets a code and a sentence', async () => {
    stub.routes.set('GET /v1/nodes', (_req, res) => res.writeHead(502, { 'content-type': 'text/html' }).end('<h1>Bad gateway</h1>'));
    await rejectsWith(client.listNodes(), 'internal', /answered HTTP 502/);
    stub.routes.set('GET /v1/nodes', (_req, res) => res.writeHead(401).end());
    await rejectsWith(client.listNodes(), 'unauthorized', /answered HTTP 401/);
  });

  test('malformed JSON in a success answer is an internal error', async () => {
    stub.routes.set('GET /v1/nodes', (_req, res) => res.writeHead(200).end('[{'));
    await rejectsWith(client.listNodes(), 'internal', /malformed JSON/);
  });

  test('an answer that does not fit the API is an internal error naming the field, not a value taken on trust', async () => {
    stub.routes.set('GET /v1/nodes', (_req, res) => json(res, 200, [{ name: 'h1', address: '10.0.0.1', mtu: '1500', registeredAt: 'x', state: 'up', lastSeen: null, reconciledRevision: 0 }]));
    await rejectsWith(
      client.listNodes(),
      'internal',
      `the manager at http://127.0.0.1:${stub.port} answered GET /v1/nodes with a body that does not fit the API: field "[0].mtu" must be an integer, not string "1500".`,
    );
    stub.routes.set('GET /v1/networks', (_req, res) => json(res, 200, { ...network }));
    await rejectsWith(client.listNetworks(), 'internal', /GET \/v1\/networks with a body that does not fit the API: the response body must be an array, not an object\.$/);
    stub.routes.set('POST /v1/endpoints', (_req, res) => json(res, 201, { ...endpoint, status: 'done' }));
    await rejectsWith(
      client.createEndpoint({ network: 'blue', node: 'h1', netns: 'c1' }),
      'internal',
      /field "status" must be "pending", "ready" or "error", not string "done"\.$/,
    );
  });

  test('a field a newer manager adds does not fail the answer', async () => {
    stub.routes.set('GET /v1/endpoints/ep-1', (_req, res) => json(res, 200, { ...endpoint, colour: 'blue' }));
    stub.routes.set('GET /v1/endpoints', (_req, res) => json(res, 200, [{ ...endpoint, colour: 'blue' }]));
    const [listed] = await client.listEndpoints();
    assert.equal(listed?.id, 'ep-1');
  });

  test('a manager that does not answer in time gives a timeout error', async () => {
    const quick = new ManagerClient({ url: `http://127.0.0.1:${stub.port}`, token: TOKEN, timeoutMs: 200 });
    try {
      stub.routes.set('GET /v1/info', () => {});
      await rejectsWith(quick.info(), 'timeout', `the manager at http://127.0.0.1:${stub.port} did not answer within 0.2 s.`);
    } finally {
      quick.close();
    }
  });

  test('an aborted signal rejects with its reason and drops the request', async () => {
    stub.routes.set('GET /v1/info', () => {});
    const controller = new AbortController();
    const pending = client.info(controller.signal);
    setTimeout(() => controller.abort(), 50);
    await assert.rejects(pending, { name: 'AbortError' });
    const already = AbortSignal.abort(new Error('stop'));
    await assert.rejects(client.info(already), { message: 'stop' });
  });

  test('the connection closing mid-answer is reported as unavailable', async () => {
    stub.routes.set('GET /v1/nodes', (_req, res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('[');
      setTimeout(() => res.destroy(), 20);
    });
    await rejectsWith(client.listNodes(), 'unavailable', /cannot reach the manager/);
  });

  test('the token never appears in error messages', async () => {
    stub.routes.set('GET /v1/info', (_req, res) => json(res, 401, { error: { code: 'unauthorized', message: 'unknown token.' } }));
    const err = await rejectsWith(client.info(), 'unauthorized');
    assert.ok(!err.message.includes(TOKEN));
  });
});

describe('ManagerClient over a unix socket', () => {
  const stub = new StubServer();
  const dir = temporaryDirectory('vxnet-client-');
  const socketPath = join(dir, 'manager.sock');
  let client: ManagerClient;
  serveSuite(stub, socketPath, (url) => (client = new ManagerClient({ url, token: TOKEN })));

  test('talks HTTP over the socket', async () => {
    stub.routes.set('GET /v1/info', (_req, res) => json(res, 200, { clusterId: 'c-unix', revision: 1 }));
    assert.deepEqual(await client.info(), { clusterId: 'c-unix', revision: 1 });
    assert.equal(stub.seen.at(-1)!.authorization, `Bearer ${TOKEN}`);
  });

  test('a missing socket is unavailable, naming the URL and the errno', async () => {
    const missing = new ManagerClient({ url: `unix:${join(dir, 'nope.sock')}`, token: TOKEN });
    await rejectsWith(missing.info(), 'unavailable', `cannot reach the manager at unix:${join(dir, 'nope.sock')}: ENOENT`);
    missing.close();
  });
});

describe('ManagerClient connection errors', () => {
  test('connection refused is unavailable: "cannot reach the manager at URL: ECONNREFUSED"', async () => {
    const probe = http.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));
    const client = new ManagerClient({ url: `http://127.0.0.1:${port}`, token: TOKEN });
    const err = await rejectsWith(client.listNetworks(), 'unavailable', `cannot reach the manager at http://127.0.0.1:${port}: ECONNREFUSED`);
    assert.equal(err.status, 503);
    client.close();
  });
});

describe('ManagerClient.watch', () => {
  const stub = new StubServer();
  let client: ManagerClient;
  serveSuite(stub, 0, (url) => (client = new ManagerClient({ url, token: TOKEN, timeoutMs: 100 })));

  const snapshot: WatchMessage = { type: 'snapshot', revision: 1, nodes: [], networks: [], endpoints: [] };
  const nodeMsg: WatchMessage = {
    type: 'node',
    revision: 2,
    node: { name: 'hôte-ü', address: '10.0.0.2', mtu: 1500, registeredAt: 'x' },
  };
  const ping: WatchMessage = { type: 'ping', revision: 2 };

  /** The stub answers the watch with 200 and `text`, then ends the stream or, unless `end`, keeps it open. */
  function watchAnswers(text: string, { end }: { end: boolean }): void {
    stub.routes.set('GET /v1/agent/watch', (_req, res) => {
      res.writeHead(200);
      if (end) res.end(text);
      else res.write(text);
    });
  }

  /** `client.watch('h1')` until `signal` aborts it; `got` holds the messages it delivered so far. */
  function watchH1(signal = new AbortController().signal): { got: WatchMessage[]; watching: Promise<void> } {
    const got: WatchMessage[] = [];
    return { got, watching: client.watch('h1', (m) => got.push(m), signal) };
  }

  /** Writes `text` as separate chunks cut at the given byte offsets, a little apart in time. */
  function writeInPieces(res: http.ServerResponse, text: string, cuts: number[], end: boolean): void {
    const bytes = Buffer.from(text, 'utf8');
    const edges = [0, ...cuts, bytes.length];
    let i = 0;
    const next = (): void => {
      if (i >= edges.length - 1) {
        if (end) res.end();
        return;
      }
      res.write(bytes.subarray(edges[i], edges[i + 1]));
      i++;
      setTimeout(next, 5);
    };
    next();
  }

  test('delivers one message per NDJSON line even when lines and characters are split across chunks', async () => {
    const text = [snapshot, nodeMsg, ping].map((m) => JSON.stringify(m)).join('\n') + '\n\n';
    const accentAt = Buffer.from(text, 'utf8').indexOf(Buffer.from('ô', 'utf8'));
    const cuts = [3, 40, accentAt + 1, accentAt + 20, Buffer.byteLength(text) - 3];
    stub.routes.set('GET /v1/agent/watch', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      writeInPieces(res, text, cuts, true);
    });
    const got: WatchMessage[] = [];
    // Longer than the client's 100 ms request timeout: the watch has none.
    await client.watch('h 1', (m) => got.push(m), new AbortController().signal);
    assert.deepEqual(got, [snapshot, nodeMsg, ping]);
    assert.equal(stub.seen.at(-1)!.url, '/v1/agent/watch?node=h+1');
    assert.equal(stub.seen.at(-1)!.authorization, `Bearer ${TOKEN}`);
  });

  test('a last line without its newline is still delivered', async () => {
    watchAnswers(`${JSON.stringify(snapshot)}\n${JSON.stringify(ping)}`, { end: true });
    const { got, watching } = watchH1();
    await watching;
    assert.deepEqual(got, [snapshot, ping]);
  });

  test('outlives the request timeout and rejects with the reason when aborted', async () => {
    watchAnswers(`${JSON.stringify(snapshot)}\n`, { end: false });
    const controller = new AbortController();
    const { got, watching } = watchH1(controller.signal);
    await new Promise((resolve) => setTimeout(resolve, 250));
    controller.abort();
    await assert.rejects(watching, { name: 'AbortError' });
    assert.deepEqual(got, [snapshot]);
  });

  test('an already aborted signal rejects at once', async () => {
    await assert.rejects(client.watch('h1', () => {}, AbortSignal.abort()), { name: 'AbortError' });
  });

  test('an error answer is mapped like any other', async () => {
    stub.routes.set('GET /v1/agent/watch', (_req, res) =>
      json(res, 404, { error: { code: 'node_not_found', message: 'node h9 does not exist.' } }),
    );
    await rejectsWith(client.watch('h9', () => {}, new AbortController().signal), 'node_not_found', 'node h9 does not exist.');
  });

  test('a stream cut by the server rejects as unavailable', async () => {
    stub.routes.set('GET /v1/agent/watch', (_req, res) => {
      res.writeHead(200);
      res.write(`${JSON.stringify(snapshot)}\n{"type":"pi`);
      setTimeout(() => res.destroy(), 20);
    });
    const got: WatchMessage[] = [];
    await rejectsWith(client.watch('h1', (m) => got.push(m), new AbortController().signal), 'unavailable', /watch stream .* was cut/);
    assert.deepEqual(got, [snapshot]);
  });

  test('a malformed line rejects as internal', async () => {
    watchAnswers('{"type":"ping","revision":1}\nnot json\n', { end: false });
    await rejectsWith(client.watch('h1', () => {}, new AbortController().signal), 'internal', /malformed watch line/);
  });

  test('a line that does not fit its message type rejects as internal, naming the field', async () => {
    const bad = { ...snapshot, endpoints: [{ ...endpoint, ip: 3232235778 }] };
    watchAnswers(`${JSON.stringify(ping)}\n${JSON.stringify(bad)}\n`, { end: false });
    const { got, watching } = watchH1();
    await rejectsWith(
      watching,
      'internal',
      `the manager at http://127.0.0.1:${stub.port} sent a watch line that does not fit the API: field "endpoints[0].ip" must be a string, not number 3232235778.`,
    );
    assert.deepEqual(got, [ping]);
  });

  test('a line of a message type this client does not know is skipped (a newer manager may send it)', async () => {
    watchAnswers(`${JSON.stringify(snapshot)}\n{"type":"weather","revision":2,"sky":"blue"}\n${JSON.stringify(ping)}\n`, { end: true });
    const { got, watching } = watchH1();
    await watching;
    assert.deepEqual(got, [snapshot, ping]);
  });

  test('an exception thrown by onMessage ends the watch with that exception', async () => {
    watchAnswers(`${JSON.stringify(snapshot)}\n`, { end: false });
    await assert.rejects(
      client.watch('h1', () => {
        throw new Error('handler failed');
      }, new AbortController().signal),
      { message: 'handler failed' },
    );
  });

  test('an unreachable manager is unavailable', async () => {
    const dead = new ManagerClient({ url: 'unix:/nonexistent/vxnet.sock', token: TOKEN });
    await rejectsWith(dead.watch('h1', () => {}, new AbortController().signal), 'unavailable', /ENOENT/);
  });
});

describe('ManagerClient keep-alive', () => {
  test('a request on a pooled connection the server has dropped is retried once if idempotent', async () => {
    // Each connection answers its first request, then drops the next one unanswered: what a client sees
    // when the server closes an idle keep-alive connection just as the client reuses it.
    const perSocket = new WeakMap<object, number>();
    const server = http.createServer((req, res) => {
      const count = (perSocket.get(req.socket) ?? 0) + 1;
      perSocket.set(req.socket, count);
      if (count > 1) {
        req.socket.destroy();
        return;
      }
      req.resume();
      req.on('end', () => json(res, 200, { clusterId: 'c', revision: count }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const client = new ManagerClient({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, token: TOKEN });
    try {
      await client.info();
      assert.deepEqual(await client.info(), { clusterId: 'c', revision: 1 });
      // POST is not repeated: the manager may have acted on it.
      await rejectsWith(client.heartbeat('h1', { reconciledRevision: 1 }), 'unavailable', /ECONNRESET/);
    } finally {
      client.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
