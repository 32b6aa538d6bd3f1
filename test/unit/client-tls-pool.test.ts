/**
 * ManagerClient's pooled https connections: requests reuse one TLS connection (a handshake per request cost
 * the manager ~1 ms of CPU each, measured by bench/scale), and the manager identity check — host name and
 * role — still applies to pooled connections and to the watch stream's own connection.
 */
import assert from 'node:assert/strict';
import diagnostics_channel from 'node:diagnostics_channel';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ManagerClient } from '../../src/client/client.ts';
import { VxnetError } from '../../src/core/errors.ts';
import type { RunningManager } from '../../src/manager/main.ts';
import { CA_KEY_FILE } from '../../src/manager/authority.ts';
import { subjectFor } from '../../src/pki/identity.ts';
import { createCertificate, generateKeyPair } from '../../src/pki/x509.ts';
import { startTlsManager } from './support/manager.ts';

describe('ManagerClient connection pool over https', () => {
  let dir: string;
  let manager: RunningManager;
  let url: string;

  before(async () => ({ dir, manager, url } = await startTlsManager('vxnet-client-pool-')));
  after(() => manager.close());

  test('sequential and parallel requests reuse the pooled TLS connections', async () => {
    let connections = 0;
    const count = () => connections++;
    diagnostics_channel.subscribe('net.client.socket', count);
    const client = new ManagerClient({ url, token: manager.tokens.admin });
    try {
      for (let i = 0; i < 20; i++) await client.info();
      // one connection to fetch the CA (unverified, then checked against the digest), one pooled
      assert.ok(connections <= 2, `${connections} connections for 20 requests`);
      connections = 0;
      await Promise.all(Array.from({ length: 40 }, () => client.info()));
      assert.ok(connections <= 4, `${connections} new connections for 40 parallel requests (pool of 4)`);
    } finally {
      diagnostics_channel.unsubscribe('net.client.socket', count);
      client.close();
    }
  });

  test('a server with a certificate of the cluster CA that is not the manager\'s is refused, pooled or not', async () => {
    // signed by the cluster CA, fit for a server, with the right IP address: only its role gives it away
    const keys = generateKeyPair();
    const certificate = createCertificate({
      subject: subjectFor('worker', 'impostor'),
      publicKey: keys.publicKey,
      issuer: { certificate: new X509Certificate(manager.caCertificate), privateKey: createPrivateKey(readFileSync(join(dir, 'data', CA_KEY_FILE))) },
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 60_000),
      extendedKeyUsage: ['serverAuth'],
      altNames: { ip: ['127.0.0.1'] },
    });
    const impostor = createServer(
      { key: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, cert: certificate, minVersion: 'TLSv1.3' },
      (req, res) => {
        res.setHeader('content-type', 'application/json');
        if (req.url === '/v1/ca') res.end(JSON.stringify({ certificate: manager.caCertificate, digest: manager.caDigest }));
        else res.end('{"clusterId":"x","revision":1}');
      },
    );
    await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve));
    const port = (impostor.address() as AddressInfo).port;
    const client = new ManagerClient({ url: `https://127.0.0.1:${port}`, token: manager.tokens.admin });
    try {
      for (const attempt of [() => client.info(), () => client.watch('host1', () => {}, AbortSignal.timeout(5000))]) {
        await assert.rejects(attempt(), (err: unknown) => {
          assert.ok(err instanceof VxnetError, String(err));
          assert.equal(err.code, 'untrusted_manager', err.message);
          assert.match(err.message, /NOT_A_MANAGER_CERT|not a vxnet manager/);
          return true;
        });
      }
    } finally {
      client.close();
      impostor.closeAllConnections();
      await new Promise((resolve) => impostor.close(resolve));
    }
  });
});
