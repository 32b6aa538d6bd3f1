/** CNI endpoints in the manager: a node certificate creates and deletes them on its own node only; the container id is checked and kept. */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { RunningManager } from '../../src/manager/main.ts';
import { injectInto, startSocketManager } from './support/manager.ts';

describe('CNI endpoints (cni: the runtime container id)', () => {
  let manager: RunningManager;
  let host1: string;
  const call = injectInto(() => manager);
  const CID = 'a'.repeat(64);

  before(async () => {
    ({ manager } = await startSocketManager('vxnet-cni-manager-'));
    const publicKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const joined = await call({ method: 'POST', path: '/v1/join', token: manager.tokens.worker, body: { name: 'host1', publicKey } });
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
    host1 = joined.body.certificate as string;
    for (const [name, address] of [['host1', '192.0.2.11'], ['host2', '192.0.2.12']] as const) await manager.service.registerNode({ name, address, mtu: 1500 });
    await manager.service.createNetwork({ name: 'blue', vni: 100 });
  });
  after(() => manager.close());

  test('a node certificate creates a CNI endpoint on its own node, which records the container id, and deletes it', async () => {
    const created = await call({ method: 'POST', path: '/v1/endpoints?wait=0', certificate: host1, body: { network: 'blue', node: 'host1', netns: '/run/netns/netns-1', cni: CID } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.cni, CID);
    assert.equal(created.body.netns, '/run/netns/netns-1');
    const deleted = await call({ method: 'DELETE', path: `/v1/endpoints/${created.body.id}?wait=0`, certificate: host1 });
    assert.equal(deleted.status, 204);
  });

  test('not on another node, and not a namespace endpoint without the container id', async () => {
    const other = await call({ method: 'POST', path: '/v1/endpoints', certificate: host1, body: { network: 'blue', node: 'host2', netns: '/run/netns/netns-2', cni: CID } });
    assert.equal(other.status, 403);
    const plain = await manager.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'plain' }, { waitMs: 0 });
    const refused = await call({ method: 'DELETE', path: `/v1/endpoints/${plain.id}`, certificate: host1 });
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error.message, `DELETE /v1/endpoints/${plain.id} needs the admin token or an admin certificate; a node may only delete Docker and CNI endpoints of its own node.`);
  });

  test('the container id is checked, and needs a namespace', async () => {
    await assert.rejects(manager.service.createEndpoint({ network: 'blue', node: 'host1', netns: 'x1', cni: 'no/slash' }), {
      code: 'bad_request',
      message: 'CNI container id "no/slash" is invalid: use 1-128 letters, digits, "_", "." or "-".',
    });
    await assert.rejects(manager.service.createEndpoint({ network: 'blue', node: 'host1', container: 'web', cni: CID }), {
      code: 'bad_request',
      message: 'an endpoint of a CNI container ("cni") needs the container\'s "netns".',
    });
  });
});
