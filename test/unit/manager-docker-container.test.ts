/**
 * PUT /v1/endpoints/:id/docker-container: the Docker plugin of a node names the container behind one of its
 * node's Docker endpoints, so that `vxnet endpoint ls` shows `docker:web` (vxnet issue 17). Only for Docker
 * endpoints, only by their own node (or an admin), a valid container name, and the same name again writes
 * nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { RunningManager } from '../../src/manager/main.ts';
import { generateKeyPair } from '../../src/pki/x509.ts';
import { injectInto, startSocketManager } from './support/manager.ts';

const publicKey = () => generateKeyPair().publicKey.export({ type: 'spki', format: 'pem' }) as string;

describe('the container name of a Docker endpoint', () => {
  let manager: RunningManager;
  let host1: string;
  let host2: string;
  const call = injectInto(() => manager);
  const joinAs = async (name: string, address: string) => {
    const r = await call({ method: 'POST', path: '/v1/join', token: manager.tokens.worker, body: { name, publicKey: publicKey() } });
    const certificate = r.body.certificate as string;
    assert.equal((await call({ method: 'POST', path: '/v1/nodes', certificate, body: { name, address, mtu: 1500 } })).status, 200);
    return certificate;
  };

  before(async () => {
    ({ manager } = await startSocketManager('vxnet-docker-name-'));
    host1 = await joinAs('host1', '192.0.2.1');
    host2 = await joinAs('host2', '192.0.2.2');
    assert.equal((await call({ method: 'POST', path: '/v1/networks', token: manager.tokens.admin, body: { name: 'blue' } })).status, 201);
  });
  after(() => manager.close());

  test('its node names it once; another node, a non-Docker endpoint and a bad name are refused', async () => {
    const made = await call({ method: 'POST', path: '/v1/endpoints?wait=0', certificate: host1, body: { network: 'blue', node: 'host1', docker: 'd'.repeat(64) } });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const id = made.body.id as string;
    const name = (certificate: string, body: unknown, endpoint = id) => call({ method: 'PUT', path: `/v1/endpoints/${endpoint}/docker-container`, certificate, body });

    assert.equal((await name(host1, { name: 'web' })).status, 204);
    const revision = manager.service.state.revision;
    assert.equal((await name(host1, { name: 'web' })).status, 204);
    assert.equal(manager.service.state.revision, revision, 'the same name again writes nothing');
    assert.equal(manager.service.getEndpoint(id).dockerContainer, 'web');

    const other = await name(host2, { name: 'evil' });
    assert.equal(other.status, 403);
    assert.equal((await name(host1, { name: 'bad name' })).status, 400);
    assert.equal((await name(host1, { container: 'web' })).status, 400);
    const plain = await call({ method: 'POST', path: '/v1/endpoints?wait=0', token: manager.tokens.admin, body: { network: 'blue', node: 'host1', netns: 'c1' } });
    const notDocker = await call({ method: 'PUT', path: `/v1/endpoints/${plain.body.id as string}/docker-container`, token: manager.tokens.admin, body: { name: 'web' } });
    assert.equal(notDocker.status, 400);
    assert.match((notDocker.body.error as { message: string }).message, /is not a Docker endpoint: only those take the name of their container\./);
    assert.equal(manager.service.getEndpoint(id).dockerContainer, 'web');
  });
});
