/**
 * What a node certificate reaches (docs/security.md, hole 4): at most --max-endpoints-per-node addresses
 * (reservations and endpoints) on one network, also under concurrent requests; network definitions, the
 * same through GET /v1/networks as through a `networks=all` watch; networks created and deleted only with
 * the right an administrator grants (`PATCH /v1/nodes/:name`, `vxnet node update`).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { RunningManager } from '../../src/manager/main.ts';
import { generateKeyPair } from '../../src/pki/x509.ts';
import { injectInto, startSocketManager } from './support/manager.ts';

const publicKey = () => generateKeyPair().publicKey.export({ type: 'spki', format: 'pem' }) as string;
const DOCKER_ID = (n: number) => n.toString(16).padStart(64, 'a');

describe('node scope', () => {
  let manager: RunningManager;
  let host1: string;
  let host2: string;
  const call = injectInto(() => manager);
  const admin = (method: string, path: string, body?: unknown) => call({ method, path, token: manager.tokens.admin, ...(body === undefined ? {} : { body }) });
  const joinAs = async (name: string, address: string) => {
    const r = await call({ method: 'POST', path: '/v1/join', token: manager.tokens.worker, body: { name, publicKey: publicKey() } });
    const certificate = r.body.certificate as string;
    assert.equal((await call({ method: 'POST', path: '/v1/nodes', certificate, body: { name, address, mtu: 1500 } })).status, 200);
    return certificate;
  };
  const reserve = (certificate: string, node: string, network = 'blue') =>
    call({ method: 'POST', path: '/v1/reservations', certificate, body: { network, node } });

  before(async () => {
    ({ manager } = await startSocketManager('vxnet-scope-', { maxEndpointsPerNode: 3 }));
    host1 = await joinAs('host1', '192.0.2.1');
    host2 = await joinAs('host2', '192.0.2.2');
    for (const name of ['blue', 'red']) assert.equal((await admin('POST', '/v1/networks', { name })).status, 201);
  });
  after(() => manager.close());

  test('a node holds at most the limit of addresses on one network; the next is refused with quota_exceeded', async () => {
    const made = [];
    for (let i = 0; i < 2; i++) made.push(await reserve(host1, 'host1'));
    // a Docker endpoint on its own reservation takes no address of its own; one without counts
    const adopted = await call({ method: 'POST', path: '/v1/endpoints?wait=0', certificate: host1, body: { network: 'blue', node: 'host1', docker: DOCKER_ID(1), ip: made[0]!.body.ip, reserved: true } });
    assert.equal(adopted.status, 201, JSON.stringify(adopted.body));
    const plain = await call({ method: 'POST', path: '/v1/endpoints?wait=0', certificate: host1, body: { network: 'blue', node: 'host1', docker: DOCKER_ID(2) } });
    assert.equal(plain.status, 201, JSON.stringify(plain.body));
    const revision = manager.service.state.revision;
    for (const refused of [
      await reserve(host1, 'host1'),
      await call({ method: 'POST', path: '/v1/endpoints?wait=0', certificate: host1, body: { network: 'blue', node: 'host1', docker: DOCKER_ID(3) } }),
    ]) {
      assert.equal(refused.status, 403);
      assert.deepEqual(refused.body.error, {
        code: 'quota_exceeded',
        message: 'node host1 already holds 3 addresses on network blue, the most a node may hold on one network (vxnet manager --max-endpoints-per-node); release some first.',
      });
    }
    assert.equal(manager.service.state.revision, revision, 'nothing written');
    // another network, another node, an administrator: not affected
    assert.equal((await reserve(host1, 'host1', 'red')).status, 201);
    assert.equal((await reserve(host2, 'host2')).status, 201);
    const byAdmin = await admin('POST', '/v1/reservations', { network: 'blue', node: 'host1' });
    assert.equal(byAdmin.status, 201);
    // released, there is room again (the admin's reservation for host1 counts as host1's)
    for (const ip of [made[1]!.body.ip, byAdmin.body.ip]) {
      assert.equal((await call({ method: 'DELETE', path: `/v1/reservations/blue/${ip}?node=host1`, certificate: host1 })).status, 204);
    }
    assert.equal((await reserve(host1, 'host1')).status, 201);
  });

  test('of many requests of one node at once, no more than the limit succeed', async () => {
    await admin('POST', '/v1/networks', { name: 'green' });
    const answers = await Promise.all(Array.from({ length: 12 }, () => reserve(host2, 'host2', 'green')));
    assert.equal(answers.filter((a) => a.status === 201).length, 3);
    assert.ok(answers.every((a) => a.status === 201 || a.body.error.code === 'quota_exceeded'));
    assert.equal(manager.service.listReservations({ network: 'green', node: 'host2' }).length, 3);
  });

  test('a node reads every network definition, as its networks=all watch shows them', async () => {
    const listed = await call({ method: 'GET', path: '/v1/networks', certificate: host1 });
    assert.equal(listed.status, 200);
    const watched = manager.hub.snapshot('host1', { allNetworks: true }).networks.map((n) => n.name);
    assert.deepEqual(listed.body.map((n: { name: string }) => n.name), watched);
    // the endpoints of a network it takes no part in stay out of reach
    assert.equal((await call({ method: 'GET', path: '/v1/networks/red', certificate: host2 })).status, 403);
  });

  test('creating networks needs the right an admin grants; the node then deletes only the unused networks it created', async () => {
    const refused = await call({ method: 'POST', path: '/v1/networks', certificate: host1, body: { name: 'docker1' } });
    assert.deepEqual([refused.status, refused.body.error.message], [403, 'node host1 may not create networks: an administrator grants that with "vxnet node update host1 --allow-network-create".']);
    assert.equal((await call({ method: 'PATCH', path: '/v1/nodes/host1', certificate: host1, body: { allowNetworkCreate: true } })).status, 403, 'not for nodes');

    const granted = await admin('PATCH', '/v1/nodes/host1', { allowNetworkCreate: true });
    assert.equal(granted.status, 200);
    assert.equal(granted.body.allowNetworkCreate, true);
    assert.equal(granted.body.state, 'up');
    const created = await call({ method: 'POST', path: '/v1/networks', certificate: host1, body: { name: 'docker1' } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.createdBy, 'host1');
    // re-registering keeps the right
    await call({ method: 'POST', path: '/v1/nodes', certificate: host1, body: { name: 'host1', address: '192.0.2.1', mtu: 9000 } });
    assert.equal(manager.service.getNode('host1').allowNetworkCreate, true);

    const notMine = await call({ method: 'DELETE', path: '/v1/networks/blue', certificate: host1 });
    assert.deepEqual([notMine.status, notMine.body.error.message], [403, 'node host1 may only delete the networks it created, and network blue was created by an administrator.']);
    const forced = await call({ method: 'DELETE', path: '/v1/networks/docker1?force=true', certificate: host1 });
    assert.equal(forced.status, 403);
    const other = await call({ method: 'DELETE', path: '/v1/networks/docker1', certificate: host2 });
    assert.match(other.body.error.message, /^node host2 may not delete networks/);
    const used = await call({ method: 'POST', path: '/v1/endpoints?wait=0', certificate: host1, body: { network: 'docker1', node: 'host1', docker: DOCKER_ID(9) } });
    assert.equal(used.status, 201);
    assert.equal((await call({ method: 'DELETE', path: '/v1/networks/docker1', certificate: host1 })).body.error.code, 'network_in_use');
    assert.equal((await call({ method: 'DELETE', path: `/v1/endpoints/${used.body.id}?wait=0`, certificate: host1 })).status, 204);
    assert.equal((await call({ method: 'DELETE', path: '/v1/networks/docker1', certificate: host1 })).status, 204);

    const revoked = await admin('PATCH', '/v1/nodes/host1', { allowNetworkCreate: false });
    assert.equal(revoked.body.allowNetworkCreate, undefined);
    assert.equal((await call({ method: 'POST', path: '/v1/networks', certificate: host1, body: { name: 'docker2' } })).status, 403);
  });

  test('the quota bookkeeping goes with its network and its node', async () => {
    await admin('DELETE', '/v1/networks/green?force=true');
    assert.ok(![...manager.service.state.usage.keys()].some((k) => k.startsWith('/usage/green/')));
    await admin('DELETE', '/v1/nodes/host2?drain=true');
    assert.ok(![...manager.service.state.usage.keys()].some((k) => k.endsWith('/host2')));
  });
});
