/**
 * The CLI's cache of the pinned cluster CA (src/client/ca-cache.ts) against a real https manager: a second
 * client with the same cache never asks for the CA again, and a cached file that is not the pinned CA is
 * ignored (fetched and replaced), so the cache adds no trust.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ManagerClient } from '../../src/client/client.ts';
import { defaultCaCacheDir } from '../../src/client/ca-cache.ts';
import { type RunningManager, startManager } from '../../src/manager/main.ts';
import { parseToken } from '../../src/pki/token.ts';
import { startTlsManager } from './support/manager.ts';

/** How many `GET /v1/ca` the manager answered, from its own Prometheus counter. */
async function caFetches(manager: RunningManager): Promise<number> {
  const text = await (await fetch(`http://${manager.metricsAddress}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('vxnet_manager_http_requests_total{') && line.includes('/v1/ca"')) total += Number(line.split(' ').at(-1));
  }
  return total;
}

async function listWith(url: string, token: string, caCacheDir: string): Promise<void> {
  const client = new ManagerClient({ url, token, caCacheDir });
  try {
    assert.deepEqual(await client.listNetworks(), []);
  } finally {
    client.close();
  }
}

describe('the pinned CA cache', () => {
  let dir: string;
  let manager: RunningManager;
  let url: string;
  let other: RunningManager;

  before(async () => {
    ({ dir, manager, url } = await startTlsManager('vxnet-ca-cache-', { metricsListen: '127.0.0.1:0' }));
    other = await startManager({ dataDir: join(dir, 'other'), listen: [`unix:${join(dir, 'o.sock')}`] });
  });
  after(async () => {
    await other.close();
    await manager.close();
  });

  test('the first client fetches the CA and keeps it; the next one uses it without asking', async () => {
    const cache = join(dir, 'cache-1');
    const before = await caFetches(manager);
    await listWith(url, manager.tokens.admin, cache);
    assert.equal(await caFetches(manager), before + 1);
    const digest = parseToken(manager.tokens.admin)!.caDigest;
    assert.equal(readFileSync(join(cache, `ca-${digest}.pem`), 'utf8'), manager.caCertificate);
    await listWith(url, manager.tokens.admin, cache);
    await listWith(url, manager.tokens.admin, cache);
    assert.equal(await caFetches(manager), before + 1, 'no second GET /v1/ca');
  });

  test('a cached file that is not the pinned CA is ignored, fetched again and replaced', async () => {
    const cache = join(dir, 'cache-2');
    const digest = parseToken(manager.tokens.admin)!.caDigest;
    mkdirSync(cache, { recursive: true });
    // another cluster's CA under this cluster's digest: trusting it would let that cluster's certificates pass
    writeFileSync(join(cache, `ca-${digest}.pem`), other.caCertificate);
    const before = await caFetches(manager);
    await listWith(url, manager.tokens.admin, cache);
    assert.equal(await caFetches(manager), before + 1);
    assert.equal(readFileSync(join(cache, `ca-${digest}.pem`), 'utf8'), manager.caCertificate);
  });

  test('an unwritable cache folder only costs the fetch', async () => {
    const notAFolder = join(dir, 'a-file');
    writeFileSync(notAFolder, '');
    const before = await caFetches(manager);
    await listWith(url, manager.tokens.admin, join(notAFolder, 'cache'));
    await listWith(url, manager.tokens.admin, join(notAFolder, 'cache'));
    assert.equal(await caFetches(manager), before + 2);
  });

  test('the CLI keeps it under XDG_CACHE_HOME, else ~/.cache', () => {
    assert.equal(defaultCaCacheDir({ XDG_CACHE_HOME: '/x', HOME: '/h' }), '/x/vxnet');
    assert.equal(defaultCaCacheDir({ HOME: '/h' }), '/h/.cache/vxnet');
    assert.equal(defaultCaCacheDir({}), undefined);
  });
});
