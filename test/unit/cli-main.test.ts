import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Endpoint } from '../../src/core/model.ts';
import { runCli, stubManager } from './support/cli.ts';
import { blueEndpoint, blueNetwork } from './support/fixtures.ts';

const TOKEN = 'admin-token-xyz';

interface Seen {
  method: string;
  url: string;
  body: string;
}

type Route = (res: http.ServerResponse, body: string, url: URL) => void;

const seen: Seen[] = [];
const routes = new Map<string, Route>();
const stub = stubManager((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'http://stub');
    seen.push({ method: req.method ?? '', url: req.url ?? '', body });
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      return json(res, 401, { error: { code: 'unauthorized', message: 'the token is missing or unknown.' } });
    }
    const route = routes.get(`${req.method} ${url.pathname}`);
    if (!route) return json(res, 404, { error: { code: 'not_found', message: 'no such route.' } });
    route(res, body, url);
  });
});

function json(res: http.ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(value));
}

function run(argv: string[], options: { env?: Record<string, string>; signal?: AbortSignal } = {}) {
  const env = options.env ?? { VXNET_MANAGER: stub.url(), VXNET_TOKEN: TOKEN };
  return runCli(argv, env, { now: () => new Date('2024-05-01T12:00:00.000Z'), ...(options.signal ? { signal: options.signal } : {}) });
}

const blue = blueNetwork('2024-05-01T10:00:00.000Z');

const endpoint = blueEndpoint({ id: 'ep-1', node: 'h1', netns: '/run/netns/c1', host: 2, createdAt: '2024-05-01T10:00:00.000Z' });

beforeEach(() => {
  seen.length = 0;
  routes.clear();
});

