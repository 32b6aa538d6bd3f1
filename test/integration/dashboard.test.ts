/**
 * `vxnet ui` against a real cluster (issue 16): the dashboard is served on loopback by the CLI, rendered in
 * headless Chromium (Debian's, driven by playwright-core), and its content asserted — hosts, networks,
 * endpoints, the peering between the hosts, the topology drawn in SVG — and kept as screenshots under
 * test-artifacts/ (ignored by git). It is live: a new endpoint appears and a stopped agent turns its host
 * and its peering down without a reload. The page's script runs under its Content-Security-Policy, so any
 * violation shows as a console error, which fails the test. Also: what the server refuses (no secret,
 * another Host, writes). Needs root (network namespaces).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { ManagerClient } from '../../src/client/client.ts';
import { createCluster, DEFAULT_CLI_PATH, type Cluster } from '../../src/testkit/cluster.ts';
import { isRoot } from '../../src/testkit/preflight.ts';
import { until } from './support/probes.ts';
import { attachWithApi } from './support/setup.ts';

const skip = isRoot() ? false : 'needs root (network namespaces)';
const ARTIFACTS = join(import.meta.dirname, '../../test-artifacts');

/** A raw GET (or another method) with a Host header of our choosing; status and headers. */
function raw(url: URL, options: { method?: string; host?: string } = {}): Promise<{ status: number; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: options.method ?? 'GET', headers: { host: options.host ?? url.host } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('vxnet ui: the dashboard in Chromium', { skip, concurrency: false }, () => {
  let cluster: Cluster;
  let client: ManagerClient;
  let ui: ChildProcess;
  let url: URL;
  let browser: Browser;
  let page: Page;
  const consoleErrors: string[] = [];

  const cells = (table: string) => page.$$eval(`#${table} tbody tr`, (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    cluster = await createCluster({ hosts: 2, outside: false, prefix: 'vxui', managerArgs: ['--node-down-after', '10'] });
    client = new ManagerClient({ url: cluster.manager.socketUrl, token: cluster.manager.adminToken });
    await client.createNetwork({ name: 'blue', vni: 1000, subnets: [{ cidr: '192.168.1.0/24' }] });
    await client.createNetwork({ name: 'red', vni: 1001, subnets: [{ cidr: '192.168.2.0/24' }] });
    await attachWithApi(cluster, client, [['c1', 'host1', 'blue'], ['c2', 'host2', 'blue'], ['c3', 'host2', 'red']]);
    ui = spawn(process.execPath, [DEFAULT_CLI_PATH, 'ui', '--listen', '127.0.0.1:0'], { env: { ...process.env, ...cluster.cliEnv() }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    ui.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
    ui.stderr!.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const printed = await until('vxnet ui prints its address', async () => /dashboard on (http:\/\/127\.0\.0\.1:\d+\/[A-Za-z0-9_-]+\/) \(Ctrl-C stops it\)/.exec(out)?.[1], 20_000);
    url = new URL(printed);
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    page.on('console', (message) => {
      if (message.type() === 'error') consoleErrors.push(message.text());
    });
    page.on('pageerror', (err) => consoleErrors.push(err.message));
  });

  after(async () => {
    await browser?.close();
    if (ui && ui.exitCode === null) {
      const exited = new Promise((resolve) => ui.once('exit', resolve));
      ui.kill('SIGINT');
      await exited;
    }
    client?.close();
    await cluster?.destroy();
  });

  it('shows hosts, networks, endpoints and the peering, with the topology drawn', async () => {
    await page.goto(url.href);
    await page.waitForSelector('#topology g[data-host="host2"]');
    assert.equal(await page.title(), 'vxnet dashboard');
    assert.deepEqual((await cells('hosts')).map((r) => [r[0], r[2], r[4]]), [['host1', 'up', '1'], ['host2', 'up', '2']]);
    assert.deepEqual((await cells('networks')).map((r) => [r[0], r[1], r[2], r[3]]), [['blue', '1000', '192.168.1.0/24', '2'], ['red', '1001', '192.168.2.0/24', '1']]);
    const endpoints = await cells('endpoints');
    assert.deepEqual(endpoints.map((r) => [r[1], r[2], r[5]]).sort(), [['blue', 'host1', 'ready'], ['blue', 'host2', 'ready'], ['red', 'host2', 'ready']]);
    assert.ok(endpoints.every((r) => /^192\.168\.[12]\.\d+$/.test(r[3]!)));
    assert.deepEqual((await cells('peerings')).map((r) => r.slice(0, 3)), [['host1 ↔ host2', 'blue', 'ok']]);
    // the drawing: two hosts, three endpoint dots, one peering line, all healthy
    assert.equal(await page.locator('#topology g[data-host]').count(), 2);
    assert.equal(await page.locator('#topology circle[data-endpoint][data-status="ready"]').count(), 3);
    assert.equal(await page.getAttribute('#topology line[data-peering="host1 host2"]', 'data-health'), 'ok');
    assert.match((await page.textContent('#cluster')) ?? '', /^cluster [0-9a-f-]+ · revision \d+$/);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });
    assert.deepEqual(consoleErrors, []);
  });

  it('is live: a new endpoint appears, and a stopped agent turns its host and peering down', async () => {
    await client.createEndpoint({ network: 'red', node: 'host1', netns: await cluster.addContainer('c4') }, { waitSeconds: 20 });
    await until('the new endpoint is drawn', async () => (await page.locator('#topology circle[data-endpoint]').count()) === 4, 10_000);
    assert.deepEqual((await cells('peerings')).map((r) => r.slice(0, 3)), [['host1 ↔ host2', 'blue, red', 'ok']]);

    await cluster.stopAgent(cluster.host(2));
    await page.waitForSelector('#topology g[data-host="host2"][data-health="down"]', { timeout: 25_000 });
    assert.equal(await page.getAttribute('#topology line[data-peering="host1 host2"]', 'data-health'), 'down');
    const peering = (await cells('peerings'))[0]!;
    assert.deepEqual(peering.slice(2), ['down', 'host2 is down.']);
    assert.deepEqual((await cells('hosts')).map((r) => [r[0], r[2]]), [['host1', 'up'], ['host2', 'down']]);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-host-down.png'), fullPage: true });
    assert.deepEqual(consoleErrors, []);
  });

  it('answers only with its secret, to its own Host, and only reads', async () => {
    const page = await raw(url);
    assert.equal(page.status, 200);
    assert.match(String(page.headers['content-security-policy']), /script-src 'self'/);
    assert.equal((await raw(new URL('/', url))).status, 404);
    assert.equal((await raw(new URL('/wrongsecretwrongsecret/', url))).status, 404);
    assert.equal((await raw(url, { host: 'attacker.example:80' })).status, 421);
    assert.equal((await raw(new URL('view.json', url), { method: 'POST' })).status, 405);
  });

  it('refuses a listen address that is not loopback, in one sentence', async () => {
    const result = await cluster.cli(['ui', '--listen', '0.0.0.0:7948']);
    assert.equal(result.code, 2);
    assert.equal(result.stderr, 'vxnet: --listen 0.0.0.0:7948 is not a loopback address: the dashboard is served on 127.0.0.1 or ::1 only.\n');
  });
});
