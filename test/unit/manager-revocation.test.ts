/**
 * Revocation of node certificates (docs/security.md, hole 5): `vxnet node rm` revokes the node's
 * certificate (API and renewal refused from that revision on), a name joined again refuses the previous
 * holder's certificate, a renewal honours the new certificate and the one it replaced only, and renewals
 * stop at the maximum age after the join. All kept in the store (the identity record), read from the index.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { RunningManager } from '../../src/manager/main.ts';
import { whyRevoked } from '../../src/manager/service/identities.ts';
import { generateKeyPair } from '../../src/pki/x509.ts';
import { injectInto, startedOnOlderDatabase, startSocketManager, vxnetError } from './support/manager.ts';

const publicKey = () => generateKeyPair().publicKey.export({ type: 'spki', format: 'pem' }) as string;

async function openManager(options: { certMaxAgeMs?: number } = {}): Promise<RunningManager> {
  return (await startSocketManager('vxnet-revocation-', options)).manager;
}

describe('revocation of node certificates', () => {
  let manager: RunningManager;
  const call = injectInto(() => manager);
  const joinAs = async (name: string, token = manager.tokens.worker): Promise<string> => {
    const r = await call({ method: 'POST', path: '/v1/join', token, body: { name, publicKey: publicKey() } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.certificate as string;
  };
  const register = (certificate: string, name: string, address: string) =>
    call({ method: 'POST', path: '/v1/nodes', certificate, body: { name, address, mtu: 1500 } });

  before(async () => {
    manager = await openManager();
  });
  after(() => manager.close());

  test('a join records the identity in the store: the node, its join time and the serial of its certificate', async () => {
    const cert = await joinAs('host1');
    const record = manager.service.state.identities.get('host1');
    assert.ok(record);
    assert.deepEqual(record.identity.serials, [new X509Certificate(cert).serialNumber]);
    assert.ok(Math.abs(Date.parse(record.identity.joinedAt) - Date.now()) < 5000);
    assert.equal((await register(cert, 'host1', '192.0.2.1')).status, 200);
  });

  test('node rm revokes: the API, the watch and renewal refuse the certificate (401 certificate_revoked), nothing changes', async () => {
    const cert = await joinAs('host2');
    assert.equal((await register(cert, 'host2', '192.0.2.2')).status, 200);
    await manager.service.deleteNode('host2');
    const revision = manager.service.state.revision;
    const answers = await Promise.all([
      register(cert, 'host2', '192.0.2.99'),
      call({ method: 'GET', path: '/v1/info', certificate: cert }),
      call({ method: 'POST', path: '/v1/certificates/renew', certificate: cert, body: { publicKey: publicKey() } }),
      call({ method: 'POST', path: '/v1/nodes/host2/heartbeat', certificate: cert, body: { reconciledRevision: 0 } }),
    ]);
    for (const r of answers) {
      assert.equal(r.status, 401, JSON.stringify(r.body));
      assert.deepEqual(r.body.error, {
        code: 'certificate_revoked',
        message: 'the certificate of node host2 is revoked: the node was removed with "vxnet node rm"; join again with the worker token.',
      });
    }
    assert.equal(manager.service.state.revision, revision, 'nothing written');
    assert.throws(() => manager.service.getNode('host2'), vxnetError('node_not_found'));
  });

  test('a removed node joins again with the worker token; the old certificate stays refused', async () => {
    const old = await joinAs('host3');
    assert.equal((await register(old, 'host3', '192.0.2.3')).status, 200);
    await manager.service.deleteNode('host3');
    const fresh = await joinAs('host3');
    assert.equal((await register(fresh, 'host3', '192.0.2.3')).status, 200);
    const refused = await call({ method: 'GET', path: '/v1/info', certificate: old });
    assert.equal(refused.status, 401);
    assert.match(refused.body.error.message, /^the certificate of node host3 \(serial [0-9A-F]+\) is revoked: the node joined again at .* and holds another certificate\.$/);
  });

  test('a joined node that never registered is revoked by node rm too; an unknown name is still node_not_found', async () => {
    const cert = await joinAs('host4');
    const removed = await call({ method: 'DELETE', path: '/v1/nodes/host4', token: manager.tokens.admin });
    assert.equal(removed.status, 204);
    assert.equal((await call({ method: 'GET', path: '/v1/info', certificate: cert })).body.error.code, 'certificate_revoked');
    const unknown = await call({ method: 'DELETE', path: '/v1/nodes/host9', token: manager.tokens.admin });
    assert.deepEqual([unknown.status, unknown.body.error.message], [404, 'node host9 is not registered.']);
  });

  test('the admin token may join under a registered name: the previous certificate is refused from then on', async () => {
    const first = await joinAs('host5');
    assert.equal((await register(first, 'host5', '192.0.2.5')).status, 200);
    const second = await joinAs('host5', manager.tokens.admin);
    assert.equal((await call({ method: 'GET', path: '/v1/info', certificate: first })).status, 401);
    assert.equal((await call({ method: 'GET', path: '/v1/info', certificate: second })).status, 200);
    assert.equal(manager.service.getNode('host5').address, '192.0.2.5', 'the node itself is untouched');
  });

  test('a renewal honours the new certificate and the one it replaced, not older ones', async () => {
    const c0 = await joinAs('host6');
    const renew = async (cert: string) => {
      const r = await call({ method: 'POST', path: '/v1/certificates/renew', certificate: cert, body: { publicKey: publicKey() } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body.certificate as string;
    };
    const c1 = await renew(c0);
    const c2 = await renew(c1);
    const status = async (cert: string) => (await call({ method: 'GET', path: '/v1/info', certificate: cert })).status;
    assert.deepEqual([await status(c0), await status(c1), await status(c2)], [401, 200, 200]);
    assert.deepEqual(manager.service.nodeIdentity('host6')?.serials, [c2, c1].map((c) => new X509Certificate(c).serialNumber));
  });

  test('a registration in flight when the node is removed does not bring it back', async () => {
    const cert = await joinAs('host7');
    const held = { serial: new X509Certificate(cert).serialNumber, notBefore: new X509Certificate(cert).validFromDate };
    await manager.service.registerNode({ name: 'host7', address: '192.0.2.7', mtu: 1500 }, { certificate: held });
    await manager.service.deleteNode('host7');
    // authenticated before the removal, committed after it
    await assert.rejects(manager.service.registerNode({ name: 'host7', address: '192.0.2.70', mtu: 1500 }, { certificate: held }), vxnetError('certificate_revoked'));
    assert.throws(() => manager.service.getNode('host7'), vxnetError('node_not_found'));
  });
});

describe('the maximum age of a certificate chain', () => {
  test('renewals are refused once the maximum age after the join has passed, naming what to do', async (t) => {
    const manager = await openManager({ certMaxAgeMs: 50 });
    t.after(() => manager.close());
    const call = injectInto(() => manager);
    const joined = await call({ method: 'POST', path: '/v1/join', token: manager.tokens.worker, body: { name: 'old', publicKey: publicKey() } });
    await new Promise((r) => setTimeout(r, 80));
    const r = await call({ method: 'POST', path: '/v1/certificates/renew', certificate: joined.body.certificate, body: { publicKey: publicKey() } });
    assert.equal(r.status, 403);
    assert.match(r.body.error.message, /^node old joined at .* and its certificate may be renewed for 0 days after that, until .*: it must join again \(after "vxnet node rm old", with the worker token\)\.$/);
  });

  test('a renewed certificate never outlives the maximum age', async (t) => {
    const manager = await openManager({ certMaxAgeMs: 60_000 });
    t.after(() => manager.close());
    const call = injectInto(() => manager);
    const joined = await call({ method: 'POST', path: '/v1/join', token: manager.tokens.worker, body: { name: 'n', publicKey: publicKey() } });
    const r = await call({ method: 'POST', path: '/v1/certificates/renew', certificate: joined.body.certificate, body: { publicKey: publicKey() } });
    assert.equal(r.status, 200);
    const end = Date.parse(manager.service.nodeIdentity('n')!.joinedAt) + 60_000;
    assert.ok(new X509Certificate(r.body.certificate).validToDate.getTime() <= end + 1000);
  });
});

describe('nodes that joined before identities were recorded', () => {
  test('get an identity at start that honours their certificates issued before it, until they renew', async (t) => {
    const service = await startedOnOlderDatabase(t, { name: 'legacy', address: '192.0.2.40' }, (store) =>
      store.txn([], [{ type: 'delete', key: '/identities/legacy' }]),
    );
    const identity = service.nodeIdentity('legacy');
    assert.ok(identity?.legacyBefore !== undefined);
    const issuedBefore = { serial: 'AB', notBefore: new Date(Date.parse(identity.legacyBefore) - 60_000) };
    const issuedAfter = { serial: 'CD', notBefore: new Date(Date.parse(identity.legacyBefore) + 60_000) };
    assert.equal(whyRevoked(identity, 'legacy', issuedBefore), undefined);
    assert.match(whyRevoked(identity, 'legacy', issuedAfter)!, /is revoked/);
  });
});