describe('vxnet main against a stub manager', () => {
  test('network ls prints a table, or the API JSON with --json', async () => {
    routes.set('GET /v1/networks', (res) => json(res, 200, [blue]));
    const table = await run(['network', 'ls']);
    assert.equal(table.code, 0);
    assert.equal(table.stderr, '');
    assert.match(table.stdout, /^NAME +VNI +SUBNETS/);
    assert.match(table.stdout, /\nblue +1000 +192\.168\.1\.0\/24 +1450/);
    const asJson = await run(['network', 'ls', '--json']);
    assert.deepEqual(JSON.parse(asJson.stdout), [blue]);
  });

  test('network create sends the request and prints the created network', async () => {
    routes.set('POST /v1/networks', (res) => json(res, 201, blue));
    const out = await run(['network', 'create', 'blue', '--vni', '1000', '--subnet', '192.168.1.0/24', '--gateway', '192.168.1.1']);
    assert.equal(out.code, 0);
    assert.deepEqual(JSON.parse(seen[0]!.body), { name: 'blue', vni: 1000, subnets: [{ cidr: '192.168.1.0/24', gateway: '192.168.1.1' }] });
    assert.equal(out.stdout, 'created network blue: vni 1000, subnet 192.168.1.0/24 (gateway 192.168.1.1), mtu 1450\n');
  });

  test('a manager error is one line on stderr and exit 1', async () => {
    routes.set('POST /v1/networks', (res) =>
      json(res, 409, { error: { code: 'vni_in_use', message: 'VNI 1000 is already used by network red.' } }),
    );
    const out = await run(['network', 'create', 'blue', '--vni', '1000']);
    assert.deepEqual(out, { code: 1, stdout: '', stderr: 'vxnet: VNI 1000 is already used by network red.\n' });
  });

  test('network inspect prints JSON; network rm --force sends force', async () => {
    routes.set('GET /v1/networks/blue', (res) => json(res, 200, { ...blue, endpoints: [endpoint] }));
    const inspect = await run(['network', 'inspect', 'blue']);
    assert.equal(inspect.code, 0);
    assert.deepEqual(JSON.parse(inspect.stdout).endpoints, [endpoint]);
    routes.set('DELETE /v1/networks/blue', (res) => res.writeHead(204).end());
    const rm = await run(['network', 'rm', 'blue', '--force']);
    assert.deepEqual(rm, { code: 0, stdout: '', stderr: '' });
    assert.equal(seen.at(-1)!.url, '/v1/networks/blue?force=true');
  });

  test('node ls shows state and how long ago the node was seen', async () => {
    routes.set('GET /v1/nodes', (res) =>
      json(res, 200, [
        { name: 'h1', address: '10.0.0.1', mtu: 1500, registeredAt: 'x', state: 'up', lastSeen: '2024-05-01T11:59:55.000Z', reconciledRevision: 3 },
      ]),
    );
    const out = await run(['node', 'ls']);
    assert.equal(out.stdout, 'NAME   ADDRESS    MTU    STATE   LAST-SEEN\nh1     10.0.0.1   1500   up      5s ago\n');
  });

  test('attach waits 30 s by default and prints the address', async () => {
    routes.set('POST /v1/endpoints', (res) => json(res, 201, endpoint));
    const out = await run(['attach', 'blue', '--node', 'h1', '--netns', 'c1']);
    assert.deepEqual(out, { code: 0, stdout: '192.168.1.2/24\n', stderr: '' });
    assert.equal(seen[0]!.url, '/v1/endpoints?wait=30');
    assert.deepEqual(JSON.parse(seen[0]!.body), { network: 'blue', node: 'h1', netns: 'c1' });
    const asJson = await run(['attach', 'blue', '--node', 'h1', '--netns', 'c1', '--timeout', '5', '--json']);
    assert.equal(seen.at(-1)!.url, '/v1/endpoints?wait=5');
    assert.deepEqual(JSON.parse(asJson.stdout), endpoint);
  });

  test("attach that the agent fails prints the manager's sentence and exits 1", async () => {
    routes.set('POST /v1/endpoints', (res) =>
      json(res, 422, { error: { code: 'attach_failed', message: 'node h1 could not attach: netns /run/netns/c1 does not exist.' } }),
    );
    const out = await run(['attach', 'blue', '--node', 'h1', '--netns', 'c1']);
    assert.deepEqual(out, { code: 1, stdout: '', stderr: 'vxnet: node h1 could not attach: netns /run/netns/c1 does not exist.\n' });
  });

  test('detach finds the endpoint by its normalised netns and deletes it with a wait', async () => {
    const other: Endpoint = { ...endpoint, id: 'ep-2', ifname: 'net1' };
    routes.set('GET /v1/endpoints', (res) => json(res, 200, [other, endpoint]));
    routes.set('DELETE /v1/endpoints/ep-1', (res) => res.writeHead(204).end());
    const out = await run(['detach', 'blue', '--node', 'h1', '--netns', 'c1']);
    assert.deepEqual(out, { code: 0, stdout: '', stderr: '' });
    assert.deepEqual(
      seen.map((s) => `${s.method} ${s.url}`),
      ['GET /v1/endpoints?network=blue&node=h1', 'DELETE /v1/endpoints/ep-1?wait=30'],
    );
  });

  test('detach with no matching endpoint says so and exits 1', async () => {
    routes.set('GET /v1/endpoints', (res) => json(res, 200, [endpoint]));
    const out = await run(['detach', 'blue', '--node', 'h1', '--netns', '/proc/7/ns/net']);
    assert.equal(out.code, 1);
    assert.equal(out.stderr, 'vxnet: network blue has no endpoint on node h1 in /proc/7/ns/net with interface eth0.\n');
    assert.equal(seen.length, 1);
  });

  test('endpoint ls passes its filters', async () => {
    routes.set('GET /v1/endpoints', (res) => json(res, 200, [endpoint]));
    const out = await run(['endpoint', 'ls', '--node', 'h1']);
    assert.equal(out.code, 0);
    assert.equal(seen[0]!.url, '/v1/endpoints?node=h1');
    assert.match(out.stdout, /ep-1 +blue +h1 +\/run\/netns\/c1 +eth0 +192\.168\.1\.2\/24/);
  });

  test('a wrong token is exit 1 and the token is never printed', async () => {
    const out = await run(['network', 'ls', '--token', 'wrong-token-999']);
    assert.equal(out.code, 1);
    assert.equal(out.stderr, 'vxnet: the token is missing or unknown.\n');
    assert.ok(!out.stderr.includes('wrong-token-999') && !out.stdout.includes('wrong-token-999'));
  });

  test('usage errors exit 2 before any request', async () => {
    const missing = await run(['network', 'ls'], { env: { VXNET_TOKEN: TOKEN } });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /^vxnet: no manager given: pass --manager URL or set VXNET_MANAGER/);
    const badNumber = await run(['network', 'create', 'x', '--mtu', '1400.5']);
    assert.deepEqual(badNumber, { code: 2, stdout: '', stderr: 'vxnet: --mtu must be a whole number, not "1400.5".\n' });
    assert.equal(seen.length, 0);
  });

  test('an unreachable manager is exit 1 with "cannot reach the manager"', async () => {
    const out = await run(['node', 'ls'], { env: { VXNET_MANAGER: 'unix:/nonexistent/vxnet.sock', VXNET_TOKEN: TOKEN } });
    assert.deepEqual(out, { code: 1, stdout: '', stderr: 'vxnet: cannot reach the manager at unix:/nonexistent/vxnet.sock: ENOENT\n' });
  });

  test('an interrupt while waiting is exit 130', async () => {
    routes.set('POST /v1/endpoints', () => {});
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const out = await run(['attach', 'blue', '--node', 'h1', '--netns', 'c1'], { signal: controller.signal });
    assert.deepEqual(out, { code: 130, stdout: '', stderr: 'vxnet: interrupted.\n' });
  });

  test('help and version go to stdout with exit 0', async () => {
    const help = await run(['--help'], { env: {} });
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: vxnet COMMAND/);
    const version = await run(['version'], { env: {} });
    assert.match(version.stdout, /^vxnet \d+\.\d+\.\d+\n$/);
  });
});

