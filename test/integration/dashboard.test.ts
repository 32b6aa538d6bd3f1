/**
 * The dashboard (`vxnet ui`, issue 16) against a real cluster, rendered by a real browser: three simulated
 * hosts, two networks, `vxnet ui` started as a user would, and Debian's chromium (headless, driven by
 * playwright-core) opening the URL it printed. The page must show every host, network and path; when an agent
 * stops, its host must turn down on the open page by itself (the event stream), and the paths through it
 * with it. A screenshot of each state is kept in test-artifacts/ (not committed) for a human to look at.
 *
 * Also the guards: a request without the session secret is refused, a foreign Host header is refused (DNS
 * rebinding), and a non-loopback --listen is refused before anything listens. Needs root and chromium.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ManagerClient } from '../../src/client/client.ts';
import { createCluster, DEFAULT_CLI_PATH, type Cluster } from '../../src/testkit/cluster.ts';
import { isRoot } from '../../src/testkit/preflight.ts';
import { start, type ChildProcessHandle } from '../../src/testkit/processes.ts';
import { attachWithApi } from './support/setup.ts';

type Browser = import('playwright-core').Browser;
type Page = import('playwright-core').Page;

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = resolve(import.meta.dirname, '../../test-artifacts');
const skip = !isRoot() ? 'needs root (network namespaces)' : !existsSync(CHROMIUM) ? 'needs chromium (setup.sh installs it)' : false;

describe('vxnet ui: the dashboard in a browser', { skip, concurrency: false }, () => {
  let cluster: Cluster;
  let client: ManagerClient;
  let ui: ChildProcessHandle;
  let url: string;
  let browser: Browser;
  let page: Page;

  before(async () => {
    cluster = await createCluster({ hosts: 3, prefix: 'vxui', managerArgs: ['--node-down-after', '10'] });
    client = new ManagerClient({ url: cluster.manager.socketUrl, token: cluster.manager.adminToken });
    await client.createNetwork({ name: 'blue', vni: 1000, subnets: [{ cidr: '192.168.1.0/24' }] });
    await client.createNetwork({ name: 'red', vni: 2000, subnets: [{ cidr: '192.168.2.0/24' }] });
    await attachWithApi(cluster, client, [
      ['b1', 'host1', 'blue'],
      ['b2', 'host2', 'blue'],
      ['b3', 'host3', 'blue'],
      ['r1', 'host1', 'red'],
      ['r2', 'host2', 'red'],
    ]);
    ui = start([process.execPath, DEFAULT_CLI_PATH, 'ui', '--listen', '127.0.0.1:0'], { label: 'vxnet ui', env: { ...process.env, ...cluster.cliEnv() } });
    url = /(http:\/\/127\.0\.0\.1:\d+\/\?session=\S+)/.exec(await ui.waitFor(/vxnet dashboard: http:/, 20_000))![1]!;
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 900, height: 1000 } });
    mkdirSync(ARTIFACTS, { recursive: true });
  });

  after(async () => {
    await browser?.close();
    await ui?.stop('SIGINT');
    client?.close();
    await cluster?.destroy();
  });

  it('draws every host, network and path of the cluster, with nothing reported wrong', async () => {
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    await page.goto(url);
    await page.waitForSelector('svg [data-host="host3"]', { timeout: 20_000 });
    for (const host of ['host1', 'host2', 'host3']) assert.equal(await page.getAttribute(`svg [data-host="${host}"]`, 'data-state'), 'up');
    const paths = await page.$$eval('svg line[data-path]', (lines) => lines.map((l) => `${l.getAttribute('data-path')} ${l.getAttribute('data-health')}`).sort());
    assert.deepEqual(paths, ['blue host1 host2 ok', 'blue host1 host3 ok', 'blue host2 host3 ok', 'red host1 host2 ok']);
    assert.match(await page.textContent('#summary') ?? '', /3 of 3 hosts up · 2 networks · 5 of 5 endpoints ready/);
    assert.equal((await page.textContent('#problems'))?.trim(), 'no problems found');
    assert.match(await page.textContent('[data-host-row="host1"]') ?? '', /blue 192\.168\.1\.2 .*red 192\.168\.2\.2/);
    assert.match(await page.textContent('[data-network-row="red"]') ?? '', /red2000192\.168\.2\.0\/24nohost1, host22/);
    // the Content-Security-Policy let the page's own script run and blocked nothing it needs
    assert.deepEqual(errors, []);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });
  });

  it('turns a host down on the open page when its agent stops, with the paths through it', async () => {
    await cluster.stopAgent(cluster.host(3));
    await page.waitForSelector('svg [data-host="host3"][data-state="down"]', { timeout: 30_000 });
    const health = await page.$$eval('svg line[data-path]', (lines) => Object.fromEntries(lines.map((l) => [l.getAttribute('data-path'), l.getAttribute('data-health')])));
    assert.deepEqual(health, { 'blue host1 host2': 'ok', 'blue host1 host3': 'down', 'blue host2 host3': 'down', 'red host1 host2': 'ok' });
    assert.match(await page.textContent('#problems') ?? '', /node host3 is down/);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-host-down.png'), fullPage: true });
  });

  it('refuses a request without the session secret, or for another host name', async () => {
    const base = url.slice(0, url.indexOf('/?'));
    const noSecret = await fetch(`${base}/`);
    assert.equal(noSecret.status, 403);
    const wrongSecret = await fetch(`${base}/events?session=${'x'.repeat(32)}`);
    assert.equal(wrongSecret.status, 403);
    // fetch will not forge a Host header: a raw request plays the rebound DNS name
    const { request } = await import('node:http');
    const status = await new Promise<number>((done, fail) => {
      const req = request(url, { headers: { host: 'attacker.example' } }, (res) => {
        res.resume();
        done(res.statusCode ?? 0);
      });
      req.on('error', fail);
      req.end();
    });
    assert.equal(status, 421);
  });

  it('refuses to listen beyond loopback', async () => {
    const result = await cluster.cli(['ui', '--listen', '0.0.0.0:7480']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^vxnet: --listen 0\.0\.0\.0:7480 is refused: the dashboard reads the cluster with your admin token, so it listens on loopback only/);
  });
});
