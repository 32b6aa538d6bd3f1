/**
 * Removal markers on etcd (a real single-member etcd 3.4 on loopback) belong to the manager that holds them:
 * a manager starting while another one deletes a network leaves that delete's marker alone (so no endpoint
 * can slip into the network meanwhile), a marker whose manager died goes with its lease, and one without a
 * lease (left by a manager before markers had one) is still removed at start.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { Etcd3 } from 'etcd3';
import { keys } from '../../src/manager/keys.ts';
import { ManagerService } from '../../src/manager/service.ts';
import { DEFAULT_ETCD_PREFIX, EtcdStore } from '../../src/manager/store/etcd.ts';
import type { Store } from '../../src/manager/store/store.ts';
import { ETCD_BINARY, type EtcdCluster, startSingleEtcd } from '../../src/testkit/etcd.ts';
import { registerNodes } from './support/manager.ts';
import { temporaryDirectory } from './support/temporary.ts';

const skip = existsSync(ETCD_BINARY) ? undefined : `${ETCD_BINARY} is not installed (setup.sh installs it)`;

/** `store`, with every transaction that deletes an endpoint held until `release` is called. */
function holdingEndpointDeletes(store: Store): { store: Store; reached: Promise<void>; release: () => void } {
  let release!: () => void;
  let reached!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const reachedPromise = new Promise<void>((r) => (reached = r));
  const held: Store = {
    get: (key) => store.get(key),
    list: (prefix) => store.list(prefix),
    revision: () => store.revision(),
    watch: (prefix, from, onEvents) => store.watch(prefix, from, onEvents),
    close: () => store.close(),
    async txn(compares, ops) {
      if (ops.some((op) => op.type === 'delete' && op.key.startsWith('/endpoints/'))) {
        reached();
        await released;
      }
      return store.txn(compares, ops);
    },
  };
  return { store: held, reached: reachedPromise, release };
}

async function until(what: string, holds: () => boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!holds()) {
    assert.ok(Date.now() < deadline, what);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('removal markers on etcd', { ...(skip ? { skip } : {}) }, () => {
  let etcd: EtcdCluster;
  const open: ManagerService[] = [];
  const stores: Store[] = [];
  const store = () => {
    const s = new EtcdStore({ endpoints: etcd.endpoints(), sessionTtlSeconds: 2 });
    stores.push(s);
    return s;
  };
  const manager = async (s: Store) => {
    const service = await ManagerService.open(s);
    open.push(service);
    return service;
  };

  before(async () => {
    etcd = await startSingleEtcd({ scratch: temporaryDirectory('vxnet-etcd-markers-') });
  });
  after(async () => {
    for (const service of open) await service.close();
    for (const s of stores) await s.close();
    await etcd.stop();
  });

  test('a manager starting while another deletes a network leaves its marker, and no endpoint gets in', async () => {
    const held = holdingEndpointDeletes(store());
    const a = await manager(held.store);
    await registerNodes(a, ['host1']);
    await a.createNetwork({ name: 'blue', subnets: [{ cidr: '10.41.0.0/24' }] });
    await a.createEndpoint({ network: 'blue', node: 'host1', netns: 'c1' });
    const deleting = a.deleteNetwork('blue', { force: true });
    await held.reached;

    const b = await manager(store());
    assert.ok(b.state.deleting.has('blue'), 'the starting manager removed the marker of a delete running on another manager');
    await assert.rejects(b.createEndpoint({ network: 'blue', node: 'host1', netns: 'c2' }), /network blue is being deleted/);

    held.release();
    await deleting;
    await b.state.waitFor(a.state.revision);
    assert.equal(b.state.networks.has('blue'), false);
    assert.equal(b.state.deleting.has('blue'), false);
    assert.equal(b.state.endpoints.size, 0, 'an endpoint outlived its network');
  });

  test('the marker of a manager that died goes with its lease; one without a lease is removed at start', async () => {
    const watcher = await manager(store());
    const raw = new Etcd3({ hosts: etcd.endpoints().map((e) => `http://${e}`) });
    try {
      // a manager that dies mid-delete stops renewing its lease (release() stops the renewals, revokes nothing)
      const lease = raw.lease(2);
      await lease.put(DEFAULT_ETCD_PREFIX + keys.deleting('gone')).value(JSON.stringify({ since: new Date().toISOString() }));
      lease.release();
      await until('the marker never reached the index', () => watcher.state.deleting.has('gone'));
      await until('the marker of the dead manager outlived its lease', () => !watcher.state.deleting.has('gone'));

      await raw.put(DEFAULT_ETCD_PREFIX + keys.removingNode('old')).value(JSON.stringify({ since: new Date().toISOString() }));
      const late = await manager(store());
      assert.equal(late.state.removingNodes.has('old'), false, 'a marker without a lease stayed');
    } finally {
      raw.close();
    }
  });
});