describe('bin/vxnet', () => {
  const bin = fileURLToPath(new URL('../../bin/vxnet', import.meta.url));

  function exec(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      // nothing of the test's environment but PATH, and Node's compile cache when the suite has one (it changes only how fast)
      const cache = process.env['NODE_COMPILE_CACHE'];
      const env = { PATH: process.env['PATH'] ?? '', ...(cache ? { NODE_COMPILE_CACHE: cache } : {}) };
      execFile(bin, args, { env }, (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      });
    });
  }

  test('sets the exit status and prints one error line', async () => {
    assert.deepEqual(await exec(['frobnicate']), {
      code: 2,
      stdout: '',
      stderr: 'vxnet: unknown command "frobnicate"; run "vxnet --help" for the list of commands.\n',
    });
    const version = await exec(['version']);
    assert.equal(version.code, 0);
    assert.match(version.stdout, /^vxnet /);
  });

  test('talks to a manager given by flags', async () => {
    routes.set('GET /v1/networks', (res) => json(res, 200, []));
    const out = await exec(['network', 'ls', '--manager', stub.url(), '--token', TOKEN]);
    assert.deepEqual(out, { code: 0, stdout: 'NAME   VNI   SUBNETS   MTU   PORT   INTERNAL   MULTICAST\n', stderr: '' });
  });
});

describe('lazy loading', () => {
  test('client commands load neither the manager, the agent nor the demo', async () => {
    // A fresh process records every module it resolves while running `vxnet network ls` and `vxnet version`.
    const script = `
      import { registerHooks } from 'node:module';
      const loaded = [];
      registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); loaded.push(r.url); return r; } });
      const { main } = await import(${JSON.stringify(new URL('../../src/cli/main.ts', import.meta.url).href)});
      const io = { stdout() {}, stderr() {} };
      await main(['network', 'ls', '--manager', 'unix:/nonexistent/vxnet.sock', '--token', 't'], {}, io);
      await main(['version'], {}, io);
      console.log(JSON.stringify(loaded));
    `;
    const loaded = await new Promise<string[]>((resolve, reject) => {
      execFile(process.execPath, ['--input-type=module', '-e', script], (err, stdout) => {
        if (err) reject(err);
        else resolve(JSON.parse(stdout) as string[]);
      });
    });
    assert.ok(loaded.some((url) => url.endsWith('/src/client/client.ts')));
    const heavy = loaded.filter((url) => /\/src\/(manager|agent|demo|testkit)\//.test(url));
    assert.deepEqual(heavy, []);
  });
});
