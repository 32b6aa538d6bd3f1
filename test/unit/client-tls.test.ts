/**
 * ManagerClient over https against a real manager: the CA pinned by the digest in a token, refused when it
 * differs, the host name checked, client certificates for agents (also after a renewal).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ManagerClient } from '../../src/client/client.ts';
import { VxnetError } from '../../src/core/errors.ts';
import type { WatchMessage } from '../../src/core/model.ts';
import { type RunningManager, startManager } from '../../src/manager/main.ts';
import { generateKeyPair } from '../../src/pki/x509.ts';
import { startTlsManager } from './support/manager.ts';

async function rejectsWith(promise: Promise<unknown>, code: string, message?: RegExp): Promise<VxnetError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof VxnetError, `expected a VxnetError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return err;
  }
  return assert.fail('expected a rejection');
}

describe('ManagerClient over https', () => {
  let dir: string;
  let manager: RunningManager;
  let url: string;

    // node certificates live 3 s here, so that the renewed one is seen to take over
  before(async () => ({ dir, manager, url } = await startTlsManager('vxnet-client-tls-', { certLifetimeMs: 3000 })));
  after(() => manager.close());

  test('the admin token pins the CA by its digest: fetched once, checked, then every connection verified', async () => {
    const client = new ManagerClient({ url, token: manager.tokens.admin });
    try {
      assert.deepEqual(await client.listNetworks(), []);
      assert.equal(await client.trustedCa(), manager.caCertificate);
      assert.equal((await client.info()).clusterId, manager.clusterId);
    } finally {
      client.close();
    }
  });

  test('a token with another CA digest: the manager is refused before any credential is sent', async () => {
    const token = `VXN1-${'1'.repeat(64)}-${manager.tokens.admin.slice(70)}`;
    const client = new ManagerClient({ url, token });
    const err = await rejectsWith(client.listNetworks(), 'untrusted_manager', /presented a CA that does not match the token/);
    assert.ok(!err.message.includes(manager.tokens.admin.slice(70)), 'the secret is never shown');
    client.close();
  });

  test('the CA given must be the one the token pins; https needs one of them', async () => {
    const other = await startManager({ dataDir: join(dir, 'other'), listen: [`unix:${join(dir, 'o.sock')}`] });
    try {
      assert.throws(() => new ManagerClient({ url, token: manager.tokens.admin, ca: other.caCertificate }), { code: 'bad_request' });
      assert.throws(() => new ManagerClient({ url, token: 'plain-token' }), /needs the cluster CA to be trusted/);
      // with the right CA file and no digest in the token, it works
      const client = new ManagerClient({ url, token: manager.tokens.admin, ca: manager.caCertificate });
      assert.deepEqual(await client.listNetworks(), []);
      client.close();
    } finally {
      await other.close();
    }
  });

  test('a host name the server certificate does not carry is refused', async () => {
    const client = new ManagerClient({ url: url.replace('127.0.0.1', 'localhost'), token: manager.tokens.admin, ca: manager.caCertificate });
    await rejectsWith(client.listNetworks(), 'untrusted_manager', /ERR_TLS_CERT_ALTNAME_INVALID/);
    client.close();
  });

  test('an agent: join with the worker token, then work with the certificate, renewed before it expires', async () => {
    const joiner = new ManagerClient({ url, token: manager.tokens.worker });
    const keys = generateKeyPair();
    const joined = await joiner.join({ name: 'n1', publicKey: keys.publicKey.export({ type: 'spki', format: 'pem' }) as string });
    joiner.close();
    assert.equal(joined.role, 'worker');
    const agent = new ManagerClient({
      url,
      ca: joined.ca,
      cert: joined.certificate,
      key: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    });
    try {
      await agent.registerNode({ name: 'n1', address: '192.0.2.1', mtu: 1500 });
      await rejectsWith(agent.registerNode({ name: 'n2', address: '192.0.2.2', mtu: 1500 }), 'forbidden');
      await rejectsWith(agent.createNetwork({ name: 'x' }), 'forbidden');

      const messages: WatchMessage[] = [];
      const stop = new AbortController();
      const watching = agent.watch('n1', (m) => {
        messages.push(m);
        stop.abort();
      }, stop.signal).catch(() => {});
      await watching;
      assert.equal(messages[0]?.type, 'snapshot');

      // renewed at two thirds of its lifetime, as the agent does, and at the latest 1 s before its end (a
      // loaded machine may have spent that long on the steps above)
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, Math.min(2000, Date.parse(joined.notAfter) - Date.now() - 1000))));
      const next = generateKeyPair();
      const renewed = await agent.renewCertificate({ publicKey: next.publicKey.export({ type: 'spki', format: 'pem' }) as string });
      agent.setClientCertificate({ cert: renewed.certificate, key: next.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string });
      // past the first certificate's end: only the renewed one can still be accepted
      await new Promise((resolve) => setTimeout(resolve, Date.parse(joined.notAfter) - Date.now() + 200));
      await agent.heartbeat('n1', { reconciledRevision: 0 });
      const stale = new ManagerClient({ url, ca: joined.ca, cert: joined.certificate, key: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string });
      await rejectsWith(stale.heartbeat('n1', { reconciledRevision: 0 }), 'unauthorized', /CERT_HAS_EXPIRED/);
      stale.close();
    } finally {
      agent.close();
    }
  });

  test('a client certificate needs its key; a client needs a token or a certificate', () => {
    assert.throws(() => new ManagerClient({ url, ca: manager.caCertificate, cert: 'x' }), /needs its private key/);
    assert.throws(() => new ManagerClient({ url, ca: manager.caCertificate }), /a token \(or a client certificate\) is required/);
  });
});
