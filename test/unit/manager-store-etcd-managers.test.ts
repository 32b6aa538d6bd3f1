/**
 * Several managers on one etcd (a real single-member etcd 3.4 on loopback): the first creates the cluster,
 * the others join with the admin token and get the same CA and tokens; uniqueness holds across managers
 * because it rests on etcd transactions; the CA key and the tokens are not in etcd in clear; a node heard by
 * one manager is up on all of them (shared-liveness.ts).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ManagerClient } from '../../src/client/client.ts';
import type { WatchMessage } from '../../src/core/model.ts';
import { type RunningManager, startManager } from '../../src/manager/main.ts';
import { EtcdStore } from '../../src/manager/store/etcd.ts';
import { LIVENESS_PREFIX } from '../../src/manager/shared-liveness.ts';
import { META_SECRETS } from '../../src/manager/store/shared-secrets.ts';
import { ETCD_BINARY, type EtcdCluster, startSingleEtcd } from '../../src/testkit/etcd.ts';
import { registerNodes } from './support/manager.ts';
import { temporaryDirectory } from './support/temporary.ts';

const skip = existsSync(ETCD_BINARY) ? undefined : `${ETCD_BINARY} is not installed (setup.sh installs it)`;

describe('several managers on one etcd', { ...(skip ? { skip } : {}) }, () => {
  let etcd: EtcdCluster;
  let scratch: string;
  let url: string;
  const running: RunningManager[] = [];
  let client: ManagerClient | undefined;
  const start = async (name: string, tokenFile?: string) => {
    const manager = await startManager({
      dataDir: join(scratch, name),
      listen: [`unix:${join(scratch, `${name}.sock`)}`, '127.0.0.1:0'],
      store: url,
      ...(tokenFile !== undefined ? { tokenFile } : {}),
    });
    running.push(manager);
    return manager;
  };

  before(async () => {
    scratch = temporaryDirectory('vxnet-etcd-managers-');
    etcd = await startSingleEtcd({ scratch });
    url = `etcd://${etcd.endpoints()[0]}`;
  });
  after(async () => {
    for (const m of running) await m.close();
    client?.close();
    await etcd.stop();
  });

  test('the first manager creates the cluster; another joins only with the admin token, and gets its CA and tokens', async () => {
    const a = await start('a');
    await assert.rejects(start('nobody'), /already holds vxnet cluster [0-9a-f]{16}…: give this manager the cluster's admin token with --token-file FILE/);
    const workerFile = join(scratch, 'a', 'worker.token');
    await assert.rejects(start('worker', workerFile), /is not the current admin token of the cluster in etcd/);
    const foreign = join(scratch, 'foreign.token');
    writeFileSync(foreign, `VXN1-${'ab'.repeat(32)}-${'a'.repeat(52)}\n`);
    await assert.rejects(start('foreign', foreign), /is of another cluster than the one in etcd/);

    const b = await start('b', join(scratch, 'a', 'admin.token'));
    assert.equal(b.caDigest, a.caDigest);
    assert.equal(b.clusterId, a.clusterId);
    for (const file of ['ca.pem', 'ca.key', 'admin.token', 'worker.token']) {
      assert.equal(readFileSync(join(scratch, 'b', file), 'utf8'), readFileSync(join(scratch, 'a', file), 'utf8'), file);
    }
    assert.equal(b.security.tokens.roleOf(a.tokens.worker), 'worker');
    assert.equal(a.security.tokens.roleOf(b.tokens.admin), 'admin');

    // what etcd holds reveals neither the CA key nor a token
    const raw = new EtcdStore({ endpoints: etcd.endpoints() });
    const record = (await raw.get(META_SECRETS))!.value;
    await raw.close();
    const caKey = readFileSync(join(scratch, 'a', 'ca.key'), 'utf8');
    assert.ok(!record.includes('PRIVATE KEY'));
    assert.ok(!record.includes(caKey.split('\n')[1]!));
    for (const token of [a.tokens.admin, a.tokens.worker]) assert.ok(!record.includes(token.slice(-52)), 'a token secret is in etcd in clear');

    // a rotation on one manager is followed by the other: new token accepted, old refused, file rewritten
    const rotated = a.security.tokens.rotate('worker');
    const deadline = Date.now() + 5000;
    while (b.security.tokens.roleOf(rotated) !== 'worker') {
      assert.ok(Date.now() < deadline, 'manager b never adopted the rotated worker token');
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(b.security.tokens.roleOf(a.tokens.worker), undefined);
    assert.equal(readFileSync(join(scratch, 'b', 'worker.token'), 'utf8').trim(), rotated);
  });

  test('concurrent writes through two managers: one network per name, unique addresses', async () => {
    const [a, b] = running as [RunningManager, RunningManager];
    await registerNodes(a.service, ['host1', 'host2']);
    const creates = await Promise.allSettled([
      a.service.createNetwork({ name: 'red', subnets: [{ cidr: '10.7.0.0/24' }] }),
      b.service.createNetwork({ name: 'red', subnets: [{ cidr: '10.8.0.0/24' }] }),
    ]);
    assert.equal(creates.filter((c) => c.status === 'fulfilled').length, 1);
    await b.service.state.waitFor(a.service.state.revision);
    const endpoints = await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        (i % 2 === 0 ? a : b).service.createEndpoint({ network: 'red', node: i % 4 < 2 ? 'host1' : 'host2', netns: `c${i}` }),
      ),
    );
    const ips = endpoints.map((e) => e.ip);
    assert.equal(new Set(ips).size, ips.length, `duplicate addresses: ${ips.join(' ')}`);
    await a.service.state.waitFor(b.service.state.revision);
    await b.service.state.waitFor(a.service.state.revision);
    assert.deepEqual(
      a.service.listEndpoints({ network: 'red' }).map((e) => e.ip),
      b.service.listEndpoints({ network: 'red' }).map((e) => e.ip),
    );
  });

  test('a node heard by one manager is up on the other, and confirms a delete made through the other', async () => {
    const [a, b] = running as [RunningManager, RunningManager];
    const stateOn = (m: RunningManager) => m.service.listNodes().find((n) => n.name === 'host2')?.state;
    // host2's agent talks to a only
    a.service.heartbeat('host2', { reconciledRevision: a.service.state.revision });
    const until = async (what: string, holds: () => boolean) => {
      const deadline = Date.now() + 5000;
      while (!holds()) {
        assert.ok(Date.now() < deadline, what);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    await until('host2 never came up on manager b', () => stateOn(b) === 'up');

    const endpoint = await b.service.createEndpoint({ network: 'red', node: 'host2', netns: 'liveness' });
    // a must have the endpoint before its absence can mean that a saw the delete
    await until('the endpoint never reached manager a', () => a.service.state.endpoints.has(endpoint.id));
    // the delete through b waits for host2's confirmation, which only a hears
    const deleted = b.service.deleteEndpoint(endpoint.id, { waitMs: 8000 });
    await until('the delete never reached manager a', () => !a.service.state.endpoints.has(endpoint.id));
    a.service.heartbeat('host2', { reconciledRevision: a.service.state.revision });
    const started = Date.now();
    await deleted;
    assert.ok(Date.now() - started < 4000, `confirmed through the other manager after ${Date.now() - started} ms`);
  });

  test('a removed node leaves no shared liveness behind, not even one put back by a late batch', async () => {
    const [a, b] = running as [RunningManager, RunningManager];
    const raw = new EtcdStore({ endpoints: etcd.endpoints() });
    const until = async (what: string, holds: () => Promise<boolean>) => {
      const deadline = Date.now() + 8000;
      while (!(await holds())) {
        assert.ok(Date.now() < deadline, what);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    try {
      await until('host2 never got a shared liveness key', async () => (await raw.get(`${LIVENESS_PREFIX}host2`)) !== undefined);
      await b.service.deleteNode('host2', { drain: true });
      assert.equal(await raw.get(`${LIVENESS_PREFIX}host2`), undefined, 'node rm left /liveness/host2');
      assert.equal(a.service.listNodes().some((n) => n.name === 'host2'), false);

      // a batch from a manager that had not seen the removal yet, for a node that no longer exists
      await raw.txn([], [{ type: 'put', key: `${LIVENESS_PREFIX}host2`, value: JSON.stringify({ lastSeen: Date.now(), reconciledRevision: 1 }) }]);
      await until('the late liveness of a removed node stayed', async () => (await raw.get(`${LIVENESS_PREFIX}host2`)) === undefined);
      // and one for a registered node stays
      a.service.heartbeat('host1', { reconciledRevision: a.service.state.revision });
      await until('host1 never got a shared liveness key', async () => (await raw.get(`${LIVENESS_PREFIX}host1`)) !== undefined);
      await new Promise((r) => setTimeout(r, 300));
      assert.ok(await raw.get(`${LIVENESS_PREFIX}host1`), 'the liveness of a registered node was deleted');
    } finally {
      await raw.close();
    }
  });

  test('a client given both managers carries on through the other when one stops, watch included', async () => {
    const [a, b] = running as [RunningManager, RunningManager];
    const https = (m: RunningManager) => `https://${m.addresses.find((x) => !x.startsWith('unix:'))!}`;
    client = new ManagerClient({ url: `${https(a)},${https(b)}`, token: a.tokens.admin });
    assert.equal(client.url, https(a));
    const messages: WatchMessage[] = [];
    const firstWatch = client.watch('host1', (m) => messages.push(m), new AbortController().signal).catch((err: Error) => err);
    await client.createNetwork({ name: 'green', subnets: [{ cidr: '10.9.0.0/24' }] });
    await a.close();
    running.splice(0, 1);
    // a ends its streams (or they are cut); the next watch and every request go to b, which has every write
    await firstWatch;
    assert.equal(messages[0]?.type, 'snapshot');
    assert.ok((await client.listNetworks()).some((n) => n.name === 'green'));
    assert.equal(client.url, https(b));
    const controller = new AbortController();
    const second: WatchMessage[] = [];
    const secondWatch = client.watch('host1', (m) => second.push(m), controller.signal).catch(() => {});
    const deadline = Date.now() + 5000;
    while (!second.some((m) => m.type === 'snapshot')) {
      assert.ok(Date.now() < deadline, 'no snapshot from the second manager');
      await new Promise((r) => setTimeout(r, 20));
    }
    controller.abort();
    await secondWatch;
  });
});
